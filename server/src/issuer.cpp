#include "issuer.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cmath>
#include <ctime>
#include <stdexcept>

#include "dozor/protocol/x509.h"

namespace dozor::server {
namespace {

using protocol::x509::Bio;
using protocol::x509::Cert;
using protocol::x509::Freer;
using protocol::x509::memory;
using protocol::x509::Req;
using Crl = std::unique_ptr<X509_CRL, Freer<X509_CRL, X509_CRL_free>>;
using Bn = std::unique_ptr<BIGNUM, Freer<BIGNUM, BN_free>>;
using Store = std::unique_ptr<X509_STORE, Freer<X509_STORE, X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Freer<X509_STORE_CTX, X509_STORE_CTX_free>>;
using Asn1Time = std::unique_ptr<ASN1_TIME, Freer<ASN1_TIME, ASN1_TIME_free>>;

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string text_of(X509_NAME* name, int nid) {
  char buf[256];
  const int n = X509_NAME_get_text_by_NID(name, nid, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// dozor's agents: EC on the curves of the TLS profile, or RSA of a sane size.
bool acceptable_key(EVP_PKEY* key, std::string& message) {
  if (EVP_PKEY_is_a(key, "EC")) {
    char curve[64] = {};
    std::size_t len = 0;
    EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof curve, &len);
    const std::string_view c(curve, len);
    if (c == "prime256v1" || c == "P-256" || c == "secp384r1" || c == "P-384") return true;
    message = "EC key on curve '" + std::string(c) + "'; use P-256 or P-384";
    return false;
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits >= 2048 && bits <= 8192) return true;
    message = "RSA key of " + std::to_string(bits) + " bits; use 2048-8192";
    return false;
  }
  message = "key type not accepted; use EC P-256 (or P-384, RSA 2048+)";
  return false;
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (!ext || X509_add_ext(cert, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    throw std::runtime_error("certificate extension " + std::string(OBJ_nid2sn(nid)) + ": " +
                             openssl_error());
  }
  X509_EXTENSION_free(ext);
}

std::string read_file_bytes(const std::string& path, const char* what) {
  Bio bio(BIO_new_file(path.c_str(), "rb"));
  if (!bio) throw std::runtime_error(std::string(what) + " " + path + ": cannot read");
  std::string out;
  char buf[4096];
  int n;
  while ((n = BIO_read(bio.get(), buf, sizeof buf)) > 0)
    out.append(buf, static_cast<std::size_t>(n));
  return out;
}

}  // namespace

std::string serial_hex(const ASN1_INTEGER* serial) {
  std::string out;
  if (Bn bn{ASN1_INTEGER_to_BN(serial, nullptr)}) {
    if (char* hex = BN_bn2hex(bn.get())) {
      out = hex;
      OPENSSL_free(hex);
    }
  }
  return out;
}

std::optional<SigningRequest> read_csr(std::string_view pem, std::string& message) {
  auto bio = memory(pem);
  Req req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!req) {
    message = "csr: not a PEM certificate signing request";
    return std::nullopt;
  }
  EVP_PKEY* key = X509_REQ_get_pubkey(req.get());  // a reference we own
  if (!key) {
    ERR_clear_error();
    message = "csr: no public key";
    return std::nullopt;
  }
  SigningRequest out;
  out.key.reset(key, EVP_PKEY_free);
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    message = "csr: its signature does not match its key";
    return std::nullopt;
  }
  if (!acceptable_key(key, message)) {
    message = "csr: " + message;
    return std::nullopt;
  }
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  out.cn = text_of(subject, NID_commonName);
  out.ou = text_of(subject, NID_organizationalUnitName);
  ERR_clear_error();
  return out;
}

