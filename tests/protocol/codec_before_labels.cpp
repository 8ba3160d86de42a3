// The report decoder of collectors built before metrics had labels: protocol/src/codec.cpp as
// of commit b122722, moved into namespace before_labels. The compatibility test feeds it what
// today's agents send. Not to be edited: it stands for binaries already deployed.
// NOLINTBEGIN
#include <cmath>
#include <nlohmann/json.hpp>

#include "dozor/protocol/codec.h"

namespace dozor::protocol::before_labels {
namespace {

using nlohmann::json;

json to_json(const Metric& m) {
  json j = {{"name", m.name}, {"value", m.value}};
  if (!m.unit.empty()) j["unit"] = m.unit;
  return j;
}

json to_json(const Result& r) {
  json metrics = json::array();
  for (const auto& m : r.metrics) metrics.push_back(to_json(m));
  json j = {{"seq", r.seq},           {"probe", r.probe},
            {"type", r.type},         {"ts", r.ts},
            {"duration", r.duration}, {"status", to_string(r.status)},
            {"summary", r.summary},   {"metrics", std::move(metrics)}};
  if (!r.labels.empty()) j["labels"] = r.labels;
  return j;
}

// Walks a JSON document, remembering the path so that every error names its field.
class Reader {
 public:
  explicit Reader(DecodeError& err) : err_(err) {}

  bool failed() const { return failed_; }

  bool fail(const std::string& path, std::string message) {
    if (!failed_) err_ = {path, std::move(message)};
    failed_ = true;
    return false;
  }

  const json* field(const json& obj, const std::string& path, const char* key, bool required) {
    auto it = obj.find(key);
    if (it == obj.end() || (it->is_null() && !required)) {
      if (required) fail(join(path, key), "missing");
      return nullptr;
    }
    return &*it;
  }

  bool string(const json& obj, const std::string& path, const char* key, std::string& out,
              bool required = true) {
    const json* v = field(obj, path, key, required);
    if (!v) return !required;
    if (!v->is_string()) return fail(join(path, key), "expected a string");
    out = v->get<std::string>();
    return true;
  }

  bool number(const json& obj, const std::string& path, const char* key, double& out,
              bool required = true) {
    const json* v = field(obj, path, key, required);
    if (!v) return !required;
    if (!v->is_number()) return fail(join(path, key), "expected a number");
    out = v->get<double>();
    if (!std::isfinite(out)) return fail(join(path, key), "expected a finite number");
    return true;
  }

  bool unsigned_int(const json& obj, const std::string& path, const char* key, std::uint64_t& out,
                    bool required = true) {
    const json* v = field(obj, path, key, required);
    if (!v) return !required;
    if (!v->is_number_unsigned()) return fail(join(path, key), "expected a non-negative integer");
    out = v->get<std::uint64_t>();
    return true;
  }

  static std::string join(const std::string& path, const char* key) {
    return path.empty() ? std::string(key) : path + "." + key;
  }

