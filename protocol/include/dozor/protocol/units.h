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
/// Unix seconds as RFC 3339 in UTC with milliseconds: "2026-11-23T14:05:01.123Z".
std::string format_timestamp(double unix_seconds);
/// RFC 3339 ("2026-11-23T14:05:01Z", "...01.5+02:00") to unix seconds; nullopt when malformed.
std::optional<double> parse_timestamp(std::string_view text);

}  // namespace dozor
