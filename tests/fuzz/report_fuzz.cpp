// Fuzz target for everything the collector and the agent decode from the network: report bodies
// (collector), and acks and refusals (agent). A body either decodes or yields an error naming a
// field; what decodes survives a round trip through the encoder unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dozor/protocol/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dozor::protocol;
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  auto report = decode_report(body);
  if (report) {
    auto again = decode_report(encode(*report.value));
    if (!again || !(*again.value == *report.value)) std::abort();
  } else if (report.error.message.empty()) {
    std::abort();  // every refusal says why
  }

  auto ack = decode_ack(body);
  if (ack && decode_ack(encode(*ack.value)).value != ack.value) std::abort();

  // A refusal, which the agent reads to find the one result it must drop.
  auto refusal = decode_error(body);
  if (refusal) {
    auto again = decode_error(encode_error(refusal.value->reason, refusal.value->message));
    if (!again || again.value->reason != refusal.value->reason ||
        again.value->message != refusal.value->message)
      std::abort();
  }

  auto results = decode_results(body);
  if (results && decode_results(encode_results(*results.value)).value != results.value)
    std::abort();
  return 0;
}
