#!/usr/bin/env bash
# The Debian packages in a clean Debian 12 root, as an operator installs them: built with
# scripts/package (lintian run there), installed with apt into a fresh mmdebstrap root from the
# Debian registry, their binaries and installed configs checked, upgraded over themselves keeping
# an edited config, then purged leaving nothing behind. Prints the installed sizes and the
# agent's RSS when started from the package.
#   tests/packaging/test_packages.sh     (as root: chroot; after scripts/setup --test)
set -euo pipefail
root_dir=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
source "$root_dir/scripts/lib.sh"
[[ $(id -u) -eq 0 ]] || { echo "test_packages.sh needs root (mmdebstrap and chroot)" >&2; exit 1; }

work=$(mktemp -d /tmp/dozor-packages.XXXXXX)
root=$work/root
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

mapfile -t debs < <("$root_dir/scripts/package" "$work/dist")
((${#debs[@]} == 2)) || fail "scripts/package made ${#debs[@]} packages, not 2"

say "a clean Debian 12 root (mmdebstrap, variant apt)"
mmdebstrap --quiet --variant=apt bookworm "$root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
in_root apt-get update -qq  # mmdebstrap leaves no package lists behind
cp "${debs[@]}" "$root/tmp/"
names=()
for d in "${debs[@]}"; do names+=("/tmp/$(basename "$d")"); done

say "install"
in_root apt-get install -y -qq --no-install-recommends "${names[@]}" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "apt-get install"; }
for b in dozor-agent dozor-collector dozorctl; do
  in_root "/usr/bin/$b" --version | grep -q "^$b " || fail "$b --version"
done
in_root getent passwd dozor >/dev/null || fail "no dozor user"
# Owners by the root's own user database (stat in the root).
[[ $(in_root stat -c %U:%G:%a /var/lib/dozor) == dozor:dozor:750 ]] ||
  fail "/var/lib/dozor: $(in_root stat -c %U:%G:%a /var/lib/dozor)"
[[ $(in_root stat -c %U:%G:%a /etc/dozor/certs) == root:dozor:750 ]] ||
  fail "/etc/dozor/certs: $(in_root stat -c %U:%G:%a /etc/dozor/certs)"
for unit in dozor-agent dozor-collector; do
  [[ -L $root/etc/systemd/system/multi-user.target.wants/$unit.service ]] || fail "$unit not enabled"
  # Enabled, never started by the package: only an upgrade restarts a running one.
  ! grep -E 'deb-systemd-invoke (start|restart)' "$root/var/lib/dpkg/info/$unit.postinst" ||
    fail "$unit.postinst starts the service"
done

say "the installed configs, with certificates made by the packaged dozor-certs"
in_root sh -ec 'cd /etc/dozor/certs
  dozor-certs ca ca >/dev/null 2>&1
  dozor-certs collector ca collector 127.0.0.1 >/dev/null 2>&1
  dozor-certs agent ca agent >/dev/null 2>&1
  cp ca/ca.pem ca/collector.pem ca/collector.key ca/agent.pem ca/agent.key .'
in_root dozor-agent --config /etc/dozor/agent.yaml --check-config || fail "agent.yaml"
in_root dozor-collector --config /etc/dozor/collector.yaml --check-config || fail "collector.yaml"

say "the agent from the package, for its RSS"
in_root chown root:dozor /etc/dozor/certs/agent.key /etc/dozor/certs/collector.key
in_root chmod 0640 /etc/dozor/certs/agent.key /etc/dozor/certs/collector.key
in_root setpriv --reuid=dozor --regid=dozor --init-groups \
  dozor-agent --config /etc/dozor/agent.yaml >"$work/agent.log" 2>&1 &
sleep 3
agent_pid=$(pgrep -f -n '^dozor-agent --config /etc/dozor/agent.yaml' || true)
[[ -n $agent_pid ]] || { cat "$work/agent.log" >&2; fail "the packaged agent did not stay up"; }
rss=$(awk '/^VmRSS/{print $2}' "/proc/$agent_pid/status")
kill -TERM "$agent_pid"
wait || true

say "upgrade over itself, keeping an edited config"
echo "# edited by the operator" >>"$root/etc/dozor/agent.yaml"
in_root apt-get install -y -qq --reinstall --no-install-recommends "${names[@]}" \
  >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log" >&2; fail "reinstall"; }
grep -q "edited by the operator" "$root/etc/dozor/agent.yaml" || fail "the edited agent.yaml was replaced"
[[ ! -e $root/etc/dozor/agent.yaml.dpkg-new && ! -e $root/etc/dozor/agent.yaml.dpkg-old ]] ||
  fail "a .dpkg-new/.dpkg-old copy was left"

say "purge"
rm -rf "$root/etc/dozor/certs/"*  # the operator's keys: a purge never deletes those
in_root apt-get purge -y -qq dozor-agent dozor-collector >"$work/purge.log" 2>&1 ||
  { cat "$work/purge.log" >&2; fail "purge"; }
left=$(cd "$root" && find etc var lib usr -name '*dozor*' 2>/dev/null | grep -v '^var/lib/dpkg/info' || true)
[[ -z $left ]] || fail "left behind after purge: $left"
! in_root getent passwd dozor >/dev/null || fail "the dozor user is still there"
! in_root dpkg -l 'dozor-*' 2>/dev/null | grep -q '^[a-z][a-z] ' || fail "still known to dpkg"

for d in "${debs[@]}"; do
  printf 'installed size %s: %s KiB\n' "$(dpkg-deb -f "$d" Package)" "$(dpkg-deb -f "$d" Installed-Size)"
done
echo "dozor-agent from the package (default config, 3 example probes): RSS ${rss} KiB"
say "packages: OK"
