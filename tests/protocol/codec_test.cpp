#include "dozor/protocol/codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "dozor/protocol/report.h"

namespace dozor::protocol {
namespace {

Result make_result(std::uint64_t seq, std::string probe, Status status) {
  Result r;
  r.seq = seq;
  r.probe = std::move(probe);
  r.type = "tcp";
  r.ts = 1'700'000'000.125;
  r.duration = 0.0042;
  r.status = status;
  r.summary = "connected to 127.0.0.1:1541 in 4.2 ms";
  return r;
}

Report full_report() {
  Report rep;
  rep.agent = {"0.1.0", "erp-gw.acme.local", "acme-kyiv", 1'699'999'000.5, 10, "5f0c2a9e"};
  rep.oldest_seq = 7;
  Result a = make_result(41, "erp-port", Status::ok);
  a.metrics = {{"connect_seconds", 0.0042, "s"}, {"attempts", 1, ""}};
  a.labels = {{"host", "127.0.0.1"}, {"port", "1541"}};
  Result b = make_result(42, "root-disk", Status::critical);
  b.type = "disk";
  b.summary = "/ is 97% full (threshold 95%)";
  b.metrics = {{"used_ratio", 0.97, "%"},
               {"free_bytes", 3.2e9, "bytes"},
               {"delta", -12.5, ""},
               {"tiny", 1e-300, ""},
               {"huge", 1.7976931348623157e308, ""}};
  Result c = make_result(std::numeric_limits<std::uint64_t>::max(), "erp-web", Status::warning);
  c.type = "http";
  c.summary = "Київ: відповідь 200 за 2.5 с \"slow\"\n\ttab";  // UTF-8 and escapes survive
  Result d = make_result(44, "meter-1", Status::unknown);
  d.type = "modbus";
  d.summary = "";
  rep.results = {a, b, c, d};
  rep.dropped = 17;
  return rep;
}

TEST(Codec, ReportRoundTrips) {
  const Report rep = full_report();
  auto back = decode_report(encode(rep));
  ASSERT_TRUE(back) << back.error.to_string();
  EXPECT_EQ(*back.value, rep);
  EXPECT_TRUE(back.error.field.empty());
  EXPECT_TRUE(back.error.message.empty());
}

TEST(Codec, EmptyReportRoundTrips) {
  Report rep;
  rep.agent.site = "acme-lviv";
  auto back = decode_report(encode(rep));
  ASSERT_TRUE(back) << back.error.to_string();
  EXPECT_EQ(*back.value, rep);
}

TEST(Codec, AckRoundTrips) {
  for (std::uint64_t seq :
       {std::uint64_t{0}, std::uint64_t{42}, std::numeric_limits<std::uint64_t>::max()}) {
    auto back = decode_ack(encode(Ack{seq, {}}));
    ASSERT_TRUE(back) << back.error.to_string();
    EXPECT_EQ(back.value->acked_seq, seq);
  }
  EXPECT_EQ(encode(Ack{42, {}}), R"({"acked_seq":42})");

  const Ack refused{7, {{5, "limit_name_length", "probe name 'x...' of 300 bytes"}}};
  auto back = decode_ack(encode(refused));
  ASSERT_TRUE(back) << back.error.to_string();
  EXPECT_EQ(*back.value, refused);
  EXPECT_EQ(decode_ack(R"({"acked_seq":1,"refused":[{"seq":"x","reason":"r"}]})").error.to_string(),
            "refused[0].seq: expected a non-negative integer");
}

TEST(Codec, ResultsRoundTrip) {
  const std::vector<Result> results = full_report().results;
  for (bool pretty : {false, true}) {
    const std::string body = encode_results(results, pretty);
    EXPECT_EQ(body.find('\n') != std::string::npos, pretty) << body;
    auto back = decode_results(body);
    ASSERT_TRUE(back) << back.error.to_string();
    EXPECT_EQ(*back.value, results);
  }
  auto empty = decode_results(encode_results({}));
  ASSERT_TRUE(empty) << empty.error.to_string();
  EXPECT_TRUE(empty.value->empty());
}

TEST(Codec, EncodeErrorBody) {
  EXPECT_EQ(encode_error("bad_report", "results[0].seq: missing"),
            R"({"error":"results[0].seq: missing","reason":"bad_report"})");
}

TEST(Codec, OptionalFieldsTakeDefaults) {
  auto got = decode_report(R"({
    "agent": {"version": "0.1.0", "hostname": "h", "site": "s", "started_at": 1, "heartbeat": null,
              "future_field": [1, 2]},
    "results": [{"seq": 1, "probe": "p", "type": "tcp", "ts": 2, "status": "ok", "summary": "",
                 "metrics": [{"name": "m", "value": 3}], "labels": null, "extra": {}}],
    "also_ignored": true})");
  ASSERT_TRUE(got) << got.error.to_string();
  EXPECT_EQ(got.value->agent.heartbeat, 5);
  EXPECT_EQ(got.value->dropped, 0u);
  ASSERT_EQ(got.value->results.size(), 1u);
  const Result& r = got.value->results[0];
  EXPECT_EQ(r.duration, 0);
  EXPECT_TRUE(r.labels.empty());
  ASSERT_EQ(r.metrics.size(), 1u);
  EXPECT_EQ(r.metrics[0].unit, "");
}

TEST(Codec, InvalidUtf8EncodesWithoutThrowing) {
  Report rep = full_report();
  rep.results[0].summary = "reply: \xff\xfe\xc3 from device";
  rep.results[0].labels["raw\xc0"] = "\x80value";
  rep.agent.hostname = "host\xed\xa0\x80";  // an encoded surrogate is not valid UTF-8 either
  std::string body;
  ASSERT_NO_THROW(body = encode(rep));
  // What comes out is valid JSON again: the bad bytes became U+FFFD.
  auto back = decode_report(body);
  ASSERT_TRUE(back) << back.error.to_string();
  EXPECT_NE(back.value->results[0].summary.find("\xef\xbf\xbd"), std::string::npos);
  EXPECT_NE(back.value->results[0].summary.find("from device"), std::string::npos);
  ASSERT_NO_THROW(encode_results(rep.results, true));
}

// A valid report envelope around one result object (as JSON text).
std::string with_result(const std::string& result) {
  return R"({"agent": {"version": "0.1.0", "hostname": "h", "site": "s", "started_at": 1},
             "results": [)" +
         result + "]}";
}

// A valid result object with one field's JSON text replaced (or removed when value is empty).
std::string result_with(const std::string& key, const std::string& value) {
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"seq", "7"},
      {"probe", R"("erp-port")"},
      {"type", R"("tcp")"},
      {"ts", "1700000000.5"},
      {"duration", "0.25"},
      {"status", R"("ok")"},
      {"summary", R"("fine")"},
      {"metrics", R"([{"name": "connect_seconds", "value": 0.004, "unit": "s"}])"},
      {"labels", R"({"port": "1541"})"}};
  std::string out = "{";
  for (const auto& [k, v] : fields) {
    const std::string& text = (k == key) ? value : v;
    if (text.empty()) continue;
    if (out.size() > 1) out += ", ";
    out += "\"" + k + "\": " + text;
  }
  return out + "}";
}

