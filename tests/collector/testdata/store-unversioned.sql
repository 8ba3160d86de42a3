-- A collector store as dozor-collector made it before schema versions and state changes:
-- the tables exactly as its Store and Desk created them (git show 50b1374~1:collector/src/store.cpp
-- and desk.cpp), with one agent at a site whose ERP port is down: an open emergency ticket.
CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY, site TEXT, hostname TEXT, version TEXT, started_at REAL, heartbeat REAL,
  first_seen REAL, last_report REAL, spool_id TEXT, watermark INTEGER, last_seq INTEGER,
  results INTEGER, dropped INTEGER
);
CREATE TABLE IF NOT EXISTS agent_seqs (
  agent TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS probes (
  agent TEXT NOT NULL, probe TEXT NOT NULL, type TEXT, status INTEGER, summary TEXT, ts REAL,
  duration REAL, seq INTEGER, metrics TEXT, PRIMARY KEY (agent, probe)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_certificates (
  agent TEXT PRIMARY KEY, serial TEXT NOT NULL, not_after REAL, seen_at REAL
);
CREATE TABLE IF NOT EXISTS revocations (
  serial TEXT PRIMARY KEY, agent TEXT, revoked_at REAL, revoked_by TEXT, comment TEXT
);
CREATE TABLE IF NOT EXISTS enroll_tokens (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, agent TEXT NOT NULL, site TEXT NOT NULL,
  created_by TEXT, comment TEXT, created_at REAL, expires_at REAL, uses INTEGER, used INTEGER,
  revoked_at REAL, last_used_at REAL, replace INTEGER
);
CREATE TABLE IF NOT EXISTS issued_certificates (
  serial TEXT PRIMARY KEY, agent TEXT NOT NULL, site TEXT, how TEXT, source TEXT,
  issued_at REAL, not_after REAL
);
CREATE INDEX IF NOT EXISTS issued_by_agent ON issued_certificates(agent);
CREATE TABLE IF NOT EXISTS tickets (
  id INTEGER PRIMARY KEY, key TEXT NOT NULL, class TEXT, priority INTEGER, status TEXT NOT NULL,
  summary TEXT, details TEXT, site TEXT, agent TEXT, probe TEXT, rule TEXT, opened_at REAL,
  raised_at REAL, acknowledged_at REAL, resolved_at REAL, closed_at REAL, updated_at REAL,
  deadline REAL, escalations INTEGER, occurrences INTEGER, flapping INTEGER, probes TEXT,
  acknowledged_by TEXT, comment TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_per_key ON tickets(key)
  WHERE status IN ('open', 'acknowledged', 'resolved');
CREATE INDEX IF NOT EXISTS tickets_site ON tickets(site, id);
CREATE TABLE IF NOT EXISTS ticket_events (
  id INTEGER PRIMARY KEY, ticket INTEGER NOT NULL, at REAL, event TEXT, text TEXT
);
CREATE INDEX IF NOT EXISTS ticket_events_ticket ON ticket_events(ticket, id);
CREATE TABLE IF NOT EXISTS outbox (
  event INTEGER NOT NULL, notifier TEXT NOT NULL, payload TEXT, attempts INTEGER, next_at REAL,
  error TEXT, PRIMARY KEY (notifier, event)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
  key TEXT PRIMARY KEY, rule TEXT, site TEXT, agent TEXT, probe TEXT, metric TEXT,
  failing INTEGER, since REAL, clear_since REAL, ticket INTEGER, latched INTEGER,
  flapping INTEGER, summary TEXT, details TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silences (
  id INTEGER PRIMARY KEY, site TEXT, agent TEXT, probe TEXT, rule TEXT, starts_at REAL,
  ends_at REAL, comment TEXT, created_by TEXT, created_at REAL
);
INSERT INTO agents VALUES ('agent-01', 'acme-kyiv', 'erp-01', '0.1.0', 1795400000, 5, 1795000000,
  1795435190, 'spool-7f3a', 1200, 1203, 1203, 0);
INSERT INTO agent_seqs VALUES ('agent-01', 1203);
INSERT INTO probes VALUES ('agent-01', 'erp-port', 'tcp', 2,
  'connect to 10.0.0.5:1541: Connection refused', 1795435190, 0.001, 1203,
  '[{"name":"connect_seconds","value":0.001,"unit":"s"}]');
INSERT INTO tickets VALUES (7, 'acme-kyiv/agent-01/erp-port/probe-critical', 'emergency', 1,
  'open', 'erp-port: connect to 10.0.0.5:1541: Connection refused', 'probe critical for 60 s',
  'acme-kyiv', 'agent-01', 'erp-port', 'probe-critical', 1795435100, 1795435100, 0, 0, 0,
  1795435100, 1795436000, 0, 1, 0, '', '', '');
INSERT INTO ticket_events VALUES (19, 7, 1795435100, 'opened', 'probe critical for 60 s');
INSERT INTO incidents VALUES ('acme-kyiv/agent-01/erp-port/probe-critical', 'probe-critical',
  'acme-kyiv', 'agent-01', 'erp-port', '', 1, 1795435040, 0, 7, 0, 0,
  'erp-port: connect to 10.0.0.5:1541: Connection refused', 'probe critical for 60 s');
