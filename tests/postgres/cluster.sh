#!/usr/bin/env bash
# A throwaway PostgreSQL for the store tests, on 127.0.0.1 at a free port, fsync off.
#   tests/postgres/cluster.sh start DIR   initdb + start; writes DIR/url and DIR/password
#   tests/postgres/cluster.sh stop DIR    stops it and removes DIR
#   tests/postgres/cluster.sh down DIR    stops it (immediately, as a crash), keeping its data
#   tests/postgres/cluster.sh up DIR      starts it again on the same port
# The role `dozor` is superuser, with a password checked by scram-sha-256 over TCP (the way a
# collector logs in); each test makes a database of its own. PostgreSQL refuses to run as root,
# so as root (CI, containers) it runs as the `postgres` user that Debian's package creates.
set -euo pipefail
what=${1:?start or stop}
dir=${2:?a folder}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z "$bin" ]]; then
  echo "no /usr/lib/postgresql/*/bin: install postgresql (scripts/setup --test)" >&2
  exit 1
fi
as=()
[[ $(id -u) == 0 ]] && as=(runuser -u postgres --)

case "$what" in
start)
  if [[ -f "$dir/data/postmaster.pid" ]]; then "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$dir"
  mkdir -p "$dir"
  if [[ ${#as[@]} -gt 0 ]] && ! "${as[@]}" test -x "$dir/.."; then
    echo "the postgres user cannot reach $dir: its folder must be searchable (chmod o+x)" >&2
    exit 1
  fi
  openssl rand -hex 16 >"$dir/password"
  [[ ${#as[@]} -gt 0 ]] && chown postgres: "$dir" "$dir/password"
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U dozor --pwfile="$dir/password" --auth-local=trust \
    --auth-host=scram-sha-256 -N -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$dir/port"
  "$0" up "$dir"
  echo "postgresql://dozor@127.0.0.1:$(cat "$dir/port")/postgres" >"$dir/url"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$(cat "$dir/port") ($dir)"
  ;;
up)
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -c port=$(cat "$dir/port") -c unix_socket_directories=$dir -c fsync=off -c max_connections=200" \
    start >"$dir/pg_ctl.log" 2>&1 || { cat "$dir/pg_ctl.log" "$dir/server.log" >&2; exit 1; }
  ;;
down)
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >"$dir/pg_ctl.log" 2>&1
  ;;
stop)
  [[ -d "$dir/data" ]] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop|down|up DIR" >&2
  exit 2
  ;;
esac
