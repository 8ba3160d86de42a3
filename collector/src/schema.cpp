#include "dozor/collector/schema.h"

#include <regex>
#include <string>

namespace dozor::collector {
namespace {

struct Migration {
  int version;
  const char* what;
  const char* sql;                 // in SQLite's words; for_postgres() translates the types
  const char* postgres = nullptr;  // instead, where PostgreSQL needs something else
};

// Append only: a migration once released is never changed, a new one gets the next number.
// Version 1 is the schema from before versions were kept: IF NOT EXISTS lets it pass over a
// store of that time unchanged.
constexpr Migration kMigrations[] = {
    {1, "agents, probes, certificates, enrollment, tickets, outbox, incidents, silences",
     R"sql(
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
)sql"},
    {2, "state changes for the service reports",
     R"sql(
CREATE TABLE IF NOT EXISTS state_changes (
  site TEXT NOT NULL, agent TEXT NOT NULL, probe TEXT NOT NULL, ts REAL NOT NULL,
  status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS state_changes_by_site ON state_changes(site, ts);
)sql"},
    // Changes at the same second are read in the order they were written: SQLite's rowid, a
    // column of that name in PostgreSQL.
    {3, "state changes in the order written", "",
     "ALTER TABLE state_changes ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY"},
    {4, "incidents keep what they learned: flap history, trend, a value's age",
     "ALTER TABLE incidents ADD COLUMN learned TEXT"},
    // Several collectors on one PostgreSQL (lease.h): an agent's row version says whether the
    // state a collector holds of it is the newest (dozor_stale_agent); followers log the
    // reports they took for the leader's desk; the desk's lease, and the fence its every
    // transaction passes.
    {5, "several collectors on one store: agents' row versions, the report log, the desk lease",
     R"sql(
ALTER TABLE agents ADD COLUMN row_version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE report_log (id INTEGER PRIMARY KEY, agent TEXT NOT NULL, results TEXT NOT NULL);
)sql",
     R"sql(
ALTER TABLE agents ADD COLUMN row_version BIGINT NOT NULL DEFAULT 0;
CREATE TABLE report_log (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, agent TEXT NOT NULL, results TEXT NOT NULL
);
CREATE TABLE dozor_leader (
  name TEXT PRIMARY KEY, holder TEXT NOT NULL, term BIGINT NOT NULL,
  expires_at DOUBLE PRECISION NOT NULL
);
INSERT INTO dozor_leader VALUES ('desk', '', 0, 0);
-- Raised inside the agent's upsert (Store::save of a shared store): the row's version is not the
-- one the collector read (another collector stored a report of the agent since), or the
-- certificate the report came over was revoked through another collector.
CREATE FUNCTION dozor_stale_agent(who TEXT, held BIGINT, stored BIGINT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RAISE EXCEPTION 'dozor_stale_agent: agent % was stored by another collector (version % '
    'here, % in the store)', who, held, stored;
END $$;
CREATE FUNCTION dozor_revoked(who TEXT, cert TEXT) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RAISE EXCEPTION 'dozor_revoked: certificate % of agent % was revoked', cert, who;
END $$;
CREATE FUNCTION dozor_fence(who TEXT, held BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  -- FOR SHARE: the lease cannot pass to another collector before this transaction ends.
  PERFORM 1 FROM dozor_leader WHERE name = 'desk' AND holder = who AND term = held FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'collector % lost the desk lease (term %): its changes are not stored',
      who, held;
  END IF;
END $$;
)sql"},
};

// The one schema text, in the types PostgreSQL calls them: REAL is 4 bytes there, INTEGER 4.
std::string for_postgres(std::string sql) {
  static const std::regex real(R"(\bREAL\b)"), integer(R"(\bINTEGER\b)"),
      rowid(R"(\)\s*WITHOUT ROWID)");
  sql = std::regex_replace(sql, real, "DOUBLE PRECISION");
  sql = std::regex_replace(sql, integer, "BIGINT");
  return std::regex_replace(sql, rowid, ")");
}

// SQLite keeps the version in the file's header (PRAGMA user_version); PostgreSQL in a table.
int version_of(sql::Database& db) {
  if (db.engine() == "sqlite") {
    sql::Statement q(db, "PRAGMA user_version");
    return q.step() ? static_cast<int>(q.integer(0)) : 0;
  }
  sql::Statement q(db, "SELECT max(version) FROM dozor_schema");
  return q.step() && !q.is_null(0) ? static_cast<int>(q.integer(0)) : 0;
}

void set_version(sql::Database& db, int version) {
  if (db.engine() == "sqlite")
    db.exec("PRAGMA user_version = " + std::to_string(version));
  else
    sql::Statement(db, "INSERT INTO dozor_schema (version, applied_at) VALUES (?, now())")
        .bind(1, std::int64_t{version})
        .run();
}

}  // namespace

int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

int migrate(sql::Database& db, int target) {
  const bool postgres = db.engine() == "postgres";
  sql::Transaction tx(db);
  if (postgres) {
    // Collectors starting together against one database: one migrates, the others wait for it.
    db.exec("SELECT pg_advisory_xact_lock(7242017)");
    db.exec(
        "CREATE TABLE IF NOT EXISTS dozor_schema (version BIGINT PRIMARY KEY, "
        "applied_at TIMESTAMPTZ)");
  }
  const int found = version_of(db), latest = latest_schema_version();
  if (target <= 0 || target > latest) target = latest;
  if (found > latest)
    throw SchemaError("the store has schema version " + std::to_string(found) +
                      ", newer than this dozor-collector knows (" + std::to_string(latest) +
                      "): it was written by a newer version; run that one, or a backup of the "
                      "store from before the upgrade");
  if (found >= target) return found;
  for (const auto& m : kMigrations) {
    if (m.version <= found || m.version > target) continue;
    const std::string sql = !postgres ? m.sql : m.postgres ? m.postgres : for_postgres(m.sql);
    if (!sql.empty()) db.exec(sql);
    set_version(db, m.version);
  }
  tx.commit();
  return found;
}

}  // namespace dozor::collector
