#!/usr/bin/env bash
# Tests certs/dozor-certs: what it writes, what it refuses, and that its certificates carry a real
# mutual-TLS handshake (openssl s_server / s_client on 127.0.0.1) while a foreign CA's do not.
#
#   tests/certs/dozor_certs_test.sh [path/to/dozor-certs]
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tool=${1:-${DOZOR_CERTS:-$here/../../certs/dozor-certs}}
[[ -x $tool ]] || {
  echo "dozor-certs not found or not executable: $tool" >&2
  exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/dozor-certs-test.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
out=$work/last.out

pass() {
  passed=$((passed + 1))
  echo "ok   - $1"
}

fail() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  if [[ -s $out ]]; then sed 's/^/       /' "$out"; fi
}

# expect_ok DESC CMD...: CMD succeeds.
expect_ok() {
  local desc=$1
  shift
  if "$@" >"$out" 2>&1; then pass "$desc"; else fail "$desc"; fi
}

# expect_fail DESC STATUS CMD...: CMD fails with exit status STATUS ("any": any non-zero).
expect_fail() {
  local desc=$1 want=$2 rc=0
  shift 2
  "$@" >"$out" 2>&1 || rc=$?
  if [[ $rc -ne 0 && ($want == any || $rc -eq $want) ]]; then
    pass "$desc"
  else
    echo "exit status $rc, wanted $want" >>"$out"
    fail "$desc"
  fi
}

# expect_eq DESC WANT GOT
expect_eq() {
  if [[ $2 == "$3" ]]; then
    pass "$1"
  else
    printf 'want: %s\ngot:  %s\n' "$2" "$3" >"$out"
    fail "$1"
  fi
}

# expect_match DESC REGEX TEXT
expect_match() {
  if [[ $3 =~ $2 ]]; then
    pass "$1"
  else
    printf 'want match: %s\ngot: %s\n' "$2" "$3" >"$out"
    fail "$1"
  fi
}

ssl() { timeout 10 openssl "$@"; }
certs() { timeout 30 "$tool" "$@"; }
mode() { stat -c %a "$1"; }
subject() { ssl x509 -in "$1" -noout -subject -nameopt RFC2253 2>&1; }
ext() { ssl x509 -in "$1" -noout -ext "$2" 2>&1 | tail -n +2 | sed 's/^ *//'; }

ca=$work/ca
other=$work/other-ca

echo "# issuing"
expect_ok "--help exits 0" certs --help
expect_fail "no command is a usage error (exit 2)" 2 certs
expect_fail "unknown command is a usage error (exit 2)" 2 certs frobnicate "$ca"
expect_ok "ca creates a CA" certs ca "$ca"
expect_eq "CA directory is 0700" 700 "$(mode "$ca")"
expect_eq "ca.key is 0600" 600 "$(mode "$ca/ca.key")"
expect_eq "ca.pem is 0644" 644 "$(mode "$ca/ca.pem")"
expect_match "CA is CA:TRUE" "CA:TRUE" "$(ext "$ca/ca.pem" basicConstraints)"
expect_match "CA key usage is keyCertSign,cRLSign" "Certificate Sign, CRL Sign" \
  "$(ext "$ca/ca.pem" keyUsage)"
expect_match "CA key is EC P-256" "prime256v1|P-256" \
  "$(ssl pkey -in "$ca/ca.key" -noout -text 2>&1 | grep -E 'ASN1 OID|NIST')"

ca_before=$(sha256sum "$ca/ca.pem" "$ca/ca.key")
expect_fail "ca refuses to overwrite an existing CA" 1 certs ca "$ca"
expect_eq "refused ca left the CA untouched" "$ca_before" "$(sha256sum "$ca/ca.pem" "$ca/ca.key")"

expect_ok "collector certificate with default SANs" certs collector "$ca" collector
expect_ok "collector verifies against the CA" ssl verify -CAfile "$ca/ca.pem" "$ca/collector.pem"
expect_eq "collector.key is 0600" 600 "$(mode "$ca/collector.key")"
expect_eq "collector.pem is 0644" 644 "$(mode "$ca/collector.pem")"
expect_eq "collector CN" "subject=CN=collector" "$(subject "$ca/collector.pem")"
expect_eq "collector default SANs" "DNS:localhost, IP Address:127.0.0.1" \
  "$(ext "$ca/collector.pem" subjectAltName)"
expect_eq "collector EKU is serverAuth only" "TLS Web Server Authentication" \
  "$(ext "$ca/collector.pem" extendedKeyUsage)"
expect_ok "collector passes purpose sslserver" \
  ssl verify -purpose sslserver -CAfile "$ca/ca.pem" "$ca/collector.pem"

expect_ok "collector certificate with explicit SANs" \
  certs collector "$ca" mon.example.com mon.example.com 10.1.2.3 IP:192.168.0.7 DNS:mon
expect_eq "explicit SANs, bare words classified" \
  "DNS:mon.example.com, IP Address:10.1.2.3, IP Address:192.168.0.7, DNS:mon" \
  "$(ext "$ca/mon.example.com.pem" subjectAltName)"
expect_fail "a malformed SAN is refused" 2 certs collector "$ca" bad 'DNS:a,IP:1.1.1.1'
expect_fail "an impossible IP address is refused" 2 certs collector "$ca" bad 1.2.3.999

