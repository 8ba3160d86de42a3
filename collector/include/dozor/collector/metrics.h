#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dozor::collector {

/// Series in the text exposition format (0.0.4), written straight into a scrape's answer: for the
/// series of every agent and probe, which are read from the fleet's state at each scrape rather
/// than held as prometheus-cpp series (a few hundred bytes each, and removing one walks its
/// family).
class Exposition {
 public:
  using Label = std::pair<std::string_view, std::string_view>;
  explicit Exposition(std::string& out) : out_(out) {}

  void family(std::string_view name, std::string_view type, std::string_view help);
  /// `labels` sorted by name, as prometheus-cpp writes them.
  void sample(std::string_view name, std::initializer_list<Label> labels, double value);
  void sample(std::string_view name, const std::vector<Label>& labels, double value);

 private:
  template <class Labels>
  void write(std::string_view name, const Labels& labels, double value);
  std::string& out_;
};

/// The collector's Prometheus registry and the dozor_* families of DESIGN.md. Thread-safe as
/// prometheus-cpp's metrics are; scrape() serialises the registry in text format 0.0.4.
class Metrics {
 public:
  Metrics();

  prometheus::Registry& registry() { return *registry_; }
  std::string scrape() const;
  /// What scrape() adds after the registry's series (Health: the fleet's); nullptr for nothing.
  void set_fleet(std::function<void(Exposition&)> write);

  /// A refused request or connection, by reason (bad_json, too_large, tls_handshake, ...).
  void rejected(std::string_view reason);

  prometheus::Gauge& collector_cert_expiry;  // its own, on the agent port
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
  mutable std::mutex fleet_mu_;
  std::function<void(Exposition&)> fleet_;
};

}  // namespace dozor::collector
