#pragma once

// What the http and cert probes share about a server's TLS certificate.

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <optional>
#include <string>

namespace dozor::probes::tls {

/// True when `host` is a literal IPv4 or IPv6 address (RFC 6066: not a server name for SNI).
bool is_ip_address(const std::string& host);

/// Makes `context` trust the system CAs, or only those of the PEM file `ca` when not empty.
/// Returns why that failed ("no PEM certificates in ca.pem"), empty on success.
std::string load_trust(boost::asio::ssl::context& context, const std::string& ca);

/// Days from now until `time` (a certificate's notAfter or notBefore), negative when past;
/// nullopt when OpenSSL cannot read it.
std::optional<double> days_until(const ASN1_TIME* time);

/// OpenSSL's reason why the peer's certificate did not verify, e.g. "hostname mismatch";
/// empty when it verified.
std::string verify_failure(const SSL* ssl);

}  // namespace dozor::probes::tls
