#include "http/http.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <system_error>
#include <vector>

#include "dozor/probes/tls.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/url.h"
#include "dozor/protocol/version.h"
#include "http/steps.h"
#include "src/human_units.h"
#include "src/regex_window.h"

namespace dozor::probes::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using boost::asio::redirect_error;
using boost::asio::use_awaitable;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr OptionSpec kOptions[] = {
    {"url", OptionKind::string, "", true,
     "http:// or https:// URL; host may be a name, IPv4 or [IPv6]"},
    {"method", OptionKind::string, "GET", false, "GET or HEAD"},
    {"expect_status", OptionKind::integer, "200", false, "status code the response must have"},
    {"expect_body", OptionKind::string, "", false,
     "regular expression (ECMAScript) the body must contain"},
    {"username", OptionKind::string, "", false, "user for HTTP basic authentication"},
    {"password", OptionKind::string, "", false, "password for basic authentication"},
    {"password_env", OptionKind::string, "", false, "environment variable holding the password"},
    {"host_header", OptionKind::string, "", false, "Host header to send instead of the URL's host"},
    {"ca", OptionKind::string, "", false,
     "PEM file of CAs to verify the server; default: system CAs"},
    {"tls_verify", OptionKind::boolean, "true", false,
     "verify the server certificate and host name"},
    {"cert_warning_days", OptionKind::number, "30", false,
     "warning when the certificate expires within this many days"},
    {"cert_critical_days", OptionKind::number, "7", false,
     "critical when the certificate expires within this many days"},
    {"warning", OptionKind::duration, "", false, "response time at or above this is a warning"},
    {"critical", OptionKind::duration, "", false, "response time at or above this is critical"},
    {"max_body", OptionKind::size, "1MiB", false,
     "read at most this much of the body; the rest is ignored"},
    {"steps", OptionKind::yaml, "", false,
     "requests made one after another as a client goes through the site, each checked, with "
     "captures and cookies carried to the next (see the README); url is their base"},
};

std::optional<double> seconds_option(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  return std::chrono::duration<double>(o.duration(key)).count();
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string describe(const error_code& ec, std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) return "timed out after " + format_duration(timeout);
  return ec.message();
}

// host_name_verification says only "no"; naming the mismatch makes the failure readable.
struct HostCheck {
  ssl::host_name_verification check;
  bool ip;
  bool operator()(bool preverified, ssl::verify_context& vc) {
    X509_STORE_CTX* store = vc.native_handle();
    if (!preverified || X509_STORE_CTX_get_error_depth(store) > 0) return preverified;
    if (check(preverified, vc)) return true;
    X509_STORE_CTX_set_error(store,
                             ip ? X509_V_ERR_IP_ADDRESS_MISMATCH : X509_V_ERR_HOSTNAME_MISMATCH);
    return false;
  }
};

struct Config {
  HttpUrl url;
  bhttp::verb method = bhttp::verb::get;
  int expect_status = 200;
  std::shared_ptr<const std::regex> expect_body;  // shared with a search still on the pool
  std::string expect_body_text;
  std::string authorization;  // "Basic ..." or empty; never logged
  std::string host_header;
  bool tls_verify = true;
  double cert_warning_days = 30, cert_critical_days = 7;
  std::optional<double> warning, critical;  // seconds
  std::uint64_t max_body = 0;
  std::shared_ptr<ssl::context> tls;  // https only
  std::vector<Step> steps;            // a scenario instead of the one request
};

// One step's exchange: what came back, or where it failed.
struct StepAnswer {
  error_code ec;
  std::string stage;
  unsigned code = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
};

struct Response {
  error_code ec;
  std::string stage;  // what failed, e.g. "send request to"
  unsigned code = 0;
  std::string body;
  std::uint64_t body_bytes = 0;
  bool truncated = false;
};

class HttpProbe final : public Probe {
 public:
  explicit HttpProbe(Config c) : c_(std::move(c)) {}

  // g++ 12 warns falsely (-Wmismatched-new-delete on the coroutine frame) when the override
  // itself holds this coroutine's body.
  asio::awaitable<Result> run(ProbeContext& ctx) override {
    if (!c_.steps.empty()) co_return co_await run_steps(ctx);
    co_return co_await check(ctx);
  }

