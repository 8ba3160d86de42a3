#pragma once

#include <yaml-cpp/yaml.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "dozor/collector/calendar.h"
#include "dozor/collector/health.h"
#include "dozor/collector/metrics.h"
#include "dozor/collector/notify.h"
#include "dozor/collector/rules.h"
#include "dozor/collector/sql.h"

namespace dozor::collector {

/// What the support team works on. At most one ticket is open (open, acknowledged or resolved
/// but still reopenable) per key; the store enforces it with a unique index.
struct Ticket {
  std::uint64_t id = 0;
  std::string key;  // site/agent/probe/rule
  std::string ticket_class = "emergency";
  int priority = 2;
  std::string status = "open";  // open -> acknowledged -> resolved -> closed
  std::string summary, details;
  std::string site, agent, probe, rule;
  double opened_at = 0;
  double raised_at = 0;  // opened or last reopened: when the reaction clock started
  double acknowledged_at = 0, resolved_at = 0, closed_at = 0, updated_at = 0;
  double deadline = 0;  // unix seconds; 0: no reaction target for this class
  int escalations = 0;
  int occurrences = 1;
  bool flapping = false;
  std::vector<std::string> probes;  // a site-wide ticket: "agent/probe" of each failing probe
  std::string acknowledged_by, comment;

  bool active() const { return status == "open" || status == "acknowledged"; }
};

/// The ticket as the API and the notifiers show it.
nlohmann::json to_json(const Ticket& t);

/// Planned work: no new tickets (and no escalation) for keys it matches between start and end.
struct Silence {
  std::uint64_t id = 0;
  std::string site = "*", agent = "*", probe = "*", rule = "*";  // globs
  double starts_at = 0, ends_at = 0, created_at = 0;
  std::string comment, created_by;
  bool active(double now) const { return starts_at <= now && now < ends_at; }
  bool matches(std::string_view s, std::string_view a, std::string_view p,
               std::string_view r) const;
};
nlohmann::json to_json(const Silence& s, double now);

struct Incident;
class DeskRows;
class TicketGauges;

/// `rules:`, `calendars:`, `service:`, `tickets:` and `notifiers:` of collector.yaml.
struct DeskConfig {
  std::vector<Rule> rules = default_rules();
  std::map<std::string, ServiceCalendar> calendars;  // by name
  std::string default_calendar = "24x7";
  std::map<std::string, std::string> site_calendars;  // site -> calendar name
  ReactionTargets targets = default_targets();
  std::chrono::milliseconds reopen_within{std::chrono::hours(1)};
  // A site-wide outage: at least `outage_probes` probes, and more than `outage_share` of the
  // site's probes, starting to fail within `outage_window`, make one ticket for the site.
  int outage_probes = 3;
  double outage_share = 0.5;
  std::chrono::milliseconds outage_window{std::chrono::minutes(1)};
  // The collector cut off from its agents: at least `mass_silence_agents` agents, and more than
  // `mass_silence_share` of the agents known, falling silent within `mass_silence_window` of
  // each other make one ticket about the collector or its network, not one per site.
  int mass_silence_agents = 5;
  double mass_silence_share = 0.5;
  std::chrono::milliseconds mass_silence_window{std::chrono::minutes(1)};
  std::vector<NotifierConfig> notifiers;

  static ReactionTargets default_targets();
};

/// Reads the sections above from the parsed collector.yaml; errors name file:line: key.
DeskConfig parse_desk_config(const YAML::Node& root, const std::string& file,
                             std::vector<ConfigError>& errors);

/// The support desk: turns health into incidents and tickets by the rules, keeps them, their
/// events and the notification outbox in the collector's store, and answers the API. Every
/// change is written through to the store in the same transaction as the report that caused it,
/// so a ticket survives a restart exactly once. Time is passed in (unix seconds). Thread-safe.
class Desk : public OutboxQueue {
 public:
  /// The rule name of a site-wide outage ticket.
  static constexpr std::string_view kSiteOutage = "site-outage";
  /// The rule name of the ticket for most agents falling silent at once.
  static constexpr std::string_view kMassSilence = "collector-unreachable";

