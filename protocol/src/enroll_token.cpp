#include "dozor/protocol/enroll_token.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cctype>
#include <stdexcept>

namespace dozor::protocol {
namespace {

constexpr std::string_view kPrefix = "dz1.";
constexpr std::size_t kSecretBytes = 24;  // 32 characters
constexpr std::size_t kPinBytes = 16;     // 22 characters

std::string base64url(const unsigned char* data, std::size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int have = 0;
  for (std::size_t i = 0; i < n; ++i) {
    bits = (bits << 8) | data[i];
    have += 8;
    while (have >= 6) {
      have -= 6;
      out.push_back(kAlphabet[(bits >> have) & 63]);
    }
  }
  if (have > 0) out.push_back(kAlphabet[(bits << (6 - have)) & 63]);
  return out;
}

std::array<unsigned char, SHA256_DIGEST_LENGTH> sha256(std::string_view bytes) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest.data());
  return digest;
}

bool is_base64url(std::string_view s) {
  for (unsigned char c : s)
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
  return true;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : sha256(bytes)) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string ca_pin(std::string_view der) { return base64url(sha256(der).data(), kPinBytes); }

std::string make_enroll_token(std::string_view pin) {
  std::array<unsigned char, kSecretBytes> secret{};
  if (RAND_bytes(secret.data(), static_cast<int>(secret.size())) != 1)
    throw std::runtime_error("no random bytes for a token (RAND_bytes failed)");
  return std::string(kPrefix) + base64url(secret.data(), secret.size()) + "." + std::string(pin);
}

std::optional<EnrollToken> parse_enroll_token(std::string_view text, std::string& message) {
  constexpr std::size_t kSecretChars = (kSecretBytes * 4 + 2) / 3,
                        kPinChars = (kPinBytes * 4 + 2) / 3;
  if (!text.starts_with(kPrefix)) {
    message =
        "not an enrollment token (they start with dz1.; make one with dozorctl enroll create)";
    return std::nullopt;
  }
  text.remove_prefix(kPrefix.size());
  const auto dot = text.find('.');
  EnrollToken t;
  if (dot != std::string_view::npos) {
    t.secret = text.substr(0, dot);
    t.pin = text.substr(dot + 1);
  }
  if (t.secret.size() != kSecretChars || t.pin.size() != kPinChars || !is_base64url(t.secret) ||
      !is_base64url(t.pin)) {
    message = "malformed enrollment token (cut short when copied?)";
    return std::nullopt;
  }
  return t;
}

std::string enroll_token_hash(std::string_view secret) { return sha256_hex(secret); }

}  // namespace dozor::protocol
