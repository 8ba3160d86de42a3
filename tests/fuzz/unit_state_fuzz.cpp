// Fuzz target for what `systemctl show` prints (the service probe): "Key=Value" lines.
//
// Invariants: an answer names at least a load or an active state; states are single lines.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "service/unit_state.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto state = dozor::probes::service::parse_unit_state(text);
  if (!state) return 0;
  if (state->load_state.empty() && state->active_state.empty()) std::abort();
  for (const auto* s : {&state->load_state, &state->active_state, &state->sub_state})
    if (s->find('\n') != std::string::npos) std::abort();
  return 0;
}
