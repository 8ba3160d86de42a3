#include "ctl_http.h"

#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <charconv>

#include "dozor/protocol/units.h"
#include "dozor/protocol/version.h"

namespace dozor::ctl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// The API's largest answer is a ticket list; Boost 1.74 mishandles body_limit(boost::none), so the
// cap is a number well above anything the collector sends.
constexpr std::uint64_t kMaxBody = 256ull << 20;

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

bool valid_port(std::string_view p) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  return ec == std::errc() && end == p.data() + p.size() && v >= 1 && v <= 65535;
}

template <class Stream>
asio::awaitable<Reply> exchange(Stream& stream, const http::request<http::string_body>& req) {
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
  auto res = parser.release();
  co_return Reply{res.result_int(), std::string(res.reason()), std::move(res.body())};
}

asio::awaitable<Reply> run(const Url& url, const http::request<http::string_body>& req,
                           ssl::context* tls) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto endpoints = co_await resolver.async_resolve(url.host, url.port, asio::use_awaitable);
  beast::tcp_stream tcp(executor);
  co_await tcp.async_connect(endpoints, asio::use_awaitable);
  if (!tls) co_return co_await exchange(tcp, req);

  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp), *tls);
  // SNI, so that a reverse proxy in front of the collector picks the right certificate.
  SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());
  stream.set_verify_callback(ssl::host_name_verification(url.host));
  co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
  co_return co_await exchange(stream, req);
}

}  // namespace

std::optional<Url> parse_url(std::string_view text, std::string& error) {
  Url url;
  url.text = std::string(text);
  std::string_view rest;
  if (starts_with_nocase(text, "http://")) {
    rest = text.substr(7);
    url.port = "80";
  } else if (starts_with_nocase(text, "https://")) {
    rest = text.substr(8);
    url.tls = true;
    url.port = "443";
  } else {
    error = "expected http://HOST[:PORT] or https://HOST[:PORT], got \"" + url.text + "\"";
    return std::nullopt;
  }
  const auto slash = rest.find('/');
  url.authority = std::string(rest.substr(0, slash));
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (path.find_first_of("?#") != std::string_view::npos) {
    error = "a query or fragment has no place in the API URL \"" + url.text + "\"";
    return std::nullopt;
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.prefix = std::string(path);

  std::string_view auth = url.authority;
  std::string_view port;
  if (auth.find('@') != std::string_view::npos) {
    error = "credentials in the URL are not supported; use --token or --token-file";
    return std::nullopt;
  }
  if (!auth.empty() && auth.front() == '[') {  // [IPv6]:port
    const auto close = auth.find(']');
    if (close == std::string_view::npos) {
      error = "unclosed '[' in \"" + url.text + "\"";
      return std::nullopt;
    }
    url.host = std::string(auth.substr(1, close - 1));
    std::string_view after = auth.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      error = "unexpected text after ']' in \"" + url.text + "\"";
      return std::nullopt;
    }
    if (!after.empty()) port = after.substr(1);
  } else {
    const auto colon = auth.rfind(':');
    url.host = std::string(auth.substr(0, colon));
    if (colon != std::string_view::npos) port = auth.substr(colon + 1);
  }
  if (url.host.empty() || (url.host.find(':') != std::string::npos && auth.front() != '[')) {
    error = "no host (or an IPv6 address without [ ]) in \"" + url.text + "\"";
    return std::nullopt;
  }
  if (!port.empty() || auth.back() == ':') {
    if (!valid_port(port)) {
      error = "bad port in \"" + url.text + "\"";
      return std::nullopt;
    }
    url.port = std::string(port);
  }
  return url;
}

std::string query_escape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Reply fetch(const Url& url, http::verb method, std::string_view target, const std::string& token,
            const std::string* json_body, std::chrono::milliseconds timeout) {
  http::request<http::string_body> req{method, url.prefix + std::string(target), 11};
  req.set(http::field::host, url.authority);
  req.set(http::field::user_agent, std::string("dozorctl/") + kVersion);
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (json_body) {
    req.set(http::field::content_type, "application/json");
    req.body() = *json_body;
  }
  req.prepare_payload();

  std::optional<ssl::context> tls;
  if (url.tls) {
    tls.emplace(ssl::context::tls_client);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls->set_default_verify_paths();
    tls->set_verify_mode(ssl::verify_peer);
  }

  std::optional<Reply> reply;
  std::exception_ptr failure;
  {
    // Declared after everything the coroutine refers to, so that it is destroyed first: a
    // request cut short by the timeout leaves its frame to the io_context's destructor.
    asio::io_context io(1);
    asio::co_spawn(io, run(url, req, tls ? &*tls : nullptr), [&](std::exception_ptr e, Reply r) {
      if (e)
        failure = e;
      else
        reply = std::move(r);
    });
    // One deadline for the whole exchange, the name lookup included.
    io.run_for(timeout);
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const boost::system::system_error& e) {
      throw TransportError(e.code().message());
    } catch (const std::exception& e) {
      throw TransportError(e.what());
    }
  }
  if (!reply) throw TransportError("no answer within " + format_duration(timeout));
  return std::move(*reply);
}

}  // namespace dozor::ctl
