#pragma once

// The agent's TLS identity on disk: its key, made here and never sent anywhere; its
// certificate, from enrollment and renewal; the CA it trusts for the collector.
#include <optional>
#include <string>

namespace dozor::agent {

/// A new EC P-256 private key, PEM.
std::string make_key();
/// A certificate signing request for `key_pem`, with CN=cn when cn is not empty (the collector
/// fills in the id its token names otherwise).
std::string make_csr(const std::string& key_pem, const std::string& cn);
/// True when the first certificate of `cert_pem` is for the key `key_pem`.
bool key_matches(const std::string& cert_pem, const std::string& key_pem);

/// When the first certificate of `pem` becomes valid and expires (unix seconds).
struct Validity {
  double not_before = 0, not_after = 0;
};
std::optional<Validity> validity(const std::string& pem);

/// Writes `bytes` to `path` through a temporary file in the same folder (fsynced, then renamed
/// over `path`), so that a reader or a crash sees the old file or the new one, never half of
/// one. The file gets `mode` and the folder's owner and group (an agent run as root at
/// enrollment leaves files the service's user can read and renew). Throws std::runtime_error.
void write_atomically(const std::string& path, const std::string& bytes, unsigned mode);

/// The whole file; empty when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace dozor::agent
