// Labels on metrics, and wire compatibility with the collectors deployed before them.
#include <gtest/gtest.h>

#include "dozor/protocol/codec.h"

namespace dozor::protocol {
namespace before_labels {
Decoded<Report> decode_report(std::string_view body);  // tests/protocol/codec_before_labels.cpp
}
namespace {

Report labelled_report() {
  Report rep;
  rep.agent = {"0.2.0", "host", "acme-kyiv", 1000, 5, "spool-1"};
  Result r;
  r.seq = 1;
  r.ts = 100;
  r.probe = "bas";
  r.type = "bas";
  r.status = Status::ok;
  r.summary = "3 sessions";
  r.metrics = {{"sessions", 2, "", {{"infobase", "acc"}, {"kind", "thin"}}},
               {"sessions", 1, "", {{"infobase", "hr"}, {"kind", "thin"}}},
               {"ras_up", 1, ""}};
  rep.results.push_back(r);
  return rep;
}

TEST(MetricLabels, RoundTripAndAreAbsentOnTheWireWhenThereAreNone) {
  const auto rep = labelled_report();
  const std::string body = encode(rep);
  const auto back = decode_report(body);
  ASSERT_TRUE(back) << back.error.to_string();
  EXPECT_EQ(*back.value, rep);
  EXPECT_NE(body.find(R"("labels":{"infobase":"acc","kind":"thin"})"), std::string::npos) << body;
  EXPECT_NE(body.find(R"({"name":"ras_up","value":1.0})"), std::string::npos) << body;
}

TEST(MetricLabels, SeriesNamesReadAsPrometheusWritesThem) {
  EXPECT_EQ(series_name({"sessions", 2, "", {{"kind", "thin"}, {"infobase", "acc"}}}),
            R"(sessions{infobase="acc",kind="thin"})");
  EXPECT_EQ(series_name({"up", 1, ""}), "up");
  EXPECT_EQ(series_name({"x", 1, "", {{"path", "C:\\a \"b\""}}}), R"(x{path="C:\\a \"b\""})");
}

TEST(MetricLabels, NamesThatShadowTheCollectorsOrBreakPrometheusAreRefusedByField) {
  auto refused = [](const std::string& labels) {
    const std::string body =
        R"({"agent":{"version":"1","hostname":"h","site":"s","started_at":1},"results":[)"
        R"({"seq":1,"probe":"p","type":"t","ts":1,"status":"ok","summary":"",)"
        R"("metrics":[{"name":"m","value":1,"labels":)" +
        labels + "}]}]}";
    return decode_report(body).error.to_string();
  };
  EXPECT_EQ(refused(R"({"agent":"x"})"),
            "results[0].metrics[0].labels.agent: 'agent' is the collector's own label");
  EXPECT_EQ(refused(R"({"metric":"x"})"),
            "results[0].metrics[0].labels.metric: 'metric' is the collector's own label");
  EXPECT_EQ(refused(R"({"__name__":"x"})"),
            "results[0].metrics[0].labels.__name__: label names starting with __ are "
            "Prometheus' own");
  EXPECT_EQ(refused(R"({"1st":"x"})"),
            "results[0].metrics[0].labels.1st: a label name starts with a letter or _");
  EXPECT_EQ(refused(R"({"in-fo":"x"})"),
            "results[0].metrics[0].labels.in-fo: a label name is letters, digits and _");
  EXPECT_EQ(refused(R"({"k":1})"), "results[0].metrics[0].labels.k: expected a string");
  EXPECT_EQ(refused(R"(["k"])"), "results[0].metrics[0].labels: expected an object of strings");
  EXPECT_EQ(refused(R"({"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":""})"),
            "results[0].metrics[0].labels: at most 8 labels");
  EXPECT_EQ(refused(R"({"infobase":"Бухгалтерия"})"), "");
}

// What today's agents send to a collector deployed before labels: accepted as it always was,
// the labels ignored (that decoder skips fields it does not know).
TEST(MetricLabels, ACollectorFromBeforeLabelsAcceptsALabelledReport) {
  const auto old = before_labels::decode_report(encode(labelled_report()));
  ASSERT_TRUE(old) << old.error.to_string();
  ASSERT_EQ(old.value->results.size(), 1u);
  const auto& metrics = old.value->results[0].metrics;
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_EQ(metrics[0].name, "sessions");
  EXPECT_DOUBLE_EQ(metrics[0].value, 2);
  EXPECT_TRUE(metrics[0].labels.empty());
}

// And a report from an agent before labels reads the same to today's collector.
TEST(MetricLabels, AReportWithoutLabelsDecodesAsBefore) {
  auto rep = labelled_report();
  for (auto& m : rep.results[0].metrics) m.labels.clear();
  const std::string body = encode(rep);
  EXPECT_EQ(body.find("labels"), std::string::npos);
  EXPECT_EQ(*decode_report(body).value, *before_labels::decode_report(body).value);
}

}  // namespace
}  // namespace dozor::protocol
