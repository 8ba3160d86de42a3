#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <stdexcept>

#include "probe_runner.h"
#include "temp_dir.h"
#include "test_cert.h"

namespace dozor::probes {
namespace {

namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using namespace probe_testing;
using test_tls::make_cert;
using test_tls::TestCert;

// ---- a real HTTP(S) server on 127.0.0.1:<ephemeral>
// ----------------------------------------------

class HttpPeer {
 public:
  using Request = bhttp::request<bhttp::string_body>;
  using Response = bhttp::response<bhttp::string_body>;
  using Handler = std::function<Response(const Request&)>;
  struct Seen {
    Request request;
    std::string server_name;  // SNI, empty when the client sent none
  };

  /// `handler` answers each request on the peer's thread; without one the peer reads the request
  /// and never answers.
  explicit HttpPeer(Handler handler, const TestCert* cert = nullptr)
      : handler_(std::move(handler)), acceptor_(peer_.ioc()) {
    if (cert) {
      tls_.emplace(ssl::context::tls_server);
      tls_->use_certificate_chain(asio::buffer(cert->cert_pem));
      tls_->use_private_key(asio::buffer(cert->key_pem), ssl::context::pem);
    }
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    asio::co_spawn(peer_.ioc(), serve(), asio::detached);
  }
  ~HttpPeer() { peer_.stop(); }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& path = "/", const std::string& host = "127.0.0.1") const {
    return std::string(tls_ ? "https" : "http") + "://" + host + ":" + std::to_string(port()) +
           path;
  }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  asio::awaitable<void> serve() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(peer_.ioc(), session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    if (!tls_) co_return co_await exchange(socket, "");
    ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
    boost::system::error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server,
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
    co_await exchange(stream, sni ? sni : "");
  }

  template <class Stream>
  asio::awaitable<void> exchange(Stream& stream, std::string sni) {
    boost::system::error_code ec;
    boost::beast::flat_buffer buffer;
    Request req;
    co_await bhttp::async_read(stream, buffer, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    {
      std::lock_guard lock(mutex_);
      seen_.push_back({req, sni});
    }
    if (!handler_) {
      asio::steady_timer never(stream.get_executor(), asio::steady_timer::time_point::max());
      co_await never.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    Response res = handler_(req);
    res.keep_alive(false);
    if (req.method() == bhttp::verb::head) {
      const auto length = res.body().size();
      res.body().clear();
      res.content_length(length);
    } else {
      res.prepare_payload();
    }
    co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    boost::beast::get_lowest_layer(stream).close(ec);
  }

  Handler handler_;
  std::optional<ssl::context> tls_;
  PeerThread peer_;
  tcp::acceptor acceptor_;
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
};

HttpPeer::Handler reply(unsigned status, std::string body, std::string type = "text/plain") {
  return [=](const HttpPeer::Request&) {
    HttpPeer::Response res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::content_type, type);
    res.body() = body;
    return res;
  };
}

std::string yaml(const std::string& url, const std::string& extra = "") {
  return "{ name: web, type: http, url: '" + url + "', interval: 10s, timeout: 3s" + extra + " }";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- plain HTTP -------------------------------------------------------------------------------

TEST(HttpProbe, Status200IsOk) {
  HttpPeer peer(reply(200, "hello dozor"));
  const Result r = run(yaml(peer.url("/health?full=1"))).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("HTTP 200 in ")) << r.summary;
  EXPECT_EQ(metric(r, "status_code"), 200);
  EXPECT_EQ(metric(r, "body_bytes"), 11);
  ASSERT_TRUE(metric(r, "response_seconds"));
  EXPECT_GE(*metric(r, "response_seconds"), 0.0);
  EXPECT_LT(*metric(r, "response_seconds"), 3.0);
  EXPECT_FALSE(metric(r, "cert_expires_in_seconds"));

  const auto seen = peer.seen();
  ASSERT_EQ(seen.size(), 1u);
  const auto& req = seen[0].request;
  EXPECT_EQ(req.method(), bhttp::verb::get);
  EXPECT_EQ(req.target(), "/health?full=1");
  EXPECT_EQ(req[bhttp::field::host], "127.0.0.1:" + std::to_string(peer.port()));
  EXPECT_TRUE(req[bhttp::field::user_agent].starts_with("dozor-agent/"));
  EXPECT_TRUE(req[bhttp::field::authorization].empty());
}

TEST(HttpProbe, HostHeaderOverride) {
  HttpPeer peer(reply(200, "ok"));
  EXPECT_EQ(run(yaml(peer.url(), ", host_header: erp.example.com")).result.status, Status::ok);
  ASSERT_EQ(peer.seen().size(), 1u);
  EXPECT_EQ(peer.seen()[0].request[bhttp::field::host], "erp.example.com");
}

TEST(HttpProbe, UnexpectedStatusIsCritical) {
  HttpPeer peer(reply(503, "maintenance"));
  Result r = run(yaml(peer.url())).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "HTTP 503 in ")) << r.summary;
  EXPECT_TRUE(contains(r.summary, "expected 200")) << r.summary;
  EXPECT_EQ(metric(r, "status_code"), 503);

