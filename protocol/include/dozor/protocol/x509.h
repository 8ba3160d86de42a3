#pragma once

// Owners and conversions around OpenSSL's certificate types, for the parts of dozor that make,
// read and check certificates: the collector's issuing CA and the agent's enrollment.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dozor::protocol::x509 {

template <class T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using Bio = std::unique_ptr<BIO, Freer<BIO, BIO_free_all>>;
using Cert = std::unique_ptr<X509, Freer<X509, X509_free>>;
using Key = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY, EVP_PKEY_free>>;
using Req = std::unique_ptr<X509_REQ, Freer<X509_REQ, X509_REQ_free>>;

/// A read-only memory BIO over `bytes` (which must outlive it).
inline Bio memory(std::string_view bytes) {
  return Bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

/// What a memory BIO holds.
inline std::string text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline std::string pem(X509* cert) {
  Bio out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(out.get(), cert);
  return text(out.get());
}

inline std::string der(X509* cert) {
  unsigned char* bytes = nullptr;
  const int n = i2d_X509(cert, &bytes);
  std::string out(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(n > 0 ? n : 0));
  OPENSSL_free(bytes);
  return out;
}

/// Every PEM certificate of `text`, in order; what follows the last one is ignored.
inline std::vector<Cert> read_certs(std::string_view pem_text) {
  std::vector<Cert> out;
  auto bio = memory(pem_text);
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ERR_clear_error();  // the end of the text reads as an error
  return out;
}

}  // namespace dozor::protocol::x509
