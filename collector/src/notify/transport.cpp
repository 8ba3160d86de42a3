#include "transport.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "dozor/protocol/tls_profile.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/version.h"

namespace dozor::collector::notify {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using asio::redirect_error;
using asio::use_awaitable;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

// What of a refusal's body goes into the error: enough to see "rate limited" or a proxy's page.
constexpr std::size_t kExcerpt = 200;

bool is_ip_address(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// One line of printable text, so that an HTML error page reads as a short message in the log.
std::string excerpt(const std::string& body, bool more) {
  std::string out;
  bool space = false;
  for (unsigned char ch : body) {
    if (ch < ' ' || ch == 0x7f) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += static_cast<char>(ch);
  }
  if (out.size() > kExcerpt) {
    out.resize(kExcerpt);
    more = true;
  }
  if (more) out += "...";
  return out;
}

struct Reply {
  unsigned status = 0;
  std::string reason;
  std::string excerpt;
};

template <class Stream>
asio::awaitable<Reply> exchange(Stream& stream, const http::request<http::string_body>& req,
                                const std::string& where, std::chrono::milliseconds timeout) {
  error_code ec;
  co_await http::async_write(stream, req, redirect_error(use_awaitable, ec));
  if (ec) throw std::runtime_error("send to " + where + ": " + describe(ec, timeout));

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  // Only the start of the body is kept. (Not boost::none: Beast 1.74 compares the
  // Content-Length against the optional, and none loses every comparison.)
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  co_await http::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
  if (ec) throw std::runtime_error("read reply from " + where + ": " + describe(ec, timeout));
  Reply r;
  r.status = parser.get().result_int();
  r.reason = std::string(parser.get().reason());
  if (r.status / 100 == 2) co_return r;  // the body of a success says nothing we need

  // The excerpt is best effort: a receiver that stops mid-body has still refused.
  char chunk[2 * kExcerpt];
  std::string body;
  while (!parser.is_done() && body.size() < sizeof chunk) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    co_await http::async_read(stream, buffer, parser, redirect_error(use_awaitable, ec));
    if (ec && ec != http::error::need_buffer) break;
    body.append(chunk, sizeof chunk - parser.get().body().size);
  }
  r.excerpt = excerpt(body, !parser.is_done());
  co_return r;
}

}  // namespace

HttpUrl http_url(const std::string& text) {
  std::string why;
  auto url = parse_http_url(text, why);
  if (!url) throw std::runtime_error("url " + text + ": " + why);
  return *url;
}

std::string describe(const error_code& ec, std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout || ec == asio::error::operation_aborted)
    return "timed out after " + format_duration(timeout);
  return ec.message();
}

asio::awaitable<void> connect(beast::tcp_stream& stream, const HostPort& to, Deadline deadline,
                              std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  // getaddrinfo can hang on a dead DNS server; the timer cancels the wait for it. Shared, because
  // a timer that fired just before the cancel below still runs its handler afterwards.
  auto resolver = std::make_shared<asio::ip::tcp::resolver>(ex);
  asio::steady_timer timer(ex);
  timer.expires_at(deadline);
  timer.async_wait([resolver](error_code ec) {
    if (!ec) resolver->cancel();
  });
  error_code ec;
  auto endpoints =
      co_await resolver->async_resolve(to.host, to.port, redirect_error(use_awaitable, ec));
  timer.cancel();
  if (ec) throw std::runtime_error("cannot resolve " + to.host + ": " + describe(ec, timeout));
  stream.expires_at(deadline);
  co_await stream.async_connect(endpoints, redirect_error(use_awaitable, ec));
  if (ec) throw std::runtime_error("connect to " + to.text() + ": " + describe(ec, timeout));
}

HttpPost::HttpPost(HttpUrl url, const std::string& ca_file, std::chrono::milliseconds timeout)
    : url_(std::move(url)), timeout_(timeout) {
  if (!url_.tls) return;
  tls_ = std::make_shared<ssl::context>(ssl::context::tls_client);
  protocol::apply_tls_profile(tls_->native_handle());
  error_code ec;
  if (ca_file.empty()) {
    tls_->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("cannot load the system CA certificates: " + ec.message());
  } else if (std::ifstream file(ca_file); !file) {
    throw std::runtime_error("cannot read " + ca_file + ": " +
                             std::generic_category().message(errno));
  } else {
    tls_->load_verify_file(ca_file, ec);
    if (ec) throw std::runtime_error("no PEM certificates in " + ca_file);
  }
  tls_->set_verify_mode(ssl::verify_peer);
}

asio::awaitable<void> HttpPost::operator()(
    const std::string& body, const std::map<std::string, std::string>& headers) const {
  auto ex = co_await asio::this_coro::executor;
  const auto deadline = Clock::now() + timeout_;
  const std::string where = url_.redacted();  // errors are logged and stored

  http::request<http::string_body> req{http::verb::post, url_.target, 11};
  req.set(http::field::host, url_.authority);
  req.set(http::field::user_agent, std::string("dozor-collector/") + kVersion);
  req.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.set(http::field::connection, "close");
  req.body() = body;
  req.prepare_payload();

  Reply reply;
  error_code ec;
  if (!tls_) {
    beast::tcp_stream stream(ex);
    co_await connect(stream, url_.address, deadline, timeout_);
    reply = co_await exchange(stream, req, where, timeout_);
    stream.socket().close(ec);
  } else {
    beast::ssl_stream<beast::tcp_stream> stream(ex, *tls_);
    const std::string& host = url_.address.host;
    SSL* ssl = stream.native_handle();
    // OpenSSL checks the name itself, so that a mismatch is named in the verify result. A literal
    // IP address is no server name (RFC 6066) and is checked against the IP SANs.
    if (is_ip_address(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else if (!SSL_set_tlsext_host_name(ssl, host.c_str()) || !SSL_set1_host(ssl, host.c_str())) {
      throw std::runtime_error("cannot set TLS server name " + host);
    }
    co_await connect(beast::get_lowest_layer(stream), url_.address, deadline, timeout_);
    co_await stream.async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
    if (ec) {
      std::string why = describe(ec, timeout_);
      if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK)
        why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      throw std::runtime_error("TLS handshake with " + url_.address.text() + ": " + why);
    }
    reply = co_await exchange(stream, req, where, timeout_);
    beast::get_lowest_layer(stream).socket().close(ec);
  }
  if (reply.status / 100 != 2) {
    std::string what = "HTTP " + std::to_string(reply.status);
    if (!reply.reason.empty()) what += " " + reply.reason;
    what += " from " + where;
    if (!reply.excerpt.empty()) what += ": " + reply.excerpt;
    throw std::runtime_error(what);
  }
}

}  // namespace dozor::collector::notify