 private:
  // The steps in order, each on a connection of its own, until one fails; the first failing
  // step is the summary. step_seconds and step_status_code{step} for each step that ran.
  asio::awaitable<Result> run_steps(ProbeContext& ctx) {
    const auto start = Clock::now();
    const auto deadline = start + ctx.timeout;
    std::map<std::string, std::string> vars;
    CookieJar cookies;
    Result r;
    Status status = Status::ok;
    std::string failure;
    std::size_t done = 0;
    for (const Step& step : c_.steps) {
      const std::string where = "step " + std::to_string(done + 1) + "/" +
                                std::to_string(c_.steps.size()) + " '" + step.name + "'";
      std::string url_text, body, missing;
      if (!substitute(step.url, vars, url_text, missing) ||
          !substitute(step.body, vars, body, missing)) {
        failure = where + ": ${" + missing + "} was not captured";
        break;
      }
      std::string why;
      const auto url = parse_http_url(resolve_url(c_.url, url_text), why);
      if (!url) {
        failure = where + ": url " + url_text + ": " + why;
        break;
      }
      bhttp::request<bhttp::string_body> req{step.method, url->target, 11};
      req.set(bhttp::field::host, url->authority);
      req.set(bhttp::field::user_agent, std::string("dozor-agent/") + kVersion);
      req.set(bhttp::field::connection, "close");
      if (!step.authorization.empty()) req.set(bhttp::field::authorization, step.authorization);
      if (const auto jar = cookies.header(); !jar.empty()) req.set(bhttp::field::cookie, jar);
      bool headers_ok = true;
      for (const auto& [name, value] : step.headers) {
        std::string v;
        headers_ok = headers_ok && substitute(value, vars, v, missing);
        req.set(name, v);
      }
      if (!headers_ok) {
        failure = where + ": ${" + missing + "} was not captured";
        break;
      }
      req.body() = std::move(body);
      if (!req.body().empty() || step.method == bhttp::verb::post ||
          step.method == bhttp::verb::put || step.method == bhttp::verb::patch)
        req.prepare_payload();
      const auto step_start = Clock::now();
      const auto step_deadline =
          step.timeout ? std::min(deadline, step_start + *step.timeout) : deadline;
      const StepAnswer a = co_await fetch(ctx, *url, std::move(req), step_deadline);
      const double took = seconds_between(step_start, Clock::now());
      r.metrics.push_back({"step_seconds", took, "s", {{"step", step.name}}});
      ++done;
      if (a.ec) {
        failure = where + ": " + a.stage + " " + url->address.text() + ": " +
                  describe(a.ec, std::chrono::duration_cast<std::chrono::milliseconds>(
                                     step_deadline - step_start));
        break;
      }
      r.metrics.push_back(
          {"step_status_code", static_cast<double>(a.code), "", {{"step", step.name}}});
      for (const auto& [name, value] : a.headers)
        if (name == "set-cookie") cookies.take(value);
      failure = judge(step, a);
      if (!failure.empty()) {
        failure = where + ": " + failure;
        break;
      }
      for (const auto& c : step.captures) {
        std::optional<std::string> value;
        if (c.regex) {
          std::smatch m;
          if (std::regex_search(a.body, m, *c.regex))
            value = m.size() > 1 ? m[1].str() : m[0].str();
        } else {
          value = json_value(a.body, c.pointer);
        }
        if (!value) {
          failure = where + ": nothing to capture as " + c.var;
          break;
        }
        vars[c.var] = *value;
      }
      if (!failure.empty()) break;
    }
    const double took = seconds_between(start, Clock::now());
    r.metrics.push_back({"response_seconds", took, "s"});
    r.metrics.push_back(
        {"steps_passed", static_cast<double>(failure.empty() ? done : done - 1), ""});
    if (!failure.empty()) {
      r.status = Status::critical;
      r.summary = failure;
      co_return r;
    }
    status = threshold_status(took, c_.warning, c_.critical);
    r.status = status;
    r.summary = std::to_string(done) + " steps passed in " + human_seconds(took);
    co_return r;
  }

  // Why the answer fails the step's checks; empty when it passes.
  static std::string judge(const Step& step, const StepAnswer& a) {
    if (static_cast<int>(a.code) != step.expect_status)
      return "HTTP " + std::to_string(a.code) + ", expected " + std::to_string(step.expect_status);
    if (step.expect_body && !std::regex_search(a.body, *step.expect_body))
      return "body does not match '" + step.expect_body_text + "'";
    for (const auto& [pointer, want] : step.expect_json) {
      const auto got = json_value(a.body, pointer);
      if (!got) return "no JSON value at " + pointer;
      if (*got != want) return pointer + " is '" + *got + "', expected '" + want + "'";
    }
    for (const auto& [name, re] : step.expect_header) {
      const auto it = std::find_if(a.headers.begin(), a.headers.end(),
                                   [&](const auto& h) { return h.first == name; });
      if (it == a.headers.end()) return "no " + name + " header";
      if (!std::regex_search(it->second, *re))
        return name + ": '" + it->second + "' does not match";
    }
    return {};
  }

