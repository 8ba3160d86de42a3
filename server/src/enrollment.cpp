#include "enrollment.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>

#include "dozor/protocol/codec.h"
#include "dozor/protocol/enroll_token.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/x509.h"
#include "dozor/server/server.h"

namespace dozor::server {
namespace {

using nlohmann::json;

// Agent ids and sites, as dozor-certs takes them.
bool valid_name(const std::string& s) {
  static const std::regex re("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$");
  return std::regex_match(s, re);
}

struct CaFile {
  std::string pem, der;
};

// The first certificate of `path`, and a check that the collector's own certificate (with the
// chain in its file) verifies against it: agents enrolled trust only that one.
CaFile agents_ca(const std::string& path, const std::string& collector_cert) {
  namespace x509 = protocol::x509;
  auto read = [](const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return x509::read_certs(std::string(std::istreambuf_iterator<char>(in), {}));
  };
  const auto cas = read(path);
  if (cas.empty()) throw std::runtime_error("tls.ca " + path + ": no PEM certificate in it");
  const auto chain = read(collector_cert);
  bool ok = false;
  int error = 0;
  if (!chain.empty()) {
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, cas[0].get());
    STACK_OF(X509)* untrusted = sk_X509_new_null();
    for (const auto& c : chain) sk_X509_push(untrusted, c.get());
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, chain[0].get(), untrusted);
    ok = X509_verify_cert(ctx) == 1;
    error = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    ERR_clear_error();
  }
  if (!ok)
    throw std::runtime_error("tls.cert " + collector_cert + " does not verify against the first " +
                             "certificate of tls.ca " + path + " (" +
                             X509_verify_cert_error_string(error) +
                             "), the one enrolled agents are given to trust");
  return {x509::pem(cas[0].get()), x509::der(cas[0].get())};
}

json token_json(const collector::Store::EnrollToken& t, double now) {
  const char* state = t.revoked_at > 0      ? "revoked"
                      : t.used >= t.uses    ? "used"
                      : t.expires_at <= now ? "expired"
                                            : "active";
  return {{"id", t.id},
          {"agent", t.agent},
          {"site", t.site},
          {"state", state},
          {"uses", t.uses},
          {"used", t.used},
          {"replace", t.replace},
          {"created_at", format_timestamp(t.created_at)},
          {"expires_at", format_timestamp(t.expires_at)},
          {"last_used_at", t.last_used_at > 0 ? json(format_timestamp(t.last_used_at)) : json()},
          {"revoked_at", t.revoked_at > 0 ? json(format_timestamp(t.revoked_at)) : json()},
          {"by", t.by},
          {"comment", t.comment}};
}

constexpr std::size_t kMaxSources = 4096;  // addresses (or agents) with a bucket of their own

Response json_reply(const json& j, http::status status = http::status::ok) {
  return reply(status, j.dump(2) + "\n");
}

}  // namespace

void check_enrollment(const ServerConfig& config) {
  if (!config.enroll.on()) return;
  Issuer issuer(config.enroll.ca_cert, config.enroll.ca_key, config.tls_ca,
                config.enroll.cert_lifetime);
  agents_ca(config.tls_ca, config.tls_cert);
}

Enrollment::Enrollment(const ServerConfig& config, collector::Store& store,
                       collector::Metrics& metrics, Revoke revoke)
    : settings_(config.enroll),
      store_(store),
      metrics_(metrics),
      revoke_(std::move(revoke)),
      issuer_(config.enroll.ca_cert, config.enroll.ca_key, config.tls_ca,
              config.enroll.cert_lifetime),
      per_source_(static_cast<double>(config.enroll.per_source), 60, kMaxSources),
      per_agent_(static_cast<double>(config.enroll.per_source), 60, kMaxSources),
      total_(static_cast<double>(config.enroll.per_minute), 60) {
  auto ca = agents_ca(config.tls_ca, config.tls_cert);
  ca_pem_ = std::move(ca.pem);
  pin_ = protocol::ca_pin(ca.der);
}

Response Enrollment::refuse(const std::string& source, http::status status,
                            const std::string& reason, const std::string& message) {
  metrics_.enrollments.Add({{"result", reason}}).Increment();
  if (reason != "rate_limited") spdlog::warn("enrollment from {} refused: {}", source, message);
  auto res = error_reply(status, reason, message);
  if (status == http::status::too_many_requests) res.set(http::field::retry_after, "60");
  return res;
}

bool Enrollment::within_budget(const std::string& source, double now) {
  return per_source_.take(source, now) && total_.take("*", now);
}

