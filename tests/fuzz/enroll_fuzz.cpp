// Fuzz target for what the enrollment endpoints read from strangers (no client certificate
// yet): the request body, the token in it and the CSR; and what the agent reads back. Whatever
// the bytes, each either decodes or says why; a request that decodes survives a round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dozor/protocol/codec.h"
#include "dozor/protocol/enroll_token.h"
#include "issuer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dozor;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string message;

  auto request = protocol::decode_enroll_request(body);
  if (request) {
    auto again = protocol::decode_enroll_request(protocol::encode(*request.value));
    if (!again || again.value->token != request.value->token ||
        again.value->csr != request.value->csr)
      std::abort();
    if (!protocol::parse_enroll_token(request.value->token, message) && message.empty())
      std::abort();
    message.clear();
    if (!server::read_csr(request.value->csr, message) && message.empty()) std::abort();
  } else if (request.error.message.empty()) {
    std::abort();
  }
  // The raw bytes as a token and as a PEM CSR, too.
  message.clear();
  if (auto t = protocol::parse_enroll_token(body, message)) {
    if (t->secret.size() != 32 || t->pin.size() != 22) std::abort();
  } else if (message.empty()) {
    std::abort();
  }
  message.clear();
  if (!server::read_csr(body, message) && message.empty()) std::abort();

  auto issued = protocol::decode_issued(body);
  if (issued) {
    auto again = protocol::decode_issued(protocol::encode(*issued.value));
    if (!again || again.value->certificate != issued.value->certificate) std::abort();
  }
  return 0;
}
