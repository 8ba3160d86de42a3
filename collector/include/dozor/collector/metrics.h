#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>

namespace dozor::collector {

/// The collector's Prometheus registry and the dozor_* families of DESIGN.md. Thread-safe as
/// prometheus-cpp's metrics are; scrape() serialises the registry in text format 0.0.4.
class Metrics {
 public:
  Metrics();

  prometheus::Registry& registry() { return *registry_; }
  std::string scrape() const;

  /// A refused request or connection, by reason (bad_json, too_large, tls_handshake, ...).
  void rejected(std::string_view reason);

  prometheus::Family<prometheus::Gauge>& agent_up;
  prometheus::Family<prometheus::Gauge>& agent_last_report;
  prometheus::Family<prometheus::Gauge>& agent_clock_skew;
  prometheus::Family<prometheus::Counter>& agent_spool_dropped;
  prometheus::Family<prometheus::Counter>& agent_refused;  // results over a limit, per agent
  prometheus::Family<prometheus::Counter>& agent_connections;
  prometheus::Family<prometheus::Gauge>& agent_cert_expiry;  // agent: the certificate presented
  prometheus::Gauge& collector_cert_expiry;                  // its own, on the agent port
  prometheus::Family<prometheus::Gauge>& probe_status;
  prometheus::Family<prometheus::Gauge>& probe_value;
  prometheus::Family<prometheus::Gauge>& probe_duration;
  prometheus::Counter& ingest_results;
  prometheus::Counter& ingest_duplicates;
  prometheus::Counter& store_errors;  // writes the store refused (disk full, read-only, ...)
  prometheus::Family<prometheus::Gauge>& tickets_open;     // site, class, priority
  prometheus::Family<prometheus::Gauge>& tickets_overdue;  // not acknowledged by the deadline
  prometheus::Family<prometheus::Counter>& ticket_events;  // event
  prometheus::Histogram& ticket_reaction;                  // open -> acknowledge, service time
  prometheus::Family<prometheus::Counter>& notifications_failed;  // notifier
  prometheus::Family<prometheus::Counter>& enrollments;           // result: ok, token_expired, ...
  prometheus::Family<prometheus::Counter>& renewals;              // result: ok, rate_limited, ...
  prometheus::Gauge& boards_open;  // dispatcher boards following live changes
  prometheus::Family<prometheus::Gauge>& collector_leader;  // node

 private:
  explicit Metrics(std::shared_ptr<prometheus::Registry> r);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& ingest_rejected_;
};

}  // namespace dozor::collector
