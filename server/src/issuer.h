#pragma once

// The collector's issuing CA: signs agents' certificates at enrollment and renewal, and the CRL
// of revoked ones. Its key is configured at the collector (enroll.ca_key); the root can stay
// offline when enroll.ca_cert is an intermediate signed by it.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dozor::server {

/// A certificate signing request whose signature checked: its subject's CN and OU, and its key.
struct SigningRequest {
  std::string cn, ou;
  std::shared_ptr<EVP_PKEY> key;
};

/// Reads a PEM CSR; nullopt with a message when it is not one, its signature is wrong, or its
/// key is not one dozor takes (EC P-256/P-384, RSA 2048-8192 bits).
std::optional<SigningRequest> read_csr(std::string_view pem, std::string& message);

/// A certificate serial in hex, as openssl prints it.
std::string serial_hex(const ASN1_INTEGER* serial);

class Issuer {
 public:
  /// `cert_file`: the issuing CA's certificate, then its chain up to (not including) the root;
  /// `key_file`: its private key. `trusted_ca`: the collector's tls.ca, which must trust what
  /// this issues. Throws std::runtime_error saying what is wrong.
  Issuer(const std::string& cert_file, const std::string& key_file, const std::string& trusted_ca,
         std::chrono::seconds lifetime);
  ~Issuer();
  Issuer(const Issuer&) = delete;
  Issuer& operator=(const Issuer&) = delete;

  struct Certificate {
    std::string pem;     // the certificate, then the issuing chain
    std::string serial;  // hex, as openssl prints it
    double not_after = 0;
  };
  /// A clientAuth certificate for `key` with CN=agent, OU=site, valid from `now` for the
  /// configured lifetime.
  Certificate issue(EVP_PKEY* key, const std::string& agent, const std::string& site,
                    double now) const;
  /// A CRL listing the `revoked` serials (hex) with when they were revoked, valid a day from
  /// `now`.
  std::string crl(const std::vector<std::pair<std::string, double>>& revoked, double now) const;
  std::chrono::seconds lifetime() const { return lifetime_; }

 private:
  X509* cert_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  std::string chain_pem_;  // what follows an issued certificate
  std::chrono::seconds lifetime_;
};

}  // namespace dozor::server