 private:
  DecodeError& err_;
  bool failed_ = false;
};

bool read_result(Reader& rd, const json& j, const std::string& path, Result& r) {
  if (!j.is_object()) return rd.fail(path, "expected an object");
  std::string status;
  if (!rd.unsigned_int(j, path, "seq", r.seq) || !rd.string(j, path, "probe", r.probe) ||
      !rd.string(j, path, "type", r.type) || !rd.number(j, path, "ts", r.ts) ||
      !rd.number(j, path, "duration", r.duration, false) || !rd.string(j, path, "status", status) ||
      !rd.string(j, path, "summary", r.summary))
    return false;
  if (r.probe.empty()) return rd.fail(Reader::join(path, "probe"), "must not be empty");
  auto s = parse_status(status);
  if (!s) return rd.fail(Reader::join(path, "status"), "expected ok, warning, critical or unknown");
  r.status = *s;

  const json* metrics = rd.field(j, path, "metrics", true);
  if (!metrics) return false;
  std::string mpath = Reader::join(path, "metrics");
  if (!metrics->is_array()) return rd.fail(mpath, "expected an array");
  r.metrics.reserve(metrics->size());
  for (std::size_t i = 0; i < metrics->size(); ++i) {
    const json& mj = (*metrics)[i];
    std::string p = mpath + "[" + std::to_string(i) + "]";
    if (!mj.is_object()) return rd.fail(p, "expected an object");
    Metric m;
    if (!rd.string(mj, p, "name", m.name) || !rd.number(mj, p, "value", m.value) ||
        !rd.string(mj, p, "unit", m.unit, false))
      return false;
    if (m.name.empty()) return rd.fail(p + ".name", "must not be empty");
    r.metrics.push_back(std::move(m));
  }

  if (const json* labels = rd.field(j, path, "labels", false)) {
    std::string lpath = Reader::join(path, "labels");
    if (!labels->is_object()) return rd.fail(lpath, "expected an object of strings");
    for (const auto& [k, v] : labels->items()) {
      if (!v.is_string()) return rd.fail(lpath + "." + k, "expected a string");
      r.labels.emplace(k, v.get<std::string>());
    }
  }
  return true;
}

bool read_results(Reader& rd, const json& arr, const std::string& path, std::vector<Result>& out) {
  if (!arr.is_array()) return rd.fail(path, "expected an array");
  out.reserve(arr.size());
  for (std::size_t i = 0; i < arr.size(); ++i) {
    Result r;
    if (!read_result(rd, arr[i], path + "[" + std::to_string(i) + "]", r)) return false;
    out.push_back(std::move(r));
  }
  return true;
}

template <class T, class Fn>
Decoded<T> decode(std::string_view body, Fn&& fn) {
  Decoded<T> out;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    out.error = {"", "body is not valid JSON"};
    return out;
  }
  Reader rd(out.error);
  T value;
  if (fn(rd, j, value)) out.value = std::move(value);
  return out;
}

// Summaries may quote whatever a peer sent; never throw on bytes that are not UTF-8.
std::string dump(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

json report_head(const Report& report) {
  json agent = {{"version", report.agent.version},
                {"hostname", report.agent.hostname},
                {"site", report.agent.site},
                {"started_at", report.agent.started_at},
                {"heartbeat", report.agent.heartbeat}};
  if (!report.agent.spool_id.empty()) agent["spool_id"] = report.agent.spool_id;
  if (report.agent.sent_at != 0) agent["sent_at"] = report.agent.sent_at;
  json j = {{"agent", std::move(agent)}, {"dropped", report.dropped}};
  if (report.oldest_seq) j["oldest_seq"] = report.oldest_seq;
  return j;
}

}  // namespace

std::string encode(const Report& report) {
  json j = report_head(report);
  json results = json::array();
  for (const auto& r : report.results) results.push_back(to_json(r));
  j["results"] = std::move(results);
  return dump(j);
}

std::string encode(const Result& result) { return dump(to_json(result)); }

std::string encode_with_results(const Report& report, const std::vector<std::string>& results) {
  std::string head = dump(report_head(report));  // {"agent":...,"dropped":N}
  std::size_t total = head.size() + 16;
  for (const auto& r : results) total += r.size() + 1;
  std::string out;
  out.reserve(total);
  out.append(head, 0, head.size() - 1);
  out += ",\"results\":[";
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i) out += ',';
    out += results[i];
  }
  out += "]}";
  return out;
}

std::string encode(const Ack& ack) {
  json j{{"acked_seq", ack.acked_seq}};
  if (!ack.refused.empty()) {
    json refused = json::array();
    for (const auto& r : ack.refused)
      refused.push_back({{"seq", r.seq}, {"reason", r.reason}, {"message", r.message}});
    j["refused"] = std::move(refused);
  }
  return dump(j);
}

std::string encode(const EnrollRequest& request) {
  return dump(json{{"token", request.token}, {"csr", request.csr}});
}

std::string encode(const IssuedCertificate& issued) {
  json j{{"agent", issued.agent},
         {"site", issued.site},
         {"certificate", issued.certificate},
         {"not_after", issued.not_after}};
  if (!issued.ca.empty()) j["ca"] = issued.ca;
  return dump(j);
}

std::string encode_results(const std::vector<Result>& results, bool pretty) {
  json arr = json::array();
  for (const auto& r : results) arr.push_back(to_json(r));
  return dump(arr, pretty ? 2 : -1);
}

std::string encode_error(std::string_view reason, std::string_view message) {
  return dump(json{{"error", message}, {"reason", reason}});
}

