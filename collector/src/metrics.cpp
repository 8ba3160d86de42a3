#include "dozor/collector/metrics.h"

#include <prometheus/text_serializer.h>

#include <charconv>
#include <cmath>

namespace dozor::collector {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

template <class Builder>
auto& family(Builder b, prometheus::Registry& r, const char* name, const char* help) {
  return b.Name(name).Help(help).Register(r);
}

}  // namespace

Metrics::Metrics() : Metrics(std::make_shared<prometheus::Registry>()) {}

Metrics::Metrics(std::shared_ptr<prometheus::Registry> r)
    : collector_cert_expiry(family(BuildGauge(), *r,
                                   "dozor_collector_cert_expiry_timestamp_seconds",
                                   "Unix time the collector's own certificate (agent port) expires")
                                .Add({})),
      ingest_results(
          family(BuildCounter(), *r, "dozor_ingest_results_total", "Results accepted from agents")
              .Add({})),
      ingest_duplicates(family(BuildCounter(), *r, "dozor_ingest_duplicates_total",
                               "Results ignored because they were already stored")
                            .Add({})),
      store_errors(family(BuildCounter(), *r, "dozor_store_errors_total",
                          "Writes the store failed (reports not acked, timers retried)")
                       .Add({})),
      tickets_open(family(BuildGauge(), *r, "dozor_tickets_open",
                          "Tickets open or acknowledged, not yet resolved")),
      tickets_overdue(family(BuildGauge(), *r, "dozor_tickets_overdue",
                             "Open tickets not acknowledged by their reaction deadline")),
      ticket_events(family(BuildCounter(), *r, "dozor_ticket_events_total",
                           "Ticket events: opened, escalated, acknowledged, resolved, ...")),
      ticket_reaction(
          family(BuildHistogram(), *r, "dozor_ticket_reaction_seconds",
                 "Service time from a ticket's opening to its acknowledgement")
              .Add({}, prometheus::Histogram::BucketBoundaries{30, 60, 120, 300, 600, 900, 1800,
                                                               3600, 7200, 14400, 28800, 86400})),
      notifications_failed(family(BuildCounter(), *r, "dozor_notifications_failed_total",
                                  "Ticket notifications a notifier failed to deliver (retried)")),
      enrollments(family(BuildCounter(), *r, "dozor_enrollments_total",
                         "Enrollment requests by result: ok, or why they were refused")),
      renewals(family(BuildCounter(), *r, "dozor_certificate_renewals_total",
                      "Certificate renewals by result: ok, or why they were refused")),
      boards_open(family(BuildGauge(), *r, "dozor_board_streams",
                         "Dispatcher boards open and following live changes")
                      .Add({})),
      collector_leader(family(BuildGauge(), *r, "dozor_collector_leader",
                              "1 while this collector (node) runs the desk: tickets, their "
                              "timers, notifications; 0 while it only takes reports")),
      registry_(std::move(r)),
      ingest_rejected_(family(BuildCounter(), *registry_, "dozor_ingest_rejected_total",
                              "Requests and connections refused, by reason")) {}

std::string Metrics::scrape() const {
  std::string out = prometheus::TextSerializer().Serialize(registry_->Collect());
  std::lock_guard lock(fleet_mu_);
  if (fleet_) {
    Exposition e(out);
    fleet_(e);
  }
  return out;
}

void Metrics::set_fleet(std::function<void(Exposition&)> write) {
  std::lock_guard lock(fleet_mu_);
  fleet_ = std::move(write);
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
  out_.append(name).append(" ").append(type).append("\n");
}

void Exposition::sample(std::string_view name, std::initializer_list<Label> labels, double value) {
  write(name, labels, value);
}

void Exposition::sample(std::string_view name, const std::vector<Label>& labels, double value) {
  write(name, labels, value);
}

template <class Labels>
void Exposition::write(std::string_view name, const Labels& labels, double value) {
  out_.append(name);
  char sep = '{';
  for (const auto& [key, text] : labels) {
    out_.push_back(sep);
    sep = ',';
    out_.append(key).append("=\"");
    for (char c : text) {
      if (c == '\\' || c == '"') out_.push_back('\\');
      if (c == '\n') {
        out_.append("\\n");
        continue;
      }
      out_.push_back(c);
    }
    out_.push_back('"');
  }
  if (sep == ',') out_.push_back('}');
  out_.push_back(' ');
  if (std::isnan(value)) {
    out_.append("NaN");
  } else if (std::isinf(value)) {
    out_.append(value > 0 ? "+Inf" : "-Inf");
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, value);
    out_.append(buf, r.ptr);
  }
  out_.push_back('\n');
}

void Metrics::rejected(std::string_view reason) {
  ingest_rejected_.Add({{"reason", std::string(reason)}}).Increment();
}

}  // namespace dozor::collector
