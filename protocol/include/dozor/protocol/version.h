#pragma once

namespace dozor {
/// The release of this build, e.g. "0.1.0"; reported by every binary's --version and by agents.
extern const char* const kVersion;
/// Wire protocol version served under /v1/.
inline constexpr int kProtocolVersion = 1;
}  // namespace dozor
