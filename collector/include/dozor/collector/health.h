#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
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
  std::uint64_t last_seq = 0;  // highest seq accepted
  std::uint64_t results = 0;   // unique results accepted
  std::uint64_t dropped = 0;   // results the agent reported as dropped
  bool up = false;
  double down_since = 0;       // when it stopped reporting (last_report + window), if down
  std::map<std::string, ProbeState> probes;
};

/// Outcome of one report.
struct IngestOutcome {
  std::uint64_t acked_seq = 0;
  std::size_t accepted = 0;
  std::size_t duplicates = 0;
};

/// The health of every agent and probe, fed by reports and read by the API and /metrics.
/// Thread-safe. Time is passed in (unix seconds) so that tests control it.
class Health {
 public:
  /// An agent is up while its last report is younger than this many heartbeats.
  static constexpr double kUpHeartbeats = 3;

  explicit Health(Metrics& metrics) : metrics_(metrics) {}

  IngestOutcome ingest(const std::string& agent_id, const protocol::Report& report, double now);

  /// Re-evaluates `up` of every agent at `now` and updates dozor_agent_up.
  void refresh(double now);

  std::vector<AgentState> agents(double now);
  std::optional<AgentState> agent(const std::string& id, double now);

 private:
  void refresh_locked(AgentState& a, double now);
  void publish(const AgentState& a, const std::string& probe, const ProbeState& p);

  Metrics& metrics_;
  std::mutex mu_;
  std::map<std::string, AgentState> agents_;
};

}  // namespace dozor::collector
