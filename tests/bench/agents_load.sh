#!/usr/bin/env bash
# A fleet on one collector: N simulated agents, each with its own certificate (one shared EC key,
# CN=load-I, clientAuth, signed by the bench CA), each on its own mutual-TLS keep-alive
# connection, reporting RESULTS results every HEARTBEAT seconds (spread evenly), as the agent's
# uplink does. Measures, over WINDOW seconds once every agent has reported: the collector's RSS
# per agent connection, its CPU per result, results a second, and the report round trip (sent ->
# acked) median and p99.
#   tests/bench/agents_load.sh [N] [RESULTS] [HEARTBEAT] [WINDOW]   (default 1000 3 5 30)
#   STORE=postgres tests/bench/agents_load.sh ...   the same on a scratch PostgreSQL store
#   STORE=postgres COLLECTORS=2 tests/bench/agents_load.sh ...   agents split over two collectors
#     sharing the store (each agent on one of them); memory and CPU are the collectors' sums
set -euo pipefail
n=${1:-1000} results=${2:-3} heartbeat=${3:-5} window=${4:-30}
source "$(dirname "$0")/lib.sh"
start_store "${STORE:-sqlite}"
make_certs
echo "signing $n agent certificates..." >&2
openssl ecparam -name prime256v1 -genkey -noout -out "$work/certs/load.key" 2>/dev/null
printf 'basicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = clientAuth\n' \
  >"$work/certs/load.ext"
sign() {  # one agent's certificate; serials at random, as several run at once
  openssl req -new -key "$work/certs/load.key" -subj "/CN=load-$1" 2>/dev/null |
    openssl x509 -req -CA "$work/certs/ca.pem" -CAkey "$work/certs/ca.key" \
      -set_serial "0x$(openssl rand -hex 12)" -days 2 -extfile "$work/certs/load.ext" \
      -out "$work/certs/load-$1.pem" 2>/dev/null
}
export -f sign
export work
seq "$n" | xargs -P "$(nproc)" -I{} bash -c 'sign {}'
for c in $(seq "${COLLECTORS:-1}"); do
  start_collector "node: c$c
limits: { pending_per_source: 100000, pending_total: 100000, max_connections: 100000, reports_per_second: ${REPORTS_PER_SECOND:-20} }" "collector-$c"
done
ulimit -n $((n + 512))  # this side's connections; the collector raises its own limit
python3 - "${agents_ports[*]}" "$work/certs" "${collector_pids[*]}" "$n" "$results" "$heartbeat" \
  "$window" "${STORE:-sqlite}" <<'PY'
import asyncio, json, ssl, statistics, sys, time
ports, certs, pids, store = ([int(p) for p in sys.argv[1].split()], sys.argv[2],
                             sys.argv[3].split(), sys.argv[8])
n, per_report, heartbeat, window = (int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]),
                                    float(sys.argv[7]))


def proc(field):  # summed over the collectors
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += next(int(l.split()[1]) for l in f if l.startswith(field))
    return total


def cpu():
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / 100
    return total


rtts, sent_results, connected = [], [0], [0]
measuring = asyncio.Event()


async def agent(i, start_at):
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    ctx.load_cert_chain(f"{certs}/load-{i}.pem", f"{certs}/load.key")
    await asyncio.sleep(max(0, start_at - time.monotonic()))
    reader, writer = await asyncio.open_connection("127.0.0.1", ports[i % len(ports)], ssl=ctx,
                                                   server_hostname="127.0.0.1")
    connected[0] += 1
    seq, next_at = 0, time.monotonic()
    while True:
        now = time.time()
        body = {"agent": {"version": "load", "hostname": f"h{i}", "site": f"site-{i % 200}",
                          "started_at": 1, "heartbeat": heartbeat, "spool_id": f"s{i}",
                          "sent_at": now}, "results": []}
        for p in range(per_report):
            seq += 1
            body["results"].append({"seq": seq, "probe": f"probe-{p}", "type": "tcp", "ts": now,
                                    "duration": 0.002, "status": "ok", "summary": "connected",
                                    "metrics": [{"name": "connect_seconds", "value": 0.002,
                                                 "unit": "s"}]})
        data = json.dumps(body).encode()
        t0 = time.monotonic()
        writer.write(b"POST /v1/report HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(data) + data)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(l.split(b":")[1] for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        assert head.startswith(b"HTTP/1.1 200"), head
        if measuring.is_set():
            rtts.append(time.monotonic() - t0)
            sent_results[0] += per_report
        next_at += heartbeat
        await asyncio.sleep(max(0, next_at - time.monotonic()))


async def main():
    base_rss = proc("VmRSS:")
    t = time.monotonic()
    # Connections open over a few seconds, as a fleet reconnecting after a restart would (at
    # most 500 handshakes a second, which the collector serves on one core).
    ramp = max(min(heartbeat, 5), n / 500)
    tasks = [asyncio.create_task(agent(i, t + (i - 1) * ramp / n))
             for i in range(1, n + 1)]
    while connected[0] < n:
        await asyncio.sleep(0.2)
        for task in tasks:
            if task.done() and task.exception():
                raise task.exception()
    await asyncio.sleep(heartbeat + 2)  # every agent has reported; a trim has run
    rss = proc("VmRSS:")
    measuring.set()
    c0, t0 = cpu(), time.monotonic()
    await asyncio.sleep(window)
    used, elapsed = cpu() - c0, time.monotonic() - t0
    measuring.clear()
    rtts.sort()
    print(f"agents_load: {n} agents, {per_report} results every {heartbeat:g} s, {elapsed:.0f} s, "
          f"store {store}, {len(ports)} collector(s)")
    print(f"  collector RSS {base_rss / 1024:.1f} MiB -> {rss / 1024:.1f} MiB: "
          f"{(rss - base_rss) / n:.1f} KiB per agent connection")
    print(f"  {sent_results[0] / elapsed:.0f} results/s, CPU {used / elapsed * 100:.1f} % of a core,"
          f" {used / max(1, sent_results[0]) * 1e6:.0f} us per result")
    print(f"  report round trip: median {statistics.median(rtts) * 1000:.1f} ms, "
          f"p99 {rtts[int(len(rtts) * 0.99)] * 1000:.1f} ms over {len(rtts)} reports")
    for task in tasks:
        task.cancel()


asyncio.run(main())
PY
