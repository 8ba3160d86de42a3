// Fuzz target for the log probe's state file, which the agent reads back after a restart and
// which anything with write access to the folder (or a crash, or a full disk) may have damaged.
//
// Input: the file's bytes. A parse either fails or yields a position whose formatting parses
// back to the same position and reads exactly as the input did.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "log/state.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dozor::probes::log;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto pos = parse_log_state(text);
  if (!pos) return 0;
  const std::string again = format_log_state(*pos);
  const auto back = parse_log_state(again);
  if (!back || !(*back == *pos)) std::abort();
  // The format has one spelling per position: no leading zeros, signs or spaces get through.
  if (again != text) std::abort();
  return 0;
}
