#include "dozor/collector/store.h"

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "dozor/collector/schema.h"

namespace dozor::collector {
namespace {

std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }
std::uint64_t u64(std::int64_t v) { return static_cast<std::uint64_t>(v); }

}  // namespace

sql::Database& Store::migrated(sql::Database& db) {
  migrate(db);
  return db;
}

Store::Store(const sql::Options& options) : Store(sql::open(options)) {}

Store::Store(std::unique_ptr<sql::Database> db)
    : db_(std::move(db)),
      upsert_agent_(migrated(*db_),
                    sql::upsert("agents",
                                "id, site, hostname, version, started_at, heartbeat, first_seen, "
                                "last_report, spool_id, watermark, last_seq, results, dropped, "
                                "row_version",
                                "id")),
      insert_seq_(*db_, "INSERT INTO agent_seqs (agent, seq) VALUES (?, ?) ON CONFLICT DO NOTHING"),
      purge_seqs_(*db_, "DELETE FROM agent_seqs WHERE agent = ? AND seq <= ?"),
      reset_seqs_(*db_, "DELETE FROM agent_seqs WHERE agent = ?"),
      upsert_probe_(*db_, sql::upsert("probes",
                                      "agent, probe, type, status, summary, ts, duration, seq, "
                                      "metrics",
                                      "agent, probe")),
      state_change_(*db_, "INSERT INTO state_changes VALUES (?,?,?,?,?)") {}

std::vector<AgentState> Store::load() { return load_where(nullptr); }

