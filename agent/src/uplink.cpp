#include "dozor/agent/uplink.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <set>

#include "dozor/protocol/codec.h"
#include "dozor/protocol/tls_profile.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/version.h"
#include "identity.h"

namespace dozor::agent {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::redirect_error;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kMinBackoff{500};
constexpr milliseconds kMaxBackoff{30'000};
constexpr milliseconds kExchangeTimeout{30'000};
constexpr std::size_t kMaxBatch = 2000;
constexpr std::size_t kMaxBatchBytes = 1 << 20;

// Equal jitter: half the backoff fixed, half random, so that agents of a site that lost its link
// together do not all knock at the same moment.
std::minstd_rand& rng() {
  static thread_local std::minstd_rand r{std::random_device{}()};
  return r;
}

milliseconds jittered(milliseconds backoff) {
  const long half = backoff.count() / 2;
  return milliseconds(half + std::uniform_int_distribution<long>(0, half)(rng()));
}

// The index of the result a `400 invalid_report` names ("results[3].metrics[0].value: ..."), when
// it names one of the `sent` results: that result can never be stored as it is.
std::optional<std::size_t> refused_result(const http::response<http::string_body>& res,
                                          std::size_t sent) {
  if (res.result() != http::status::bad_request) return std::nullopt;
  const auto error = protocol::decode_error(res.body());
  if (!error || error.value->reason != "invalid_report") return std::nullopt;
  const std::string_view text = error.value->message;
  constexpr std::string_view prefix = "results[";
  if (!text.starts_with(prefix)) return std::nullopt;
  std::size_t index = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data() + prefix.size(), end, index);
  if (ec != std::errc() || p == end || *p != ']' || index >= sent) return std::nullopt;
  return index;
}

// What a refusal says, for the log: the collector's JSON error, or the start of a proxy's page.
std::string refusal_text(const http::response<http::string_body>& res) {
  if (const auto error = protocol::decode_error(res.body()))
    return error.value->reason + ": " + error.value->message;
  std::string text = res.body().substr(0, 120);
  std::replace_if(
      text.begin(), text.end(), [](unsigned char c) { return c < 0x20; }, ' ');
  return text.empty() ? std::string(res.reason()) : text;
}

// `Retry-After: <seconds>` of a 429 or 503, bounded to 1 s..10 min; zero when absent.
milliseconds retry_after_header(const http::response<http::string_body>& res) {
  const auto value = res[http::field::retry_after];
  long seconds = 0;
  if (std::from_chars(value.data(), value.data() + value.size(), seconds).ec != std::errc() ||
      seconds <= 0)
    return milliseconds::zero();
  return milliseconds(std::clamp(seconds, 1L, 600L) * 1000);
}

// The bytes of the link's CA, certificate and key: a renewal rewrites them under the same names.
std::string tls_material(const CollectorLink& link) {
  std::string all;
  for (const auto* path : {&link.ca, &link.cert, &link.key}) {
    std::ifstream in(*path, std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in), {});
    all.push_back('\0');
  }
  return all;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

ssl::context make_client_tls(const CollectorLink& link) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  protocol::apply_tls_profile(ctx.native_handle());
  ctx.load_verify_file(link.ca);
  ctx.use_certificate_chain_file(link.cert);
  ctx.use_private_key_file(link.key, ssl::context::pem);
  ctx.set_verify_mode(ssl::verify_peer);
  // Only the chain in the certificate file (an issuing CA that enrollment put there), not the
  // root OpenSSL would add from `ca`: the collector has the root, and would hold a decoded copy
  // of it for as long as the connection lasts.
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_NO_AUTO_CHAIN);
  return ctx;
}

struct Uplink::State : std::enable_shared_from_this<Uplink::State> {
  using Stream = beast::ssl_stream<beast::tcp_stream>;

  State(asio::io_context& io, CollectorLink l, protocol::AgentInfo i, Spool& s)
      : io(io),
        link(std::move(l)),
        info(std::move(i)),
        spool(s),
        tls(std::make_shared<ssl::context>(make_client_tls(link))),
        material(tls_material(link)),
        wake(io),
        backoff_timer(io) {
    plan_renewal();
  }