Response Enrollment::ca(const std::string& source, double now) {
  if (!within_budget(source, now))
    return refuse(source, http::status::too_many_requests, "rate_limited",
                  "too many enrollment requests; try again in a minute");
  return reply(http::status::ok, ca_pem_, "application/x-pem-file");
}

Response Enrollment::enroll(const Request& req, const std::string& source, double now) {
  if (!within_budget(source, now))
    return refuse(source, http::status::too_many_requests, "rate_limited",
                  "too many enrollment requests; try again in a minute");
  auto request = protocol::decode_enroll_request(req.body());
  if (!request)
    return refuse(source, http::status::bad_request, "bad_request", request.error.to_string());
  std::string message;
  const auto token = protocol::parse_enroll_token(request.value->token, message);
  if (!token) return refuse(source, http::status::bad_request, "bad_token", message);
  const auto t = store_.token_by_hash(protocol::enroll_token_hash(token->secret));
  // The answers name the token's state, never whether an agent id is known here.
  if (!t)
    return refuse(source, http::status::forbidden, "token_unknown",
                  "token not known to this collector (mistyped, or made for another one)");
  if (t->revoked_at > 0)
    return refuse(source, http::status::forbidden, "token_revoked",
                  "token " + t->id + " was revoked at " + format_timestamp(t->revoked_at));
  if (t->used >= t->uses)
    return refuse(source, http::status::forbidden, "token_used",
                  "token " + t->id + " was already used (" + std::to_string(t->used) + " of " +
                      std::to_string(t->uses) + " uses); ask for a new one");
  if (t->expires_at <= now)
    return refuse(source, http::status::forbidden, "token_expired",
                  "token " + t->id + " expired at " + format_timestamp(t->expires_at) +
                      "; ask for a new one");
  const auto request_key = read_csr(request.value->csr, message);
  if (!request_key) return refuse(source, http::status::bad_request, "bad_csr", message);
  if (!request_key->cn.empty() && request_key->cn != t->agent)
    return refuse(source, http::status::forbidden, "token_other_agent",
                  "token " + t->id + " is not for agent id '" + request_key->cn + "'");
  if (!request_key->ou.empty() && request_key->ou != t->site)
    return refuse(source, http::status::forbidden, "token_other_site",
                  "token " + t->id + " is not for site '" + request_key->ou + "'");

  const auto earlier = t->replace ? store_.live_serials(t->agent, now) : std::vector<std::string>{};
  const auto cert = issuer_.issue(request_key->key.get(), t->agent, t->site, now);
  if (!store_.record_issued(
          {cert.serial, t->agent, t->site, "enroll " + t->id, source, now, cert.not_after}, t->id))
    return refuse(source, http::status::forbidden, "token_used",
                  "token " + t->id + " was used meanwhile; ask for a new one");
  metrics_.enrollments.Add({{"result", "ok"}}).Increment();
  spdlog::warn(
      "agent {} (site {}) enrolled from {} with token {} made by {}: certificate {} "
      "valid until {}",
      t->agent, t->site, source, t->id, t->by.empty() ? "?" : t->by, cert.serial,
      format_timestamp(cert.not_after));
  if (!earlier.empty())
    revoke_(t->agent, earlier, t->by, "replaced by an enrollment with token " + t->id);
  return reply(http::status::ok, protocol::encode(protocol::IssuedCertificate{
                                     t->agent, t->site, cert.pem, ca_pem_, cert.not_after}) +
                                     "\n");
}

Response Enrollment::renew(const std::string& agent, const std::string& site, X509* presented,
                           const std::string& source, double now) {
  auto refuse_renewal = [&](http::status status, const char* reason, const std::string& message) {
    metrics_.renewals.Add({{"result", reason}}).Increment();
    spdlog::warn("renewal of agent {} refused: {}", agent, message);
    auto res = error_reply(status, reason, message);
    if (status == http::status::too_many_requests) res.set(http::field::retry_after, "60");
    return res;
  };
  if (!per_agent_.take(agent, now))
    return refuse_renewal(http::status::too_many_requests, "rate_limited",
                          "too many renewals; try again in a minute");
  EVP_PKEY* key = presented ? X509_get0_pubkey(presented) : nullptr;
  if (!key) return refuse_renewal(http::status::bad_request, "no_certificate", "no certificate");
  const std::string previous = serial_hex(X509_get0_serialNumber(presented));
  const auto cert = issuer_.issue(key, agent, site, now);
  store_.record_issued(
      {cert.serial, agent, site, "renew " + previous, source, now, cert.not_after});
  metrics_.renewals.Add({{"result", "ok"}}).Increment();
  spdlog::info("agent {} renewed its certificate: {} replaces {}, valid until {}", agent,
               cert.serial, previous, format_timestamp(cert.not_after));
  return reply(http::status::ok, protocol::encode(protocol::IssuedCertificate{agent, site, cert.pem,
                                                                              "", cert.not_after}) +
                                     "\n");
}

