#include "dozor/collector/health.h"

#include <gtest/gtest.h>

#include <sstream>

namespace dozor::collector {
namespace {

using protocol::Status;

protocol::Report report(std::vector<std::pair<std::uint64_t, double>> seq_ts,
                        Status status = Status::ok, double heartbeat = 5) {
  protocol::Report rep;
  rep.agent = {"0.1.0", "host", "acme-kyiv", 1000, heartbeat, "spool-1"};
  for (auto [seq, ts] : seq_ts) {
    protocol::Result r;
    r.seq = seq;
    r.ts = ts;
    r.probe = "erp-port";
    r.type = "tcp";
    r.status = status;
    r.metrics = {{"connect_seconds", ts / 1000, "s"}};
    rep.results.push_back(r);
  }
  return rep;
}

TEST(Health, KeepsLatestStateAndAcksHighestSeq) {
  Metrics m;
  Health h(m);
  auto out = h.ingest("agent-01", report({{1, 100}, {2, 101}}, Status::critical), 102);
  EXPECT_EQ(out.acked_seq, 2u);
  EXPECT_EQ(out.accepted, 2u);
  auto a = h.agent("agent-01", 102);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->site, "acme-kyiv");
  EXPECT_EQ(a->probes.at("erp-port").status, Status::critical);
  EXPECT_EQ(a->probes.at("erp-port").seq, 2u);
  const auto text = m.scrape();
  EXPECT_NE(text.find("dozor_probe_status{agent=\"agent-01\",probe=\"erp-port\",site=\"acme-kyiv\","
                      "type=\"tcp\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("dozor_probe_value{agent=\"agent-01\",metric=\"connect_seconds\""),
            std::string::npos);
}

TEST(Health, MetricLabelsArePrometheusLabelsAndEachSeriesComesAndGoesOnItsOwn) {
  Metrics m;
  Health h(m);
  auto rep = report({{1, 100}});
  rep.results[0].metrics = {{"sessions", 2, "", {{"infobase", "acc"}}},
                            {"sessions", 1, "", {{"infobase", "hr"}}}};
  h.ingest("a", rep, 101);
  EXPECT_EQ(h.agent("a", 101)->series, 2u);
  const std::string acc =
      R"(dozor_probe_value{agent="a",infobase="acc",metric="sessions",probe="erp-port",)"
      R"(site="acme-kyiv"} 2)";
  const std::string hr =
      R"(dozor_probe_value{agent="a",infobase="hr",metric="sessions",probe="erp-port",)"
      R"(site="acme-kyiv"} 1)";
  EXPECT_NE(m.scrape().find(acc), std::string::npos) << m.scrape();
  EXPECT_NE(m.scrape().find(hr), std::string::npos);
  rep = report({{2, 102}});
  rep.results[0].metrics = {{"sessions", 2, "", {{"infobase", "acc"}}}};
  h.ingest("a", rep, 103);
  EXPECT_NE(m.scrape().find(acc), std::string::npos);
  EXPECT_EQ(m.scrape().find("infobase=\"hr\""), std::string::npos);  // that infobase went
  EXPECT_EQ(h.agent("a", 103)->series, 1u);
}

// The certificate an agent connects with counts from its first report on (the desk's certificate
// rules), and a reconnect with a renewed one replaces it at once.
TEST(Health, TheCertificateOfTheConnectionIsTheAgents) {
  Metrics m;
  Health h(m);
  h.connected("a", 2000000000);
  h.ingest("a", report({{1, 100}}), 101);
  EXPECT_EQ(h.agent("a", 101)->cert_not_after, 2000000000);
  h.connected("a", 2100000000);
  EXPECT_EQ(h.agent("a", 102)->cert_not_after, 2100000000);
  EXPECT_NE(m.scrape().find("dozor_agent_connections_total{agent=\"a\"} 2\n"), std::string::npos)
      << m.scrape();
}

// Label values come from the agents: a quote, a backslash or a line break in one is escaped as
// the text format wants, and cannot end the series or start another.
TEST(Health, LabelValuesAreEscapedOnMetrics) {
  Metrics m;
  Health h(m);
  auto rep = report({{1, 100}});
  rep.results[0].metrics = {{"sessions", 1, "", {{"infobase", "a\"b\\c\nd 1\nx{y} 2"}}}};
  h.ingest("a", rep, 101);
  EXPECT_NE(m.scrape().find(R"(infobase="a\"b\\c\nd 1\nx{y} 2",metric="sessions")"),
            std::string::npos)
      << m.scrape();
  for (std::istringstream lines(m.scrape()); !lines.eof();) {
    std::string line;
    std::getline(lines, line);
    EXPECT_FALSE(line.rfind("d 1", 0) == 0 || line.rfind("x{y}", 0) == 0) << line;
  }
}

// A report without labels (an agent from before them) reads on /metrics as it always did.
TEST(Health, AMetricWithoutLabelsIsExposedAsBefore) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({{1, 100}}), 101);
  EXPECT_NE(m.scrape().find("dozor_probe_value{agent=\"a\",metric=\"connect_seconds\",probe=\"erp-"
                            "port\",site=\"acme-kyiv\"} 0.1\n"),
            std::string::npos)
      << m.scrape();
}