std::string valid_result() { return result_with("", ""); }

TEST(Codec, TableHelpersMakeValidBodies) {
  auto got = decode_report(with_result(valid_result()));
  ASSERT_TRUE(got) << got.error.to_string();
  EXPECT_EQ(got.value->results.at(0).probe, "erp-port");
}

struct Malformed {
  const char* name;
  std::string body;
  std::string field;  // expected DecodeError::field
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.name; }

class DecodeReportMalformed : public testing::TestWithParam<Malformed> {};

TEST_P(DecodeReportMalformed, NamesTheField) {
  const Malformed& c = GetParam();
  auto got = decode_report(c.body);
  ASSERT_FALSE(got) << c.name << " decoded: " << c.body;
  EXPECT_EQ(got.error.field, c.field) << c.name << ": " << got.error.to_string();
  EXPECT_FALSE(got.error.message.empty()) << c.name;
}

const std::string kAgentOk =
    R"("agent": {"version": "0.1.0", "hostname": "h", "site": "s", "started_at": 1})";

INSTANTIATE_TEST_SUITE_P(
    Codec, DecodeReportMalformed,
    testing::Values(
        // Not a report at all.
        Malformed{"empty_body", "", ""}, Malformed{"not_json", "hello", ""},
        Malformed{"truncated", R"({"agent": {)", ""},
        Malformed{"nan_is_not_json", with_result(result_with("ts", "NaN")), ""},
        Malformed{"infinity_is_not_json", with_result(result_with("ts", "Infinity")), ""},
        // nlohmann's parser refuses a number that overflows a double ("number overflow"), so a
        // huge value is a body that is not JSON rather than an infinite field.
        Malformed{"ts_overflows_double", with_result(result_with("ts", "1e400")), ""},
        Malformed{"metric_value_overflows_double",
                  with_result(result_with("metrics", R"([{"name": "m", "value": -1e400}])")), ""},
        Malformed{"invalid_utf8_in_string",
                  with_result(result_with("summary", "\"bad \xff\xfe bytes\"")), ""},
        Malformed{"trailing_garbage", with_result(valid_result()) + "}", ""},
        Malformed{"top_level_array", "[]", ""}, Malformed{"top_level_string", R"("x")", ""},
        // The agent block.
        Malformed{"missing_agent", R"({"results": []})", "agent"},
        Malformed{"agent_not_object", R"({"agent": "acme", "results": []})", "agent"},
        Malformed{"agent_version_missing",
                  R"({"agent": {"hostname": "h", "site": "s", "started_at": 1}, "results": []})",
                  "agent.version"},
        Malformed{"agent_site_not_string",
                  R"({"agent": {"version": "1", "hostname": "h", "site": 42, "started_at": 1},
                      "results": []})",
                  "agent.site"},
        Malformed{"agent_site_null",
                  R"({"agent": {"version": "1", "hostname": "h", "site": null, "started_at": 1},
                      "results": []})",
                  "agent.site"},
        Malformed{"agent_started_at_string",
                  R"({"agent": {"version": "1", "hostname": "h", "site": "s",
                      "started_at": "now"}, "results": []})",
                  "agent.started_at"},
        Malformed{"agent_heartbeat_zero",
                  R"({"agent": {"version": "1", "hostname": "h", "site": "s", "started_at": 1,
                      "heartbeat": 0}, "results": []})",
                  "agent.heartbeat"},
        Malformed{"agent_heartbeat_negative",
                  R"({"agent": {"version": "1", "hostname": "h", "site": "s", "started_at": 1,
                      "heartbeat": -5}, "results": []})",
                  "agent.heartbeat"},
        // The results array.
        Malformed{"results_missing", "{" + kAgentOk + "}", "results"},
        Malformed{"results_not_array", "{" + kAgentOk + R"(, "results": {}})", "results"},
        Malformed{"results_null", "{" + kAgentOk + R"(, "results": null})", "results"},
        Malformed{"result_not_object", with_result("1"), "results[0]"},
        Malformed{"second_result_bad_status",
                  with_result(valid_result() + ", " + result_with("status", R"("bad")")),
                  "results[1].status"},
        Malformed{"status_upper_case", with_result(result_with("status", R"("OK")")),
                  "results[0].status"},
        Malformed{"status_number", with_result(result_with("status", "2")), "results[0].status"},
        Malformed{"seq_missing", with_result(result_with("seq", "")), "results[0].seq"},
        Malformed{"seq_negative", with_result(result_with("seq", "-1")), "results[0].seq"},
        Malformed{"seq_fraction", with_result(result_with("seq", "1.5")), "results[0].seq"},
        Malformed{"seq_string", with_result(result_with("seq", R"("7")")), "results[0].seq"},
        Malformed{"seq_above_uint64", with_result(result_with("seq", "18446744073709551616")),
                  "results[0].seq"},
        Malformed{"probe_missing", with_result(result_with("probe", "")), "results[0].probe"},
        Malformed{"probe_empty", with_result(result_with("probe", R"("")")), "results[0].probe"},
        Malformed{"type_not_string", with_result(result_with("type", "[]")), "results[0].type"},
        Malformed{"ts_missing", with_result(result_with("ts", "")), "results[0].ts"},
        Malformed{"duration_string", with_result(result_with("duration", R"("fast")")),
                  "results[0].duration"},
        Malformed{"summary_missing", with_result(result_with("summary", "")), "results[0].summary"},
        Malformed{"summary_null", with_result(result_with("summary", "null")),
                  "results[0].summary"},
        // Metrics.
        Malformed{"metrics_missing", with_result(result_with("metrics", "")), "results[0].metrics"},
        Malformed{"metrics_not_array", with_result(result_with("metrics", "{}")),
                  "results[0].metrics"},
        Malformed{"metric_not_object", with_result(result_with("metrics", "[3.5]")),
                  "results[0].metrics[0]"},
        Malformed{"metric_value_string",
                  with_result(result_with("metrics", R"([{"name": "m", "value": "1"}])")),
                  "results[0].metrics[0].value"},
        Malformed{"metric_value_missing", with_result(result_with("metrics", R"([{"name": "m"}])")),
                  "results[0].metrics[0].value"},
        Malformed{"metric_value_null",
                  with_result(result_with("metrics", R"([{"name": "m", "value": null}])")),
                  "results[0].metrics[0].value"},
        Malformed{"metric_value_bool",
                  with_result(result_with("metrics", R"([{"name": "m", "value": true}])")),
                  "results[0].metrics[0].value"},
        Malformed{"metric_name_empty",
                  with_result(result_with("metrics", R"([{"name": "", "value": 1}])")),
                  "results[0].metrics[0].name"},
        Malformed{"metric_name_missing", with_result(result_with("metrics", R"([{"value": 1}])")),
                  "results[0].metrics[0].name"},
        Malformed{"second_metric_unit_number",
                  with_result(result_with("metrics",
                                          R"([{"name": "a", "value": 1}, {"name": "b", "value": 2,
                                    "unit": 5}])")),
                  "results[0].metrics[1].unit"},
        // Labels.
        Malformed{"labels_array", with_result(result_with("labels", R"(["a"])")),
                  "results[0].labels"},
        Malformed{"label_value_number", with_result(result_with("labels", R"({"port": 1541})")),
                  "results[0].labels.port"},
        Malformed{"label_value_null",
                  with_result(result_with("labels", R"({"a": "x", "b": null})")),
                  "results[0].labels.b"},
        // Dropped.
        Malformed{"dropped_negative", "{" + kAgentOk + R"(, "results": [], "dropped": -1})",
                  "dropped"},
        Malformed{"dropped_string", "{" + kAgentOk + R"(, "results": [], "dropped": "3"})",
                  "dropped"},
        Malformed{"dropped_huge", "{" + kAgentOk + R"(, "results": [], "dropped": 1e30})",
                  "dropped"}),
    [](const testing::TestParamInfo<Malformed>& info) { return std::string(info.param.name); });

