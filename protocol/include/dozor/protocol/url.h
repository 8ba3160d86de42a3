#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dozor {

/// A host and port as written in configs: "host", "host:port", "[v6]:port".
struct HostPort {
  std::string host;  // without brackets: what the resolver and the certificate check get
  std::string port;
  std::string text() const;  // host:port, [v6]:port
};

/// nullopt and `why` when malformed; `default_port` when none is written.
std::optional<HostPort> parse_host_port(const std::string& text, const std::string& default_port,
                                        std::string& why);

struct HttpUrl {
  bool tls = false;
  HostPort address;
  std::string target;     // path and query, at least "/"
  std::string authority;  // host[:port] as the Host header spells it
  std::string text() const;
  /// For logs and stored errors: the path and query left out, since receivers (chat webhooks,
  /// paging services) carry their secret there: "https://hooks.example/...".
  std::string redacted() const;
};

/// An http:// or https:// URL; nullopt and `why` when malformed, of another scheme, or carrying
/// credentials (they belong in the caller's own options, not in a URL that gets logged).
std::optional<HttpUrl> parse_http_url(const std::string& text, std::string& why);

/// RFC 4648 base64 with padding: HTTP Basic credentials, MIME encoded-words in mail headers.
std::string base64(std::string_view bytes);

}  // namespace dozor
