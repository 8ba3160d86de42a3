#include "dozor/collector/metrics.h"

#include <prometheus/text_serializer.h>

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
    : agent_up(family(BuildGauge(), *r, "dozor_agent_up",
                      "1 while the agent reports within 3 heartbeats, else 0")),
      agent_last_report(family(BuildGauge(), *r, "dozor_agent_last_report_timestamp_seconds",
                               "Unix time of the agent's last report")),
      agent_clock_skew(family(BuildGauge(), *r, "dozor_agent_clock_skew_seconds",
                              "The agent's clock minus the collector's, at its last report")),
      agent_spool_dropped(family(BuildCounter(), *r, "dozor_agent_spool_dropped_total",
                                 "Results the agent's spool dropped before delivery")),
      agent_refused(family(BuildCounter(), *r, "dozor_agent_results_refused_total",
                           "Results of the agent refused over a limit (reasons: "
                           "dozor_ingest_rejected_total)")),
      agent_connections(family(BuildCounter(), *r, "dozor_agent_connections_total",
                               "TLS connections accepted from the agent")),
      agent_cert_expiry(family(BuildGauge(), *r, "dozor_agent_cert_expiry_timestamp_seconds",
                               "Unix time the certificate the agent last presented expires")),
      collector_cert_expiry(family(BuildGauge(), *r,
                                   "dozor_collector_cert_expiry_timestamp_seconds",
                                   "Unix time the collector's own certificate (agent port) expires")
                                .Add({})),
      probe_status(family(BuildGauge(), *r, "dozor_probe_status",
                          "Last status of a probe: 0 ok, 1 warning, 2 critical, 3 unknown")),
      probe_value(family(BuildGauge(), *r, "dozor_probe_value",
                         "Last value of each metric a probe returns")),
      probe_duration(family(BuildGauge(), *r, "dozor_probe_duration_seconds",
                            "How long the probe's last run took")),
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
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Metrics::rejected(std::string_view reason) {
  ingest_rejected_.Add({{"reason", std::string(reason)}}).Increment();
}

}  // namespace dozor::collector
