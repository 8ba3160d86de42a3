#include "dozor/probes/tls.h"

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <fstream>
#include <system_error>

namespace dozor::probes::tls {

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

std::string load_trust(boost::asio::ssl::context& context, const std::string& ca) {
  boost::system::error_code ec;
  if (ca.empty()) {
    context.set_default_verify_paths(ec);
    return ec ? "cannot load the system CA certificates: " + ec.message() : "";
  }
  if (std::ifstream file(ca); !file)
    return "cannot read " + ca + ": " + std::generic_category().message(errno);
  context.load_verify_file(ca, ec);
  return ec ? "no PEM certificates in " + ca : "";
}

std::optional<double> days_until(const ASN1_TIME* time) {
  int days = 0, secs = 0;
  if (!time || !ASN1_TIME_diff(&days, &secs, nullptr, time)) return std::nullopt;
  return days + secs / 86400.0;
}

std::string verify_failure(const SSL* ssl) {
  const long result = SSL_get_verify_result(ssl);
  return result == X509_V_OK ? "" : X509_verify_cert_error_string(result);
}

}  // namespace dozor::probes::tls
