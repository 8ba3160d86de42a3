#include "host/procfs.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace dozor::probes::host {
namespace {

// Splits off the next run of non-blank characters of `rest`.
std::string_view next_word(std::string_view& rest) {
  const std::size_t start = rest.find_first_not_of(" \t\n");
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const std::size_t end = std::min(rest.find_first_of(" \t\n"), rest.size());
  const std::string_view word = rest.substr(0, end);
  rest.remove_prefix(end);
  return word;
}

template <class T>
bool to_number(std::string_view word, T& out) {
  if (word.empty()) return false;
  const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), out);
  return ec == std::errc() && end == word.data() + word.size();
}

// Non-negative finite decimal such as "0.52" or "12345.67".
std::optional<double> to_decimal(std::string_view word) {
  double v = 0;
  if (!to_number(word, v) || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

std::string_view take_line(std::string_view& text) {
  const std::size_t end = text.find('\n');
  const std::string_view line = text.substr(0, end);
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  return line;
}

}  // namespace

std::optional<CpuTimes> parse_proc_stat(std::string_view text) {
  std::optional<CpuTimes> out;
  int cores = 0;
  while (!text.empty()) {
    std::string_view line = take_line(text);
    const std::string_view key = next_word(line);
    if (key == "cpu") {
      // user nice system idle iowait irq softirq steal guest guest_nice; older kernels fewer.
      std::uint64_t v[10] = {};
      int n = 0;
      for (; n < 10; ++n) {
        const std::string_view word = next_word(line);
        if (word.empty()) break;
        if (!to_number(word, v[n])) return std::nullopt;
      }
      if (n < 4) return std::nullopt;
      CpuTimes t;
      for (int i = 0; i < std::min(n, 8); ++i) {
        if (v[i] > std::numeric_limits<std::uint64_t>::max() - t.total) return std::nullopt;
        t.total += v[i];
      }
      t.idle = v[3] + v[4];
      out = t;
    } else if (key.starts_with("cpu") && key.size() > 3) {
      int index = 0;
      if (to_number(key.substr(3), index)) ++cores;
    }
  }
  if (out) out->cores = cores;
  return out;
}

std::optional<MemInfo> parse_meminfo(std::string_view text) {
  MemInfo m;
  bool total = false;
  while (!text.empty()) {
    std::string_view line = take_line(text);
    const std::string_view key = next_word(line);
    std::uint64_t value = 0;
    if (!to_number(next_word(line), value)) continue;
    // Values are in kB (KiB) when they say so; a few counters (HugePages_*) are bare counts.
    if (next_word(line) == "kB") {
      if (value > std::numeric_limits<std::uint64_t>::max() / 1024) continue;
      value *= 1024;
    }
    if (key == "MemTotal:") {
      m.mem_total = value;
      total = true;
    } else if (key == "MemAvailable:") {
      m.mem_available = value;
    } else if (key == "SwapTotal:") {
      m.swap_total = value;
    } else if (key == "SwapFree:") {
      m.swap_free = value;
    }
  }
  if (!total) return std::nullopt;
  return m;
}

std::optional<LoadAverage> parse_loadavg(std::string_view text) {
  const auto one = to_decimal(next_word(text));
  const auto five = to_decimal(next_word(text));
  const auto fifteen = to_decimal(next_word(text));
  if (!one || !five || !fifteen) return std::nullopt;
  return LoadAverage{*one, *five, *fifteen};
}

std::optional<double> parse_uptime(std::string_view text) { return to_decimal(next_word(text)); }

}  // namespace dozor::probes::host