  asio::awaitable<StepAnswer> fetch(ProbeContext& ctx, const HttpUrl& u,
                                    bhttp::request<bhttp::string_body> req,
                                    Clock::time_point deadline) {
    StepAnswer out;
    asio::ip::tcp::resolver resolver(ctx.io);
    auto endpoints = co_await resolver.async_resolve(u.address.host, u.address.port,
                                                     redirect_error(use_awaitable, out.ec));
    if (out.ec) {
      out.stage = "resolve";
      co_return out;
    }
    if (!u.tls) {
      beast::tcp_stream stream(ctx.io);
      stream.expires_at(deadline);
      co_await stream.async_connect(endpoints, redirect_error(use_awaitable, out.ec));
      if (out.ec) {
        out.stage = "connect to";
        co_return out;
      }
      co_await talk(stream, req, out);
      co_return out;
    }
    beast::ssl_stream<beast::tcp_stream> stream(ctx.io, *c_.tls);
    beast::get_lowest_layer(stream).expires_at(deadline);
    const bool ip = tls::is_ip_address(u.address.host);
    if (!ip) SSL_set_tlsext_host_name(stream.native_handle(), u.address.host.c_str());
    if (c_.tls_verify)
      stream.set_verify_callback(HostCheck{ssl::host_name_verification(u.address.host), ip});
    co_await beast::get_lowest_layer(stream).async_connect(endpoints,
                                                           redirect_error(use_awaitable, out.ec));
    if (out.ec) {
      out.stage = "connect to";
      co_return out;
    }
    co_await stream.async_handshake(ssl::stream_base::client,
                                    redirect_error(use_awaitable, out.ec));
    if (out.ec) {
      out.stage = "TLS handshake with";
      co_return out;
    }
    co_await talk(stream, req, out);
  }

  template <class Stream>
  asio::awaitable<void> talk(Stream& stream, bhttp::request<bhttp::string_body>& req,
                             StepAnswer& out) {
    co_await bhttp::async_write(stream, req, redirect_error(use_awaitable, out.ec));
    if (out.ec) {
      out.stage = "send request to";
      co_return;
    }
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(c_.max_body);
    if (req.method() == bhttp::verb::head) parser.skip(true);
    co_await bhttp::async_read(stream, buffer, parser, redirect_error(use_awaitable, out.ec));
    if (out.ec) {
      out.stage =
          out.ec == bhttp::error::body_limit ? "body over max_body from" : "read answer from";
      co_return;
    }
    out.code = parser.get().result_int();
    for (const auto& f : parser.get()) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    out.body = std::move(parser.get().body());
  }

