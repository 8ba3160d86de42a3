#include "dozor/collector/store.h"

#include <nlohmann/json.hpp>

namespace dozor::collector {
namespace {

constexpr const char* kSchema = R"sql(
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
)sql";

std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }
std::uint64_t u64(std::int64_t v) { return static_cast<std::uint64_t>(v); }

}  // namespace

Store::Store(const std::string& path)
    : db_(path, "NORMAL"),
      upsert_agent_((db_.exec(kSchema), db_.handle()),
                    "INSERT OR REPLACE INTO agents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"),
      insert_seq_(db_.handle(), "INSERT OR IGNORE INTO agent_seqs(agent, seq) VALUES (?, ?)"),
      purge_seqs_(db_.handle(), "DELETE FROM agent_seqs WHERE agent = ? AND seq <= ?"),
      reset_seqs_(db_.handle(), "DELETE FROM agent_seqs WHERE agent = ?"),
      upsert_probe_(db_.handle(), "INSERT OR REPLACE INTO probes VALUES (?,?,?,?,?,?,?,?,?)") {}

std::vector<AgentState> Store::load() {
  std::vector<AgentState> out;
  sqlite::Statement agents(db_.handle(), "SELECT * FROM agents ORDER BY id");
  while (agents.step()) {
    AgentState a;
    a.id = agents.text(0);
    a.site = agents.text(1);
    a.hostname = agents.text(2);
    a.version = agents.text(3);
    a.started_at = agents.real(4);
    a.heartbeat = agents.real(5);
    a.first_seen = agents.real(6);
    a.last_report = agents.real(7);
    a.spool_id = agents.text(8);
    a.watermark = u64(agents.integer(9));
    a.last_seq = u64(agents.integer(10));
    a.results = u64(agents.integer(11));
    a.dropped = u64(agents.integer(12));
    out.push_back(std::move(a));
  }
  for (auto& a : out) {
    sqlite::Statement seqs(db_.handle(), "SELECT seq FROM agent_seqs WHERE agent = ?");
    seqs.bind(1, std::string_view(a.id));
    while (seqs.step()) a.above.insert(u64(seqs.integer(0)));
    sqlite::Statement probes(db_.handle(), "SELECT * FROM probes WHERE agent = ?");
    probes.bind(1, std::string_view(a.id));
    while (probes.step()) {
      ProbeState& p = a.probes[probes.text(1)];
      p.type = probes.text(2);
      p.status = static_cast<protocol::Status>(probes.integer(3));
      p.summary = probes.text(4);
      p.ts = probes.real(5);
      p.duration = probes.real(6);
      p.seq = u64(probes.integer(7));
      auto metrics = nlohmann::json::parse(probes.text(8), nullptr, false);
      if (metrics.is_array()) {
        for (const auto& m : metrics)
          p.metrics.push_back({m.value("name", ""), m.value("value", 0.0), m.value("unit", "")});
      }
    }
  }
  return out;
}

void Store::save(const AgentState& a, const std::vector<std::uint64_t>& above,
                 const std::vector<std::string>& changed_probes) {
  upsert_agent_.bind(1, std::string_view(a.id))
      .bind(2, std::string_view(a.site))
      .bind(3, std::string_view(a.hostname))
      .bind(4, std::string_view(a.version))
      .bind(5, a.started_at)
      .bind(6, a.heartbeat)
      .bind(7, a.first_seen)
      .bind(8, a.last_report)
      .bind(9, std::string_view(a.spool_id))
      .bind(10, i64(a.watermark))
      .bind(11, i64(a.last_seq))
      .bind(12, i64(a.results))
      .bind(13, i64(a.dropped))
      .run();
  if (a.above.empty()) {
    reset_seqs_.bind(1, std::string_view(a.id)).run();
  } else {
    purge_seqs_.bind(1, std::string_view(a.id)).bind(2, i64(a.watermark)).run();
    for (auto seq : above)
      if (a.above.count(seq)) insert_seq_.bind(1, std::string_view(a.id)).bind(2, i64(seq)).run();
  }
  for (const auto& name : changed_probes) {
    const ProbeState& p = a.probes.at(name);
    nlohmann::json metrics = nlohmann::json::array();
    for (const auto& m : p.metrics)
      metrics.push_back({{"name", m.name}, {"value", m.value}, {"unit", m.unit}});
    upsert_probe_.bind(1, std::string_view(a.id))
        .bind(2, std::string_view(name))
        .bind(3, std::string_view(p.type))
        .bind(4, std::int64_t{static_cast<int>(p.status)})
        .bind(5, std::string_view(p.summary))
        .bind(6, p.ts)
        .bind(7, p.duration)
        .bind(8, i64(p.seq))
        .bind(9, std::string_view(
                     metrics.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)))
        .run();
  }
}

void Store::forget(const std::string& agent, const std::vector<std::string>& probes) {
  if (!probes.empty()) {
    sqlite::Statement q(db_.handle(), "DELETE FROM probes WHERE agent = ? AND probe = ?");
    for (const auto& name : probes) {
      q.bind(1, std::string_view(agent)).bind(2, std::string_view(name)).run();
    }
    return;
  }
  for (const char* sql :
       {"DELETE FROM probes WHERE agent = ?", "DELETE FROM agent_seqs WHERE agent = ?",
        "DELETE FROM agents WHERE id = ?"})
    sqlite::Statement(db_.handle(), sql).bind(1, std::string_view(agent)).run();
}

void Store::save_certificate(const std::string& agent, const std::string& serial, double not_after,
                             double now) {
  sqlite::Statement(db_.handle(), "INSERT OR REPLACE INTO agent_certificates VALUES (?,?,?,?)")
      .bind(1, std::string_view(agent))
      .bind(2, std::string_view(serial))
      .bind(3, not_after)
      .bind(4, now)
      .run();
}

std::optional<std::string> Store::certificate_serial(const std::string& agent) {
  sqlite::Statement q(db_.handle(), "SELECT serial FROM agent_certificates WHERE agent = ?");
  q.bind(1, std::string_view(agent));
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

void Store::revoke(const Revocation& r) {
  sqlite::Statement(db_.handle(), "INSERT OR REPLACE INTO revocations VALUES (?,?,?,?,?)")
      .bind(1, std::string_view(r.serial))
      .bind(2, std::string_view(r.agent))
      .bind(3, r.revoked_at)
      .bind(4, std::string_view(r.by))
      .bind(5, std::string_view(r.comment))
      .run();
}

std::vector<Store::Revocation> Store::revocations() {
  std::vector<Revocation> out;
  sqlite::Statement q(db_.handle(), "SELECT * FROM revocations ORDER BY revoked_at");
  while (q.step()) out.push_back({q.text(0), q.text(1), q.text(3), q.text(4), q.real(2)});
  return out;
}

}  // namespace dozor::collector
