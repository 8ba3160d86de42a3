#include "dozor/agent/enroll.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <iostream>

#include "dozor/protocol/codec.h"
#include "dozor/protocol/enroll_token.h"
#include "dozor/protocol/tls_profile.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/version.h"
#include "dozor/protocol/x509.h"
#include "identity.h"

namespace dozor::agent {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::redirect_error;
using asio::use_awaitable;

constexpr auto kTimeout = std::chrono::seconds(15);

struct Failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One request to the collector's agent port, without a client certificate. `ca_pem` empty: the
// collector's certificate is not checked (only to fetch the CA, which is checked against the pin
// before anything secret is sent).
http::response<http::string_body> exchange(const CollectorLink& link, const std::string& ca_pem,
                                           http::verb method, const std::string& target,
                                           const std::string& body) {
  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  protocol::apply_tls_profile(ctx.native_handle());
  if (!ca_pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(ca_pem));
    ctx.set_verify_mode(ssl::verify_peer);
  } else {
    ctx.set_verify_mode(ssl::verify_none);
  }
  http::response<http::string_body> res;
  std::string error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        boost::system::error_code ec;
        asio::ip::tcp::resolver resolver(io);
        auto endpoints = co_await resolver.async_resolve(link.host, link.port,
                                                         redirect_error(use_awaitable, ec));
        if (ec) {
          error = "cannot resolve " + link.host + ": " + ec.message();
          co_return;
        }
        beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
        boost::system::error_code not_ip;
        asio::ip::make_address(link.host, not_ip);
        if (not_ip) SSL_set_tlsext_host_name(stream.native_handle(), link.host.c_str());
        if (!ca_pem.empty()) stream.set_verify_callback(ssl::host_name_verification(link.host));
        beast::get_lowest_layer(stream).expires_after(kTimeout);
        co_await beast::get_lowest_layer(stream).async_connect(endpoints,
                                                               redirect_error(use_awaitable, ec));
        if (ec) {
          error = "connect to " + link.host + ":" + link.port + ": " + ec.message();
          co_return;
        }
        co_await stream.async_handshake(ssl::stream_base::client,
                                        redirect_error(use_awaitable, ec));
        if (ec) {
          error = "TLS handshake with " + link.host + ":" + link.port + ": " + ec.message();
          co_return;
        }
        http::request<http::string_body> req{method, link.path_prefix + target, 11};
        req.set(http::field::host, link.host);
        req.set(http::field::user_agent, std::string("dozor-agent/") + kVersion);
        if (!body.empty()) req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.keep_alive(false);
        req.prepare_payload();
        co_await http::async_write(stream, req, redirect_error(use_awaitable, ec));
        beast::flat_buffer buffer;
        if (!ec) co_await http::async_read(stream, buffer, res, redirect_error(use_awaitable, ec));
        if (ec) error = std::string(target) + ": " + ec.message();
      },
      asio::detached);
  io.run();
  if (!error.empty()) throw Failed(error);
  return res;
}

std::string refusal(const http::response<http::string_body>& res) {
  if (const auto e = protocol::decode_error(res.body()))
    return e.value->message + " (" + e.value->reason + ")";
  return std::to_string(res.result_int()) + " " + std::string(res.reason());
}

// "AB:cd:..." or "abcd...": lowercase hex without separators.
std::string normalized_fingerprint(std::string text) {
  std::erase(text, ':');
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The certificate of `bundle` the pin (and the fingerprint, when given) names, as PEM; the
// others are not trusted, whatever the collector sent with it.
std::string pinned_ca(const std::string& bundle, const std::string& pin,
                      const std::string& fingerprint) {
  for (const auto& cert : protocol::x509::read_certs(bundle)) {
    const std::string der = protocol::x509::der(cert.get());
    if (protocol::ca_pin(der) == pin &&
        (fingerprint.empty() || protocol::sha256_hex(der) == fingerprint))
      return protocol::x509::pem(cert.get());
  }
  return {};
}

}  // namespace

int enroll(const AgentConfig& config, const EnrollOptions& o) {
  std::string message;
  const auto token = protocol::parse_enroll_token(o.token, message);
  if (!token) {
    std::cerr << "dozor-agent enroll: --token: " << message << "\n";
    return 2;
  }
  const std::string fingerprint = normalized_fingerprint(o.ca_sha256);
  if (!fingerprint.empty() &&
      (fingerprint.size() != 64 ||
       fingerprint.find_first_not_of("0123456789abcdef") != std::string::npos)) {
    std::cerr << "dozor-agent enroll: --ca-sha256: expected 64 hex digits (openssl x509 "
                 "-fingerprint -sha256)\n";
    return 2;
  }
  CollectorLink link = config.collector;
  if (!o.collector.empty() && !parse_collector_url(o.collector, link, message)) {
    std::cerr << "dozor-agent enroll: --collector: " << message << "\n";
    return 2;
  }
  const auto& files = config.collector;
  if (!o.force && std::filesystem::exists(files.cert)) {
    std::cerr << "dozor-agent enroll: " << files.cert
              << " exists: this machine has a certificate already. --force replaces it and its "
                 "key (the collector then knows this machine only by the new one)\n";
    return 1;
  }
  try {
    // 1. The collector's CA, checked against the pin before the token goes anywhere.
    const auto ca_res = exchange(link, "", http::verb::get, "/v1/enroll/ca", "");
    if (ca_res.result() != http::status::ok)
      throw Failed("the collector refused to show its CA: " + refusal(ca_res));
    const std::string ca = pinned_ca(ca_res.body(), token->pin, fingerprint);
    if (ca.empty())
      throw Failed("the CA " + link.url + " shows does not match the token's" +
                   (fingerprint.empty() ? " pin" : " pin and --ca-sha256") +
                   ": this is not the collector that made the token, or something in between "
                   "poses as it. Nothing was sent.");

    // 2. A key made here, and the token with a CSR over TLS verified with that CA.
    const std::string key = make_key();
    const protocol::EnrollRequest request{o.token, make_csr(key, o.agent)};
    const auto res = exchange(link, ca, http::verb::post, "/v1/enroll", protocol::encode(request));
    if (res.result() != http::status::ok) throw Failed("enrollment refused: " + refusal(res));
    const auto issued = protocol::decode_issued(res.body());
    if (!issued) throw Failed("unreadable answer: " + issued.error.to_string());
    if (!key_matches(issued.value->certificate, key))
      throw Failed("the certificate received is not for the key made here");

    // 3. Key first, then certificate, then CA: a crash in between leaves no certificate that
    // names a key not yet on disk.
    write_atomically(files.key, key, 0640);
    write_atomically(files.cert, issued.value->certificate, 0644);
    write_atomically(files.ca, issued.value->ca.empty() ? ca : issued.value->ca, 0644);
    std::cout << "enrolled as agent " << issued.value->agent << " at site " << issued.value->site
              << "; certificate valid until " << format_timestamp(issued.value->not_after)
              << " (renewed by the agent itself)\n"
              << "wrote " << files.key << " (private key, made here; it never left this machine)\n"
              << "wrote " << files.cert << "\n"
              << "wrote " << files.ca << "\n";
    if (config.site != issued.value->site)
      std::cout << "note: agent.site in the config is '" << config.site
                << "'; the certificate's site '" << issued.value->site << "' is what counts\n";
    if (link.url != config.collector.url)
      std::cout << "note: collector.url in the config is " << config.collector.url << "; set it to "
                << link.url << "\n";
    std::cout << "next: dozor-agent --check-config, then systemctl restart dozor-agent\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "dozor-agent enroll: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace dozor::agent
