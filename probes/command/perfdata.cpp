#include "command/perfdata.h"

#include <array>
#include <charconv>
#include <cmath>
#include <utility>

namespace dozor::probes::command {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

struct Scale {
  std::string_view uom;
  std::string_view unit;
  double factor;
};

// The plugin API's units, to base units. KB..TB are powers of 1024, as check_disk, check_swap and
// most plugins compute them (the guidelines leave it open).
constexpr std::array<Scale, 13> kScales{{
    {"s", "s", 1},
    {"ms", "s", 1e-3},
    {"us", "s", 1e-6},
    {"%", "%", 1},
    {"B", "bytes", 1},
    {"KB", "bytes", 1024.0},
    {"MB", "bytes", 1024.0 * 1024},
    {"GB", "bytes", 1024.0 * 1024 * 1024},
    {"TB", "bytes", 1024.0 * 1024 * 1024 * 1024},
    {"KiB", "bytes", 1024.0},
    {"MiB", "bytes", 1024.0 * 1024},
    {"GiB", "bytes", 1024.0 * 1024 * 1024},
    {"TiB", "bytes", 1024.0 * 1024 * 1024 * 1024},
}};

/// "12.5ms" -> 0.0125 s; false for "U", "", "abc", or a value too large for a double.
bool parse_value(std::string_view text, PerfValue& v) {
  std::size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  const std::size_t digits_from = i;
  while (i < text.size() &&
         ((text[i] >= '0' && text[i] <= '9') || text[i] == '.' || text[i] == ','))
    ++i;
  if (i == digits_from) return false;
  // An exponent only when digits follow, so that a unit starting with 'e' stays a unit.
  if (i + 1 < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    std::size_t j = i + 1;
    if (j < text.size() && (text[j] == '+' || text[j] == '-')) ++j;
    if (j < text.size() && text[j] >= '0' && text[j] <= '9') {
      while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
      i = j;
    }
  }
  // Plugins run under a locale with a decimal comma write "0,5"; from_chars ignores locales.
  std::string number(text.substr(text[0] == '+' ? 1 : 0, i - (text[0] == '+' ? 1 : 0)));
  for (char& c : number)
    if (c == ',') c = '.';
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size()) return false;

  v.uom = std::string(text.substr(i));
  v.unit = v.uom;
  for (const Scale& s : kScales)
    if (s.uom == v.uom) {
      v.unit = std::string(s.unit);
      value *= s.factor;
      break;
    }
  if (!std::isfinite(value)) return false;
  v.value = value;
  return true;
}

}  // namespace

void parse_perfdata(std::string_view text, PluginOutput& out) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto skip_item = [&] {
    while (i < n && !is_space(text[i])) ++i;
    ++out.skipped;
  };
  while (true) {
    while (i < n && is_space(text[i])) ++i;
    if (i >= n) return;

    PerfValue v;
    if (text[i] == '\'') {
      // A quoted label may hold spaces and '='; '' is a quote.
      ++i;
      bool closed = false;
      while (i < n) {
        if (text[i] == '\'') {
          if (i + 1 < n && text[i + 1] == '\'') {
            v.label += '\'';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        v.label += text[i++];
      }
      if (!closed) {
        ++out.skipped;
        return;
      }
    } else {
      while (i < n && text[i] != '=' && !is_space(text[i])) v.label += text[i++];
    }
    if (i >= n || text[i] != '=' || v.label.empty()) {
      skip_item();
      continue;
    }
    ++i;
    const std::size_t from = i;
    while (i < n && !is_space(text[i])) ++i;
    std::string_view fields = text.substr(from, i - from);

    std::string_view parts[5];
    for (std::size_t k = 0; k < 5; ++k) {
      const std::size_t semi = fields.find(';');
      parts[k] = fields.substr(0, semi);
      if (semi == std::string_view::npos) break;
      fields.remove_prefix(semi + 1);
    }
    if (!parse_value(parts[0], v)) {
      ++out.skipped;
      continue;
    }
    v.warn = std::string(parts[1]);
    v.crit = std::string(parts[2]);
    v.min = std::string(parts[3]);
    v.max = std::string(parts[4]);
    out.perfdata.push_back(std::move(v));
  }
}

PluginOutput parse_plugin_output(std::string_view text) {
  PluginOutput out;
  bool first_line = true, in_perfdata = false;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);

    if (in_perfdata) {
      parse_perfdata(line, out);
      continue;
    }
    const std::size_t bar = line.find('|');
    if (first_line) {
      // On the first line the perfdata ends with the line.
      out.summary = std::string(trim(line.substr(0, bar)));
      first_line = false;
      if (bar != std::string_view::npos) parse_perfdata(line.substr(bar + 1), out);
      continue;
    }
    // In the long output, the first `|` starts perfdata that runs to the end.
    if (bar == std::string_view::npos) continue;
    parse_perfdata(line.substr(bar + 1), out);
    in_perfdata = true;
  }
  return out;
}

std::string perfdata_label(std::string_view label) {
  std::string out;
  for (const char ch : label) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) continue;  // a control character is no part of a name
    // Bounded, cut between UTF-8 characters.
    if (out.size() >= 100 && ((c & 0xC0) != 0x80 || out.size() >= 103)) break;
    out += ch;
  }
  return out.empty() ? "value" : out;
}

}  // namespace dozor::probes::command
