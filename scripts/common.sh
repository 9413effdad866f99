# Shared by scripts/demo and scripts/test: install what is missing, build once.
# Sourced, not run.
set -euo pipefail

KLINGQ_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# prometheus: its promtool checks and unit-tests dashboards/alerts.yaml (ctest alerts/*).
KLINGQ_PACKAGES=(build-essential cmake ninja-build pkg-config ccache
  libboost1.81-dev libboost-json1.81-dev libpqxx-dev libyaml-cpp-dev doctest-dev
  libssl-dev libpq-dev prometheus-cpp-dev postgresql wrk systemd clang-14 python3
  libclang-rt-14-dev dpkg-dev openssl prometheus
  chromium nodejs)  # the console's browser test (tests/browser): headless Chromium, puppeteer-core

install_dependencies() {
  local missing=()
  for p in "${KLINGQ_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # npm comes with some nodejs builds and is its own Debian package with others.
  if ! command -v npm >/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
}

# build BUILD_DIR [extra cmake args...]
build() {
  local dir=$1; shift
  # clang: GCC 12 miscompiles coroutines (see CMakeLists.txt).
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -q "CMAKE_CXX_COMPILER:.*clang" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
  CXX=clang++-14 cmake -S "$KLINGQ_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir"
}
