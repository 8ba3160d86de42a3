#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dozor {

/// "500ms", "10s", "5m", "2h", "7d", or a sum such as "1h30m"; "0" is zero. nullopt when malformed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
/// The shortest exact spelling parse_duration reads back, e.g. 90000ms -> "1m30s".
std::string format_duration(std::chrono::milliseconds d);
/// "64MiB", "1GiB", "512KiB", "10MB", "100B" or a bare number of bytes. nullopt when malformed.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace dozor
