#include "dozor/protocol/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace dozor {
namespace {

struct Suffix {
  std::string_view name;
  std::uint64_t factor;
};

// Reads an unsigned decimal integer at the front of text, advancing it.
std::optional<std::uint64_t> take_number(std::string_view& text) {
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (v > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  text.remove_prefix(i);
  return v;
}

std::string_view take_word(std::string_view& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
  auto w = text.substr(0, i);
  text.remove_prefix(i);
  return w;
}

constexpr Suffix kDurationSuffixes[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
constexpr Suffix kSizeSuffixes[] = {{"", 1},
                                    {"B", 1},
                                    {"KiB", 1ull << 10},
                                    {"MiB", 1ull << 20},
                                    {"GiB", 1ull << 30},
                                    {"TiB", 1ull << 40},
                                    {"KB", 1'000},
                                    {"kB", 1'000},
                                    {"MB", 1'000'000},
                                    {"GB", 1'000'000'000},
                                    {"TB", 1'000'000'000'000}};

template <std::size_t N>
std::optional<std::uint64_t> factor_of(std::string_view word, const Suffix (&table)[N]) {
  for (const auto& s : table)
    if (s.name == word) return s.factor;
  return std::nullopt;
}

bool mul_overflows(std::uint64_t a, std::uint64_t b) {
  return b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text == "0") return std::chrono::milliseconds(0);
  if (text.empty()) return std::nullopt;
  constexpr auto kLimit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 2);
  std::uint64_t total = 0;
  while (!text.empty()) {
    auto n = take_number(text);
    if (!n) return std::nullopt;
    auto f = factor_of(take_word(text), kDurationSuffixes);
    if (!f || mul_overflows(*n, *f)) return std::nullopt;
    // Checked before adding: a term near 2^64 would wrap the sum back under the limit.
    const std::uint64_t term = *n * *f;
    if (term > kLimit - total) return std::nullopt;
    total += term;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0";
  std::string out;
  if (ms < 0) {
    // push_back, not `out = "-"`: g++ 12 with -fsanitize reports a false -Wrestrict on the latter.
    out.push_back('-');
    ms = -ms;
  }
  for (auto it = std::rbegin(kDurationSuffixes); it != std::rend(kDurationSuffixes); ++it) {
    auto f = static_cast<long long>(it->factor);
    if (ms >= f) {
      out += std::to_string(ms / f);
      out += it->name;
      ms %= f;
    }
  }
  return out;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  auto n = take_number(text);
  if (!n) return std::nullopt;
  auto word = take_word(text);
  if (!text.empty()) return std::nullopt;
  auto f = factor_of(word, kSizeSuffixes);
  if (!f || mul_overflows(*n, *f)) return std::nullopt;
  return *n * *f;
}

std::string format_timestamp(double unix_seconds) {
  const auto ms = static_cast<long long>(std::floor(unix_seconds * 1000));
  std::time_t t = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03lldZ", ((ms % 1000) + 1000) % 1000);
  return buf;
}

std::optional<double> parse_timestamp(std::string_view text) {
  std::string s(text);
  int y, mo, d, h, mi, consumed = 0;
  double sec;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &consumed) !=
          6 ||
      mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
    return std::nullopt;
  if (s.size() < 19 || s[16] != ':' || !std::isdigit(static_cast<unsigned char>(s[consumed - 1])))
    return std::nullopt;  // "...:01.Z"
  std::string_view zone = std::string_view(s).substr(static_cast<std::size_t>(consumed));
  double offset = 0;
  if (zone == "Z" || zone == "z") {
    offset = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(std::string(zone.substr(1)).c_str(), "%2d:%2d", &oh, &om) != 2)
      return std::nullopt;
    offset = (zone[0] == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
  } else {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  const std::time_t t = timegm(&tm);
  if (tm.tm_mday != d || tm.tm_mon != mo - 1) return std::nullopt;  // 2026-02-30
  return static_cast<double>(t) + sec - offset;
}

}  // namespace dozor
