#pragma once

// Parsers of the system-wide /proc files the host probe reads. They take the text, so that tests
// and the fuzz target can feed them captured or hostile input.

#include <cstdint>
#include <optional>
#include <string_view>

namespace dozor::probes::host {

/// The aggregate "cpu" line of /proc/stat, in clock ticks, and how many "cpuN" lines follow.
struct CpuTimes {
  std::uint64_t total = 0;  // every state, guest time excluded (already in user and nice)
  std::uint64_t idle = 0;   // idle + iowait
  int cores = 0;
};
std::optional<CpuTimes> parse_proc_stat(std::string_view text);

/// /proc/meminfo, in bytes. mem_available is absent before Linux 3.14.
struct MemInfo {
  std::uint64_t mem_total = 0;
  std::optional<std::uint64_t> mem_available;
  std::uint64_t swap_total = 0, swap_free = 0;
};
/// nullopt when MemTotal is missing or malformed.
std::optional<MemInfo> parse_meminfo(std::string_view text);

struct LoadAverage {
  double one = 0, five = 0, fifteen = 0;
};
std::optional<LoadAverage> parse_loadavg(std::string_view text);

/// Seconds since boot, the first number of /proc/uptime.
std::optional<double> parse_uptime(std::string_view text);

}  // namespace dozor::probes::host
