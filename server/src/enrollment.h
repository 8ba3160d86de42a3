#pragma once

#include <openssl/x509.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dozor/collector/metrics.h"
#include "dozor/collector/store.h"
#include "dozor/server/config.h"
#include "http.h"
#include "issuer.h"
#include "rate_limit.h"

namespace dozor::server {

/// Enrollment of agents with one-time tokens and renewal of their certificates, signed by the
/// issuing CA of the `enroll` section; and the API over tokens, issued certificates and the CRL.
/// Lives on the server's I/O thread; not thread-safe.
class Enrollment {
 public:
  /// Revokes `serials` of `agent` (what an enrollment with a --replace token does to the
  /// agent's earlier certificates); the server closes their connections.
  using Revoke =
      std::function<void(const std::string& agent, const std::vector<std::string>& serials,
                         const std::string& by, const std::string& comment)>;

  /// Throws std::runtime_error when the enroll section's files cannot be used.
  Enrollment(const ServerConfig& config, collector::Store& store, collector::Metrics& metrics,
             Revoke revoke);

  /// GET /v1/enroll/ca: the CA agents trust for the collector. Public; rate-limited.
  Response ca(const std::string& source, double now);
  /// POST /v1/enroll, from a connection that presented no certificate.
  Response enroll(const Request& req, const std::string& source, double now);
  /// POST /v1/renew over mutual TLS: a new certificate for the key `presented` holds.
  Response renew(const std::string& agent, const std::string& site, X509* presented,
                 const std::string& source, double now);

  /// The API of the HTTP port (the caller checks the API token for writes).
  Response create_token(const Request& req, double now);
  Response tokens(double now);
  Response revoke_token(const std::string& id, double now);
  Response certificates(const std::string& agent);
  Response crl(double now);

 private:
  Response refuse(const std::string& source, http::status status, const std::string& reason,
                  const std::string& message);
  bool within_budget(const std::string& source, double now);

  EnrollSettings settings_;
  collector::Store& store_;
  collector::Metrics& metrics_;
  Revoke revoke_;
  Issuer issuer_;
  std::string ca_pem_;  // the first certificate of tls.ca: what agents trust for the collector
  std::string pin_;
  RateLimit per_source_, per_agent_, total_;  // requests a minute
};

}  // namespace dozor::server