std::optional<AgentState> Store::load(const std::string& agent) {
  auto found = load(std::vector<std::string>{agent});
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

std::vector<AgentState> Store::load(const std::vector<std::string>& agents) {
  if (agents.empty()) return {};
  return load_where(&agents);
}

// Every agent (`ids` null) or those named, in three statements whatever their number: a takeover
// by another collector reads a whole fleet.
std::vector<AgentState> Store::load_where(const std::vector<std::string>* ids) {
  const bool postgres = db_->engine() == "postgres";
  // The names as one JSON array parameter, which both engines take apart.
  const std::string in = !ids       ? ""
                         : postgres ? " IN (SELECT json_array_elements_text(CAST(?1 AS json)))"
                                    : " IN (SELECT value FROM json_each(?1))";
  const std::string names = ids ? nlohmann::json(*ids).dump() : "";
  auto statement = [&](const std::string& sql) {
    auto q = std::make_unique<sql::Statement>(*db_, sql);
    if (ids) q->bind(1, std::string_view(names));
    return q;
  };
  std::vector<AgentState> out;
  std::unordered_map<std::string, std::size_t> index;
  auto agents = statement(ids ? "SELECT * FROM agents WHERE id" + in : "SELECT * FROM agents");
  while (agents->step()) {
    AgentState a;
    a.id = agents->text(0);
    a.site = agents->text(1);
    a.hostname = agents->text(2);
    a.version = agents->text(3);
    a.started_at = agents->real(4);
    a.heartbeat = agents->real(5);
    a.first_seen = agents->real(6);
    a.last_report = agents->real(7);
    a.spool_id = agents->text(8);
    a.watermark = u64(agents->integer(9));
    a.last_seq = u64(agents->integer(10));
    a.results = u64(agents->integer(11));
    a.dropped = u64(agents->integer(12));
    a.row_version = u64(agents->integer(13));
    index.emplace(a.id, out.size());
    out.push_back(std::move(a));
  }
  auto seqs = statement("SELECT agent, seq FROM agent_seqs" + (ids ? " WHERE agent" + in : ""));
  while (seqs->step())
    if (auto it = index.find(seqs->text(0)); it != index.end())
      out[it->second].above.insert(u64(seqs->integer(1)));
  auto probes = statement("SELECT * FROM probes" + (ids ? " WHERE agent" + in : ""));
  while (probes->step()) {
    auto it = index.find(probes->text(0));
    if (it == index.end()) continue;
    ProbeState& p = out[it->second].probes[probes->text(1)];
    p.type = probes->text(2);
    p.status = static_cast<protocol::Status>(probes->integer(3));
    p.summary = probes->text(4);
    p.ts = probes->real(5);
    p.duration = probes->real(6);
    p.seq = u64(probes->integer(7));
    auto metrics = nlohmann::json::parse(probes->text(8), nullptr, false);
    if (metrics.is_array()) {
      for (const auto& m : metrics) {
        protocol::Metric metric{m.value("name", ""), m.value("value", 0.0), m.value("unit", "")};
        if (const auto labels = m.find("labels"); labels != m.end() && labels->is_object())
          for (const auto& [k, v] : labels->items())
            if (v.is_string()) metric.labels.emplace(k, v.get<std::string>());
        p.metrics.push_back(std::move(metric));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
  return out;
}

void Store::save(const AgentState& a, const std::vector<std::uint64_t>& above,
                 const std::vector<std::string>& changed_probes, const std::string& serial) {
  auto& upsert = upsert_shared_ ? *upsert_shared_ : upsert_agent_;
  if (upsert_shared_) upsert.bind(15, std::string_view(serial));
  upsert.bind(1, std::string_view(a.id))
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
      .bind(14, i64(a.row_version))
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
    for (const auto& m : p.metrics) {
      metrics.push_back({{"name", m.name}, {"value", m.value}, {"unit", m.unit}});
      if (!m.labels.empty()) metrics.back()["labels"] = m.labels;
    }
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

void Store::share() {
  upsert_shared_.emplace(
      *db_,
      "INSERT INTO agents (id, site, hostname, version, started_at, heartbeat, first_seen, "
      "last_report, spool_id, watermark, last_seq, results, dropped, row_version) VALUES "
      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, CASE WHEN ?15 <> '' AND EXISTS "
      "(SELECT 1 FROM revocations WHERE serial = ?15) THEN dozor_revoked(?1, ?15) ELSE "
      "CAST(?14 AS BIGINT) END) "
      "ON CONFLICT (id) DO UPDATE SET site = excluded.site, hostname = excluded.hostname, "
      "version = excluded.version, started_at = excluded.started_at, "
      "heartbeat = excluded.heartbeat, first_seen = excluded.first_seen, "
      "last_report = excluded.last_report, spool_id = excluded.spool_id, "
      "watermark = excluded.watermark, last_seq = excluded.last_seq, "
      "results = excluded.results, dropped = excluded.dropped, "
      "row_version = CASE WHEN agents.row_version = excluded.row_version - 1 THEN "
      "excluded.row_version ELSE dozor_stale_agent(excluded.id, excluded.row_version - 1, "
      "agents.row_version) END");
}

bool Store::stale_agent(const sql::Error& e) {
  return std::string_view(e.what()).find("dozor_stale_agent") != std::string_view::npos;
}

bool Store::revoked(const sql::Error& e) {
  return std::string_view(e.what()).find("dozor_revoked") != std::string_view::npos;
}

void Store::log_report(const std::string& agent, const std::string& results) {
  sql::Statement(*db_, "INSERT INTO report_log (agent, results) VALUES (?, ?)")
      .bind(1, std::string_view(agent))
      .bind(2, std::string_view(results))
      .run();
}

std::vector<Store::LoggedReport> Store::take_logged(std::size_t limit) {
  // Rows of reports still being stored are not visible yet: they come in a later take. The
  // reports of one agent are stored one after the other (share()), so they come in order.
  sql::Statement q(*db_,
                   "DELETE FROM report_log WHERE id IN (SELECT id FROM report_log ORDER BY id "
                   "LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING id, agent, results");
  q.bind(1, static_cast<std::int64_t>(limit));
  std::vector<std::pair<std::int64_t, LoggedReport>> rows;
  while (q.step()) rows.push_back({q.integer(0), {q.text(1), q.text(2)}});
  std::sort(rows.begin(), rows.end(), [](auto& x, auto& y) { return x.first < y.first; });
  std::vector<LoggedReport> out;
  out.reserve(rows.size());
  for (auto& [id, r] : rows) out.push_back(std::move(r));
  return out;
}

void Store::forget(const std::string& agent, const std::vector<std::string>& probes) {
  if (!probes.empty()) {
    sql::Statement q(*db_, "DELETE FROM probes WHERE agent = ? AND probe = ?");
    for (const auto& name : probes) {
      q.bind(1, std::string_view(agent)).bind(2, std::string_view(name)).run();
    }
    return;
  }
  for (const char* sql :
       {"DELETE FROM probes WHERE agent = ?", "DELETE FROM agent_seqs WHERE agent = ?",
        "DELETE FROM agents WHERE id = ?"})
    sql::Statement(*db_, sql).bind(1, std::string_view(agent)).run();
}

void Store::state_change(const StateChange& c) {
  state_change_.bind(1, std::string_view(c.site))
      .bind(2, std::string_view(c.agent))
      .bind(3, std::string_view(c.probe))
      .bind(4, c.ts)
      .bind(5, std::int64_t{c.status})
      .run();
}

std::size_t Store::prune_history(double before) {
  sql::Statement(*db_, "DELETE FROM state_changes WHERE ts < ?").bind(1, before).run();
  return static_cast<std::size_t>(db_->changes());
}

void Store::save_certificate(const std::string& agent, const std::string& serial, double not_after,
                             double now) {
  sql::Statement(*db_,
                 sql::upsert("agent_certificates", "agent, serial, not_after, seen_at", "agent"))
      .bind(1, std::string_view(agent))
      .bind(2, std::string_view(serial))
      .bind(3, not_after)
      .bind(4, now)
      .run();
}

std::optional<std::string> Store::certificate_serial(const std::string& agent) {
  sql::Statement q(*db_, "SELECT serial FROM agent_certificates WHERE agent = ?");
  q.bind(1, std::string_view(agent));
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

void Store::revoke(const Revocation& r) {
  sql::Statement(
      *db_, sql::upsert("revocations", "serial, agent, revoked_at, revoked_by, comment", "serial"))
      .bind(1, std::string_view(r.serial))
      .bind(2, std::string_view(r.agent))
      .bind(3, r.revoked_at)
      .bind(4, std::string_view(r.by))
      .bind(5, std::string_view(r.comment))
      .run();
}

std::vector<Store::Revocation> Store::revocations() {
  std::vector<Revocation> out;
  sql::Statement q(*db_, "SELECT * FROM revocations ORDER BY revoked_at");
  while (q.step()) out.push_back({q.text(0), q.text(1), q.text(3), q.text(4), q.real(2)});
  return out;
}

namespace {

Store::EnrollToken token_row(const sql::Statement& q) {
  Store::EnrollToken t;
  t.id = q.text(0);
  t.hash = q.text(1);
  t.agent = q.text(2);
  t.site = q.text(3);
  t.by = q.text(4);
  t.comment = q.text(5);
  t.created_at = q.real(6);
  t.expires_at = q.real(7);
  t.uses = q.integer(8);
  t.used = q.integer(9);
  t.revoked_at = q.real(10);
  t.last_used_at = q.real(11);
  t.replace = q.integer(12) != 0;
  return t;
}

constexpr double kKeepExpired = 30 * 86400.0;  // expired tokens and certificates, for the API

}  // namespace

void Store::add_token(const EnrollToken& t) {
  sql::Statement(*db_, "DELETE FROM enroll_tokens WHERE expires_at < ?")
      .bind(1, t.created_at - kKeepExpired)
      .run();
  sql::Statement(*db_, "INSERT INTO enroll_tokens VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")
      .bind(1, std::string_view(t.id))
      .bind(2, std::string_view(t.hash))
      .bind(3, std::string_view(t.agent))
      .bind(4, std::string_view(t.site))
      .bind(5, std::string_view(t.by))
      .bind(6, std::string_view(t.comment))
      .bind(7, t.created_at)
      .bind(8, t.expires_at)
      .bind(9, t.uses)
      .bind(10, t.used)
      .bind(11, t.revoked_at)
      .bind(12, t.last_used_at)
      .bind(13, std::int64_t{t.replace})
      .run();
}

std::optional<Store::EnrollToken> Store::token_by_hash(const std::string& hash) {
  sql::Statement q(*db_, "SELECT * FROM enroll_tokens WHERE hash = ?");
  q.bind(1, std::string_view(hash));
  if (!q.step()) return std::nullopt;
  return token_row(q);
}

std::vector<Store::EnrollToken> Store::tokens() {
  std::vector<EnrollToken> out;
  sql::Statement q(*db_, "SELECT * FROM enroll_tokens ORDER BY created_at");
  while (q.step()) out.push_back(token_row(q));
  return out;
}

bool Store::revoke_token(const std::string& id, double now) {
  sql::Statement q(*db_, "UPDATE enroll_tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0");
  q.bind(1, now).bind(2, std::string_view(id)).run();
  return db_->changes() == 1;
}

std::size_t Store::revoke_tokens_of(const std::string& agent, double now) {
  sql::Statement q(*db_,
                   "UPDATE enroll_tokens SET revoked_at = ? WHERE agent = ? AND revoked_at = 0");
  q.bind(1, now).bind(2, std::string_view(agent)).run();
  return static_cast<std::size_t>(db_->changes());
}

bool Store::record_issued(const Issued& c, const std::string& token_id) {
  sql::Transaction tx(*db_);
  if (!token_id.empty()) {
    sql::Statement(*db_,
                   "UPDATE enroll_tokens SET used = used + 1, last_used_at = ? WHERE id = ? "
                   "AND used < uses AND revoked_at = 0 AND expires_at > ?")
        .bind(1, c.issued_at)
        .bind(2, std::string_view(token_id))
        .bind(3, c.issued_at)
        .run();
    if (db_->changes() != 1) return false;
  }
  sql::Statement(*db_, "DELETE FROM issued_certificates WHERE agent = ? AND not_after < ?")
      .bind(1, std::string_view(c.agent))
      .bind(2, c.issued_at - kKeepExpired)
      .run();
  sql::Statement(*db_,
                 sql::upsert("issued_certificates",
                             "serial, agent, site, how, source, issued_at, not_after", "serial"))
      .bind(1, std::string_view(c.serial))
      .bind(2, std::string_view(c.agent))
      .bind(3, std::string_view(c.site))
      .bind(4, std::string_view(c.how))
      .bind(5, std::string_view(c.source))
      .bind(6, c.issued_at)
      .bind(7, c.not_after)
      .run();
  tx.commit();
  return true;
}

std::vector<Store::Issued> Store::issued(const std::string& agent) {
  std::vector<Issued> out;
  sql::Statement q(*db_, agent.empty() ? "SELECT * FROM issued_certificates ORDER BY issued_at"
                                       : "SELECT * FROM issued_certificates WHERE agent = ? "
                                         "ORDER BY issued_at");
  if (!agent.empty()) q.bind(1, std::string_view(agent));
  while (q.step())
    out.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.real(5), q.real(6)});
  return out;
}

std::vector<std::string> Store::live_serials(const std::string& agent, double now) {
  std::vector<std::string> out;
  sql::Statement q(*db_,
                   "SELECT serial FROM agent_certificates WHERE agent = ?1 UNION "
                   "SELECT serial FROM issued_certificates WHERE agent = ?1 AND not_after > ?2 "
                   "EXCEPT SELECT serial FROM revocations");
  q.bind(1, std::string_view(agent)).bind(2, now);
  while (q.step()) out.push_back(q.text(0));
  return out;
}

}  // namespace dozor::collector
