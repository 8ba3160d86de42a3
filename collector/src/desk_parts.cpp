#include "desk_parts.h"

#include <algorithm>
#include <cstdio>

#include "dozor/protocol/units.h"

namespace dozor::collector {
namespace {

using nlohmann::json;

std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

json stamp(double t) { return t > 0 ? json(format_timestamp(t)) : json(nullptr); }

std::string metrics_text(const std::vector<protocol::Metric>& metrics) {
  std::string out;
  for (const auto& m : metrics) {
    if (!out.empty()) out += ", ";
    out += protocol::series_name(m) + "=" + number_text(m.value) + m.unit;
  }
  return out;
}

}  // namespace

std::string seconds_text(double s) {
  return format_duration(
      std::chrono::milliseconds(static_cast<std::int64_t>(std::max(0.0, s)) * 1000));
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

Finding check_status(const Rule& rule, const AgentState& a, const protocol::Result& r) {
  Finding f;
  f.holds = std::find(rule.when.begin(), rule.when.end(), r.status) != rule.when.end();
  if (!f.holds) return f;
  const std::string status(protocol::to_string(r.status));
  f.summary = a.id + " " + r.probe + " " + status + ": " + r.summary;
  f.details = "site " + a.site + ", agent " + a.id + " (" + a.hostname + "), probe " + r.probe +
              " (" + r.type + ")\nstatus " + status + " at " + format_timestamp(r.ts) + ": " +
              r.summary;
  if (!r.metrics.empty()) f.details += "\nvalues: " + metrics_text(r.metrics);
  f.details += "\nrule " + rule.name;
  return f;
}

Finding check_metric(const Rule& rule, Incident& inc, const AgentState& a,
                     const protocol::Result& r, const protocol::Metric& m) {
  Finding f;
  const std::string& series = inc.metric;
  const std::string what = a.id + " " + r.probe + " " + series;
  if (rule.kind == RuleKind::forecast) {
    const double window = std::chrono::duration<double>(rule.window).count();
    inc.trend.add(r.ts, m.value, window);
    inc.relearn = true;
    auto fit = inc.trend.fit();
    if (!fit || inc.trend.size() < rule.min_points || inc.trend.span() < window / 2) return f;
    auto eta = time_to_threshold(*fit, rule.threshold, rule.falling);
    f.holds = eta && *eta <= std::chrono::duration<double>(rule.horizon).count();
    if (!f.holds) return f;
    f.summary =
        what + " reaches " + number_text(rule.threshold) + m.unit + " in " + seconds_text(*eta);
    f.details = "site " + a.site + ", agent " + a.id + ", probe " + r.probe + "\n" + series +
                " now " + number_text(m.value) + m.unit + ", trend " +
                number_text(fit->slope * 3600) + m.unit + "/h over the last " +
                seconds_text(inc.trend.span()) + "\npredicted to reach " +
                number_text(rule.threshold) + m.unit + " at " + format_timestamp(r.ts + *eta) +
                "\nrule " + rule.name;
    return f;
  }
  // stale
  if (m.value != inc.value) {
    inc.value = m.value;
    inc.value_since = r.ts;
    inc.relearn = true;
  }
  const double unchanged = r.ts - inc.value_since;
  f.holds = unchanged >= std::chrono::duration<double>(rule.hold).count();
  if (!f.holds) return f;
  f.summary =
      what + " unchanged at " + number_text(m.value) + m.unit + " for " + seconds_text(unchanged);
  f.details = "site " + a.site + ", agent " + a.id + ", probe " + r.probe + "\n" + series +
              " has read " + number_text(m.value) + m.unit + " since " +
              format_timestamp(inc.value_since) + "\nrule " + rule.name;
  return f;
}

json Incident::learned() const {
  json points = json::array();
  for (const auto& p : trend.points()) points.push_back({p.t, p.v});
  json out = {{"changes", changes}, {"trend", std::move(points)}};
  if (!std::isnan(value)) out["value"] = {value, value_since};
  return out;
}

void Incident::learn(const json& j) {
  if (!j.is_object()) return;
  if (auto c = j.find("changes"); c != j.end() && c->is_array())
    for (const auto& t : *c)
      if (t.is_number()) changes.push_back(t.get<double>());
  if (auto t = j.find("trend"); t != j.end() && t->is_array()) {
    std::vector<Trend::Point> points;
    for (const auto& p : *t)
      if (p.is_array() && p.size() == 2 && p[0].is_number() && p[1].is_number())
        points.push_back({p[0].get<double>(), p[1].get<double>()});
    trend.restore(std::move(points));
  }
  if (auto v = j.find("value"); v != j.end() && v->is_array() && v->size() == 2 &&
                                (*v)[0].is_number() && (*v)[1].is_number()) {
    value = (*v)[0].get<double>();
    value_since = (*v)[1].get<double>();
  }
}

struct DeskRows::Statements {
  explicit Statements(sql::Database& db)
      : upsert_ticket(db, sql::upsert("tickets",
                                      "id, key, class, priority, status, summary, details, site, "
                                      "agent, probe, rule, opened_at, raised_at, acknowledged_at, "
                                      "resolved_at, closed_at, updated_at, deadline, escalations, "
                                      "occurrences, flapping, probes, acknowledged_by, comment",
                                      "id")),
        insert_event(db, "INSERT INTO ticket_events VALUES (?,?,?,?,?)"),
        insert_outbox(db, "INSERT INTO outbox VALUES (?,?,?,0,?,'')"),
        upsert_incident(db, sql::upsert("incidents",
                                        "key, rule, site, agent, probe, metric, failing, since, "
                                        "clear_since, ticket, latched, flapping, summary, "
                                        "details, learned",
                                        "key")),
        delete_incident(db, "DELETE FROM incidents WHERE key = ?"),
        due(db,
            // In order: nothing behind a row that waits for its retry.
            "SELECT event, payload, attempts FROM outbox WHERE notifier = ?1 AND next_at <= ?2 "
            "AND event < coalesce((SELECT min(event) FROM outbox WHERE notifier = ?1 AND "
            "next_at > ?2), 9e18) ORDER BY event LIMIT ?3"),
        delivered(db, "DELETE FROM outbox WHERE notifier = ? AND event = ?"),
        failed(db,
               "UPDATE outbox SET attempts = attempts + 1, next_at = ?, error = ? "
               "WHERE notifier = ? AND event = ?"),
        upsert_silence(db, sql::upsert("silences",
                                       "id, site, agent, probe, rule, starts_at, ends_at, comment, "
                                       "created_by, created_at",
                                       "id")) {}
  sql::Statement upsert_ticket, insert_event, insert_outbox, upsert_incident, delete_incident, due,
      delivered, failed, upsert_silence;
};

DeskRows::DeskRows(sql::Database& db) : db_(db), sql_(std::make_unique<Statements>(db)) {}

DeskRows::~DeskRows() = default;

// Reads everything first: a store that fails meanwhile leaves the caller's memory as it was.
DeskRows::Loaded DeskRows::load() {
  Loaded out;
  sql::Statement tickets(db_,
                         "SELECT * FROM tickets WHERE status IN ('open', 'acknowledged', "
                         "'resolved')");
  while (tickets.step()) {
    Ticket t = read_ticket(tickets);
    out.tickets.emplace(t.id, std::move(t));
  }
  sql::Statement incidents(db_, "SELECT * FROM incidents");
  while (incidents.step()) {
    auto inc = std::make_unique<Incident>();
    inc->key = incidents.text(0);
    inc->rule_name = incidents.text(1);
    inc->site = incidents.text(2);
    inc->agent = incidents.text(3);
    inc->probe = incidents.text(4);
    inc->metric = incidents.text(5);
    inc->failing = incidents.integer(6) != 0;
    inc->since = incidents.real(7);
    inc->clear_since = incidents.real(8);
    inc->ticket = static_cast<std::uint64_t>(incidents.integer(9));
    inc->latched = incidents.integer(10) != 0;
    inc->flapping = incidents.integer(11) != 0;
    inc->summary = incidents.text(12);
    inc->details = incidents.text(13);
    inc->learn(json::parse(incidents.text(14), nullptr, false));
    out.incidents.push_back(std::move(inc));
  }
  sql::Statement silences(db_, "SELECT * FROM silences ORDER BY id");
  while (silences.step()) {
    Silence s;
    s.id = static_cast<std::uint64_t>(silences.integer(0));
    s.site = silences.text(1);
    s.agent = silences.text(2);
    s.probe = silences.text(3);
    s.rule = silences.text(4);
    s.starts_at = silences.real(5);
    s.ends_at = silences.real(6);
    s.comment = silences.text(7);
    s.created_by = silences.text(8);
    s.created_at = silences.real(9);
    out.silences.push_back(std::move(s));
  }
  auto next_id = [&](const char* table) {
    sql::Statement q(db_, std::string("SELECT coalesce(max(id), 0) FROM ") + table);
    q.step();
    return static_cast<std::uint64_t>(q.integer(0)) + 1;
  };
  out.next_ticket = next_id("tickets");
  out.next_event = next_id("ticket_events");
  out.next_silence = next_id("silences");
  return out;
}

Ticket DeskRows::read_ticket(sql::Statement& q) {
  Ticket t;
  t.id = static_cast<std::uint64_t>(q.integer(0));
  t.key = q.text(1);
  t.ticket_class = q.text(2);
  t.priority = static_cast<int>(q.integer(3));
  t.status = q.text(4);
  t.summary = q.text(5);
  t.details = q.text(6);
  t.site = q.text(7);
  t.agent = q.text(8);
  t.probe = q.text(9);
  t.rule = q.text(10);
  t.opened_at = q.real(11);
  t.raised_at = q.real(12);
  t.acknowledged_at = q.real(13);
  t.resolved_at = q.real(14);
  t.closed_at = q.real(15);
  t.updated_at = q.real(16);
  t.deadline = q.real(17);
  t.escalations = static_cast<int>(q.integer(18));
  t.occurrences = static_cast<int>(q.integer(19));
  t.flapping = q.integer(20) != 0;
  auto probes = json::parse(q.text(21), nullptr, false);
  if (probes.is_array())
    for (const auto& p : probes)
      if (p.is_string()) t.probes.push_back(p.get<std::string>());
  t.acknowledged_by = q.text(22);
  t.comment = q.text(23);
  return t;
}

void DeskRows::save(const Ticket& t) {
  sql_->upsert_ticket.bind(1, i64(t.id))
      .bind(2, std::string_view(t.key))
      .bind(3, std::string_view(t.ticket_class))
      .bind(4, std::int64_t{t.priority})
      .bind(5, std::string_view(t.status))
      .bind(6, std::string_view(t.summary))
      .bind(7, std::string_view(t.details))
      .bind(8, std::string_view(t.site))
      .bind(9, std::string_view(t.agent))
      .bind(10, std::string_view(t.probe))
      .bind(11, std::string_view(t.rule))
      .bind(12, t.opened_at)
      .bind(13, t.raised_at)
      .bind(14, t.acknowledged_at)
      .bind(15, t.resolved_at)
      .bind(16, t.closed_at)
      .bind(17, t.updated_at)
      .bind(18, t.deadline)
      .bind(19, std::int64_t{t.escalations})
      .bind(20, std::int64_t{t.occurrences})
      .bind(21, std::int64_t{t.flapping})
      .bind(22, std::string_view(json(t.probes).dump()))
      .bind(23, std::string_view(t.acknowledged_by))
      .bind(24, std::string_view(t.comment))
      .run();
}

void DeskRows::save(const Incident& inc) {
  // Thousands of healthy probes cost no rows.
  if (inc.is_default()) return forget(inc);
  sql_->upsert_incident.bind(1, std::string_view(inc.key))
      .bind(2, std::string_view(inc.rule_name))
      .bind(3, std::string_view(inc.site))
      .bind(4, std::string_view(inc.agent))
      .bind(5, std::string_view(inc.probe))
      .bind(6, std::string_view(inc.metric))
      .bind(7, std::int64_t{inc.failing})
      .bind(8, inc.since)
      .bind(9, inc.clear_since)
      .bind(10, i64(inc.ticket))
      .bind(11, std::int64_t{inc.latched})
      .bind(12, std::int64_t{inc.flapping})
      .bind(13, std::string_view(inc.summary))
      .bind(14, std::string_view(inc.details))
      .bind(15, std::string_view(inc.learned_anything() ? inc.learned().dump() : ""))
      .run();
}

void DeskRows::forget(const Incident& inc) {
  sql_->delete_incident.bind(1, std::string_view(inc.key)).run();
}

void DeskRows::save(const Silence& s) {
  sql_->upsert_silence.bind(1, i64(s.id))
      .bind(2, std::string_view(s.site))
      .bind(3, std::string_view(s.agent))
      .bind(4, std::string_view(s.probe))
      .bind(5, std::string_view(s.rule))
      .bind(6, s.starts_at)
      .bind(7, s.ends_at)
      .bind(8, std::string_view(s.comment))
      .bind(9, std::string_view(s.created_by))
      .bind(10, s.created_at)
      .run();
}

void DeskRows::event(std::uint64_t id, std::uint64_t ticket, double at, std::string_view name,
                     std::string_view text) {
  sql_->insert_event.bind(1, i64(id))
      .bind(2, i64(ticket))
      .bind(3, at)
      .bind(4, name)
      .bind(5, text)
      .run();
}

void DeskRows::queue(std::uint64_t event, std::string_view notifier, std::string_view payload,
                     double at) {
  sql_->insert_outbox.bind(1, i64(event)).bind(2, notifier).bind(3, payload).bind(4, at).run();
}

void DeskRows::prune(double before) {
  sql::Statement(db_,
                 "DELETE FROM ticket_events WHERE ticket IN (SELECT id FROM tickets WHERE "
                 "status = 'closed' AND closed_at < ?)")
      .bind(1, before)
      .run();
  sql::Statement(db_, "DELETE FROM tickets WHERE status = 'closed' AND closed_at < ?")
      .bind(1, before)
      .run();
}

std::vector<Ticket> DeskRows::tickets(const Desk::Query& q) {
  std::string sql = "SELECT * FROM tickets WHERE TRUE";
  std::vector<std::string> statuses;
  for (const auto& s : q.statuses) {
    if (s == "active") {
      statuses.push_back("open");
      statuses.push_back("acknowledged");
    } else {
      statuses.push_back(s);
    }
  }
  if (!statuses.empty()) {
    sql += " AND status IN (";
    for (std::size_t i = 0; i < statuses.size(); ++i) sql += i ? ",?" : "?";
    sql += ")";
  }
  if (!q.site.empty()) sql += " AND site = ?";
  sql += " ORDER BY id DESC LIMIT ?";
  sql::Statement stmt(db_, sql);
  int i = 1;
  for (const auto& s : statuses) stmt.bind(i++, std::string_view(s));
  if (!q.site.empty()) stmt.bind(i++, std::string_view(q.site));
  stmt.bind(i, static_cast<std::int64_t>(q.limit));
  std::vector<Ticket> out;
  while (stmt.step()) out.push_back(read_ticket(stmt));
  return out;
}

std::optional<Ticket> DeskRows::ticket(std::uint64_t id) {
  sql::Statement stmt(db_, "SELECT * FROM tickets WHERE id = ?");
  stmt.bind(1, i64(id));
  if (!stmt.step()) return std::nullopt;
  return read_ticket(stmt);
}

json DeskRows::events(std::uint64_t id) {
  sql::Statement stmt(db_,
                      "SELECT at, event, text FROM ticket_events WHERE ticket = ? ORDER BY id");
  stmt.bind(1, i64(id));
  json out = json::array();
  while (stmt.step())
    out.push_back({{"at", stamp(stmt.real(0))}, {"event", stmt.text(1)}, {"text", stmt.text(2)}});
  return out;
}

std::vector<Notification> DeskRows::due(const std::string& notifier, double now,
                                        std::size_t limit) {
  auto& q = sql_->due;
  q.bind(1, std::string_view(notifier)).bind(2, now).bind(3, static_cast<std::int64_t>(limit));
  std::vector<Notification> out;
  while (q.step()) {
    Notification n;
    n.id = static_cast<std::uint64_t>(q.integer(0));
    auto payload = json::parse(q.text(1), nullptr, false);
    n.attempts = static_cast<int>(q.integer(2));
    if (payload.is_object()) {
      n.event = payload.value("event", "");
      n.at = payload.value("at", 0.0);
      n.ticket = payload.value("ticket", json::object());
    }
    out.push_back(std::move(n));
  }
  q.reset();
  return out;
}

void DeskRows::delivered(const std::string& notifier, std::uint64_t id) {
  sql_->delivered.bind(1, std::string_view(notifier)).bind(2, i64(id)).run();
}

void DeskRows::failed(const std::string& notifier, std::uint64_t id, double retry_at,
                      const std::string& error) {
  sql_->failed.bind(1, retry_at)
      .bind(2, std::string_view(error))
      .bind(3, std::string_view(notifier))
      .bind(4, i64(id))
      .run();
}

namespace {

std::vector<std::string> label_of(const Ticket& t) {
  return {t.site, t.ticket_class, "P" + std::to_string(t.priority)};
}

prometheus::Labels labels(const std::vector<std::string>& l) {
  return {{"site", l[0]}, {"class", l[1]}, {"priority", l[2]}};
}

}  // namespace

void TicketGauges::count(const Ticket& t, int delta) {
  const auto label = label_of(t);
  double& n = open_[label];
  n += delta;
  metrics_.tickets_open.Add(labels(label)).Set(n);
}

void TicketGauges::publish(prometheus::Family<prometheus::Gauge>& family, Counts& published,
                           Counts counts) {
  for (auto& [label, n] : published) counts.try_emplace(label, 0);  // keep those now at zero
  for (const auto& [label, n] : counts) family.Add(labels(label)).Set(n);
  published = std::move(counts);
}

void TicketGauges::recount(const std::map<std::uint64_t, Ticket>& live) {
  Counts counts;
  for (const auto& [id, t] : live)
    if (t.active()) counts[label_of(t)] += 1;
  publish(metrics_.tickets_open, open_, std::move(counts));
}

void TicketGauges::overdue(const std::map<std::uint64_t, Ticket>& live, double now) {
  if (now < next_overdue_) return;
  next_overdue_ = now + 1;
  Counts counts;
  for (const auto& [id, t] : live)
    // Past a deadline once it escalated (an escalation moves the deadline on).
    if (t.status == "open" && (t.escalations > 0 || (t.deadline > 0 && now > t.deadline)))
      counts[label_of(t)] += 1;
  publish(metrics_.tickets_overdue, overdue_, std::move(counts));
}

}  // namespace dozor::collector
