// The desk's part of the HTTP API: tickets and silences.
#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

#include "dozor/protocol/units.h"
#include "http.h"

namespace dozor::server {
namespace {

using collector::Desk;
using nlohmann::json;

constexpr std::string_view kStatuses[] = {"open", "acknowledged", "resolved", "closed", "active"};

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (!s.empty()) {
    auto i = s.find(sep);
    if (i != 0) out.emplace_back(s.substr(0, i));
    if (i == std::string_view::npos) break;
    s.remove_prefix(i + 1);
  }
  return out;
}

std::optional<std::uint64_t> parse_id(std::string_view s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0) return std::nullopt;
  return v;
}

Response json_reply(const json& j, http::status status = http::status::ok) {
  return reply(status, j.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

// `Authorization: Bearer <token>`, or `X-Dozor-Token: <token>` where a proxy in front (basic
// auth) takes the Authorization header for itself.
bool authorized(const Request& req, const std::string& token) {
  if (token.empty()) return false;
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view given = req[http::field::authorization];
  if (given.substr(0, kBearer.size()) == kBearer)
    given.remove_prefix(kBearer.size());
  else
    given = req["X-Dozor-Token"];
  // Constant time, so that the token cannot be guessed byte by byte from response times.
  return given.size() == token.size() &&
         CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

// The body of a write: empty, or a JSON object.
std::optional<json> body_of(const Request& req, std::string& error) {
  if (req.body().empty()) return json::object();
  auto j = json::parse(req.body(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "the body must be a JSON object";
    return std::nullopt;
  }
  return j;
}

std::string text_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Response tickets(Desk& desk, const Request& req) {
  auto q = query_of(req.target());
  Desk::Query query;
  if (auto s = q.find("status"); s != q.end()) {
    query.statuses = split(s->second, ',');
    for (const auto& st : query.statuses)
      if (std::find(std::begin(kStatuses), std::end(kStatuses), st) == std::end(kStatuses))
        return error_reply(http::status::bad_request, "bad_query",
                           "status must be open, acknowledged, resolved, closed or active");
  }
  if (auto s = q.find("site"); s != q.end()) query.site = s->second;
  if (auto l = q.find("limit"); l != q.end()) {
    auto n = parse_id(l->second);
    if (!n) return error_reply(http::status::bad_request, "bad_query", "limit must be 1 or more");
    query.limit = std::min<std::size_t>(*n, 10000);
  }
  json arr = json::array();
  for (const auto& t : desk.tickets(query)) arr.push_back(collector::to_json(t));
  return json_reply({{"tickets", std::move(arr)}});
}

Response ticket_change(Desk& desk, const Request& req, std::uint64_t id, std::string_view verb,
                       double now) {
  std::string error;
  auto body = body_of(req, error);
  if (!body) return error_reply(http::status::bad_request, "bad_json", error);
  const std::string by = text_field(*body, "by"), comment = text_field(*body, "comment");
  const auto change =
      verb == "ack" ? desk.acknowledge(id, by, comment, now) : desk.close(id, by, comment, now);
  if (change == Desk::Change::not_found)
    return error_reply(http::status::not_found, "not_found", "no ticket #" + std::to_string(id));
  auto t = desk.ticket(id);
  if (change == Desk::Change::conflict)
    return error_reply(http::status::conflict, "conflict",
                       "ticket #" + std::to_string(id) + " is " + (t ? t->status : "gone"));
  return json_reply(collector::to_json(*t));
}

Response add_silence(Desk& desk, const Request& req, double now) {
  std::string error;
  auto body = body_of(req, error);
  if (!body) return error_reply(http::status::bad_request, "bad_json", error);
  auto bad = [](std::string message) {
    return error_reply(http::status::bad_request, "invalid_silence", message);
  };
  collector::Silence s;
  if (auto m = body->find("matchers"); m != body->end()) {
    if (!m->is_object()) return bad("matchers must be an object of globs");
    for (const auto& [field, glob] : m->items()) {
      std::string* slot = field == "site"    ? &s.site
                          : field == "agent" ? &s.agent
                          : field == "probe" ? &s.probe
                          : field == "rule"  ? &s.rule
                                             : nullptr;
      if (!slot) return bad("matchers." + field + ": unknown; known: site, agent, probe, rule");
      if (!glob.is_string() || glob.get<std::string>().empty())
        return bad("matchers." + field + ": expected a glob");
      *slot = glob.get<std::string>();
    }
  }
  auto when = [&](const char* key, double& out) -> std::optional<Response> {
    auto it = body->find(key);
    if (it == body->end() || it->is_null()) return std::nullopt;
    auto t = it->is_string() ? parse_timestamp(it->get<std::string>()) : std::nullopt;
    if (!t) return bad(std::string(key) + ": expected an RFC 3339 time");
    out = *t;
    return std::nullopt;
  };
  if (auto r = when("starts_at", s.starts_at)) return *r;
  if (auto r = when("ends_at", s.ends_at)) return *r;
  if (s.starts_at <= 0) s.starts_at = now;
  if (auto d = body->find("duration"); d != body->end()) {
    auto parsed = d->is_string() ? parse_duration(d->get<std::string>()) : std::nullopt;
    if (!parsed || parsed->count() <= 0) return bad("duration: expected e.g. 2h");
    if (s.ends_at > 0) return bad("give ends_at or duration, not both");
    s.ends_at = s.starts_at + std::chrono::duration<double>(*parsed).count();
  }
  if (s.ends_at <= 0) return bad("ends_at or duration is required");
  if (s.ends_at <= s.starts_at) return bad("ends_at must be after starts_at");
  s.comment = text_field(*body, "comment");
  if (s.comment.empty()) return bad("comment is required: say what the planned work is");
  s.created_by = text_field(*body, "created_by");
  return json_reply(collector::to_json(desk.add_silence(s, now), now), http::status::created);
}

}  // namespace

std::map<std::string, std::string> query_of(std::string_view target) {
  std::map<std::string, std::string> q;
  auto mark = target.find('?');
  if (mark == std::string_view::npos) return q;
  std::string_view rest = target.substr(mark + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    auto eq = pair.find('=');
    q[percent_decode(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
  }
  return q;
}

std::optional<Response> refuse_write(const Request& req, const std::string& token) {
  if (token.empty())
    return error_reply(http::status::forbidden, "forbidden",
                       "writes are off: set api.token_file in collector.yaml");
  if (authorized(req, token)) return std::nullopt;
  auto res = error_reply(http::status::unauthorized, "unauthorized",
                         "send Authorization: Bearer <api token> (or X-Dozor-Token: <api token>)");
  res.set(http::field::www_authenticate, "Bearer");
  return res;
}

std::optional<Response> handle_desk_api(Desk& desk, const std::string& token, const Request& req,
                                        double now) {
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  auto parts = split(path, '/');  // api, v1, tickets|silences, [id], [verb]
  if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1" ||
      (parts[2] != "tickets" && parts[2] != "silences"))
    return std::nullopt;
  const bool tickets_path = parts[2] == "tickets";
  const auto method = req.method();
  const bool read = method == http::verb::get || method == http::verb::head;

  std::optional<std::uint64_t> id;
  if (parts.size() >= 4) {
    id = parse_id(parts[3]);
    if (!id)
      return error_reply(
          http::status::not_found, "not_found",
          "no such " + std::string(tickets_path ? "ticket" : "silence") + ": " + parts[3]);
  }
  if (parts.size() > 5 ||
      (parts.size() == 5 && (!tickets_path || (parts[4] != "ack" && parts[4] != "close"))))
    return error_reply(http::status::not_found, "not_found", "no such endpoint");

  // Which methods each path takes.
  std::string_view allow = tickets_path ? (parts.size() == 5 ? "POST" : "GET, HEAD")
                                        : (id ? "DELETE" : "GET, HEAD, POST");
  const std::string method_name(http::to_string(method));
  if (allow.find(method_name) == std::string_view::npos) {
    auto res = error_reply(http::status::method_not_allowed, "method_not_allowed",
                           "use " + std::string(allow));
    res.set(http::field::allow, allow);
    return res;
  }
  if (!read)
    if (auto refused = refuse_write(req, token)) return refused;

  if (tickets_path) {
    if (!id) return tickets(desk, req);
    if (parts.size() == 5) return ticket_change(desk, req, *id, parts[4], now);
    auto t = desk.ticket(*id);
    if (!t)
      return error_reply(http::status::not_found, "not_found", "no ticket #" + std::to_string(*id));
    json j = collector::to_json(*t);
    j["events"] = desk.events(*id);
    return json_reply(j);
  }
  if (method == http::verb::post) return add_silence(desk, req, now);
  if (id) {
    if (!desk.remove_silence(*id, now))
      return error_reply(http::status::not_found, "not_found",
                         "no active silence #" + std::to_string(*id));
    return json_reply({{"id", *id}, {"deleted", true}});
  }
  json arr = json::array();
  for (const auto& s : desk.silences(now)) arr.push_back(collector::to_json(s, now));
  return json_reply({{"silences", std::move(arr)}});
}

}  // namespace dozor::server