  Desk(DeskConfig config, Metrics& metrics, sql::Database& db);
  ~Desk() override;

  /// A report's accepted results for `agent` (state after the report); called by Health inside
  /// the transaction that stores the report, which then tells committed() or rolled_back().
  void observe(const AgentState& agent, const std::vector<const protocol::Result*>& accepted,
               double now);
  /// The caller's transaction holding observe() or forget() committed: the desk's changes stand,
  /// and the notifications they queued go out.
  void committed();
  /// It failed: memory goes back to what the store holds (each ticket and incident the
  /// transaction touched, as it was), rather than everything read again.
  void rolled_back();
  /// Conditions held or recovered long enough, silent agents, escalations, silences that ended,
  /// resolved tickets to close. Called about every 250 ms with every agent's state.
  void tick(const std::vector<const AgentState*>& agents, double now);
  /// Reads the store again (another collector's desk changed it).
  void reload();
  /// Saves what incidents learned since the last save (trends, flap histories, values' ages),
  /// as the tick does every 5 minutes: at a clean stop.
  void save_learned();
  /// The collector's own certificate (agent port) expires at `not_after`: certificate rules
  /// watch it as they watch the agents'.
  void own_certificate(double not_after);
  /// New rules, calendars and notifiers (SIGHUP). Incidents of rules that are gone resolve.
  void reconfigure(DeskConfig config, double now);
  /// The same for a collector that does not run the desk (another holds the lease): only the
  /// configuration changes here; the leader's reconfigure() resolves what removed rules left.
  void replace_config(DeskConfig config);
  /// A probe (or with `probe` empty, a whole agent) is forgotten: its incidents go, and what
  /// they held open resolves. Inside the caller's transaction (Health's).
  void forget(const std::string& agent, const std::string& probe, double now);

  /// Deletes the tickets closed before `before`, with their events (the reports' history bound).
  void prune(double before);
  /// The service calendar of `site` (its own, or the default) and the whole config; for the
  /// thread that also calls reconfigure() (the server's), as they are not locked.
  const ServiceCalendar& calendar_of(const std::string& site) const { return calendar(site); }
  const DeskConfig& config() const { return config_; }

  // The API.
  struct Query {
    std::vector<std::string> statuses;  // empty: all; "active" = open + acknowledged
    std::string site;
    std::size_t limit = 1000;
  };
  std::vector<Ticket> tickets(const Query& q);
  std::optional<Ticket> ticket(std::uint64_t id);
  nlohmann::json events(std::uint64_t id);
  enum class Change { done, not_found, conflict };
  Change acknowledge(std::uint64_t id, const std::string& by, const std::string& comment,
                     double now);
  Change close(std::uint64_t id, const std::string& by, const std::string& comment, double now);
  Silence add_silence(Silence s, double now);
  bool remove_silence(std::uint64_t id, double now);
  std::vector<Silence> silences(double now);

  /// Bumped by every change of a ticket or a silence: the board's cue to look again.
  std::uint64_t generation() const { return generation_.load(); }
  /// Service time left to a ticket's reaction deadline, as the desk counts it.
  struct Countdown {
    bool has_deadline = false;
    double left = 0;        // seconds of service time from now; negative past the deadline
    bool counting = false;  // the site is in its service hours now: the countdown runs
  };
  /// The open and acknowledged tickets (from memory), each with its countdown at `now`.
  std::vector<std::pair<Ticket, Countdown>> active(double now);

  /// Several collectors on one store: `f` runs last in every transaction that holds the desk's
  /// changes, and throws when this collector no longer holds the desk's lease (lease.h), so
  /// that the transaction fails instead of storing what a second desk decided.
  void set_fence(std::function<void()> f);
  /// The fence, for the transactions that Health opens (reports, replays).
  void fence();

  /// Called after new notifications were queued (the Dispatcher's wake).
  void on_queued(std::function<void()> f);

