#include "dozor/protocol/url.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace dozor {
namespace {

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

std::string HostPort::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

std::optional<HostPort> parse_host_port(const std::string& text, const std::string& default_port,
                                        std::string& why) {
  HostPort out;
  std::string port;
  if (text.starts_with("[")) {
    const std::size_t close = text.find(']');
    if (close == std::string::npos) {
      why = "unterminated [IPv6] address";
      return std::nullopt;
    }
    out.host = text.substr(1, close - 1);
    in6_addr v6{};
    if (inet_pton(AF_INET6, out.host.c_str(), &v6) != 1) {
      why = "'" + out.host + "' is not an IPv6 address";
      return std::nullopt;
    }
    const std::string after = text.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        why = "expected :port after the IPv6 address";
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = text.find(':');
    out.host = text.substr(0, colon);
    if (colon != std::string::npos) port = text.substr(colon + 1);
    for (unsigned char ch : out.host) {
      if (!std::isalnum(ch) && ch != '-' && ch != '.' && ch != '_') {
        why = "invalid character in host '" + out.host + "'";
        return std::nullopt;
      }
    }
  }
  if (out.host.empty()) {
    why = "missing host";
    return std::nullopt;
  }
  if (port.empty()) {
    out.port = default_port;
    return out;
  }
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(),
                                      [](unsigned char ch) { return std::isdigit(ch) != 0; })) {
    why = "port must be 1-65535, got '" + port + "'";
    return std::nullopt;
  }
  const int n = std::stoi(port);
  if (n < 1 || n > 65535) {
    why = "port must be 1-65535, got '" + port + "'";
    return std::nullopt;
  }
  out.port = std::to_string(n);
  return out;
}

std::string HttpUrl::text() const {
  return std::string(tls ? "https://" : "http://") + authority + target;
}

std::string HttpUrl::redacted() const {
  return std::string(tls ? "https://" : "http://") + authority + (target == "/" ? "/" : "/...");
}

std::optional<HttpUrl> parse_http_url(const std::string& text, std::string& why) {
  for (unsigned char ch : text) {
    if (ch <= ' ' || ch == 0x7f) {
      why = "must not contain spaces or control characters";
      return std::nullopt;
    }
  }
  HttpUrl u;
  std::string rest;
  const std::string head = lower(text.substr(0, 8));
  if (head.starts_with("https://")) {
    u.tls = true;
    rest = text.substr(8);
  } else if (head.starts_with("http://")) {
    rest = text.substr(7);
  } else {
    why = "expected an http:// or https:// URL";
    return std::nullopt;
  }
  const std::size_t end = rest.find_first_of("/?#");
  const std::string authority = rest.substr(0, end);
  std::string target = end == std::string::npos ? "" : rest.substr(end);
  if (authority.find('@') != std::string::npos) {
    why = "credentials do not belong in the URL";
    return std::nullopt;
  }
  const std::string default_port = u.tls ? "443" : "80";
  auto address = parse_host_port(authority, default_port, why);
  if (!address) return std::nullopt;
  u.address = *address;
  if (const std::size_t hash = target.find('#'); hash != std::string::npos) target.resize(hash);
  if (target.empty() || target[0] != '/') target.insert(0, "/");
  u.target = target;
  const bool v6 = u.address.host.find(':') != std::string::npos;
  u.authority = v6 ? "[" + u.address.host + "]" : u.address.host;
  if (u.address.port != default_port) u.authority += ":" + u.address.port;
  return u;
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(4 * ((bytes.size() + 2) / 3));
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t group = 0;
    for (std::size_t k = 0; k < 3; ++k)
      group = group << 8 | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    for (std::size_t k = 0; k < 4; ++k)
      out += k <= n ? kAlphabet[(group >> (18 - 6 * k)) & 0x3F] : '=';
  }
  return out;
}

}  // namespace dozor
