#!/bin/bash
# The Debian package as dpkg sees it: cpack builds klingq_*.deb from this build; its
# contents, control fields and conffiles are checked; `dpkg --root` installs it into an
# empty temp root (this machine's own dpkg database and /usr are never touched), where
# the shipped config passes --check-config and `systemd-analyze verify` accepts the
# installed unit (its ExecStart pointed into the temp root, since verify checks the
# binary on this machine's paths); then it is removed and purged again.
# Usage: deb_test.sh BUILD_DIR. Needs dpkg-deb, dpkg-shlibdeps, systemd-analyze.
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/klingq-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in cpack dpkg-deb dpkg dpkg-shlibdeps systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/common.sh installs dpkg-dev and systemd)"
done

(cd "$tmp" && cpack --config "$build/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/out/klingq_*.deb)
echo "built $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB"

# Contents: the programs, the unit, the config, the docs; not the simulator.
dpkg-deb --contents "$deb" | awk '{print $NF}' >"$tmp/contents"
for path in ./usr/bin/klingqd ./usr/bin/klingq ./usr/lib/systemd/system/klingqd.service ./etc/klingq/klingq.yaml \
            ./etc/klingq/klingq.example.yaml ./usr/share/doc/klingq/README.md ./usr/share/klingq/roles.sql \
            ./usr/share/klingq/schema/001_init.sql; do
  grep -qxF "$path" "$tmp/contents" || fail "the package lacks $path"
done
! grep -q "klingq-sim" "$tmp/contents" || fail "the package carries klingq-sim"

# Control: name, version, dependencies found by dpkg-shlibdeps, the conffiles.
[ "$(dpkg-deb -f "$deb" Package)" = klingq ] || fail "Package"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libpqxx libyaml-cpp libssl libc6; do
  echo "$depends" | grep -q "$lib" || fail "Depends lacks $lib"
done
dpkg-deb -e "$deb" "$tmp/control"
grep -qxF /etc/klingq/klingq.yaml "$tmp/control/conffiles" || fail "klingq.yaml is not a conffile"
grep -qxF /etc/klingq/klingq.example.yaml "$tmp/control/conffiles" || fail "the example is not a conffile"

# Install into an empty root with its own dpkg database. The dependencies are this
# machine's, not the root's: --force-depends. No maintainer scripts run (there are none).
root="$tmp/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg_root() { dpkg --root="$root" --force-depends --force-not-root --log=/dev/null "$@"; }
dpkg_root -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i"; }
dpkg_root -s klingq | grep -qx "Status: install ok installed" || fail "not installed"
for f in usr/bin/klingqd etc/klingq/klingq.yaml usr/share/doc/klingq/README.md usr/lib/systemd/system/klingqd.service; do
  [ -e "$root/$f" ] || fail "dpkg did not install /$f"
done

# The installed unit: every path it names exists in the root, and systemd accepts it.
unit="$root/usr/lib/systemd/system/klingqd.service"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/bin/klingqd --config /etc/klingq/klingq.yaml" ] || fail "ExecStart=$exec_start"
doc=$(sed -n 's|^Documentation=file://||p' "$unit")
[ -f "$root$doc" ] || fail "Documentation= names $doc, which the package does not install"
"$root/usr/bin/klingqd" --version
KLINGQ_API_KEY=unused "$root/usr/bin/klingqd" --config "$root/etc/klingq/klingq.yaml" --check-config \
  || fail "the shipped config does not pass --check-config"
mkdir -p "$tmp/verify"
sed "s|^ExecStart=/usr/bin/klingqd |ExecStart=$root/usr/bin/klingqd |" "$unit" >"$tmp/verify/klingqd.service"
SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat systemd-analyze verify "$tmp/verify/klingqd.service" >"$tmp/verify.log" 2>&1 \
  || { cat "$tmp/verify.log"; fail "systemd-analyze verify"; }
[ ! -s "$tmp/verify.log" ] || { cat "$tmp/verify.log"; fail "systemd-analyze verify had something to say"; }

# An operator's change to the conffile survives removal; purge takes it.
echo "# changed" >>"$root/etc/klingq/klingq.yaml"
dpkg_root -r klingq >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -r"; }
[ ! -e "$root/usr/bin/klingqd" ] || fail "dpkg -r left /usr/bin/klingqd"
[ -e "$root/etc/klingq/klingq.yaml" ] || fail "dpkg -r removed the changed conffile"
dpkg_root -P klingq >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -P"; }
[ ! -e "$root/etc/klingq/klingq.yaml" ] || fail "dpkg -P left the conffile"
echo "deb package ok"