  // OutboxQueue.
  std::vector<Notification> due(const std::string& notifier, double now,
                                std::size_t limit) override;
  void delivered(const std::string& notifier, std::uint64_t id) override;
  void failed(const std::string& notifier, std::uint64_t id, double retry_at,
              const std::string& error) override;
  std::vector<nlohmann::json> active_tickets() override;

  std::size_t incident_count();

 private:
  struct Series;
  struct Undo;

  // Before a change to memory inside a transaction: what to put back if the store refuses it.
  void opening();
  void edit(Incident& inc);
  void edit(Ticket& t);
  std::set<std::string>& members(std::uint64_t ticket);
  void commit_locked();
  void rollback_locked();

  std::optional<std::size_t> rule_index(const std::string& name) const;
  Series& series(const AgentState& a, const std::string& probe, const std::string& type);
  Incident* find_incident(const std::string& key);
  Incident& incident(const std::string& key, std::size_t rule, const std::string& site,
                     const std::string& agent, const std::string& probe, const std::string& metric);
  void set_failing(Incident& inc, bool failing, double now);
  void advance(Incident& inc, double now);
  void open_ticket(Incident& inc, double now);
  void attach(Incident& inc, Ticket& t, double now);
  bool try_site_outage(Incident& inc, double now);
  bool try_mass_silence(Incident& inc, double now);
  void certificates(const std::vector<const AgentState*>& agents, double now);
  void open_group(Ticket t, const std::vector<Incident*>& members, Incident& inc, double window,
                  const std::string& merged_into, double now);
  void reopen(Ticket& t, const std::string& summary, const std::string& details, bool flapping,
              double now);
  void detach(Incident& inc, double now);
  void resolve(Ticket& t, const std::string& text, double now);
  void close_locked(Ticket& t, const std::string& event_text, double now);
  Ticket& new_ticket(Ticket t, double now);
  void event(Ticket& t, const std::string& event, const std::string& text, double now);
  void save(const Ticket& t);
  void save(Incident& inc);
  void save_learned_locked(double now, std::size_t at_most);
  double deadline_for(const Ticket& t, double from) const;
  const ServiceCalendar& calendar(const std::string& site) const;
  bool silenced(const std::string& site, const std::string& agent, const std::string& probe,
                const std::string& rule, double now) const;
  void load_locked();
  void reload_locked();  // load_locked() that leaves memory stale instead of throwing
  void ready_locked();   // loads again first if a load failed
  template <class F>
  void in_transaction(F&& f);
  void wake();

  DeskConfig config_;
  Metrics& metrics_;
  sql::Database& db_;
  std::unique_ptr<DeskRows> rows_;
  std::unique_ptr<TicketGauges> gauges_;
  std::unique_ptr<Undo> undo_;
  std::recursive_mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Incident>> incidents_;  // by key
  std::unordered_map<std::string, std::unique_ptr<Series>> series_;       // by agent/probe
  std::map<std::string, std::set<std::string>> site_series_;              // site -> agent/probe
  std::map<std::uint64_t, Ticket> live_;  // open, acknowledged and resolved tickets
  std::map<std::uint64_t, std::set<std::string>> members_;  // ticket -> incident keys on it
  std::set<std::string> pending_;                           // incidents waiting for a timer
  std::vector<Silence> silences_;
  std::vector<Incident*> agent_silences_;  // every agent's silent incidents, only during tick()
  std::size_t known_agents_ = 0;           // that reported at least once, as of the last tick
  double own_not_after_ = 0;               // the collector's own certificate; 0: unknown
  std::function<void()> on_queued_;
  std::function<void()> fence_;
  bool queued_ = false;
  std::uint64_t next_ticket_ = 1, next_event_ = 1, next_silence_ = 1;
  bool stale_ = false;  // memory ran ahead of a store that then failed to load
  static constexpr double kLearnedEvery = 300;
  static constexpr std::size_t kLearnedPerTick = 64;
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace dozor::collector
