#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dozor::protocol {

/// Probe outcome in the monitoring-plugins convention; the numeric value is what /metrics shows.
enum class Status : int { ok = 0, warning = 1, critical = 2, unknown = 3 };

std::string_view to_string(Status s);
std::optional<Status> parse_status(std::string_view word);
/// The worse of two statuses (critical > warning > unknown > ok), as a site operator ranks them.
Status worst(Status a, Status b);

struct Metric {
  std::string name;  // e.g. "connect_seconds"; base units, as Prometheus names them
  double value = 0;
  std::string unit;  // e.g. "s", "bytes", "%"; free text, shown as-is
  // Per-thing dimensions (infobase, kind, mount, device), Prometheus labels on
  // dozor_probe_value; never glued into the name. Absent on the wire: none.
  std::map<std::string, std::string> labels{};
  bool operator==(const Metric&) const = default;
};

/// At most this many labels on one metric.
inline constexpr std::size_t kMaxMetricLabels = 8;

/// `name`, or `name{k="v",...}` in Prometheus' notation: what tells two series of a probe apart.
std::string series_name(const Metric& m);

/// Why `name` cannot be a metric's label (empty when it can): Prometheus' rule for label names,
/// and none of the labels the collector itself puts on dozor_probe_value.
std::string label_name_problem(std::string_view name);

/// One run of one probe.
struct Result {
  std::uint64_t seq = 0;  // per agent, from 1, +1 per result; 0 until the agent assigns it
  std::string probe;      // the probe's configured name
  std::string type;       // tcp, http, disk, ...
  double ts = 0;          // unix seconds when the probe started
  double duration = 0;    // seconds the probe took
  Status status = Status::unknown;
  std::string summary;  // one line for a human
  std::vector<Metric> metrics;
  std::map<std::string, std::string> labels;
  bool operator==(const Result&) const = default;
};

/// Who sent a report. The collector takes the agent's id from its certificate, never from here.
struct AgentInfo {
  std::string version;
  std::string hostname;
  std::string site;
  double started_at = 0;  // unix seconds
  double heartbeat = 5;   // seconds between reports when there is nothing to send
  std::string spool_id;   // names the agent's spool; a new one restarts the seq count at 1
  double sent_at = 0;     // the agent's clock when it sent the report (0: not said)
  bool operator==(const AgentInfo&) const = default;
};

/// POST /v1/report body.
struct Report {
  AgentInfo agent;
  std::vector<Result> results;
  // Results the agent's spool had to drop since its last accepted report, for the logs; the
  // collector counts losses from oldest_seq, since a result may be dropped while on its way.
  std::uint64_t dropped = 0;
  // The lowest seq the agent still holds (the next it will assign when it holds none): every
  // lower seq was acked or dropped, so the collector need not wait for it. 0: not said.
  std::uint64_t oldest_seq = 0;
  bool operator==(const Report&) const = default;
};

/// 200 answer to a report: every result up to acked_seq is stored.
/// A result the collector acked without storing it, because it was over one of its limits.
struct RefusedResult {
  std::uint64_t seq = 0;
  std::string reason;   // limit_probes_per_agent, limit_name_length, ...
  std::string message;  // names the limit and what was over it
  bool operator==(const RefusedResult&) const = default;
};

struct Ack {
  std::uint64_t acked_seq = 0;
  std::vector<RefusedResult> refused;  // among the acked ones
  bool operator==(const Ack&) const = default;
};

/// The body of a refusal: a machine-readable reason (`invalid_report`, `bad_json`, ...) and a
/// message that names the field, e.g. "results[3].metrics[0].value: expected a number".
struct Refusal {
  std::string reason;
  std::string message;
};

/// `POST /v1/enroll` (no client certificate): a one-time token and a certificate signing request
/// made on the site's machine, whose key never leaves it.
struct EnrollRequest {
  std::string token;
  std::string csr;  // PEM; its CN, when set, must be the token's agent id
};

/// The answer to an enrollment or a renewal (`POST /v1/renew`, over mutual TLS, same key).
struct IssuedCertificate {
  std::string agent, site;
  std::string certificate;  // PEM: the agent's certificate, then the issuing chain
  std::string ca;           // PEM: the CA agents trust for the collector (enrollment only)
  double not_after = 0;
};

}  // namespace dozor::protocol