  asio::awaitable<Result> check(ProbeContext& ctx) {
    const auto start = Clock::now();
    const auto deadline = start + ctx.timeout;
    const HttpUrl& u = c_.url;
    const std::string where = u.address.text();
    error_code ec;

    asio::ip::tcp::resolver resolver(ctx.io);
    auto endpoints = co_await resolver.async_resolve(u.address.host, u.address.port,
                                                     redirect_error(use_awaitable, ec));
    if (ec)
      co_return make_result(Status::critical,
                            "cannot resolve " + u.address.host + ": " + ec.message());

    Result r;
    Status cert_status = Status::ok;
    std::string cert_note;
    Response resp;
    if (!u.tls) {
      beast::tcp_stream stream(ctx.io);
      stream.expires_at(deadline);
      co_await stream.async_connect(endpoints, redirect_error(use_awaitable, ec));
      if (ec)
        co_return make_result(Status::critical,
                              "connect to " + where + ": " + describe(ec, ctx.timeout));
      resp = co_await exchange(stream);
      stream.socket().close(ec);
    } else {
      beast::ssl_stream<beast::tcp_stream> stream(ctx.io, *c_.tls);
      beast::get_lowest_layer(stream).expires_at(deadline);
      const bool ip = tls::is_ip_address(u.address.host);
      // RFC 6066: a literal IP address is not a server name.
      if (!ip && !SSL_set_tlsext_host_name(stream.native_handle(), u.address.host.c_str()))
        co_return make_result(Status::unknown, "cannot set TLS server name " + u.address.host);
      if (c_.tls_verify)
        stream.set_verify_callback(HostCheck{ssl::host_name_verification(u.address.host), ip});
      co_await beast::get_lowest_layer(stream).async_connect(endpoints,
                                                             redirect_error(use_awaitable, ec));
      if (ec)
        co_return make_result(Status::critical,
                              "connect to " + where + ": " + describe(ec, ctx.timeout));
      co_await stream.async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
      if (ec) {
        std::string why = describe(ec, ctx.timeout);
        if (const std::string v = tls::verify_failure(stream.native_handle()); !v.empty())
          why += " (" + v + ")";
        co_return make_result(Status::critical, "TLS handshake with " + where + ": " + why);
      }
      if (X509* cert = SSL_get0_peer_certificate(stream.native_handle())) {
        if (const auto days = tls::days_until(X509_get0_notAfter(cert))) {
          const double left = *days;
          r.metrics.push_back({"cert_expires_in_seconds", left * 86400, "s"});
          cert_status = threshold_status_below(left, c_.cert_warning_days, c_.cert_critical_days);
          cert_note = left >= 0 ? "cert expires in " + fixed(left, 1) + " d"
                                : "cert expired " + fixed(-left, 1) + " d ago";
        }
      }
      resp = co_await exchange(stream);
      beast::get_lowest_layer(stream).socket().close(ec);
    }
    const double took = seconds_between(start, Clock::now());

    if (resp.ec) {
      r.status = Status::critical;
      r.summary = resp.stage + " " + where + ": " + describe(resp.ec, ctx.timeout);
      if (!cert_note.empty()) r.summary += ", " + cert_note;
      co_return r;
    }
    r.metrics.push_back({"response_seconds", took, "s"});
    r.metrics.push_back({"status_code", static_cast<double>(resp.code), ""});
    r.metrics.push_back({"body_bytes", static_cast<double>(resp.body_bytes), "bytes"});

    Status s = protocol::worst(cert_status, threshold_status(took, c_.warning, c_.critical));
    std::string summary = "HTTP " + std::to_string(resp.code) + " in " + human_seconds(took);
    if (static_cast<int>(resp.code) != c_.expect_status) {
      s = Status::critical;
      summary += ", expected " + std::to_string(c_.expect_status);
    }
    if (c_.expect_body) {
      const auto matched = co_await search(ctx, std::move(resp.body), deadline);
      if (!matched) {
        s = Status::critical;
        summary += ", matching expect_body did not finish in time";
      } else if (!*matched) {
        s = Status::critical;
        summary += ", body does not match '" + c_.expect_body_text + "'";
      }
    }
    if (resp.truncated) summary += ", body truncated at " + std::to_string(c_.max_body) + " bytes";
    if (!cert_note.empty()) summary += ", " + cert_note;
    r.status = s;
    r.summary = std::move(summary);
    co_return r;
  }

  // nullopt when the search did not finish by the deadline, or an earlier one still runs.
  asio::awaitable<std::optional<bool>> search(ProbeContext& ctx, std::string body,
                                              Clock::time_point deadline) {
    if (!ctx.blocking) co_return search_in_windows(body, *c_.expect_body);
    if (auto last = last_search_.lock(); last && last->running()) co_return std::nullopt;
    auto find = [re = c_.expect_body, body = std::move(body)] {
      return search_in_windows(body, *re);
    };
    co_return co_await run_blocking(ctx, deadline, std::move(find), last_search_);
  }