  r = run(yaml(peer.url(), ", expect_status: 503")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
}

TEST(HttpProbe, BodyRegexHitAndMiss) {
  HttpPeer peer(reply(200, R"({"status": "ok", "db": "up"})", "application/json"));
  Result r = run(yaml(peer.url(), R"(, expect_body: '"db":\s*"up"')")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);

  r = run(yaml(peer.url(), R"(, expect_body: '"db":\s*"down"')")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, R"(body does not match '"db":\s*"down"')")) << r.summary;
}

TEST(HttpProbe, BodyRegexOnLongLineDoesNotExhaustStack) {
  // std::regex recurses per character a quantifier consumes: "^a+" over one 1 MiB line,
  // searched whole, overflows the stack. Searched in windows it is quick.
  HttpPeer peer(reply(200, std::string(1 << 20, 'a') + " needle"));
  Result r = run(yaml(peer.url(), ", max_body: 2MiB, expect_body: '^a+'")).result;
  EXPECT_EQ(r.status, Status::ok) << r.summary;
  EXPECT_EQ(metric(r, "body_bytes"), (1 << 20) + 7);
  r = run(yaml(peer.url(), ", max_body: 2MiB, expect_body: 'a needle$'")).result;
  EXPECT_EQ(r.status, Status::ok) << r.summary;
  r = run(yaml(peer.url(), ", max_body: 2MiB, expect_body: '^needle'")).result;
  EXPECT_EQ(r.status, Status::critical) << r.summary;  // ^ holds only at the body's start
  r = run(yaml(peer.url(), ", max_body: 2MiB, expect_body: 'a$'")).result;
  EXPECT_EQ(r.status, Status::critical) << r.summary;  // $ holds only at the body's end
}

TEST(HttpProbe, SlowBodyRegexIsBoundedByTimeout) {
  // Backtracking makes this search take about a second; the run must not wait for it.
  HttpPeer peer(reply(200, std::string(16 * 1024, 'a')));
  const ProbeRun timed = run("{ name: web, type: http, url: '" + peer.url() +
                             "', timeout: 300ms, expect_body: 'a+haystack' }");
  EXPECT_EQ(timed.result.status, Status::critical) << to_text(timed.result);
  EXPECT_TRUE(contains(timed.result.summary, "matching expect_body did not finish in time"))
      << timed.result.summary;
  EXPECT_LT(timed.seconds, 0.3 + 2.0);
}

TEST(HttpProbe, BasicAuth) {
  HttpPeer peer([](const HttpPeer::Request& req) {
    // base64("alice:s3cret"), computed independently of the probe.
    const bool good = req[bhttp::field::authorization] == "Basic YWxpY2U6czNjcmV0";
    return reply(good ? 200 : 401, good ? "welcome" : "who are you")(req);
  });
  Result r = run(yaml(peer.url(), ", username: alice, password: s3cret")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);

  ::setenv("DOZOR_TEST_HTTP_PASSWORD", "s3cret", 1);
  r = run(yaml(peer.url(), ", username: alice, password_env: DOZOR_TEST_HTTP_PASSWORD")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);

  r = run(yaml(peer.url(), ", username: alice, password: wrong-s3cret")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "HTTP 401")) << r.summary;
  EXPECT_FALSE(contains(r.summary, "s3cret")) << r.summary;
}

