#pragma once

// The desk's parts that only it uses: what an incident is, its rows in the store (DeskRows),
// its gauges (TicketGauges).

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/collector/desk.h"

namespace dozor::collector {

// What an incident's row holds, and what a transaction the store refused puts back.
struct IncidentState {
  bool failing = false;
  double since = 0;          // when the condition began to hold
  double clear_since = 0;    // when it stopped holding
  std::uint64_t ticket = 0;  // its ticket: active, or resolved and still reopenable
  bool latched = false;      // its ticket was closed by hand while failing: none until it clears
  bool flapping = false;
  std::vector<double> changes;      // recent flips, for flapping (a deque costs 576 B empty)
  std::string summary, details;     // the latest evidence, for the ticket
  std::vector<std::string> probes;  // silent rules: the agent's probes, listed on its ticket
};

// One rule's condition on one thing (a probe, a series, an agent, a certificate). What it
// learned (trend, a value's age) is not put back after a refused transaction: it was seen, and
// is saved now and then rather than with each change.
struct Incident : IncidentState {
  std::string key, site, agent, probe, metric, rule_name;
  std::size_t rule = 0;                                     // index into the desk's rules
  Trend trend;                                              // forecast rules
  double value = std::numeric_limits<double>::quiet_NaN();  // stale rules: the unchanged value
  double value_since = 0;
  bool relearn = false;   // changes, trend or value moved since it was last saved
  double learned_at = 0;  // when the desk last saved what it learned

  // What it learned over time, which a restart must not make it learn again.
  bool learned_anything() const {
    return !changes.empty() || trend.size() > 0 || !std::isnan(value);
  }
  nlohmann::json learned() const;
  void learn(const nlohmann::json& j);
  // A quiet incident that learned nothing is its default: it has no row.
  bool is_default() const { return !failing && !ticket && !latched && !learned_anything(); }
};

// What a rule makes of one reading: whether its condition holds, and if so the evidence the
// incident's ticket shows.
struct Finding {
  bool holds = false;
  std::string summary, details;
};
// A status rule: the reading's status is one of the rule's `when`.
Finding check_status(const Rule& rule, const AgentState& a, const protocol::Result& r);
// A forecast or stale rule on one value of a series: the incident learns from it (the trend, how
// long the value stood still) before it is judged.
Finding check_metric(const Rule& rule, Incident& inc, const AgentState& a,
                     const protocol::Result& r, const protocol::Metric& m);
std::string seconds_text(double s);  // "5m", "1h 30m"
std::string number_text(double v);

// The desk's rows: tickets and their events, incidents, silences and the notification outbox,
// in the SQL both engines speak. Memory is the Desk's; this only reads and writes, in the
// transactions the Desk (or Health) opens. Not thread-safe: the Desk's lock guards it.
class DeskRows {
 public:
  explicit DeskRows(sql::Database& db);  // on a store migrate() made
  ~DeskRows();

  // Everything the desk holds in memory, and the next free ids.
  struct Loaded {
    std::map<std::uint64_t, Ticket> tickets;           // open, acknowledged and resolved
    std::vector<std::unique_ptr<Incident>> incidents;  // `rule` unset: the desk knows its rules
    std::vector<Silence> silences;
    std::uint64_t next_ticket = 1, next_event = 1, next_silence = 1;
  };
  Loaded load();

  void save(const Ticket& t);
  void save(const Incident& inc);  // its row, or none when it is a default one
  void forget(const Incident& inc);
  void save(const Silence& s);
  void event(std::uint64_t id, std::uint64_t ticket, double at, std::string_view name,
             std::string_view text);
  void queue(std::uint64_t event, std::string_view notifier, std::string_view payload, double at);
  // Deletes the tickets closed before `before`, with their events.
  void prune(double before);

  std::vector<Ticket> tickets(const Desk::Query& q);
  std::optional<Ticket> ticket(std::uint64_t id);
  nlohmann::json events(std::uint64_t id);

  std::vector<Notification> due(const std::string& notifier, double now, std::size_t limit);
  void delivered(const std::string& notifier, std::uint64_t id);
  void failed(const std::string& notifier, std::uint64_t id, double retry_at,
              const std::string& error);

 private:
  static Ticket read_ticket(sql::Statement& q);
  struct Statements;
  sql::Database& db_;
  std::unique_ptr<Statements> sql_;
};

// dozor_tickets_open and dozor_tickets_overdue by site, class and priority. A series that
// dropped to zero stays, at zero.
class TicketGauges {
 public:
  explicit TicketGauges(Metrics& metrics) : metrics_(metrics) {}
  // Per change rather than by walking every live ticket: thousands of them cost more than the
  // rules.
  void opened(const Ticket& t) { count(t, +1); }
  void closed(const Ticket& t) { count(t, -1); }
  // Every label set counted again from `live` (after a load, or memory put back).
  void recount(const std::map<std::uint64_t, Ticket>& live);
  // Open tickets past their reaction deadline; at most once a second.
  void overdue(const std::map<std::uint64_t, Ticket>& live, double now);

 private:
  using Counts = std::map<std::vector<std::string>, double>;  // by site, class, priority
  void count(const Ticket& t, int delta);
  static void publish(prometheus::Family<prometheus::Gauge>& family, Counts& published,
                      Counts counts);

  Metrics& metrics_;
  Counts open_, overdue_;
  double next_overdue_ = 0;
};

}  // namespace dozor::collector