Issuer::Issuer(const std::string& cert_file, const std::string& key_file,
               const std::string& trusted_ca, std::chrono::seconds lifetime)
    : lifetime_(lifetime) {
  const std::string pem = read_file_bytes(cert_file, "enroll.ca_cert");
  std::vector<Cert> chain = protocol::x509::read_certs(pem);
  if (chain.empty())
    throw std::runtime_error("enroll.ca_cert " + cert_file + ": no PEM certificate in it");
  if (X509_check_ca(chain[0].get()) < 1)
    throw std::runtime_error("enroll.ca_cert " + cert_file + ": not a CA certificate");
  {
    const std::string key_pem = read_file_bytes(key_file, "enroll.ca_key");
    auto bio = memory(key_pem);
    key_ = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    ERR_clear_error();
  }
  if (!key_) throw std::runtime_error("enroll.ca_key " + key_file + ": not a PEM private key");
  if (X509_check_private_key(chain[0].get(), key_) != 1) {
    ERR_clear_error();
    throw std::runtime_error("enroll.ca_key " + key_file + " is not the key of " + cert_file);
  }
  // What this issues must pass the collector's own check of agents, or every agent enrolled
  // would be refused at its first report.
  Store store(X509_STORE_new());
  if (X509_STORE_load_file(store.get(), trusted_ca.c_str()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("tls.ca " + trusted_ca + ": cannot read");
  }
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
  StoreCtx ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted);
  const bool trusted = X509_verify_cert(ctx.get()) == 1;
  const int error = X509_STORE_CTX_get_error(ctx.get());
  sk_X509_free(untrusted);
  ERR_clear_error();
  if (!trusted)
    throw std::runtime_error("enroll.ca_cert " + cert_file + " does not chain to tls.ca " +
                             trusted_ca + " (" + X509_verify_cert_error_string(error) +
                             "): the collector would refuse the agents it enrolls");
  // The chain agents present after their certificate: the issuing CA when it is an
  // intermediate, and whatever follows it in the file; never the root itself.
  for (const auto& c : chain)
    if (X509_check_issued(c.get(), c.get()) != X509_V_OK)
      chain_pem_ += protocol::x509::pem(c.get());
  cert_ = chain[0].release();
}

Issuer::~Issuer() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

Issuer::Certificate Issuer::issue(EVP_PKEY* key, const std::string& agent, const std::string& site,
                                  double now) const {
  Cert cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  // 16 random bytes, top bit clear: positive, at most 16 octets, as dozor-certs makes them.
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("RAND_bytes failed");
  raw[0] &= 0x7f;
  Bn bn(BN_bin2bn(raw, sizeof raw, nullptr));
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  const auto start = static_cast<std::time_t>(std::floor(now));
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), start);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), start + lifetime_.count());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(agent.c_str()), -1, -1, 0);
  if (!site.empty())
    X509_NAME_add_entry_by_NID(name, NID_organizationalUnitName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(site.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_));
  X509_set_pubkey(cert.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert_, cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
  add_extension(cert.get(), &ctx, NID_ext_key_usage, "clientAuth");
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert.get(), key_, EVP_sha256()) <= 0)
    throw std::runtime_error("signing a certificate: " + openssl_error());
  return {protocol::x509::pem(cert.get()) + chain_pem_,
          serial_hex(X509_get0_serialNumber(cert.get())),
          static_cast<double>(start + lifetime_.count())};
}

std::string Issuer::crl(const std::vector<std::pair<std::string, double>>& revoked,
                        double now) const {
  Crl crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);  // v2
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert_));
  const auto at = static_cast<std::time_t>(std::floor(now));
  Asn1Time last(ASN1_TIME_set(nullptr, at)), next(ASN1_TIME_set(nullptr, at + 86400));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (const auto& [hex, revoked_at] : revoked) {
    BIGNUM* raw = nullptr;
    if (BN_hex2bn(&raw, hex.c_str()) == 0) continue;
    Bn bn(raw);
    X509_REVOKED* entry = X509_REVOKED_new();
    ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn.get(), nullptr);
    Asn1Time when(ASN1_TIME_set(nullptr, static_cast<std::time_t>(revoked_at)));
    X509_REVOKED_set_serialNumber(entry, serial);
    X509_REVOKED_set_revocationDate(entry, when.get());
    ASN1_INTEGER_free(serial);
    X509_CRL_add0_revoked(crl.get(), entry);
  }
  X509_CRL_sort(crl.get());
  // A CRL number that only grows: the time of issue.
  ASN1_INTEGER* number = ASN1_INTEGER_new();
  ASN1_INTEGER_set_int64(number, static_cast<std::int64_t>(at));
  X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number, 0, 0);
  ASN1_INTEGER_free(number);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert_, nullptr, nullptr, crl.get(), 0);
  if (X509_EXTENSION* aki =
          X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always")) {
    X509_CRL_add_ext(crl.get(), aki, -1);
    X509_EXTENSION_free(aki);
  }
  ERR_clear_error();
  if (X509_CRL_sign(crl.get(), key_, EVP_sha256()) <= 0)
    throw std::runtime_error("signing the CRL: " + openssl_error());
  Bio out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_CRL(out.get(), crl.get());
  return protocol::x509::text(out.get());
}

}  // namespace dozor::server
