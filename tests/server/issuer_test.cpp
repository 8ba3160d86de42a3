#include "issuer.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_cert.h"

namespace dozor::server {
namespace {

namespace fs = std::filesystem;

std::string write(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

std::string csr(const std::string& subject, const char* algorithm = "EC",
                const char* param = "P-256") {
  EVP_PKEY* key = std::string(algorithm) == "RSA"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024))
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, algorithm, param);
  X509_REQ* req = X509_REQ_new();
  X509_NAME* name = X509_NAME_new();
  if (!subject.empty())
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(subject.c_str()), -1, -1, 0);
  X509_REQ_set_subject_name(req, name);
  X509_REQ_set_pubkey(req, key);
  X509_REQ_sign(req, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  std::string out = test_tls::bio_text(bio);
  BIO_free(bio);
  X509_NAME_free(name);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return out;
}

// `pem` with `from` replaced by `to` inside its DER bytes (same length): signed bytes changed
// after signing.
std::string tampered(const std::string& pem, const std::string& from, const std::string& to) {
  std::string b64;
  std::istringstream lines(pem);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("-----", 0) != 0) b64 += line;
  std::string der(b64.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(der.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  const auto padding = b64.size() - b64.find_last_not_of('=') - 1;
  der.resize(static_cast<std::size_t>(n) - padding);
  der.replace(der.find(from), from.size(), to);
  std::string out(der.size() * 2 + 4, '\0');
  out.resize(static_cast<std::size_t>(EVP_EncodeBlock(
      reinterpret_cast<unsigned char*>(out.data()),
      reinterpret_cast<const unsigned char*>(der.data()), static_cast<int>(der.size()))));
  std::string wrapped = "-----BEGIN CERTIFICATE REQUEST-----\n";
  for (std::size_t i = 0; i < out.size(); i += 64) wrapped += out.substr(i, 64) + "\n";
  return wrapped + "-----END CERTIFICATE REQUEST-----\n";
}

X509* read_cert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return x;
}

class IssuerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dozor-issuer-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    ca_ = test_tls::make_cert(30);
    ca_cert_ = write(dir_ / "ca.pem", ca_.cert_pem);
    ca_key_ = write(dir_ / "ca.key", ca_.key_pem);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  test_tls::TestCert ca_;
  std::string ca_cert_, ca_key_;
};

TEST_F(IssuerTest, IssuesAClientCertificateForTheRequestKeyThatTheCaVerifies) {
  Issuer issuer(ca_cert_, ca_key_, ca_cert_, std::chrono::hours(24 * 30));
  std::string message;
  const auto request = read_csr(csr("whatever-the-agent-asked"), message);
  ASSERT_TRUE(request) << message;
  EXPECT_EQ(request->cn, "whatever-the-agent-asked");
  const auto issued = issuer.issue(request->key.get(), "erp-01", "acme-kyiv", 1'800'000'000);
  X509* cert = read_cert(issued.pem);
  ASSERT_NE(cert, nullptr);
  char cn[64] = {}, ou[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_organizationalUnitName, ou, sizeof ou);
  EXPECT_STREQ(cn, "erp-01");  // the token's, never the request's
  EXPECT_STREQ(ou, "acme-kyiv");
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert), request->key.get()), 1);
  EXPECT_DOUBLE_EQ(issued.not_after, 1'800'000'000 + 30 * 86400.0);
  EXPECT_EQ(X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0), 1);
  EXPECT_NE(X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0), 1);  // cannot pose as a collector
  EXPECT_EQ(X509_check_ca(cert), 0);
  EXPECT_EQ(serial_hex(X509_get0_serialNumber(cert)), issued.serial);
  X509* ca = read_cert(ca_.cert_pem);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(ca)), 1);
  X509_free(ca);
  X509_free(cert);
  EXPECT_NE(issuer.issue(request->key.get(), "erp-01", "acme-kyiv", 1'800'000'000).serial,
            issued.serial);
}

TEST_F(IssuerTest, RefusesARequestThatIsNotOneOrHasAWeakOrForgedKey) {
  std::string message;
  EXPECT_FALSE(read_csr("not pem", message));
  EXPECT_EQ(message, "csr: not a PEM certificate signing request");
  EXPECT_FALSE(read_csr(csr("a", "RSA"), message));
  EXPECT_EQ(message, "csr: RSA key of 1024 bits; use 2048-8192");
  EXPECT_FALSE(read_csr(csr("a", "EC", "secp256k1"), message));
  EXPECT_NE(message.find("curve 'secp256k1'"), std::string::npos) << message;
  EXPECT_FALSE(read_csr(tampered(csr("agent-a"), "agent-a", "agent-b"), message));
  EXPECT_EQ(message, "csr: its signature does not match its key");
  EXPECT_TRUE(read_csr(csr("", "EC", "P-384"), message)) << message;
}

TEST_F(IssuerTest, RefusesACaKeyOrCertificateThatCannotIssueForThisCollector) {
  const auto other = test_tls::make_cert(30);
  const auto other_key = write(dir_ / "other.key", other.key_pem);
  const auto other_cert = write(dir_ / "other.pem", other.cert_pem);
  try {
    Issuer(ca_cert_, other_key, ca_cert_, std::chrono::hours(1));
    FAIL() << "a key of another CA was taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not the key of"), std::string::npos) << e.what();
  }
  try {
    Issuer(other_cert, other_key, ca_cert_, std::chrono::hours(1));
    FAIL() << "a CA that tls.ca does not trust was taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not chain to tls.ca"), std::string::npos)
        << e.what();
  }
}

TEST_F(IssuerTest, TheCrlListsTheRevokedSerialsAndVerifiesWithTheCa) {
  Issuer issuer(ca_cert_, ca_key_, ca_cert_, std::chrono::hours(1));
  const std::string pem = issuer.crl(
      {{"7A2250C5576A2AE43F2663239943CDD8", 1'800'000'000}, {"0A", 1'800'000'100}}, 1'800'000'200);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(crl, nullptr);
  X509* ca = read_cert(ca_.cert_pem);
  EXPECT_EQ(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl);
  ASSERT_EQ(sk_X509_REVOKED_num(revoked), 2);
  std::vector<std::string> serials;
  for (int i = 0; i < 2; ++i)
    serials.push_back(
        serial_hex(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i))));
  std::sort(serials.begin(), serials.end());
  EXPECT_EQ(serials, (std::vector<std::string>{"0A", "7A2250C5576A2AE43F2663239943CDD8"}));
  X509_free(ca);
  X509_CRL_free(crl);
}

}  // namespace
}  // namespace dozor::server
