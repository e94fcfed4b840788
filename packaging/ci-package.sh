#!/bin/sh
# Builds msiproxy's .deb (and .rpm) from a CMake build dir, lints them, and runs the .deb through
# install, --version, --check, unit checks, remove and purge. Run as root on Debian 12.
#
# Usage: packaging/ci-package.sh [BUILD_DIR]     (default: build)
# Needs packaging/install-deps.sh to have run and BUILD_DIR to be configured (CI builds it first).
# Leaves the machine as it found it: the package is purged on success and on failure.
# MSIPROXY_SKIP_CHECK=1 skips `msiproxy --check` (only for testing with a placeholder binary).
set -eu

build=${1:-build}
unit=msiproxy.service
unit_path=/lib/systemd/system/$unit
checked=""

say() { printf '%s\n' "ci-package: $*"; }
fail() {
	printf '%s\n' "ci-package: FAIL: $*" >&2
	exit 1
}
# Records a passed check for the summary at the end.
ok() {
	say "ok: $*"
	checked="$checked
  - $*"
}
installed_state() { dpkg-query -W -f='${db:Status-Status}' msiproxy 2>/dev/null || true; }
purge_package() {
	if [ -n "$(installed_state)" ] && [ "$(installed_state)" != not-installed ]; then
		dpkg -P msiproxy >/dev/null 2>&1 || true
	fi
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (dpkg -i / -r / -P)"
[ -f "$build/CPackConfig.cmake" ] || fail "$build is not a configured build dir (no CPackConfig.cmake)"
build=$(cd "$build" && pwd)

# A package left over from an earlier run would hide what this one installs.
if [ -n "$(installed_state)" ] && [ "$(installed_state)" != not-installed ]; then
	say "purging a msiproxy package that was already installed ($(installed_state))"
	purge_package
fi
k8s_config=""
cleanup() {
	purge_package
	[ -z "$k8s_config" ] || rm -f "$k8s_config"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Tools for this script only (not build dependencies): the same installer, extra packages.
# file: CPackDeb's shlibdeps step needs it; python3-yaml: the Kubernetes manifest check.
MSIPROXY_EXTRA_PACKAGES="lintian rpm file python3-yaml" sh "$(dirname "$0")/install-deps.sh"

# The package ships whatever this build dir holds: say so when it is not a release build.
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
sanitize=$(sed -n 's/^MSIPROXY_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")
case "$build_type" in Release | RelWithDebInfo | MinSizeRel) ;; *)
	say "WARNING: packaging a $build_type build (use Release or RelWithDebInfo for real packages)" ;;
esac
[ -z "$sanitize" ] || say "WARNING: packaging a build with sanitizers ($sanitize)"

# ---- build the packages ----------------------------------------------------------------------
say "building msiproxy and its compressed docs in $build"
cmake --build "$build" --target msiproxy msiproxy_docs >/dev/null
rm -f "$build"/msiproxy*.deb "$build"/msiproxy*.rpm
(cd "$build" && cpack -G DEB) || fail "cpack -G DEB"
(cd "$build" && cpack -G RPM) || fail "cpack -G RPM"

version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
arch=$(dpkg --print-architecture)
deb="$build/msiproxy_${version}_${arch}.deb"
rpm_file=$(find "$build" -maxdepth 1 -name "msiproxy-$version-*.rpm" | head -n 1)
[ -f "$deb" ] || fail "expected $deb"
ok "cpack made $(basename "$deb")"
[ -n "$rpm_file" ] || fail "expected an msiproxy-$version-*.rpm in $build"
ok "cpack made $(basename "$rpm_file")"

# ---- static checks -------------------------------------------------------------------------------
[ "$(dpkg-deb -f "$deb" Package)" = msiproxy ] || fail "deb Package field"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "deb Version is not $version"
[ "$(dpkg-deb -f "$deb" Section)" = net ] || fail "deb Section is not net"
depends=$(dpkg-deb -f "$deb" Depends)
case "$depends" in *libc6*) ;; *) fail "deb Depends lacks libc6 (shlibdeps did not run?): $depends" ;; esac
ok "deb control: msiproxy $version, Section net, Depends: $depends"

