#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "probe_runner.h"
#include "temp_dir.h"

namespace dozor::probes {
namespace {

namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using namespace probe_testing;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// ---- a CA and server certificates made at test time ---------------------------------------------

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

std::string pem(X509* x) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

/// A certificate for `cn` valid from `from_days` to `to_days` relative to now, signed by
/// `issuer` (itself when null: a CA).
struct Issued {
  Key key{nullptr, &EVP_PKEY_free};
  Cert cert{nullptr, &X509_free};
};

Issued issue(const std::string& cn, double from_days, double to_days, const Issued* issuer,
             const std::string& san = "") {
  Issued out;
  out.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  out.cert.reset(X509_new());
  if (!out.key || !out.cert) throw std::runtime_error("cannot allocate key or certificate");
  X509* x = out.cert.get();
  static long serial = 1;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), static_cast<long>(from_days * 86400));
  X509_gmtime_adj(X509_getm_notAfter(x), static_cast<long>(to_days * 86400));
  X509_set_pubkey(x, out.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer ? issuer->cert.get() : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, signer, x, nullptr, nullptr, 0);
  std::vector<std::pair<int, std::string>> exts = {{NID_subject_key_identifier, "hash"}};
  if (issuer) {
    exts.push_back({NID_basic_constraints, "critical,CA:FALSE"});
    exts.push_back({NID_ext_key_usage, "serverAuth"});
    exts.push_back({NID_subject_alt_name, san});
  } else {
    exts.push_back({NID_basic_constraints, "critical,CA:TRUE"});
    exts.push_back({NID_key_usage, "critical,keyCertSign,cRLSign"});
  }
  for (const auto& [nid, value] : exts) {
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &v3, nid, value.c_str());
    if (!ext) throw std::runtime_error("bad extension " + value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  EVP_PKEY* signing_key = issuer ? issuer->key.get() : out.key.get();
  if (!X509_sign(x, signing_key, EVP_sha256())) throw std::runtime_error("cannot sign");
  return out;
}

// ---- a real TLS server on 127.0.0.1:<ephemeral> -------------------------------------------------

/// Completes the server side of each handshake with `leaf`, then closes; remembers the SNI name
/// of the last handshake.
class TlsPeer {
 public:
  explicit TlsPeer(const Issued& leaf) : tls_(ssl::context::tls_server) {
    const std::string cert = pem(leaf.cert.get()), key = pem(leaf.key.get());
    tls_.use_certificate_chain(asio::buffer(cert));
    tls_.use_private_key(asio::buffer(key), ssl::context::pem);
    // Read while the ClientHello is processed, before the server's reply: the client cannot
    // have finished its handshake before it is recorded. OpenSSL calls it with or without SNI.
    SSL_CTX_set_tlsext_servername_callback(tls_.native_handle(), &TlsPeer::on_client_hello);
    SSL_CTX_set_tlsext_servername_arg(tls_.native_handle(), this);
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    asio::co_spawn(peer_.ioc(), serve(), asio::detached);
  }
  ~TlsPeer() { peer_.stop(); }
  int port() const { return acceptor_.local_endpoint().port(); }
  /// The server name the last client sent ("" for none), as OpenSSL read it from the ClientHello.
  std::string server_name() {
    std::lock_guard lock(mutex_);
    return server_name_;
  }

 private:
  asio::awaitable<void> serve() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      ssl::stream<tcp::socket> stream(std::move(socket), tls_);
      co_await stream.async_handshake(ssl::stream_base::server,
                                      asio::redirect_error(asio::use_awaitable, ec));
      stream.next_layer().close(ec);
    }
  }

  static int on_client_hello(SSL* ssl, int*, void* self) {
    auto* peer = static_cast<TlsPeer*>(self);
    const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    std::lock_guard lock(peer->mutex_);
    peer->server_name_ = sni ? sni : "";
    return SSL_TLSEXT_ERR_OK;
  }

  PeerThread peer_;  // first: stopped before the acceptor and context go away
  ssl::context tls_;
  tcp::acceptor acceptor_{peer_.ioc()};
  std::mutex mutex_;
  std::string server_name_;
};

class CertProbe : public ::testing::Test {
 protected:
  // The site's own CA, as a client with an internal PKI has.
  CertProbe() : ca_(issue("dozor test CA", -1, 3650, nullptr)) {
    ca_file_ = dir_.write("ca.pem", pem(ca_.cert.get()));
  }
  Issued leaf(double to_days, double from_days = -1.0 / 24) {
    return issue("localhost", from_days, to_days, &ca_, "DNS:localhost,IP:127.0.0.1");
  }
  std::string yaml(int port, const std::string& extra = "") {
    return "{ name: c, type: cert, host: 127.0.0.1, port: " + std::to_string(port) +
           ", ca: " + ca_file_ + ", timeout: 2s, interval: 10s" + extra + " }";
  }

  TempDir dir_;
  Issued ca_;
  std::string ca_file_;
};

TEST_F(CertProbe, ThirtyDaysIsOk) {
  TlsPeer peer(leaf(30.5));
  const Result r = run(yaml(peer.port())).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  ASSERT_TRUE(metric(r, "expires_in_seconds")) << to_text(r);
  EXPECT_GT((*metric(r, "expires_in_seconds") / 86400), 30.4);
  EXPECT_LE((*metric(r, "expires_in_seconds") / 86400), 30.5);
  ASSERT_TRUE(metric(r, "handshake_seconds"));
  EXPECT_GE(*metric(r, "handshake_seconds"), 0.0);
  EXPECT_LT(*metric(r, "handshake_seconds"), 2.0);
  const std::string where = "127.0.0.1:" + std::to_string(peer.port());
  EXPECT_TRUE(r.summary.starts_with(where + " certificate CN=localhost expires in 30 days (20"))
      << r.summary;
  EXPECT_TRUE(r.summary.ends_with("), issuer CN=dozor test CA")) << r.summary;
}