  asio::io_context& io;
  CollectorLink link;
  protocol::AgentInfo info;
  Spool& spool;
  std::shared_ptr<ssl::context> tls;
  std::string material;     // the TLS files as `tls` was made from them
  asio::steady_timer wake;  // sleeps until the next heartbeat; notify() cuts it short
  asio::steady_timer backoff_timer;
  std::unique_ptr<Stream> stream;
  bool stopping = false;
  bool relink = false;
  std::size_t batch_limit = kMaxBatch;
  Clock::time_point last_sent{};
  std::uint64_t failures_in_row = 0;
  milliseconds retry_after{0};  // the collector's (or a proxy's) Retry-After, for one backoff
  std::set<std::string> refusals_logged;
  double renew_at = 0;  // unix time the certificate is due for renewal; 0: never
  milliseconds renew_retry{3'600'000};
  Clock::time_point next_renewal_try{};

  // At 2/3 of the certificate's lifetime, less up to a twentieth at random, so that agents
  // enrolled together do not renew together; a failed renewal is tried again every thirtieth
  // of the lifetime (1 s - 1 h), in time for several tries before the certificate expires.
  void plan_renewal() {
    renew_at = 0;
    const auto v = validity(read_file(link.cert));
    if (!v || v->not_after <= v->not_before) return;
    const double life = v->not_after - v->not_before;
    renew_at = v->not_before + life * 2 / 3 - std::uniform_real_distribution<>(0, life / 20)(rng());
    renew_retry = std::clamp(milliseconds(static_cast<long>(life * 1000 / 30)), milliseconds(1000),
                             milliseconds(3'600'000));
  }
  bool renewal_due() const {
    return renew_at > 0 && unix_now() >= renew_at && Clock::now() >= next_renewal_try;
  }
  // When the heartbeat wait must end for a renewal.
  Clock::time_point renewal_wake() const {
    if (renew_at <= 0) return Clock::time_point::max();
    const auto in = std::chrono::duration<double>(std::max(0.0, renew_at - unix_now()));
    return std::max(next_renewal_try, Clock::now() + std::chrono::duration_cast<milliseconds>(in));
  }

  milliseconds heartbeat() const { return milliseconds(static_cast<long>(info.heartbeat * 1000)); }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    milliseconds backoff = kMinBackoff;
    while (!stopping) {
      relink = false;
      // The backoff starts over once a report is accepted, not at every connect: a proxy that
      // answers 403 to every report is knocked on ever more slowly, up to kMaxBackoff.
      if (co_await connect() && co_await exchange()) backoff = kMinBackoff;
      stream.reset();
      if (stopping) break;
      if (relink) continue;
      backoff_timer.expires_after(std::max(jittered(backoff), std::exchange(retry_after, {})));
      boost::system::error_code ec;
      co_await backoff_timer.async_wait(redirect_error(use_awaitable, ec));
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }

  asio::awaitable<void> slow_down(const http::response<http::string_body>& res) {
    const auto wait = std::max(retry_after_header(res), milliseconds(1000));
    failed("report answered 429: " + refusal_text(res) + "; waiting " +
           std::to_string(wait.count()) + " ms");
    backoff_timer.expires_after(wait);
    boost::system::error_code ec;
    co_await backoff_timer.async_wait(redirect_error(use_awaitable, ec));
  }

  // A result the collector acked without keeping it (over one of its limits). Said once per
  // message, so that a probe over a limit at every run does not fill the journal.
  void refused(const protocol::RefusedResult& r) {
    if (refusals_logged.size() < 256 && refusals_logged.insert(r.message).second)
      spdlog::error("collector {}: refused result seq {} ({}): {}; fix the probe's config",
                    link.url, r.seq, r.reason, r.message);
  }

  void failed(const std::string& what) {
    // The first failure in a row is news; the retries that follow are not.
    if (failures_in_row++ == 0)
      spdlog::warn("collector {}: {}; retrying with backoff", link.url, what);
    else
      spdlog::debug("collector {}: {} (attempt {})", link.url, what, failures_in_row);
  }

