#!/usr/bin/env bash
# The Debian packages in a clean Debian 12 root, as an operator installs them: built with
# scripts/package (lintian run there), installed with apt into a fresh mmdebstrap root from the
# Debian registry, their binaries and installed configs checked, the agent enrolled with a token
# at the collector and reporting as its service user, upgraded over themselves keeping
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

say "the installed configs: a CA made by the packaged dozor-certs, the agent enrolled with a token"
[[ $(in_root stat -c %U:%G:%a /var/lib/dozor/certs) == dozor:dozor:700 ]] ||
  fail "/var/lib/dozor/certs: $(in_root stat -c %U:%G:%a /var/lib/dozor/certs)"
in_root sh -ec 'cd /etc/dozor/certs
  dozor-certs ca ca >/dev/null 2>&1
  dozor-certs collector ca collector 127.0.0.1 >/dev/null 2>&1
  cp ca/ca.pem ca/collector.pem ca/collector.key ca/ca.key .
  chown root:dozor collector.key ca.key && chmod 0640 collector.key ca.key
  head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n" >/etc/dozor/api-token
  chown root:dozor /etc/dozor/api-token && chmod 0640 /etc/dozor/api-token'
in_root dozor-collector --config /etc/dozor/collector.yaml --check-config || fail "collector.yaml"
# The chroot shares the host's network: free ports, and enrollment switched on as README says.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
agents_port=$(free_port)
http_port=$(free_port)
sed -i "s/127.0.0.1:7443/127.0.0.1:$agents_port/; s/127.0.0.1:9180/127.0.0.1:$http_port/" \
  "$root/etc/dozor/collector.yaml" "$root/etc/dozor/agent.yaml"
sed -i 's|^  # token_file: /etc/dozor/api-token|  token_file: /etc/dozor/api-token|' \
  "$root/etc/dozor/collector.yaml"
echo "enroll: { ca_cert: /etc/dozor/certs/ca.pem, ca_key: /etc/dozor/certs/ca.key }" \
  >>"$root/etc/dozor/collector.yaml"
in_root setpriv --reuid=dozor --regid=dozor --init-groups \
  dozor-collector --config /etc/dozor/collector.yaml >"$work/collector.log" 2>&1 &
ctl() { in_root dozorctl --url "http://127.0.0.1:$http_port" --token-file /etc/dozor/api-token "$@"; }
for _ in $(seq 50); do ctl agents >/dev/null 2>&1 && break; sleep 0.1; done
token=$(ctl enroll create --agent site-01 --site acme-kyiv 2>/dev/null) ||
  { cat "$work/collector.log" >&2; fail "dozorctl enroll create"; }
in_root dozor-agent enroll --token "$token" >"$work/enroll.log" 2>&1 ||
  { cat "$work/enroll.log" "$work/collector.log" >&2; fail "dozor-agent enroll"; }
for f in agent.key agent.pem ca.pem; do
  [[ $(in_root stat -c %U:%G /var/lib/dozor/certs/$f) == dozor:dozor ]] ||
    fail "/var/lib/dozor/certs/$f: $(in_root stat -c %U:%G /var/lib/dozor/certs/$f)"
done
in_root dozor-agent --config /etc/dozor/agent.yaml --check-config || fail "agent.yaml"

say "the enrolled agent from the package, as its service user: it reports; its RSS"
in_root setpriv --reuid=dozor --regid=dozor --init-groups \
  dozor-agent --config /etc/dozor/agent.yaml >"$work/agent.log" 2>&1 &
reporting() { ctl agents 2>/dev/null | grep -Eq '^site-01 +acme-kyiv +up'; }
for _ in $(seq 50); do reporting && break; sleep 0.1; done
reporting || { cat "$work/agent.log" "$work/collector.log" >&2; fail "the enrolled agent does not report"; }
sleep 2
agent_pid=$(pgrep -f -n '^dozor-agent --config /etc/dozor/agent.yaml' || true)
[[ -n $agent_pid ]] || { cat "$work/agent.log" >&2; fail "the packaged agent did not stay up"; }
rss=$(awk '/^VmRSS/{print $2}' "/proc/$agent_pid/status")
kill -TERM "$agent_pid" "$(pgrep -f -n '^dozor-collector --config /etc/dozor/collector.yaml')"
wait || true

say "upgrade over itself, keeping an edited config"
echo "# edited by the operator" >>"$root/etc/dozor/agent.yaml"
in_root apt-get install -y -qq --reinstall --no-install-recommends "${names[@]}" \
  >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log" >&2; fail "reinstall"; }
grep -q "edited by the operator" "$root/etc/dozor/agent.yaml" || fail "the edited agent.yaml was replaced"
[[ ! -e $root/etc/dozor/agent.yaml.dpkg-new && ! -e $root/etc/dozor/agent.yaml.dpkg-old ]] ||
  fail "a .dpkg-new/.dpkg-old copy was left"

say "purge"
rm -rf "$root/etc/dozor/certs/"* "$root/etc/dozor/api-token"  # the operator's: a purge keeps those
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