TEST(Codec, NotJsonAndWrongShapeSayWhich) {
  EXPECT_EQ(decode_report("{").error.message, "body is not valid JSON");
  EXPECT_EQ(decode_report("[]").error.message, "expected a JSON object");
  EXPECT_EQ(decode_report("[]").error.to_string(), "expected a JSON object");
  EXPECT_EQ(decode_report(with_result(result_with("seq", ""))).error.to_string(),
            "results[0].seq: missing");
}

TEST(Codec, ExtremeButValidNumbersDecode) {
  auto got = decode_report(
      with_result(result_with("metrics", R"([{"name": "big", "value": 1.7976931348623157e308},
                                 {"name": "small", "value": -4.9e-324},
                                 {"name": "int", "value": -9223372036854775808},
                                 {"name": "uint", "value": 18446744073709551615}])")));
  ASSERT_TRUE(got) << got.error.to_string();
  const auto& m = got.value->results.at(0).metrics;
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].value, std::numeric_limits<double>::max());
  EXPECT_EQ(m[2].value, -9223372036854775808.0);
  EXPECT_EQ(m[3].value, 18446744073709551615.0);

  auto max_seq = decode_report(with_result(result_with("seq", "18446744073709551615")));
  ASSERT_TRUE(max_seq) << max_seq.error.to_string();
  EXPECT_EQ(max_seq.value->results.at(0).seq, std::numeric_limits<std::uint64_t>::max());
}

