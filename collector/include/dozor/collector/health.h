#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "dozor/collector/metrics.h"
#include "dozor/protocol/report.h"

namespace dozor::collector {

/// Last known state of one probe of one agent.
struct ProbeState {
  std::string type;
  protocol::Status status = protocol::Status::unknown;
  std::string summary;
  double ts = 0;
  double duration = 0;
  std::uint64_t seq = 0;
  std::vector<protocol::Metric> metrics;
};

/// What the collector knows of one agent, as the API shows it.
struct AgentState {
  std::string id;  // the CN of the agent's certificate
  std::string site;
  std::string hostname;
  std::string version;
  double started_at = 0;
  double heartbeat = 5;
  double first_seen = 0;
  double last_report = 0;
  double clock_skew = 0;        // the agent's clock minus ours when its last report came (sent_at)
  double cert_not_after = 0;    // the certificate it presented last expires (0: not seen yet)
  std::string spool_id;         // a new spool restarts the agent's seq at 1
  std::uint64_t watermark = 0;  // every seq up to here is stored: what the ack says
  std::set<std::uint64_t> above;  // seqs stored beyond the watermark (fresh results sent early)
  std::uint64_t last_seq = 0;     // highest seq accepted
  std::uint64_t results = 0;      // unique results accepted since first seen
  std::uint64_t dropped = 0;      // results the agent's spool gave up on: will never arrive
  double grace_until = 0;         // after a collector restart: up until then, if it was up before
  bool up = false;
  double down_since = 0;  // when it stopped reporting (last_report + window), if down
  std::map<std::string, ProbeState> probes;
  std::size_t series = 0;         // (probe, metric) pairs held: the sum of probes' metrics
  std::uint64_t refused = 0;      // results over a limit since this collector started
  std::string last_refusal;       // what the last of them was refused for
  std::uint64_t generation = 0;   // Health::generation() when this state last changed
  std::uint64_t row_version = 0;  // of the store's row this state was read from or written to
};

/// What one agent may report (collector.yaml `limits`), as Prometheus bounds a scrape. A result
/// over a limit is refused by name and counted, and acked like a stored one, so that it never
/// holds back the results after it; nothing of it is kept.
struct AgentLimits {
  std::size_t probes_per_agent = 1000;
  std::size_t metrics_per_result = 200;
  std::size_t series_per_agent = 10000;  // (probe, metric) pairs
  std::size_t name_length = 128;         // probe and metric names, label names and values
  double forget_after = 7 * 86400.0;     // seconds: a probe not reported for so long is dropped
  double history_keep = 400 * 86400.0;   // seconds of state changes kept for the reports
};

/// A result refused for a limit: `reason` is `limit_<name>`, `message` names what was over it.
struct Refusal {
  std::uint64_t seq = 0;
  std::string reason;
  std::string message;
};

/// Outcome of one report.
struct IngestOutcome {
  std::uint64_t acked_seq = 0;
  std::size_t accepted = 0;
  std::size_t duplicates = 0;
  std::vector<Refusal> refused;
};

class Store;
class Desk;

/// A report over a certificate that was revoked through another collector meanwhile (several
/// collectors on one store): refused, nothing of it stored.
struct AgentRevoked : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The health of every agent and probe, fed by reports and read by the API and /metrics. Each
/// result is counted once however often it is sent, and an older reading never overwrites a
/// newer one. With a Store, every report is saved before it is acked, and the state survives a
/// restart. Thread-safe. Time is passed in (unix seconds) so that tests control it.
class Health {
 public:
  /// An agent is up while its last report is younger than this many heartbeats.
  static constexpr double kUpHeartbeats = 3;
  /// An agent whose clock is further off than this is logged (dozor_agent_clock_skew_seconds).
  static constexpr double kSkewWarning = 30;
  /// A result dated further ahead of the collector's clock than this is dated on receipt.
  static constexpr double kMaxAhead = 300;

  /// `started_at`: when this collector started; agents that were up before a restart stay up
  /// for one window from then, so that a restart does not mark every site down at once.
  explicit Health(Metrics& metrics, Store* store = nullptr, double started_at = 0);
  ~Health();
  Health(const Health&) = delete;
  Health& operator=(const Health&) = delete;

  /// Hands every accepted result to `desk`, in the transaction that stores the report.
  void set_desk(Desk* desk);
  void set_limits(const AgentLimits& limits);

  /// Removes an agent from memory, the store and /metrics (`dozorctl agents forget`); false
  /// when it is not known. Throws when the store cannot be written, and then changes nothing.
  bool forget(const std::string& agent_id, double now);

