"""Writes COUNT results into an agent's spool file, in the agent's own format, as if its link had
been down while 50 probes ran every 30 s. Usage: make_backlog.py SPOOL_FILE COUNT"""
import json
import sqlite3
import sys
import time

path, count = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
db.executescript("""
CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, probe TEXT NOT NULL,
                                    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
""")
first = (db.execute("SELECT COALESCE(MAX(seq), 0) FROM results").fetchone()[0] or 0) + 1
start = time.time() - count * 0.6
rows = []
for i in range(count):
    seq, ts, probe = first + i, start + i * 0.6, f"backlog-{i % 50}"
    body = json.dumps({"seq": seq, "probe": probe, "type": "disk", "ts": ts, "duration": 0.001,
                       "status": "ok", "summary": "/ 41.0% used, 57.3 GiB free",
                       "metrics": [{"name": "used_percent", "value": 41.0, "unit": "%"},
                                   {"name": "free_bytes", "value": 61525123072, "unit": "bytes"}]},
                      separators=(",", ":"))
    rows.append((seq, ts, probe, body))
db.executemany("INSERT INTO results VALUES (?,?,?,?)", rows)
db.commit()