class DecodeAckMalformed : public testing::TestWithParam<Malformed> {};

TEST_P(DecodeAckMalformed, NamesTheField) {
  auto got = decode_ack(GetParam().body);
  ASSERT_FALSE(got) << GetParam().body;
  EXPECT_EQ(got.error.field, GetParam().field) << got.error.to_string();
}

INSTANTIATE_TEST_SUITE_P(
    Codec, DecodeAckMalformed,
    testing::Values(Malformed{"empty_body", "", ""}, Malformed{"array", "[42]", ""},
                    Malformed{"missing", "{}", "acked_seq"},
                    Malformed{"negative", R"({"acked_seq": -1})", "acked_seq"},
                    Malformed{"string", R"({"acked_seq": "5"})", "acked_seq"},
                    Malformed{"null", R"({"acked_seq": null})", "acked_seq"},
                    Malformed{"fraction", R"({"acked_seq": 5.5})", "acked_seq"}),
    [](const testing::TestParamInfo<Malformed>& info) { return std::string(info.param.name); });

class DecodeResultsMalformed : public testing::TestWithParam<Malformed> {};

TEST_P(DecodeResultsMalformed, NamesTheField) {
  auto got = decode_results(GetParam().body);
  ASSERT_FALSE(got) << GetParam().body;
  EXPECT_EQ(got.error.field, GetParam().field) << got.error.to_string();
}

// A bare results array has no name of its own, so paths start at the index.
INSTANTIATE_TEST_SUITE_P(
    Codec, DecodeResultsMalformed,
    testing::Values(Malformed{"not_json", "[", ""}, Malformed{"object", "{}", ""},
                    Malformed{"second_bad_status",
                              "[" + valid_result() + ", " + result_with("status", R"("bad")") + "]",
                              "[1].status"},
                    Malformed{
                        "metric_value_string",
                        "[" + result_with("metrics", R"([{"name": "m", "value": "x"}])") + "]",
                        "[0].metrics[0].value"}),
    [](const testing::TestParamInfo<Malformed>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace dozor::protocol