Response Enrollment::create_token(const Request& req, double now) {
  const auto body = json::parse(req.body(), nullptr, false);
  if (!body.is_object())
    return error_reply(http::status::bad_request, "bad_json", "expected a JSON object");
  auto text = [&](const char* key) {
    const auto it = body.find(key);
    return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  collector::Store::EnrollToken t;
  t.agent = text("agent");
  t.site = text("site");
  t.by = text("by");
  t.comment = text("comment");
  t.replace = body.value("replace", false);
  if (!valid_name(t.agent))
    return error_reply(http::status::bad_request, "bad_agent",
                       "agent: expected an id matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$");
  if (!valid_name(t.site))
    return error_reply(http::status::bad_request, "bad_site",
                       "site: expected a name matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$");
  if (t.by.size() > 128 || t.comment.size() > 1024)
    return error_reply(http::status::bad_request, "too_long", "by or comment too long");
  auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.token_ttl);
  if (const auto it = body.find("ttl"); it != body.end()) {
    const auto parsed = it->is_string() ? parse_duration(it->get<std::string>()) : std::nullopt;
    if (!parsed || *parsed < std::chrono::minutes(1) || *parsed > std::chrono::hours(24 * 30))
      return error_reply(http::status::bad_request, "bad_ttl", "ttl: expected a duration 1m-30d");
    ttl = *parsed;
  }
  t.uses = 1;
  if (const auto it = body.find("uses"); it != body.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 1 || it->get<std::int64_t>() > 1000)
      return error_reply(http::status::bad_request, "bad_uses", "uses: expected 1-1000");
    t.uses = it->get<std::int64_t>();
  }
  // One id, one machine: a second machine enrolling as an agent already in use would report
  // as it, and they would take each other's place.
  if (!t.replace) {
    if (const auto live = store_.live_serials(t.agent, now); !live.empty())
      return error_reply(http::status::conflict, "agent_has_certificate",
                         "agent " + t.agent + " already has a certificate in use (serial " +
                             live.front() +
                             "); to move it to a new machine, make the token with --replace: "
                             "enrolling then revokes the old certificate");
  }
  const std::string token = protocol::make_enroll_token(pin_);
  std::string message;
  const auto parts = protocol::parse_enroll_token(token, message);
  t.hash = protocol::enroll_token_hash(parts->secret);
  t.id = t.hash.substr(0, 12);
  t.created_at = now;
  t.expires_at = now + std::chrono::duration<double>(ttl).count();
  store_.add_token(t);
  spdlog::warn("enrollment token {} made by {} for agent {} (site {}), {} use(s), expires {}", t.id,
               t.by.empty() ? "?" : t.by, t.agent, t.site, t.uses, format_timestamp(t.expires_at));
  auto j = token_json(t, now);
  j["token"] = token;
  return json_reply(j, http::status::created);
}

Response Enrollment::tokens(double now) {
  json out = json::array();
  for (const auto& t : store_.tokens()) out.push_back(token_json(t, now));
  return json_reply(json{{"tokens", out}});
}

Response Enrollment::revoke_token(const std::string& id, double now) {
  if (!store_.revoke_token(id, now))
    return error_reply(http::status::not_found, "not_found", "no unrevoked token " + id);
  spdlog::warn("enrollment token {} revoked", id);
  return json_reply(json{{"id", id}, {"revoked", true}});
}

Response Enrollment::certificates(const std::string& agent) {
  json out = json::array();
  for (const auto& c : store_.issued(agent))
    out.push_back({{"serial", c.serial},
                   {"agent", c.agent},
                   {"site", c.site},
                   {"how", c.how},
                   {"source", c.source},
                   {"issued_at", format_timestamp(c.issued_at)},
                   {"not_after", format_timestamp(c.not_after)}});
  return json_reply(json{{"certificates", out}});
}

Response Enrollment::crl(double now) {
  std::vector<std::pair<std::string, double>> revoked;
  for (const auto& r : store_.revocations()) revoked.emplace_back(r.serial, r.revoked_at);
  return reply(http::status::ok, issuer_.crl(revoked, now), "application/x-pem-file");
}

}  // namespace dozor::server