Decoded<Report> decode_report(std::string_view body) {
  return decode<Report>(body, [](Reader& rd, const json& j, Report& rep) {
    if (!j.is_object()) return rd.fail("", "expected a JSON object");
    const json* agent = rd.field(j, "", "agent", true);
    if (!agent) return false;
    if (!agent->is_object()) return rd.fail("agent", "expected an object");
    if (!rd.string(*agent, "agent", "version", rep.agent.version) ||
        !rd.string(*agent, "agent", "hostname", rep.agent.hostname) ||
        !rd.string(*agent, "agent", "site", rep.agent.site) ||
        !rd.number(*agent, "agent", "started_at", rep.agent.started_at) ||
        !rd.number(*agent, "agent", "heartbeat", rep.agent.heartbeat, false) ||
        !rd.string(*agent, "agent", "spool_id", rep.agent.spool_id, false) ||
        !rd.number(*agent, "agent", "sent_at", rep.agent.sent_at, false))
      return false;
    if (rep.agent.heartbeat <= 0) return rd.fail("agent.heartbeat", "must be positive");
    const json* results = rd.field(j, "", "results", true);
    if (!results || !read_results(rd, *results, "results", rep.results)) return false;
    for (std::size_t i = 0; i < rep.results.size(); ++i)
      if (rep.results[i].seq == 0)
        return rd.fail("results[" + std::to_string(i) + "].seq", "must be at least 1");
    return rd.unsigned_int(j, "", "dropped", rep.dropped, false) &&
           rd.unsigned_int(j, "", "oldest_seq", rep.oldest_seq, false);
  });
}

Decoded<Ack> decode_ack(std::string_view body) {
  return decode<Ack>(body, [](Reader& rd, const json& j, Ack& ack) {
    if (!j.is_object()) return rd.fail("", "expected a JSON object");
    if (!rd.unsigned_int(j, "", "acked_seq", ack.acked_seq)) return false;
    const json* refused = rd.field(j, "", "refused", false);
    if (!refused) return true;
    if (!refused->is_array()) return rd.fail("refused", "expected an array");
    for (std::size_t i = 0; i < refused->size(); ++i) {
      const std::string path = "refused[" + std::to_string(i) + "]";
      const json& item = (*refused)[i];
      if (!item.is_object()) return rd.fail(path, "expected an object");
      RefusedResult r;
      if (!rd.unsigned_int(item, path, "seq", r.seq) ||
          !rd.string(item, path, "reason", r.reason) ||
          !rd.string(item, path, "message", r.message, false))
        return false;
      ack.refused.push_back(std::move(r));
    }
    return true;
  });
}

Decoded<Refusal> decode_error(std::string_view body) {
  return decode<Refusal>(body, [](Reader& rd, const json& j, Refusal& r) {
    if (!j.is_object()) return rd.fail("", "expected a JSON object");
    return rd.string(j, "", "reason", r.reason) && rd.string(j, "", "error", r.message);
  });
}

Decoded<std::vector<Result>> decode_results(std::string_view body) {
  return decode<std::vector<Result>>(body, [](Reader& rd, const json& j, std::vector<Result>& out) {
    return read_results(rd, j, "", out);
  });
}

Decoded<Result> decode_result(std::string_view body) {
  return decode<Result>(
      body, [](Reader& rd, const json& j, Result& r) { return read_result(rd, j, "", r); });
}

Decoded<EnrollRequest> decode_enroll_request(std::string_view body) {
  return decode<EnrollRequest>(body, [](Reader& rd, const json& j, EnrollRequest& r) {
    if (!j.is_object()) return rd.fail("", "expected a JSON object");
    if (!rd.string(j, "", "token", r.token) || !rd.string(j, "", "csr", r.csr)) return false;
    if (r.token.empty() || r.token.size() > 128) return rd.fail("token", "expected 1-128 bytes");
    if (r.csr.empty() || r.csr.size() > 8192) return rd.fail("csr", "expected 1-8192 bytes of PEM");
    return true;
  });
}

Decoded<IssuedCertificate> decode_issued(std::string_view body) {
  return decode<IssuedCertificate>(body, [](Reader& rd, const json& j, IssuedCertificate& r) {
    if (!j.is_object()) return rd.fail("", "expected a JSON object");
    return rd.string(j, "", "agent", r.agent) && rd.string(j, "", "site", r.site) &&
           rd.string(j, "", "certificate", r.certificate) && rd.string(j, "", "ca", r.ca, false) &&
           rd.number(j, "", "not_after", r.not_after);
  });
}

}  // namespace dozor::protocol::before_labels
// NOLINTEND
