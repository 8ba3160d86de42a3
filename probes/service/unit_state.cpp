#include "service/unit_state.h"

#include <charconv>

namespace dozor::probes::service {
namespace {

std::optional<std::int64_t> integer(std::string_view text) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<UnitState> parse_unit_state(std::string_view text) {
  UnitState s;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "LoadState") {
      s.load_state = value;
    } else if (key == "ActiveState") {
      s.active_state = value;
    } else if (key == "SubState") {
      s.sub_state = value;
    } else if (key == "MainPID") {
      s.main_pid = integer(value);
    } else if (key == "NRestarts") {
      s.restarts = integer(value);
    } else if (key == "ExecMainStartTimestampMonotonic") {
      s.start_monotonic_us = integer(value);
    }
  }
  if (s.load_state.empty() && s.active_state.empty()) return std::nullopt;
  return s;
}

}  // namespace dozor::probes::service