TEST(HttpProbe, Head) {
  HttpPeer peer(reply(200, "a body that HEAD must not read"));
  const Result r = run(yaml(peer.url(), ", method: HEAD")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(metric(r, "body_bytes"), 0);
  ASSERT_EQ(peer.seen().size(), 1u);
  EXPECT_EQ(peer.seen()[0].request.method(), bhttp::verb::head);
}

TEST(HttpProbe, MaxBodyTruncates) {
  HttpPeer peer(reply(200, std::string(100, 'x')));
  const Result r = run(yaml(peer.url(), ", max_body: 10B")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(metric(r, "body_bytes"), 10);
  EXPECT_TRUE(contains(r.summary, "body truncated at 10 bytes")) << r.summary;
}

TEST(HttpProbe, ResponseTimeThresholds) {
  HttpPeer peer(reply(200, "ok"));
  EXPECT_EQ(run(yaml(peer.url(), ", warning: 0")).result.status, Status::warning);
  EXPECT_EQ(run(yaml(peer.url(), ", warning: 0, critical: 0")).result.status, Status::critical);
  EXPECT_EQ(run(yaml(peer.url(), ", warning: 2s, critical: 3s")).result.status, Status::ok);
}

TEST(HttpProbe, SilentServerTimesOut) {
  HttpPeer peer(nullptr);
  const ProbeRun timed =
      run("{ name: web, type: http, url: '" + peer.url() + "', timeout: 500ms }");
  EXPECT_EQ(timed.result.status, Status::critical) << to_text(timed.result);
  EXPECT_TRUE(contains(
      timed.result.summary,
      "read response from 127.0.0.1:" + std::to_string(peer.port()) + ": timed out after 500ms"))
      << timed.result.summary;
  EXPECT_GE(timed.seconds, 0.45);
  EXPECT_LT(timed.seconds, 0.5 + 2.0);
}

TEST(HttpProbe, RefusedIsCritical) {
  unsigned short port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  const Result r = run(yaml("http://127.0.0.1:" + std::to_string(port) + "/")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "connect to 127.0.0.1:" + std::to_string(port) + ": "))
      << r.summary;
  EXPECT_TRUE(contains(r.summary, "refused")) << r.summary;
}

TEST(HttpProbe, ConfigErrors) {
  struct Case {
    std::string extra;
    std::string error;
  };
  const Case cases[] = {
      {"url: 'ftp://host/'", "probes[0].url: expected an http:// or https:// URL"},
      {"url: 'http://'", "probes[0].url: missing host"},
      {"url: 'http://host:99999/'", "probes[0].url: port must be 1-65535"},
      {"url: 'http://[::1/'", "probes[0].url: unterminated [IPv6] address"},
      {"url: 'http://a b/'", "probes[0].url: must not contain spaces"},
      {"url: 'http://u:p@host/'", "probes[0].url: credentials do not belong in the URL"},
      {"url: 'http://h/', expect_body: 'a('", "probes[0].expect_body: invalid regular expression"},
      {"url: 'http://h/', method: POST", "probes[0].method: expected GET or HEAD"},
      {"url: 'http://h/', expect_status: 42", "probes[0].expect_status: expected 100-599"},
      {"url: 'http://h/', username: u, password_env: DOZOR_TEST_SURELY_UNSET",
       "probes[0].password_env: environment variable DOZOR_TEST_SURELY_UNSET is not set"},
      {"url: 'http://h/', password: p", "probes[0].username: a password needs a username"},
      {"url: 'http://h/', ca: /etc/ssl/x.pem", "probes[0].ca: only used with https:// URLs"},
      {"url: 'https://h/', ca: /nonexistent/ca.pem",
       "probes[0].ca: cannot read /nonexistent/ca.pem: No such file or directory"},
      {"url: 'http://h/', tls_verify: maybe", "probes[0].tls_verify: expected true or false"},
  };
  for (const auto& c : cases) {
    const auto errors = config_errors("{ name: web, type: http, " + c.extra + " }");
    ASSERT_EQ(errors.size(), 1u) << c.extra;
    EXPECT_TRUE(contains(errors[0], c.error)) << errors[0];
  }
  TempDir dir;
  const std::string not_pem = dir.write("not.pem", "hello\n");
  const auto errors =
      config_errors("{ name: web, type: http, url: 'https://h/', ca: " + not_pem + " }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].ca: no PEM certificates in " + not_pem)) << errors[0];

  for (const char* good : {"http://[::1]:8080/x", "https://example.com", "HTTP://10.0.0.1",
                           "http://erp-1.local:8080?q=1#frag"}) {
    EXPECT_TRUE(
        config_errors(std::string("{ name: web, type: http, url: '") + good + "' }").empty())
        << good;
  }
}

// ---- HTTPS ----------------------------------------------------------------------------------

class HttpsProbe : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(HttpsProbe, TrustedCertIsOkAndReportsExpiry) {
  const TestCert cert = make_cert(90);
  const std::string ca = dir_.write("ca.pem", cert.cert_pem);
  HttpPeer peer(reply(200, "secure hello"), &cert);
  const Result r = run(yaml(peer.url(), ", ca: " + ca)).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  ASSERT_TRUE(metric(r, "cert_expires_in_seconds"));
  EXPECT_GT((*metric(r, "cert_expires_in_seconds") / 86400), 89.9);
  EXPECT_LE((*metric(r, "cert_expires_in_seconds") / 86400), 90.0);
  EXPECT_TRUE(contains(r.summary, "cert expires in ")) << r.summary;
  EXPECT_EQ(metric(r, "body_bytes"), 12);
  ASSERT_EQ(peer.seen().size(), 1u);
  EXPECT_EQ(peer.seen()[0].server_name, "");  // no SNI for an IP address (RFC 6066)
}

