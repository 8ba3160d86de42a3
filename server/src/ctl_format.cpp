#include "ctl_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "dozor/protocol/units.h"

namespace dozor::ctl {

std::optional<TimePoint> parse_time(std::string_view rfc3339) {
  const auto seconds = parse_timestamp(rfc3339);
  if (!seconds) return std::nullopt;
  return TimePoint(std::chrono::milliseconds(std::llround(*seconds * 1000)));
}

std::string span(std::chrono::milliseconds d) {
  using namespace std::chrono;
  const long long s = round<seconds>(d).count();
  auto two = [](long long big, const char* big_unit, long long small, const char* small_unit) {
    std::string out = std::to_string(big) + big_unit;
    if (small) out += std::to_string(small) + small_unit;
    return out;
  };
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return two(s / 3600, "h", s % 3600 / 60, "m");
  return two(s / 86400, "d", s % 86400 / 3600, "h");
}

std::string relative(TimePoint t, TimePoint now) {
  const auto d = now - t;
  if (d > -std::chrono::seconds(1) && d < std::chrono::seconds(1)) return "now";
  return d > d.zero() ? span(d) + " ago" : "in " + span(-d);
}

std::string absolute(TimePoint t) {
  using namespace std::chrono;
  const auto midnight = floor<days>(t);
  const year_month_day date{midnight};
  const hh_mm_ss time{floor<seconds>(t - midnight)};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d UTC", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()));
  return buf;
}

TimePoint now() {
  return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

std::string printable(std::string_view text, bool keep_newlines) {
  std::string out(text);
  for (char& c : out)
    if ((static_cast<unsigned char>(c) < 0x20 && !(keep_newlines && c == '\n')) || c == 0x7f)
      c = ' ';
  return out;
}

namespace {

std::size_t display_width(std::string_view s) {
  // UTF-8 continuation bytes (10xxxxxx) do not start a character.
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

}  // namespace

Table::Table(std::vector<std::string> header) : has_header_(!header.empty()) {
  if (has_header_) rows_.push_back(std::move(header));
}

void Table::add(std::vector<std::string> row) {
  for (auto& cell : row) cell = printable(cell, false);
  rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out, std::string_view indent) const {
  std::vector<std::size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size());
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], display_width(row[i]));
  }
  for (const auto& row : rows_) {
    std::string line(indent);
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - display_width(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  }
}

}  // namespace dozor::ctl