TEST(Health, RetriesCountOnce) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({{1, 100}, {2, 101}}), 102);
  auto out = h.ingest("a", report({{1, 100}, {2, 101}, {3, 102}}), 103);
  EXPECT_EQ(out.accepted, 1u);
  EXPECT_EQ(out.duplicates, 2u);
  EXPECT_EQ(out.acked_seq, 3u);
  EXPECT_EQ(h.agent("a", 103)->results, 3u);
}

TEST(Health, AnOlderSeqNeverOverwritesANewerOne) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({{9, 109}}, Status::critical), 110);  // fresh, ahead of the backlog
  h.ingest("a", report({{3, 103}, {4, 104}}, Status::ok), 111);
  EXPECT_EQ(h.agent("a", 111)->probes.at("erp-port").status, Status::critical);
  EXPECT_EQ(h.agent("a", 111)->probes.at("erp-port").seq, 9u);
}

TEST(Health, TheSeqDecidesWhatIsCurrentWhateverTheAgentsClock) {
  Metrics m;
  Health h(m);
  const double now = 1'800'000'000, year = 365 * 86400.0;
  // The agent's clock was a year ahead, then NTP corrected it.
  h.ingest("a", report({{1, now + year}}, Status::critical), now);
  h.ingest("a", report({{2, now + 5}}, Status::ok), now + 5);
  EXPECT_EQ(h.agent("a", now + 5)->probes.at("erp-port").status, Status::ok);
  EXPECT_EQ(h.agent("a", now + 5)->probes.at("erp-port").seq, 2u);
}

TEST(Health, ClockSkewIsMeasuredAtReceiptAndAbsurdDatesAreDatedOnReceipt) {
  Metrics m;
  Health h(m);
  const double now = 1'800'000'000, year = 365 * 86400.0;
  auto rep = report({{1, now + year}, {2, now - 60}}, Status::critical);
  rep.agent.sent_at = now + year;  // a year ahead
  h.ingest("a", rep, now);
  auto a = h.agent("a", now);
  EXPECT_DOUBLE_EQ(a->clock_skew, year);
  EXPECT_DOUBLE_EQ(a->probes.at("erp-port").ts, now - 60);  // seq 2, an honest date
  EXPECT_NE(m.scrape().find("dozor_agent_clock_skew_seconds{agent=\"a\",site=\"acme-kyiv\"} "
                            "31536000"),
            std::string::npos)
      << m.scrape();
  rep = report({{3, now + year}}, Status::critical);
  h.ingest("a", rep, now + 1);
  EXPECT_DOUBLE_EQ(h.agent("a", now + 1)->probes.at("erp-port").ts, now + 1);  // on receipt
}