  asio::awaitable<bool> connect() {
    boost::system::error_code ec;
    asio::ip::tcp::resolver resolver(io);
    auto endpoints =
        co_await resolver.async_resolve(link.host, link.port, redirect_error(use_awaitable, ec));
    if (ec) {
      failed("cannot resolve " + link.host + ": " + ec.message());
      co_return false;
    }
    auto context = tls;
    stream = std::make_unique<Stream>(io, *context);
    if (!is_ip_address(link.host))
      SSL_set_tlsext_host_name(stream->native_handle(), link.host.c_str());
    stream->set_verify_callback(ssl::host_name_verification(link.host));
    auto& socket = beast::get_lowest_layer(*stream);
    socket.expires_after(std::chrono::seconds(10));
    co_await socket.async_connect(endpoints, redirect_error(use_awaitable, ec));
    if (ec) {
      failed("connect: " + ec.message());
      co_return false;
    }
    co_await stream->async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
    if (ec) {
      failed("TLS handshake: " + ec.message());
      co_return false;
    }
    // The count runs on until a report is accepted: a proxy refusing every report is one
    // failure in a row, not a new one at each reconnect.
    if (failures_in_row > 0)
      spdlog::info("collector {}: connected after {} failed attempts", link.url, failures_in_row);
    else
      spdlog::info("collector {}: connected", link.url);
    co_return true;
  }

  // Sends reports over the open connection until it fails, or a stop or relink; true when the
  // collector accepted at least one of them.
  asio::awaitable<bool> exchange() {
    bool accepted = false;
    beast::flat_buffer buffer;
    auto& socket = beast::get_lowest_layer(*stream);
    for (;;) {
      if (stopping || relink) co_return accepted;
      if (renewal_due()) {
        if (!co_await renew(buffer)) co_return accepted;
        continue;
      }
      const auto due = std::min(last_sent + heartbeat(), renewal_wake());
      if (spool.empty() && Clock::now() < due) {
        wake.expires_at(due);
        boost::system::error_code ec;
        co_await wake.async_wait(redirect_error(use_awaitable, ec));
        continue;
      }
      auto batch = spool.oldest(batch_limit, kMaxBatchBytes);
      if (!batch.empty()) {
        auto fresh = spool.newest_per_probe(batch.back().seq);
        batch.insert(batch.end(), std::make_move_iterator(fresh.begin()),
                     std::make_move_iterator(fresh.end()));
      }
      std::vector<std::string> results;
      results.reserve(batch.size());
      for (auto& e : batch) results.push_back(std::move(e.json));
      protocol::Report head{info, {}, spool.dropped(), spool.oldest_seq()};
      head.agent.sent_at =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      http::request<http::string_body> req{http::verb::post, link.path_prefix + "/v1/report", 11};
      req.set(http::field::host, link.host);
      req.set(http::field::user_agent, std::string("dozor-agent/") + kVersion);
      req.set(http::field::content_type, "application/json");
      req.keep_alive(true);
      req.body() = protocol::encode_with_results(head, results);
      req.prepare_payload();

      boost::system::error_code ec;
      http::response<http::string_body> res;
      socket.expires_after(kExchangeTimeout);
      co_await http::async_write(*stream, req, redirect_error(use_awaitable, ec));
      if (!ec) co_await http::async_read(*stream, buffer, res, redirect_error(use_awaitable, ec));
      if (ec) {
        if (!stopping && !relink) failed("report: " + ec.message());
        co_return accepted;
      }
      last_sent = Clock::now();

      if (res.result() == http::status::ok) {
        auto ack = protocol::decode_ack(res.body());
        if (!ack) {
          failed("unreadable ack: " + ack.error.to_string());
          co_return accepted;
        }
        spool.dropped_reported(head.dropped);
        spool.ack(ack.value->acked_seq);
        accepted = true;
        failures_in_row = 0;  // a refusal after this one is news again
        for (const auto& r : ack.value->refused) refused(r);
      } else if (res.result() == http::status::payload_too_large && batch_limit > 1) {
        batch_limit = std::max<std::size_t>(1, batch_limit / 2);
        spdlog::warn("collector {}: report too large, batches now at most {} results", link.url,
                     batch_limit);
      } else if (res.result() == http::status::too_many_requests && res.keep_alive()) {
        // The collector's rate limit: wait as long as it asks, on the same connection; what
        // comes meanwhile goes in the next report.
        co_await slow_down(res);
        continue;
      } else if (const auto bad = refused_result(res, batch.size())) {
        // The collector named the one result it cannot take: only that one goes (counted as
        // dropped), so that it does not block every result after it.
        spdlog::error("collector {}: refused result seq {} as invalid, dropped it: {}", link.url,
                      batch[*bad].seq, refusal_text(res));
        spool.reject(batch[*bad].seq);
      } else {
        // Anything else (401/403/404 from a proxy, 429, 5xx, a refusal of the whole report):
        // nothing is dropped; the results wait in the spool and are sent again after a backoff.
        retry_after = retry_after_header(res);
        failed("report answered " + std::to_string(res.result_int()) + ": " + refusal_text(res));
        co_return accepted;
      }
      if (!res.keep_alive()) co_return accepted;
    }
  }

