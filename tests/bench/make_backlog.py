"""Writes COUNT results into an agent's spool file, in the agent's own format, as if its link had
been down while 50 probes ran every 30 s. Usage: make_backlog.py SPOOL_FILE COUNT|SIZE
A SIZE such as 256MiB writes as many results as fill that much of the spool's bound, counted as
the spool counts them (JSON plus 48 bytes a row), and prints the count."""
import json
import sqlite3
import sys
import time

ROW_OVERHEAD = 48  # Spool::cost in agent/include/dozor/agent/spool.h
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

path, amount = sys.argv[1], sys.argv[2]
budget = None
for unit, scale in UNITS.items():
    if amount.endswith(unit) and amount[:-len(unit)].isdigit():
        budget = int(amount[:-len(unit)]) * scale
count = int(amount) if budget is None else sys.maxsize
db = sqlite3.connect(path)
db.executescript("""
CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, probe TEXT NOT NULL,
                                    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
""")
first = (db.execute("SELECT COALESCE(MAX(seq), 0) FROM results").fetchone()[0] or 0) + 1


def rows(count, start):
    """Up to `count` results from `start` on, 0.6 s apart, within the budget if there is one."""
    used = 0
    for i in range(count):
        seq, ts, probe = first + i, start + i * 0.6, f"backlog-{i % 50}"
        body = json.dumps({"seq": seq, "probe": probe, "type": "disk", "ts": ts, "duration": 0.001,
                           "status": "ok", "summary": "/ 41.0% used, 57.3 GiB free",
                           "metrics": [{"name": "used_percent", "value": 41.0, "unit": "%"},
                                       {"name": "free_bytes", "value": 61525123072,
                                        "unit": "bytes"}]},
                          separators=(",", ":"))
        used += len(body.encode()) + ROW_OVERHEAD
        if budget is not None and used > budget:
            return
        yield seq, ts, probe, body


now = time.time()
if budget is not None:  # how many fit, so that the newest is written now, not in the future
    count = sum(1 for _ in rows(sys.maxsize, now))
written = list(rows(count, now - count * 0.6))
db.executemany("INSERT INTO results VALUES (?,?,?,?)", written)
db.commit()
if budget is not None:
    print(len(written))
