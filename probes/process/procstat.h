#pragma once

// Parsers of the per-process files under /proc/PID, for the process probe and its fuzz target.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dozor::probes::process {

/// The fields of /proc/PID/stat the process probe uses (see proc(5)).
struct ProcStat {
  std::string comm;  // at most 15 bytes, may hold spaces and parentheses
  char state = '?';
  std::uint64_t utime = 0, stime = 0;  // clock ticks
  std::int64_t threads = 0;
  std::uint64_t starttime = 0;  // clock ticks after boot: tells a reused PID from the old one
  std::int64_t rss_pages = 0;
};

/// Parses /proc/PID/stat; nullopt when the text is malformed or cut short.
std::optional<ProcStat> parse_proc_stat(std::string_view text);

/// The effective UID from the "Uid:" line of /proc/PID/status; nullopt when absent or malformed.
std::optional<std::uint32_t> parse_status_euid(std::string_view text);

/// /proc/PID/cmdline (NUL-separated arguments) as one line with spaces, at most `limit` bytes.
std::string cmdline_text(std::string_view raw, std::size_t limit);

}  // namespace dozor::probes::process
