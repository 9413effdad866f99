#!/bin/bash
# `cmake --install` follows --prefix and DESTDIR: every file lands under the staging
# root, the config directory is /etc for the prefix /usr (GNUInstallDirs), /etc/opt/X
# for /opt/X and PREFIX/etc otherwise, the unit names the installed paths, klingq-sim
# is only in its own component, and an existing klingq.yaml is never overwritten.
# Usage: install_test.sh BUILD_DIR. Writes only under a temp dir it removes.
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/klingq-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_file() { [ -f "$1" ] || fail "missing $1"; }
expect_absent() { [ ! -e "$1" ] || fail "unexpected $1"; }
expect_line() { grep -qxF "$2" "$1" || fail "$1 lacks the line: $2"; }

# install DESTDIR PREFIX [cmake --install args...]: every "Installing:" path under $tmp.
install_into() {
  local destdir=$1 prefix=$2; shift 2
  local log="$tmp/install.log"
  DESTDIR=$destdir cmake --install "$build" --prefix "$prefix" "$@" >"$log" 2>&1 || { cat "$log"; fail "cmake --install"; }
  local outside
  outside=$(sed -n 's/^-- \(Installing\|Up-to-date\): //p' "$log" | grep -v "^$tmp/" || true)
  [ -z "$outside" ] || fail "installed outside the staging root: $outside"
}

# 1. Prefix /usr with DESTDIR: what a package build does.
root="$tmp/usr-root"
install_into "$root" /usr
for f in usr/bin/klingqd usr/bin/klingq etc/klingq/klingq.yaml etc/klingq/klingq.example.yaml \
         usr/lib/systemd/system/klingqd.service usr/share/doc/klingq/README.md \
         usr/share/doc/klingq/klingq.example.yaml usr/share/klingq/roles.sql usr/share/klingq/schema/001_init.sql; do
  expect_file "$root/$f"
done
expect_absent "$root/usr/bin/klingq-sim"
expect_absent "$root/usr/etc"
cmp -s "$root/etc/klingq/klingq.yaml" "$root/etc/klingq/klingq.example.yaml" || fail "klingq.yaml is not the example"
unit="$root/usr/lib/systemd/system/klingqd.service"
expect_line "$unit" "ExecStart=/usr/bin/klingqd --config /etc/klingq/klingq.yaml"
expect_line "$unit" "Documentation=file:///usr/share/doc/klingq/README.md"
expect_line "$unit" "LoadCredential=api-key:/etc/klingq/api-key"
# The installed unit is the source unit, unchanged, for the prefix /usr.
cmp -s "$unit" "$(dirname "$0")/../../systemd/klingqd.service" || fail "the unit for /usr differs from systemd/klingqd.service"

# 2. An operator's config survives a re-install; the example is refreshed.
echo "# mine" > "$root/etc/klingq/klingq.yaml"
install_into "$root" /usr
[ "$(cat "$root/etc/klingq/klingq.yaml")" = "# mine" ] || fail "a re-install overwrote klingq.yaml"

# 3. The simulator is a component of its own.
install_into "$root" /usr --component simulator
expect_file "$root/usr/bin/klingq-sim"

# 4. /opt/klingq: the config in /etc/opt/klingq, the unit pointing there.
root="$tmp/opt-root"
install_into "$root" /opt/klingq
expect_file "$root/opt/klingq/bin/klingqd"
expect_file "$root/etc/opt/klingq/klingq/klingq.yaml"
unit="$root/opt/klingq/lib/systemd/system/klingqd.service"
expect_line "$unit" "ExecStart=/opt/klingq/bin/klingqd --config /etc/opt/klingq/klingq/klingq.yaml"
expect_line "$unit" "Documentation=file:///opt/klingq/share/doc/klingq/README.md"
expect_file "$root/opt/klingq/share/doc/klingq/README.md"

# 5. A prefix without DESTDIR (a user's own tree): PREFIX/etc, nothing else touched.
prefix="$tmp/home-prefix"
install_into "" "$prefix"
expect_file "$prefix/etc/klingq/klingq.yaml"
expect_file "$prefix/bin/klingqd"
expect_line "$prefix/lib/systemd/system/klingqd.service" "ExecStart=$prefix/bin/klingqd --config $prefix/etc/klingq/klingq.yaml"
echo "install paths ok"