TEST_F(HttpsProbe, HostNameGetsSniAndVerifies) {
  const TestCert cert = make_cert(90);
  const std::string ca = dir_.write("ca.pem", cert.cert_pem);
  HttpPeer peer(reply(200, "hi"), &cert);
  const Result r = run(yaml(peer.url("/", "localhost"), ", ca: " + ca)).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  ASSERT_EQ(peer.seen().size(), 1u);
  EXPECT_EQ(peer.seen()[0].server_name, "localhost");
}

TEST_F(HttpsProbe, CertExpiryThresholds) {
  const TestCert soon = make_cert(20);
  const std::string ca_soon = dir_.write("soon.pem", soon.cert_pem);
  HttpPeer peer_soon(reply(200, "ok"), &soon);
  Result r = run(yaml(peer_soon.url(), ", ca: " + ca_soon)).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  ASSERT_TRUE(metric(r, "cert_expires_in_seconds"));
  EXPECT_GT((*metric(r, "cert_expires_in_seconds") / 86400), 19.9);
  EXPECT_LE((*metric(r, "cert_expires_in_seconds") / 86400), 20.0);
  r = run(yaml(peer_soon.url(),
               ", ca: " + ca_soon + ", cert_warning_days: 10, cert_critical_days: 2"))
          .result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);

  const TestCert very_soon = make_cert(3);
  const std::string ca_very_soon = dir_.write("very-soon.pem", very_soon.cert_pem);
  HttpPeer peer_very_soon(reply(200, "ok"), &very_soon);
  r = run(yaml(peer_very_soon.url(), ", ca: " + ca_very_soon)).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_GT((*metric(r, "cert_expires_in_seconds") / 86400), 2.9);
  EXPECT_LE((*metric(r, "cert_expires_in_seconds") / 86400), 3.0);
}

TEST_F(HttpsProbe, ExpiredCertWithoutVerification) {
  const TestCert cert = make_cert(-2);
  HttpPeer peer(reply(200, "ok"), &cert);
  Result r = run(yaml(peer.url(), ", tls_verify: false")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_LT((*metric(r, "cert_expires_in_seconds") / 86400), -1.9);
  EXPECT_TRUE(contains(r.summary, "cert expired 2.0 d ago")) << r.summary;

  r = run(yaml(peer.url(), ", ca: " + dir_.write("ca.pem", cert.cert_pem))).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "certificate has expired")) << r.summary;
}

TEST_F(HttpsProbe, UntrustedCertIsCritical) {
  const TestCert cert = make_cert(90);
  HttpPeer peer(reply(200, "ok"), &cert);
  Result r = run(yaml(peer.url())).result;  // system CAs do not know our test CA
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "TLS handshake with 127.0.0.1:" + std::to_string(peer.port()) +
                                      ": certificate verify failed"))
      << r.summary;
  EXPECT_TRUE(contains(r.summary, "self-signed certificate")) << r.summary;
  EXPECT_FALSE(metric(r, "status_code"));

  r = run(yaml(peer.url(), ", tls_verify: false")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(metric(r, "cert_expires_in_seconds"));
}

TEST_F(HttpsProbe, HostMismatchIsCritical) {
  const TestCert cert = make_cert(90, "DNS:erp.example.com");
  const std::string ca = dir_.write("ca.pem", cert.cert_pem);
  HttpPeer peer(reply(200, "ok"), &cert);
  Result r = run(yaml(peer.url(), ", ca: " + ca)).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "IP address mismatch")) << r.summary;

  r = run(yaml(peer.url("/", "localhost"), ", ca: " + ca)).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "hostname mismatch")) << r.summary;
}

TEST_F(HttpsProbe, SilentServerTimesOutDuringHandshake) {
  // Listening but never accepting: the kernel completes the connect, nobody reads the hello.
  asio::io_context ioc;
  tcp::acceptor listener(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = listener.local_endpoint().port();
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/";
  const ProbeRun timed = run("{ name: web, type: http, url: '" + url + "', timeout: 500ms }");
  EXPECT_EQ(timed.result.status, Status::critical) << to_text(timed.result);
  EXPECT_TRUE(contains(timed.result.summary,
                       "TLS handshake with 127.0.0.1:" + std::to_string(port) + ": timed out"))
      << timed.result.summary;
  EXPECT_LT(timed.seconds, 0.5 + 2.0);
}

}  // namespace
}  // namespace dozor::probes
