#pragma once

// The TLS profile of wire protocol v1, for every listener and client of dozor's own (the agent's
// uplink, the collector's agent port, the collector's notifiers): TLS 1.3, or TLS 1.2 with ECDHE
// key exchange and AEAD ciphers only. CBC suites (LUCKY13 and kin) and static RSA are off, as
// both ends are ours. Probes do not use it: they must talk to whatever a client site runs.
#include <openssl/ssl.h>

#include <stdexcept>

namespace dozor::protocol {

inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Applies the profile to `ctx`; throws when OpenSSL refuses it (a build without these suites).
inline void apply_tls_profile(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1)
    throw std::runtime_error("OpenSSL refused the TLS profile (TLS 1.2 ECDHE+AEAD, TLS 1.3)");
  // Per-connection read/write buffers are freed while a connection is idle: most agent
  // connections are, between heartbeats.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

}  // namespace dozor::protocol