conffiles=$(dpkg-deb -I "$deb" conffiles)
[ "$conffiles" = "/etc/msiproxy/config.toml
/etc/default/msiproxy" ] || fail "deb conffiles: $conffiles"
ok "deb conffiles: /etc/msiproxy/config.toml /etc/default/msiproxy"

say "lintian $(basename "$deb")"
lintian --fail-on error,warning --display-info --pedantic "$deb" || fail "lintian"
ok "lintian: no errors or warnings (overrides in packaging/debian/lintian-overrides)"

rpm_config=$(rpm -qcp "$rpm_file" 2>/dev/null | sort | tr '\n' ' ')
[ "$rpm_config" = "/etc/default/msiproxy /etc/msiproxy/config.toml " ] ||
	fail "rpm %config files: $rpm_config"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" 2>/dev/null |
	grep -q '^cn /etc/msiproxy/config.toml$' || fail "rpm: config.toml is not %config(noreplace)"
rpm -qlp "$rpm_file" 2>/dev/null | grep -qx /usr/lib/systemd/system/$unit || fail "rpm: unit not in /usr/lib/systemd/system"
rpm -qp --requires "$rpm_file" 2>/dev/null | grep -q '^libc\.so\.6' || fail "rpm: no automatic Requires"
ok "rpm: %config(noreplace) files, unit in /usr/lib/systemd/system, automatic Requires"

# ---- install -------------------------------------------------------------------------------------
say "dpkg -i $(basename "$deb")"
dpkg -i "$deb" || fail "dpkg -i"
[ "$(installed_state)" = installed ] || fail "package state after install: $(installed_state)"
ok "dpkg -i"

expected_files="/etc/default/msiproxy
/etc/msiproxy/config.toml
$unit_path
/usr/bin/msiproxy
/usr/share/doc/msiproxy/changelog.gz
/usr/share/doc/msiproxy/copyright
/usr/share/lintian/overrides/msiproxy
/usr/share/man/man8/msiproxy.8.gz"
# README.md is installed when the source tree has one (the rule is OPTIONAL).
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
if [ -f "$src/README.md" ]; then
	expected_files="$expected_files
/usr/share/doc/msiproxy/README.md"
fi
actual_files=$(dpkg -L msiproxy | while read -r f; do [ -d "$f" ] || echo "$f"; done | sort)
expected_sorted=$(printf '%s\n' "$expected_files" | sort)
if [ "$actual_files" != "$expected_sorted" ]; then
	printf 'expected:\n%s\nactual:\n%s\n' "$expected_sorted" "$actual_files" >&2
	fail "installed file list differs"
fi
ok "installed files: $(printf '%s\n' "$actual_files" | tr '\n' ' ')"

out=$(msiproxy --version) || fail "msiproxy --version exited $?"
[ "$out" = "msiproxy $version" ] || fail "msiproxy --version printed '$out', expected 'msiproxy $version'"
ok "msiproxy --version: $out"

if [ "${MSIPROXY_SKIP_CHECK:-}" = 1 ]; then
	say "WARNING: MSIPROXY_SKIP_CHECK=1: msiproxy --check NOT run"
else
	msiproxy --check --config /etc/msiproxy/config.toml || fail "msiproxy --check on the shipped config"
	ok "msiproxy --check --config /etc/msiproxy/config.toml"
fi

# The Kubernetes example: the YAML parses and its config.toml passes --check (with stand-in
# workload identity variables: --check must not need the real ones, nor the network).
manifest="$(dirname "$0")/kubernetes/msiproxy-sidecar.yaml"
k8s_config=$(mktemp)
/usr/bin/python3 - "$manifest" "$k8s_config" <<'PY' || fail "$manifest does not parse"
import sys, tomllib, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["ConfigMap", "Deployment", "ServiceAccount"], kinds
config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.toml"]
assert tomllib.loads(config)["identity"]["source"] == "workload-identity"
pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
open(sys.argv[2], "w").write(config)
PY
ok "$manifest parses (ServiceAccount, ConfigMap, Deployment; workload-identity config)"
if [ "${MSIPROXY_SKIP_CHECK:-}" = 1 ]; then
	say "WARNING: MSIPROXY_SKIP_CHECK=1: msiproxy --check of the Kubernetes config NOT run"
else
	AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000 \
		AZURE_TENANT_ID=00000000-0000-0000-0000-000000000000 \
		AZURE_FEDERATED_TOKEN_FILE=/nonexistent/azure-identity-token \
		AZURE_AUTHORITY_HOST=https://login.microsoftonline.com/ \
		msiproxy --check --config "$k8s_config" || fail "msiproxy --check on the Kubernetes ConfigMap's config.toml"
	ok "msiproxy --check on the Kubernetes ConfigMap's config.toml"
fi

# --man=no when man(1) is absent: verify would report the Documentation= page as missing.
man_opt=--man=no
command -v man >/dev/null && man_opt=--man=yes
systemd-analyze verify "$man_opt" "$unit_path" || fail "systemd-analyze verify $unit_path"
ok "systemd-analyze verify $man_opt $unit_path"
systemd-analyze security --offline=yes --no-pager "$unit_path" 2>/dev/null | tail -n 1
systemd-analyze security --offline=yes --threshold=20 "$unit_path" >/dev/null 2>&1 ||
	fail "systemd-analyze security: exposure above 2.0"
ok "systemd-analyze security: exposure <= 2.0"

# postinst enabled the unit through deb-systemd-helper even without a running systemd.
[ -L /etc/systemd/system/multi-user.target.wants/$unit ] || fail "postinst did not enable $unit"
ok "postinst enabled $unit"

# ---- remove keeps the config, purge deletes it ---------------------------------------------------
dpkg -r msiproxy || fail "dpkg -r"
[ "$(installed_state)" = config-files ] || fail "state after dpkg -r: $(installed_state)"
[ ! -e /usr/bin/msiproxy ] || fail "/usr/bin/msiproxy still there after dpkg -r"
[ ! -e "$unit_path" ] || fail "$unit_path still there after dpkg -r"
[ -f /etc/msiproxy/config.toml ] || fail "dpkg -r removed /etc/msiproxy/config.toml"
[ -f /etc/default/msiproxy ] || fail "dpkg -r removed /etc/default/msiproxy"
ok "dpkg -r: binary and unit gone, /etc/msiproxy/config.toml and /etc/default/msiproxy kept"

dpkg -P msiproxy || fail "dpkg -P"
state=$(installed_state)
[ -z "$state" ] || [ "$state" = not-installed ] || fail "state after dpkg -P: $state"
[ ! -e /etc/msiproxy ] || fail "/etc/msiproxy still there after dpkg -P"
[ ! -e /etc/default/msiproxy ] || fail "/etc/default/msiproxy still there after dpkg -P"
[ ! -e /etc/systemd/system/multi-user.target.wants/$unit ] || fail "enablement link left after purge"
[ ! -e /etc/systemd/system/$unit ] || fail "mask left after purge"
ok "dpkg -P: /etc/msiproxy, /etc/default/msiproxy and the unit's links gone"

# ---- summary -------------------------------------------------------------------------------------
say "package sizes:"
for f in "$deb" "$rpm_file"; do
	printf '  %-40s %8s bytes\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
printf '  %-40s %8s KiB\n' "deb Installed-Size" "$(dpkg-deb -f "$deb" Installed-Size)"
say "checked:$checked"
say "PASS"