  /// Applies a report; throws (sql::Error) when it cannot be saved, and then changes nothing.
  /// `serial`: of the certificate the report came over (AgentRevoked when a shared store has it
  /// revoked).
  IngestOutcome ingest(const std::string& agent_id, const protocol::Report& report, double now,
                       const std::string& serial = "");

  /// Re-evaluates `up` of every agent at `now`.
  void refresh(double now);
  /// refresh(), then the desk's timers (silent agents, held conditions, escalations).
  void tick(double now);
  /// The collector itself stood still (a stalled disk, a stopped VM): agents that were up get
  /// one window from `now`, as after a restart, rather than all being called silent at once.
  void stalled(double now);
  /// The agent reported, but its report could not be stored (the store failing): it is alive,
  /// and must not be called silent for the collector's fault, also while it backs off before
  /// its next try (up to kAgentMaxBackoff). Memory only.
  void heard_from(const std::string& agent_id, double now);
  /// The longest an agent waits between tries (agent/src/uplink.cpp kMaxBackoff).
  static constexpr double kAgentMaxBackoff = 30;

  /// Several collectors share the store (lease.h): every report writes its agent's row
  /// over the version it read (Store::share), and when another collector stored a report of it
  /// meanwhile, its state is read again and the report applied to that, so that an agent moving
  /// between collectors loses and doubles nothing.
  void share_store(bool shared);
  /// Whether this collector runs the desk (it holds the lease). A follower logs each report for
  /// the leader (Store::log_report) instead of handing it to the desk, and shows no per-agent
  /// series: the leader's /metrics has the whole fleet. Taking the lead reads every agent from
  /// the store again. Without a shared store a collector always leads.
  void lead(bool leading, double now);
  bool leading();
  /// The leader: up to `limit` reports the followers logged, to the desk, in one transaction
  /// with what the desk makes of them; how many. Throws (sql::Error) when the store fails.
  std::size_t replay(double now, std::size_t limit = 500);

  std::vector<AgentState> agents(double now);
  /// Bumped by every change of what agents() shows other than by time alone: a report, an agent
  /// falling silent (at a tick) or coming back, an agent or probe forgotten.
  std::uint64_t generation();
  /// The agents changed after generation `since` (copies), and in `known` every agent's id and
  /// site, to see who was forgotten. Returns the generation they reflect.
  std::uint64_t changed_since(std::uint64_t since, std::vector<AgentState>& changed,
                              std::vector<std::pair<std::string, std::string>>& known);
  std::optional<AgentState> agent(const std::string& id, double now);
  /// Whether the agent is known (not yet forgotten), without copying its state.
  bool knows(const std::string& id);
  /// A TLS connection from the agent was accepted, with a certificate expiring at `not_after`
  /// (unix seconds): the agent's `cert_not_after`, dozor_agent_connections_total and
  /// dozor_agent_cert_expiry_timestamp_seconds (this collector's own, also on a follower).
  /// Memory only: known again when the agent reconnects after a restart.
  void connected(const std::string& id, double not_after);

 private:
  IngestOutcome ingest_locked(const std::string& agent_id, const protocol::Report& report,
                              double now, const std::string& serial);
  // The agent's state as the store has it (another collector changed it).
  void reread_locked(const std::string& agent_id, double now);
  void refresh_locked(AgentState& a, double now);
  // The series of every agent and probe, at a scrape (Metrics::set_fleet).
  void expose(Exposition& e);
  // A state read from the store, with what only memory holds of the agent (if it does).
  AgentState held_over(AgentState stored) const;
  std::optional<Refusal> over_limit(const AgentState& a, const protocol::Result& r) const;
  // Deletes an agent (`probes` empty) or some of its probes from the store and the desk, in one
  // transaction; memory is the caller's to change after it.
  void forget_stored(const std::string& agent, const std::vector<std::string>& probes, double now);
  void forget_stale(double now);

  Metrics& metrics_;
  Store* store_;
  Desk* desk_ = nullptr;
  std::mutex mu_;
  std::map<std::string, AgentState> agents_;
  struct Connections {
    std::uint64_t accepted = 0;
    double not_after = 0;  // of the certificate presented last
  };
  std::map<std::string, Connections> connections_;  // by agent, also before its first report
  AgentLimits limits_;
  bool shared_ = false, leading_ = true;
  double store_failed_at_ = -1e18;  // heard_from(): a report the store refused
  double next_forget_ = 0;
  double next_prune_ = 0;
  std::uint64_t generation_ = 0;
};

}  // namespace dozor::collector
