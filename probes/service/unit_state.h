#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dozor::probes::service {

/// The properties of a unit that the probe reads from `systemctl show` ("Key=Value" lines).
struct UnitState {
  std::string load_state;    // loaded, not-found, masked, bad-setting, error
  std::string active_state;  // active, reloading, inactive, failed, activating, deactivating
  std::string sub_state;     // running, exited, dead, start-pre, auto-restart...
  std::optional<std::int64_t> main_pid;
  std::optional<std::int64_t> restarts;            // NRestarts; absent before systemd 235
  std::optional<std::int64_t> start_monotonic_us;  // ExecMainStartTimestampMonotonic; 0: never
};

/// Reads `systemctl show` output; unknown keys and malformed lines are ignored. nullopt when
/// neither LoadState nor ActiveState is there (not an answer about a unit).
std::optional<UnitState> parse_unit_state(std::string_view text);

}  // namespace dozor::probes::service