TEST(Health, OverALimitIsRefusedByNameAndAckedWithTheRest) {
  Metrics m;
  Health h(m);
  h.set_limits({.probes_per_agent = 2,
                .metrics_per_result = 3,
                .series_per_agent = 4,
                .name_length = 16,
                .forget_after = 86400});
  auto rep = report({{1, 100}, {2, 101}, {3, 102}, {4, 103}, {5, 104}});
  rep.results[1].probe = "second";
  rep.results[2].probe = "third";                                  // a third probe: over
  rep.results[3].probe = "a-very-long-probe-name";                 // over name_length
  rep.results[4].metrics.assign(4, protocol::Metric{"x", 1, ""});  // over metrics_per_result
  auto out = h.ingest("a", rep, 110);
  EXPECT_EQ(out.acked_seq, 5u);  // all acked: the refused ones would never be stored
  EXPECT_EQ(out.accepted, 2u);
  ASSERT_EQ(out.refused.size(), 3u);
  EXPECT_EQ(out.refused[0].reason, "limit_probes_per_agent");
  EXPECT_EQ(out.refused[0].message,
            "new probe 'third': the agent has 2 probes (limits.probes_per_agent: 2)");
  EXPECT_EQ(out.refused[1].reason, "limit_name_length");
  EXPECT_EQ(out.refused[2].reason, "limit_metrics_per_result");
  // series: erp-port and second hold 1 each; 3 more would make 5 > 4.
  auto wide = report({{6, 105}});
  wide.results[0].metrics = {{"y", 1, ""}, {"z", 1, ""}, {"w", 1, ""}};
  out = h.ingest("a", wide, 111);
  EXPECT_EQ(out.accepted, 1u);  // erp-port: 1 -> 3 series, the agent 4: within the limit
  wide.results[0].seq = 7;
  wide.results[0].probe = "second";
  out = h.ingest("a", wide, 112);
  ASSERT_EQ(out.refused.size(), 1u);
  EXPECT_EQ(out.refused[0].reason, "limit_series_per_agent");
  EXPECT_EQ(h.agent("a", 112)->refused, 4u);
  EXPECT_NE(m.scrape().find("dozor_ingest_rejected_total{reason=\"limit_series_per_agent\"} 1"),
            std::string::npos);
  EXPECT_NE(m.scrape().find("dozor_agent_results_refused_total{agent=\"a\",site=\"acme-kyiv\"} 4"),
            std::string::npos);
}

TEST(Health, ProbesAndAgentsNotHeardOfForForgetAfterAreForgotten) {
  Metrics m;
  Health h(m);
  h.set_limits({.forget_after = 3600});
  auto rep = report({{1, 1000}, {2, 1000}});
  rep.results[1].probe = "gone";
  h.ingest("a", rep, 1000);
  h.ingest("a", report({{3, 4000}}), 4000);  // erp-port goes on, "gone" is not heard of again
  h.tick(4700);
  EXPECT_EQ(h.agent("a", 4700)->probes.count("gone"), 0u);
  EXPECT_EQ(m.scrape().find("probe=\"gone\""), std::string::npos);
  h.tick(9000);  // the agent itself silent for over an hour
  EXPECT_FALSE(h.agent("a", 9000));
  EXPECT_EQ(m.scrape().find("agent=\"a\""), std::string::npos);
}

TEST(Health, ANewSpoolStartsTheSeqOver) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({{50, 150}}, Status::critical), 151);
  auto fresh = report({{1, 160}}, Status::ok);
  fresh.agent.spool_id = "spool-2";  // the agent was reinstalled
  auto out = h.ingest("a", fresh, 161);
  EXPECT_EQ(out.acked_seq, 1u);
  EXPECT_EQ(h.agent("a", 161)->probes.at("erp-port").status, Status::ok);
}

