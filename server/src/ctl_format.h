// How dozorctl shows what the API answers: RFC3339 times as ages, and aligned tables.
#pragma once

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace dozor::ctl {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;

/// dozor::parse_timestamp as a time point: "2026-11-23T14:05:01.123Z", "...01+03:00".
std::optional<TimePoint> parse_time(std::string_view rfc3339);
/// A coarse length of time, two units at most: "42s", "12m", "3h5m", "4d3h".
std::string span(std::chrono::milliseconds d);
/// "3m ago", "in 12m", or "now" within a second.
std::string relative(TimePoint t, TimePoint now);
/// "2026-11-23 14:05:01 UTC".
std::string absolute(TimePoint t);
TimePoint now();
/// `text` with control characters (terminal escapes among them) turned into spaces, so that
/// what a probe or a person wrote cannot break a table or the terminal; newlines kept if asked.
std::string printable(std::string_view text, bool keep_newlines);

/// Columns padded to their widest cell (counted in UTF-8 characters, so Cyrillic site names
/// line up) and made printable; the last column is left unpadded so long summaries do not pad every
/// line.
class Table {
 public:
  explicit Table(std::vector<std::string> header = {});
  void add(std::vector<std::string> row);
  bool empty() const { return rows_.size() == (has_header_ ? 1 : 0); }
  void print(std::ostream& out, std::string_view indent = "") const;

 private:
  std::vector<std::vector<std::string>> rows_;
  bool has_header_;
};

}  // namespace dozor::ctl