  template <class Stream>
  asio::awaitable<Response> exchange(Stream& stream) {
    Response out;
    error_code ec;
    bhttp::request<bhttp::empty_body> req{c_.method, c_.url.target, 11};
    req.set(bhttp::field::host, c_.host_header.empty() ? c_.url.authority : c_.host_header);
    req.set(bhttp::field::user_agent, std::string("dozor-agent/") + kVersion);
    req.set(bhttp::field::connection, "close");
    if (!c_.authorization.empty()) req.set(bhttp::field::authorization, c_.authorization);
    co_await bhttp::async_write(stream, req, redirect_error(use_awaitable, ec));
    if (ec) {
      out.ec = ec;
      out.stage = "send request to";
      co_return out;
    }

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::buffer_body> parser;
    // max_body bounds what is kept; the deadline bounds the rest. (Not boost::none: Beast 1.74
    // compares the Content-Length against the optional, and none loses every comparison.)
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (c_.method == bhttp::verb::head) parser.skip(true);
    co_await bhttp::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
    if (ec) {
      out.ec = ec;
      out.stage = "read response from";
      co_return out;
    }
    out.code = parser.get().result_int();
    char chunk[16 * 1024];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      co_await bhttp::async_read(stream, buffer, parser, redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) {
        out.ec = ec;
        out.stage = "read body from";
        co_return out;
      }
      const std::size_t n = sizeof chunk - parser.get().body().size;
      const std::size_t keep = std::min<std::uint64_t>(n, c_.max_body - out.body.size());
      out.body.append(chunk, keep);
      out.body_bytes += keep;
      if (keep < n || (out.body.size() >= c_.max_body && !parser.is_done())) {
        out.truncated = true;
        break;
      }
    }
    co_return out;
  }

  Config c_;
  // The previous run's search while the pool still holds it; weak, so that the probe keeps no
  // timer alive beyond its io_context.
  std::weak_ptr<BlockingCall<bool>> last_search_;
};

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  std::string why;
  const auto url = parse_http_url(o.string("url"), why);
  if (url)
    c.url = *url;
  else
    o.error("url", why);

  const std::string method = o.string("method");
  if (method == "GET" || method == "get")
    c.method = bhttp::verb::get;
  else if (method == "HEAD" || method == "head")
    c.method = bhttp::verb::head;
  else
    o.error("method", "expected GET or HEAD, got '" + method + "'");

  const auto status = o.integer("expect_status");
  if (status < 100 || status > 599) o.error("expect_status", "expected 100-599");
  c.expect_status = static_cast<int>(status);

  c.expect_body_text = o.string("expect_body");
  if (!c.expect_body_text.empty()) {
    try {
      c.expect_body =
          std::make_shared<const std::regex>(c.expect_body_text, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      o.error("expect_body", std::string("invalid regular expression: ") + e.what());
    }
  }

  const std::string user = o.string("username");
  std::string password = o.string("password");
  const std::string password_env = o.string("password_env");
  if (o.has("password") && !password_env.empty())
    o.error("password_env", "give password or password_env, not both");
  if (!password_env.empty()) {
    if (const char* v = std::getenv(password_env.c_str()))
      password = v;
    else
      o.error("password_env", "environment variable " + password_env + " is not set");
  }
  if (user.empty() && (o.has("password") || !password_env.empty()))
    o.error("username", "a password needs a username");
  if (user.find(':') != std::string::npos)
    o.error("username", "must not contain ':' (basic authentication)");
  if (!user.empty()) c.authorization = "Basic " + base64(user + ":" + password);

  c.host_header = o.string("host_header");
  c.tls_verify = o.boolean("tls_verify");
  c.cert_warning_days = o.number("cert_warning_days");
  c.cert_critical_days = o.number("cert_critical_days");
  c.warning = seconds_option(o, "warning");
  c.critical = seconds_option(o, "critical");
  c.max_body = o.size("max_body");
  if (c.max_body == 0) o.error("max_body", "must be positive");
  if (o.has("steps")) {
    c.steps = read_steps(o);
    // The one request's own settings mean nothing beside steps (defaults aside).
    const std::pair<const char*, bool> own[] = {
        {"method", method != "GET" && method != "get"},
        {"expect_status", o.integer("expect_status") != 200},
        {"expect_body", !c.expect_body_text.empty()},
        {"username", !o.string("username").empty()}};
    for (const auto& [key, given] : own)
      if (given) o.error(key, "with steps, each step has its own; put it in the step");
  }
  bool any_tls = c.url.tls;
  for (const auto& step : c.steps) any_tls = any_tls || step.url.starts_with("https://");

  const std::string ca = o.string("ca");
  if (!ca.empty() && url && !any_tls) o.error("ca", "only used with https:// URLs");
  if (any_tls) {
    c.tls = std::make_shared<ssl::context>(ssl::context::tls_client);
    if (const std::string why = tls::load_trust(*c.tls, ca); !why.empty())
      o.error(ca.empty() ? "url" : "ca", why);
    c.tls->set_verify_mode(c.tls_verify ? ssl::verify_peer : ssl::verify_none);
  }
  return std::make_unique<HttpProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"http", "HTTP(S) GET or HEAD: status, body, response time, certificate expiry", kOptions,
          &make};
}

}  // namespace dozor::probes::http
