#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dozor::probes::log {

/// Where the log probe stopped reading, as its state file keeps it across agent restarts.
/// `offset` is always the start of a line: a line without its newline yet is read again.
struct LogPosition {
  std::uint64_t dev = 0;    // st_dev of the file; 0 with inode 0: the file did not exist
  std::uint64_t inode = 0;  // st_ino
  std::uint64_t offset = 0;
  bool operator==(const LogPosition&) const = default;
};

/// "dozor-log-state 1 dev=2049 inode=131090 offset=5678\n".
std::string format_log_state(const LogPosition& p);
/// The format above, strictly; nullopt for anything else (a torn or foreign file).
std::optional<LogPosition> parse_log_state(std::string_view text);

}  // namespace dozor::probes::log
