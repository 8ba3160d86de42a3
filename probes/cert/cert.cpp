#include "cert/cert.h"

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "dozor/probes/tls.h"
#include "dozor/protocol/units.h"

namespace dozor::probes::cert {
namespace {

namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using boost::asio::redirect_error;
using boost::asio::use_awaitable;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr OptionSpec kOptions[] = {
    {"host", OptionKind::string, "", true, "host name or address of the TLS server"},
    {"port", OptionKind::integer, "443", false, "TCP port"},
    {"server_name", OptionKind::string, "", false,
     "name to send as SNI and to verify the certificate for; default: host"},
    {"ca", OptionKind::string, "", false,
     "PEM file of CAs to verify the chain against; default: system CAs"},
    {"verify", OptionKind::boolean, "true", false,
     "an untrusted chain or a name mismatch is critical; false: report expiry only"},
    {"warning", OptionKind::number, "21", false,
     "warning when the certificate expires within this many days"},
    {"critical", OptionKind::number, "7", false,
     "critical when the certificate expires within this many days"},
};

struct Config {
  std::string host;
  std::string port;
  std::string server_name;  // SNI and the name verified; a literal IP is verified, not sent
  bool verify = true;
  double warning = 21, critical = 7;
  std::shared_ptr<ssl::context> tls;
};

// "CN=erp.example, O=..." in one line, as an operator reads it; bounded, it comes from the peer.
std::string one_line(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return "?";
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(bio);
  // XN_FLAG_ONELINE spells "CN = x"; the tighter "CN=x" is what people paste.
  for (std::size_t at; (at = out.find(" = ")) != std::string::npos;) out.replace(at, 3, "=");
  if (out.size() > 120) out = out.substr(0, 120) + "...";
  return out.empty() ? "(empty)" : out;
}

// The calendar date of an ASN1_TIME in UTC, e.g. 2026-12-05.
std::string date_of(const ASN1_TIME* time) {
  std::tm tm{};
  if (!ASN1_TIME_to_tm(time, &tm)) return "?";
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string day_count(double days) {
  const long n = std::lround(std::floor(days));
  return std::to_string(n) + (n == 1 ? " day" : " days");
}

class CertProbe final : public Probe {
 public:
  explicit CertProbe(Config c) : c_(std::move(c)) {}

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    const auto start = Clock::now();
    const std::string where =
        (c_.host.find(':') != std::string::npos ? "[" + c_.host + "]" : c_.host) + ":" + c_.port;
    error_code ec;

    beast::ssl_stream<beast::tcp_stream> stream(ctx.io, *c_.tls);
    // One deadline for resolve, connect and handshake: a peer that accepts and never answers the
    // handshake ends the run at the timeout.
    beast::get_lowest_layer(stream).expires_at(start + ctx.timeout);
    asio::ip::tcp::resolver resolver(ctx.io);
    const auto endpoints =
        co_await resolver.async_resolve(c_.host, c_.port, redirect_error(use_awaitable, ec));
    if (ec)
      co_return make_result(Status::critical, "cannot resolve " + c_.host + ": " + ec.message());

    SSL* ssl_handle = stream.native_handle();
    if (tls::is_ip_address(c_.server_name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), c_.server_name.c_str());
    } else if (!SSL_set_tlsext_host_name(ssl_handle, c_.server_name.c_str()) ||
               !SSL_set1_host(ssl_handle, c_.server_name.c_str())) {
      co_return make_result(Status::unknown, "cannot set TLS server name " + c_.server_name);
    }

    co_await beast::get_lowest_layer(stream).async_connect(endpoints,
                                                           redirect_error(use_awaitable, ec));
    if (ec)
      co_return make_result(Status::critical, "connect to " + where + ": " + describe(ec, ctx));
    co_await stream.async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
    const double took = seconds_between(start, Clock::now());
    if (ec)
      co_return make_result(Status::critical,
                            "TLS handshake with " + where + ": " + describe(ec, ctx));
    beast::get_lowest_layer(stream).socket().close(ec);

    X509* cert = SSL_get0_peer_certificate(ssl_handle);
    if (!cert) co_return make_result(Status::critical, where + " sent no certificate");
    co_return evaluate(where, cert, tls::verify_failure(ssl_handle), took);
  }

 private:
  static std::string describe(const error_code& ec, const ProbeContext& ctx) {
    if (ec == beast::error::timeout) return "timed out after " + format_duration(ctx.timeout);
    return ec.message();
  }

  Result evaluate(const std::string& where, X509* cert, const std::string& verify_failure,
                  double handshake_seconds) const {
    Result r;
    const auto left = tls::days_until(X509_get0_notAfter(cert));
    const auto from = tls::days_until(X509_get0_notBefore(cert));
    if (!left || !from)
      return make_result(Status::critical, where + " certificate has unreadable validity dates");
    r.metrics.push_back({"expires_in_seconds", *left * 86400, "s"});
    r.metrics.push_back({"handshake_seconds", handshake_seconds, "s"});

    std::string summary = where + " certificate " + one_line(X509_get_subject_name(cert)) + " ";
    const std::string until = date_of(X509_get0_notAfter(cert));
    Status s = Status::ok;
    if (*from > 0) {
      s = Status::critical;
      summary += "not valid before " + date_of(X509_get0_notBefore(cert)) + " (in " +
                 day_count(std::ceil(*from)) + ")";
    } else if (*left < 0) {
      s = Status::critical;
      summary += "expired " + day_count(-*left) + " ago (" + until + ")";
    } else {
      s = threshold_status_below(*left, c_.warning, c_.critical);
      summary += "expires in " + day_count(*left) + " (" + until + ")";
    }
    summary += ", issuer " + one_line(X509_get_issuer_name(cert));
    // OpenSSL's reason as it words it, so that it can be searched for, even where it repeats
    // the dates above ("certificate has expired").
    if (!verify_failure.empty() && c_.verify) {
      s = Status::critical;
      summary += ", not trusted: " + verify_failure;
    }
    r.status = s;
    r.summary = std::move(summary);
    return r;
  }

  Config c_;
};

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.host = o.string("host");
  if (c.host.empty()) o.error("host", "must not be empty");
  const auto port = o.integer("port");
  if (port < 1 || port > 65535) o.error("port", "expected 1-65535");
  c.port = std::to_string(port);
  c.server_name = o.has("server_name") ? o.string("server_name") : c.host;
  if (c.server_name.empty()) o.error("server_name", "must not be empty");
  c.verify = o.boolean("verify");
  c.warning = o.number("warning");
  c.critical = o.number("critical");
  if (c.critical > c.warning) o.error("critical", "must not exceed warning (days left)");

  const std::string ca = o.string("ca");
  c.tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (const std::string why = tls::load_trust(*c.tls, ca); !why.empty())
    o.error(ca.empty() ? "host" : "ca", why);
  // The handshake always completes so that an untrusted or expired certificate can still be
  // read; OpenSSL verifies all the same and keeps its verdict for evaluate().
  c.tls->set_verify_mode(ssl::verify_none);
  return std::make_unique<CertProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"cert", "TLS certificate of a server: days to expiry, trusted chain, matching name",
          kOptions, &make};
}

}  // namespace dozor::probes::cert
