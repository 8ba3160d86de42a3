#include "dozor/protocol/report.h"

namespace dozor::protocol {

std::string series_name(const Metric& m) {
  if (m.labels.empty()) return m.name;
  std::string out = m.name + "{";
  for (const auto& [k, v] : m.labels) {
    if (out.back() != '{') out += ",";
    out += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c == '\n' ? std::string("\\n") : std::string(1, c);
    }
    out += "\"";
  }
  return out + "}";
}

std::string label_name_problem(std::string_view name) {
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (name.empty() || !alpha(name[0])) return "a label name starts with a letter or _";
  for (char c : name)
    if (!alpha(c) && !(c >= '0' && c <= '9')) return "a label name is letters, digits and _";
  if (name.starts_with("__")) return "label names starting with __ are Prometheus' own";
  for (std::string_view own : {"agent", "site", "probe", "metric", "type"})
    if (name == own) return "'" + std::string(own) + "' is the collector's own label";
  return {};
}

std::string_view to_string(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::warning:
      return "warning";
    case Status::critical:
      return "critical";
    case Status::unknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<Status> parse_status(std::string_view word) {
  if (word == "ok") return Status::ok;
  if (word == "warning") return Status::warning;
  if (word == "critical") return Status::critical;
  if (word == "unknown") return Status::unknown;
  return std::nullopt;
}

Status worst(Status a, Status b) {
  auto rank = [](Status s) {
    switch (s) {
      case Status::ok:
        return 0;
      case Status::unknown:
        return 1;
      case Status::warning:
        return 2;
      case Status::critical:
        return 3;
    }
    return 1;
  };
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace dozor::protocol
