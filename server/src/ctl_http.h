// dozorctl's HTTP transport: one request per call, no keep-alive, bounded by a timeout.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace dozor::ctl {

/// Where the collector's API is: http(s)://HOST[:PORT][/PREFIX] (a prefix for a reverse proxy).
struct Url {
  bool tls = false;
  std::string host;       // without IPv6 brackets: what the resolver and TLS name checks take
  std::string port;       // "9180"; the scheme's default when the URL names none
  std::string authority;  // host[:port] as written: the Host header
  std::string prefix;     // "" or "/path" without a trailing slash
  std::string text;       // the URL as given, for messages
};

/// nullopt and `error` set when `text` is not an http:// or https:// URL of that shape.
std::optional<Url> parse_url(std::string_view text, std::string& error);

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay as they are).
std::string query_escape(std::string_view value);

struct Reply {
  unsigned status = 0;
  std::string reason;  // the status line's phrase, for errors whose body says nothing
  std::string body;
};

/// No HTTP answer came: the name did not resolve, the connection was refused or reset, TLS
/// failed, or the timeout ran out. what() says which, without the URL.
struct TransportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Sends one request to url.prefix + target and reads the whole answer within `timeout`
/// (resolve, connect, TLS, write and read together). An https:// URL is verified against the
/// system's trust store (or SSL_CERT_FILE / SSL_CERT_DIR). Throws TransportError.
Reply fetch(const Url& url, boost::beast::http::verb method, std::string_view target,
            const std::string& token, const std::string* json_body,
            std::chrono::milliseconds timeout);

}  // namespace dozor::ctl