  // Renews the certificate over this connection (same key, a new certificate), writes it in
  // place of the old one and reconnects with it; results wait in the spool meanwhile. False
  // when the connection failed.
  asio::awaitable<bool> renew(beast::flat_buffer& buffer) {
    http::request<http::string_body> req{http::verb::post, link.path_prefix + "/v1/renew", 11};
    req.set(http::field::host, link.host);
    req.set(http::field::user_agent, std::string("dozor-agent/") + kVersion);
    req.keep_alive(true);
    req.prepare_payload();
    boost::system::error_code ec;
    http::response<http::string_body> res;
    beast::get_lowest_layer(*stream).expires_after(kExchangeTimeout);
    co_await http::async_write(*stream, req, redirect_error(use_awaitable, ec));
    if (!ec) co_await http::async_read(*stream, buffer, res, redirect_error(use_awaitable, ec));
    if (ec) {
      if (!stopping) failed("certificate renewal: " + ec.message());
      co_return false;
    }
    next_renewal_try = Clock::now() + renew_retry;
    const auto issued = protocol::decode_issued(res.body());
    if (res.result() != http::status::ok) {
      spdlog::warn("collector {}: certificate renewal refused: {}; trying again in {} s", link.url,
                   refusal_text(res), renew_retry.count() / 1000);
    } else if (!issued || !key_matches(issued.value->certificate, read_file(link.key))) {
      spdlog::error("collector {}: certificate renewal: the answer is not a certificate for {}",
                    link.url, link.key);
    } else {
      try {
        write_atomically(link.cert, issued.value->certificate, 0644);
        tls = std::make_shared<ssl::context>(make_client_tls(link));
        material = tls_material(link);
        plan_renewal();
        relink = true;
        spdlog::info("collector {}: certificate renewed, valid until {}; reconnecting with it",
                     link.url, format_timestamp(issued.value->not_after));
      } catch (const std::exception& e) {
        spdlog::error(
            "collector {}: cannot keep the renewed certificate ({}); the agent's user "
            "must be able to write to the folder of {}",
            link.url, e.what(), link.cert);
      }
    }
    co_return res.keep_alive();
  }
};

Uplink::Uplink(asio::io_context& io, CollectorLink link, protocol::AgentInfo info, Spool& spool)
    : state_(std::make_shared<State>(io, std::move(link), std::move(info), spool)) {}

Uplink::~Uplink() { stop(); }

void Uplink::start() { asio::co_spawn(state_->io, state_->run(), asio::detached); }

void Uplink::notify() { state_->wake.cancel(); }

void Uplink::stop() {
  state_->stopping = true;
  state_->wake.cancel();
  state_->backoff_timer.cancel();
  if (state_->stream) beast::get_lowest_layer(*state_->stream).cancel();
}

void Uplink::drain(std::chrono::milliseconds limit, std::function<void()> done) {
  auto s = state_;
  notify();
  asio::co_spawn(
      s->io,
      [s, limit, done = std::move(done)]() -> asio::awaitable<void> {
        asio::steady_timer timer(s->io);
        const auto deadline = Clock::now() + limit;
        while (!s->spool.empty() && Clock::now() < deadline) {
          timer.expires_after(milliseconds(20));
          co_await timer.async_wait(use_awaitable);
        }
        done();
      },
      asio::detached);
}

void Uplink::reconfigure(const CollectorLink& link, std::chrono::milliseconds heartbeat) {
  state_->info.heartbeat = std::chrono::duration<double>(heartbeat).count();
  // The files are read again whatever the config says: a renewed certificate keeps its path.
  auto material = tls_material(link);
  if (link == state_->link && material == state_->material) return;
  state_->tls = std::make_shared<ssl::context>(make_client_tls(link));
  state_->material = std::move(material);
  state_->link = link;
  state_->plan_renewal();
  state_->relink = true;
  state_->wake.cancel();
  state_->backoff_timer.cancel();
  if (state_->stream) beast::get_lowest_layer(*state_->stream).cancel();
}

}  // namespace dozor::agent