TEST_F(CertProbe, ServerNameIsSentAndVerified) {
  TlsPeer peer(leaf(30.5));
  Result r = run(yaml(peer.port(), ", server_name: localhost")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(peer.server_name(), "localhost");

  // A name the certificate does not carry is sent all the same, and fails verification.
  r = run(yaml(peer.port(), ", server_name: erp.example")).result;
  EXPECT_EQ(peer.server_name(), "erp.example");
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "not trusted: hostname mismatch")) << r.summary;

  // An IP address is verified (the leaf names 127.0.0.1), never sent as SNI (RFC 6066, 3).
  r = run(yaml(peer.port())).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(peer.server_name(), "");
}

TEST_F(CertProbe, ExpiryThresholds) {
  {
    TlsPeer peer(leaf(10.5));
    const Result r = run(yaml(peer.port())).result;
    EXPECT_EQ(r.status, Status::warning) << to_text(r);
    EXPECT_TRUE(contains(r.summary, "expires in 10 days")) << r.summary;
  }
  {
    TlsPeer peer(leaf(3.5));
    const Result r = run(yaml(peer.port())).result;
    EXPECT_EQ(r.status, Status::critical) << to_text(r);
    EXPECT_TRUE(contains(r.summary, "expires in 3 days")) << r.summary;
  }
  {
    // Thresholds are the operator's: 3.5 days left is fine with critical 1, warning 2.
    TlsPeer peer(leaf(3.5));
    const Result r = run(yaml(peer.port(), ", warning: 2, critical: 1")).result;
    EXPECT_EQ(r.status, Status::ok) << to_text(r);
  }
}

TEST_F(CertProbe, ExpiredIsCritical) {
  TlsPeer peer(leaf(-2, -30));
  Result r = run(yaml(peer.port())).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  ASSERT_TRUE(metric(r, "expires_in_seconds"));
  EXPECT_LT((*metric(r, "expires_in_seconds") / 86400), -1.9);
  EXPECT_TRUE(contains(r.summary, "expired 2 days ago")) << r.summary;
  EXPECT_TRUE(contains(r.summary, "not trusted: certificate has expired")) << r.summary;
  // Without verification expiry still counts.
  r = run(yaml(peer.port(), ", verify: false")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "expired 2 days ago")) << r.summary;
  EXPECT_FALSE(contains(r.summary, "not trusted")) << r.summary;
}

TEST_F(CertProbe, NotYetValidIsCritical) {
  TlsPeer peer(leaf(60, 2));
  const Result r = run(yaml(peer.port(), ", verify: false")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "not valid before 20")) << r.summary;
  EXPECT_TRUE(contains(r.summary, "(in 2 days)")) << r.summary;
}

TEST_F(CertProbe, WrongNameIsCritical) {
  TlsPeer peer(leaf(30.5));
  Result r = run(yaml(peer.port(), ", server_name: erp.example.com")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "not trusted: hostname mismatch")) << r.summary;
  ASSERT_TRUE(metric(r, "expires_in_seconds")) << "the certificate is still read";
  r = run(yaml(peer.port(), ", server_name: 10.0.0.1")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "IP address mismatch")) << r.summary;
  r = run(yaml(peer.port(), ", server_name: erp.example.com, verify: false")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
}

TEST_F(CertProbe, UntrustedCaIsCritical) {
  const Issued other_ca = issue("someone else's CA", -1, 3650, nullptr);
  const Issued stranger = issue("localhost", -1, 30, &other_ca, "DNS:localhost,IP:127.0.0.1");
  TlsPeer peer(stranger);
  Result r = run(yaml(peer.port())).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "not trusted: unable to get local issuer certificate"))
      << r.summary;
  EXPECT_TRUE(contains(r.summary, "issuer CN=someone else's CA")) << r.summary;
  r = run(yaml(peer.port(), ", verify: false")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
}

TEST_F(CertProbe, ClosedPortIsCritical) {
  int port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor probe_port(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    port = probe_port.local_endpoint().port();
  }
  const Result r = run(yaml(port)).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST_F(CertProbe, SilentPeerTimesOut) {
  // A listening socket nobody accepts from: the kernel completes the TCP handshake, and the
  // ClientHello is never answered.
  asio::io_context ioc;
  tcp::acceptor silent(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = silent.local_endpoint().port();
  const ProbeRun run_ =
      run("{ name: c, type: cert, host: 127.0.0.1, port: " + std::to_string(port) +
          ", ca: " + ca_file_ + ", timeout: 500ms, interval: 10s }");
  EXPECT_EQ(run_.result.status, Status::critical) << to_text(run_.result);
  EXPECT_EQ(run_.result.summary,
            "TLS handshake with 127.0.0.1:" + std::to_string(port) + ": timed out after 500ms");
  EXPECT_LT(run_.seconds, 0.5 + 2.0);
}

TEST_F(CertProbe, ConfigErrors) {
  auto errors = config_errors("{ name: c, type: cert, host: h, ca: /nonexistent/ca.pem }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].ca: cannot read /nonexistent/ca.pem: No such file"))
      << errors[0];
  errors = config_errors("{ name: c, type: cert, host: h, port: 70000 }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].port: expected 1-65535")) << errors[0];
  errors = config_errors("{ name: c, type: cert, host: h, warning: 5, critical: 10 }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].critical: must not exceed warning")) << errors[0];
  errors = config_errors("{ name: c, type: cert }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].host: missing required key")) << errors[0];
}

}  // namespace
}  // namespace dozor::probes