TEST(Health, UpWithinThreeHeartbeatsThenDownSince) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({}, Status::ok, 5), 1000);
  EXPECT_TRUE(h.agent("a", 1014.9)->up);
  auto a = h.agent("a", 1015.1);
  EXPECT_FALSE(a->up);
  EXPECT_DOUBLE_EQ(a->down_since, 1015);
  h.refresh(1016);
  EXPECT_NE(m.scrape().find("dozor_agent_up{agent=\"a\",site=\"acme-kyiv\"} 0"), std::string::npos);
}

// A report the store could not take (the server calls heard_from): the agent is alive, and backs
// off up to 30 s before it tries again; it is not called silent meanwhile, and is once that time
// has passed without news.
TEST(Health, AnAgentRefusedForTheStoresFaultIsNotSilentWhileItBacksOff) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({}, Status::ok, 1), 1000);
  h.heard_from("a", 1002);
  EXPECT_TRUE(h.agent("a", 1002 + 3 + 29)->up);  // past 3 heartbeats, within the backoff
  EXPECT_FALSE(h.agent("a", 1002 + 3 + 31)->up);
}

// The counter's shape only; the server's real rejections (bad JSON, wrong content type, no
// identity, ...) are driven through a running collector in integration/test_spine.py.
TEST(Metrics, RejectedCountsOneSeriesPerReason) {
  Metrics m;
  m.rejected("bad_json");
  m.rejected("bad_json");
  m.rejected("tls_handshake");
  const auto text = m.scrape();
  EXPECT_NE(text.find("dozor_ingest_rejected_total{reason=\"bad_json\"} 2"), std::string::npos);
  EXPECT_NE(text.find("dozor_ingest_rejected_total{reason=\"tls_handshake\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace dozor::collector

namespace dozor::collector {
namespace {

TEST(Health, FreshResultsAheadOfTheBacklogAreKeptAndAckedOnlyWhenContiguous) {
  Metrics m;
  Health h(m);
  auto out = h.ingest("a", report({{1, 100}, {2, 101}, {9, 108}}), 110);  // 9: fresh, early
  EXPECT_EQ(out.acked_seq, 2u);                                           // 3..8 not here yet
  EXPECT_EQ(out.accepted, 3u);
  out = h.ingest(
      "a", report({{3, 102}, {4, 103}, {5, 104}, {6, 105}, {7, 106}, {8, 107}, {9, 108}}), 111);
  EXPECT_EQ(out.accepted, 6u);
  EXPECT_EQ(out.duplicates, 1u);  // 9 again, in order this time
  EXPECT_EQ(out.acked_seq, 9u);
  auto a = h.agent("a", 111);
  EXPECT_EQ(a->results, 9u);
  EXPECT_TRUE(a->above.empty());
  EXPECT_EQ(a->probes.at("erp-port").seq, 9u);  // 3..8 were older readings
}

TEST(Health, SeqsBelowTheAgentsOldestAreCountedAsDroppedOnce) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({{1, 100}, {5, 104}}), 105);
  auto rep = report({{7, 106}});
  rep.oldest_seq = 7;  // 2, 3, 4 and 6 were dropped by the agent's spool; 5 arrived early
  auto out = h.ingest("a", rep, 106);
  EXPECT_EQ(out.acked_seq, 7u);
  EXPECT_EQ(h.agent("a", 106)->dropped, 4u);
  h.ingest("a", rep, 107);  // the same report again
  auto a = h.agent("a", 107);
  EXPECT_EQ(a->dropped, 4u);
  EXPECT_EQ(a->results + a->dropped, a->last_seq);
}

TEST(Health, ANewSpoolStartsCountingAgain) {
  Metrics m;
  Health h(m);
  h.ingest("a", report({{1, 100}, {2, 101}}), 102);
  auto rep = report({{1, 200}});
  rep.agent.spool_id = "spool-2";
  auto out = h.ingest("a", rep, 201);
  EXPECT_EQ(out.accepted, 1u);
  EXPECT_EQ(out.acked_seq, 1u);
  EXPECT_EQ(h.agent("a", 201)->results, 3u);  // kept since first seen
}

}  // namespace
}  // namespace dozor::collector
