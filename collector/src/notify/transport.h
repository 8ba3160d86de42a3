#pragma once

// What the notifiers share: addresses from the config, a TCP connection bounded by a deadline,
// and one HTTP(S) POST.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "dozor/protocol/url.h"

namespace dozor::collector::notify {

namespace asio = boost::asio;
using Deadline = std::chrono::steady_clock::time_point;

using dozor::HostPort;
using dozor::HttpUrl;

/// The same for a URL parse_notifiers has checked; throws std::runtime_error when malformed.
HttpUrl http_url(const std::string& text);

/// Resolves and connects `stream`, which expires at `deadline` (also the later operations on it).
/// Throws std::runtime_error naming the address and why.
asio::awaitable<void> connect(boost::beast::tcp_stream& stream, const HostPort& to,
                              Deadline deadline, std::chrono::milliseconds timeout);

/// "timed out after 10s" for beast's timeout, else the error's message.
std::string describe(const boost::system::error_code& ec, std::chrono::milliseconds timeout);

/// POSTs to one URL over a fresh connection each time (notifications are rare, and a receiver
/// behind a proxy may drop idle connections at any moment). Not thread-safe; one at a time.
class HttpPost {
 public:
  /// Loads the CA to verify an https receiver: `ca_file`, or the system's when empty. Throws
  /// std::runtime_error when it cannot.
  HttpPost(HttpUrl url, const std::string& ca_file, std::chrono::milliseconds timeout);

  /// Any 2xx returns; anything else throws std::runtime_error naming the status and the start of
  /// the body, or what failed (connect, TLS handshake, timeout).
  asio::awaitable<void> operator()(const std::string& body,
                                   const std::map<std::string, std::string>& headers) const;
  const HttpUrl& url() const { return url_; }

 private:
  HttpUrl url_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<asio::ssl::context> tls_;  // https only
};

}  // namespace dozor::collector::notify