expect_ok "agent certificate" certs agent "$ca" agent-01
expect_ok "agent verifies against the CA" ssl verify -CAfile "$ca/ca.pem" "$ca/agent-01.pem"
expect_eq "agent key is 0600" 600 "$(mode "$ca/agent-01.key")"
expect_eq "agent cert is 0644" 644 "$(mode "$ca/agent-01.pem")"
expect_eq "agent CN is the agent id" "subject=CN=agent-01" "$(subject "$ca/agent-01.pem")"
expect_ok "agent certificate naming its site" certs agent "$ca" agent-02 --site acme-kyiv
expect_eq "the site is the OU" "subject=OU=acme-kyiv,CN=agent-02" "$(subject "$ca/agent-02.pem")"
expect_fail "--site must be a name" 2 certs agent "$ca" agent-03 --site "acme kyiv"
expect_fail "--site is for agents only" 2 certs collector "$ca" collector-2 --site acme-kyiv
expect_eq "agent EKU is clientAuth only" "TLS Web Client Authentication" \
  "$(ext "$ca/agent-01.pem" extendedKeyUsage)"
expect_ok "agent passes purpose sslclient" \
  ssl verify -purpose sslclient -CAfile "$ca/ca.pem" "$ca/agent-01.pem"
expect_fail "agent fails purpose sslserver" any \
  ssl verify -purpose sslserver -CAfile "$ca/ca.pem" "$ca/agent-01.pem"

for bad in "../escape" "-dash" ".hidden" "has space" "a/b" "" "$(printf 'x%.0s' {1..64})" ca; do
  expect_fail "agent name '${bad:0:20}' is refused" 2 certs agent "$ca" "$bad"
done
expect_ok "no file written outside the CA directory" test ! -e "$work/escape.pem"

expect_ok "agent with --days" certs --days 2 agent "$ca" agent-short
expect_match "--days sets validity" "$(LC_ALL=C date -u -d '+2 days' '+%b %e')" \
  "$(ssl x509 -in "$ca/agent-short.pem" -noout -enddate)"
expect_fail "--days 0 is a usage error" 2 certs --days 0 agent "$ca" agent-zero
expect_fail "--days abc is a usage error" 2 certs --days abc agent "$ca" agent-zero

collector_before=$(sha256sum <"$ca/collector.pem")
agent_before=$(sha256sum <"$ca/agent-01.pem")
expect_ok "re-issuing agent-01 succeeds" certs agent "$ca" agent-01
expect_ok "re-issue replaced agent-01.pem" \
  test "$(sha256sum <"$ca/agent-01.pem")" != "$agent_before"
expect_eq "re-issue left the collector alone" "$collector_before" "$(sha256sum <"$ca/collector.pem")"
expect_eq "re-issued agent key still 0600" 600 "$(mode "$ca/agent-01.key")"
expect_fail "an agent may not take the collector's name" 1 certs agent "$ca" collector
expect_eq "the collector's files are untouched" "$collector_before" "$(sha256sum <"$ca/collector.pem")"
expect_fail "a collector may not take an agent's name" 1 certs collector "$ca" agent-01
expect_ok "no scratch files left behind" \
  bash -c "! compgen -G '$ca/.dozor-certs.*'"

expect_match "show prints subject, issuer, notAfter" \
  "subject=CN=collector.*issuer=CN=dozor CA.*notAfter=.*IP Address:127.0.0.1" \
  "$(certs show "$ca/collector.pem" | tr '\n' ' ')"
expect_fail "issuing without a CA fails" 1 certs agent "$work/nowhere" agent-01

echo "# a second CA"
expect_ok "second CA" certs ca "$other"
expect_ok "agent from the second CA" certs agent "$other" intruder
expect_fail "second CA's agent does not verify against the first CA" any \
  ssl verify -CAfile "$ca/ca.pem" "$other/intruder.pem"
expect_fail "first CA's agent does not verify against the second CA" any \
  ssl verify -CAfile "$other/ca.pem" "$ca/agent-01.pem"

echo "# mutual TLS handshake"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
timeout 60 openssl s_server -accept "127.0.0.1:$port" \
  -cert "$ca/collector.pem" -key "$ca/collector.key" -CAfile "$ca/ca.pem" \
  -Verify 1 -verify_return_error -www >"$work/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 10))
until grep -q ACCEPT "$work/server.log" 2>/dev/null; do
  if ((SECONDS >= deadline)) || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
out=$work/server.log
if grep -q ACCEPT "$work/server.log"; then pass "s_server listens on 127.0.0.1:$port"; else
  fail "s_server listens on 127.0.0.1:$port"
fi
out=$work/last.out

# connect CERT KEY: one HTTP request over mutual TLS, verifying the collector's cert and SAN.
connect() {
  local args=(-connect "127.0.0.1:$port" -CAfile "$ca/ca.pem" -verify_return_error
    -verify_ip 127.0.0.1 -quiet)
  if [[ $# -ge 2 ]]; then args+=(-cert "$1" -key "$2"); fi
  printf 'GET / HTTP/1.0\r\n\r\n' | ssl s_client "${args[@]}" 2>&1
}

# The HTTP answer from s_server -www only comes after the server accepted the client certificate.
got=$(connect "$ca/agent-01.pem" "$ca/agent-01.key")
expect_match "agent from the right CA completes mutual TLS" "HTTP/1.0 200 ok" "$got"
got=$(connect "$other/intruder.pem" "$other/intruder.key")
expect_eq "agent from another CA is refused" "" "$(grep 'HTTP/1.0 200' <<<"$got")"
expect_match "the refusal is an unknown-CA alert" "unknown ca" "$got"
got=$(connect)
expect_eq "a client without a certificate is refused" "" "$(grep 'HTTP/1.0 200' <<<"$got")"
got=$(connect "$ca/collector.pem" "$ca/collector.key")
expect_eq "a serverAuth-only certificate is refused as a client" "" \
  "$(grep 'HTTP/1.0 200' <<<"$got")"

echo
echo "$passed passed, $failed failed"
((failed == 0))
