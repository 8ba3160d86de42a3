#pragma once

// One-time enrollment tokens, as `dozorctl enroll create` prints them and `dozor-agent enroll`
// reads them: "dz1.<secret>.<pin>". The secret is 24 random bytes; the collector keeps only
// its SHA-256. The pin is the first 16 bytes of the SHA-256 of the CA certificate (DER) agents
// trust for the collector, so that a token and the collector's URL are all a site needs: the
// agent checks the CA it is shown against the pin before it sends the token anywhere (as
// Elasticsearch's enrollment tokens carry the CA's fingerprint). All base64url, no padding.
#include <optional>
#include <string>
#include <string_view>

namespace dozor::protocol {

struct EnrollToken {
  std::string secret;
  std::string pin;
};

/// SHA-256 of `bytes`, lowercase hex.
std::string sha256_hex(std::string_view bytes);
/// The pin of a CA certificate, from its DER bytes.
std::string ca_pin(std::string_view der);
/// A fresh token for the CA whose pin is `pin`.
std::string make_enroll_token(std::string_view pin);
/// Splits a token; nullopt with a message when it is not one.
std::optional<EnrollToken> parse_enroll_token(std::string_view text, std::string& message);
/// What the collector stores of a token: the SHA-256 of its secret, hex.
std::string enroll_token_hash(std::string_view secret);

}  // namespace dozor::protocol
