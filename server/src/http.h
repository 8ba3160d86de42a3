#pragma once

// Request and response types of the collector's HTTP front, and the replies it builds.
#include <boost/beast/http.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "dozor/collector/desk.h"
#include "dozor/protocol/codec.h"
#include "dozor/protocol/version.h"

namespace dozor::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

inline Response reply(http::status status, std::string body,
                      std::string_view content_type = "application/json") {
  Response res{status, 11};
  res.set(http::field::server, std::string("dozor-collector/") + kVersion);
  res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  return res;
}

/// `{"error": message, "reason": reason}`, the shape of every refusal.
inline Response error_reply(http::status status, std::string_view reason,
                            std::string_view message) {
  return reply(status, protocol::encode_error(reason, message) + "\n");
}

/// The query of a request target, %XX and + decoded: "/x?site=acme&limit=5" -> {site, limit}.
std::map<std::string, std::string> query_of(std::string_view target);

/// The refusal of a write without the API token (403 when writes are off, 401 with a wrong or
/// missing token); nullopt when the request may write.
std::optional<Response> refuse_write(const Request& req, const std::string& token);

/// Answers /api/v1/tickets... and /api/v1/silences...; nullopt for any other path. Writes need
/// `Authorization: Bearer <token>`; with no token configured they are refused.
std::optional<Response> handle_desk_api(collector::Desk& desk, const std::string& token,
                                        const Request& req, double now);

}  // namespace dozor::server
