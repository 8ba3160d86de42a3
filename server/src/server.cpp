#include "dozor/server/server.h"

#include <malloc.h>
#include <openssl/bn.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <csignal>
#include <ctime>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>

#include "assets.h"
#include "board.h"
#include "dozor/collector/report.h"
#include "dozor/protocol/codec.h"
#include "dozor/protocol/tls_profile.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/version.h"
#include "enrollment.h"
#include "http.h"
#include "issuer.h"
#include "rate_limit.h"
#include "report_page.h"
#include "tls_stream.h"

namespace dozor::server {
namespace {

namespace beast = boost::beast;
namespace ssl = asio::ssl;
using asio::redirect_error;
using asio::use_awaitable;
using asio::ip::tcp;
using nlohmann::json;

// The certificate an agent presented: its CN (the agent's id), OU (its site, when the
// certificate names one), serial (hex, as openssl prints it) and expiry.
struct PeerCertificate {
  std::string cn;
  std::string site;
  std::string serial;
  double not_after = 0;
};

// Unix time `cert` expires; 0 when it cannot be read.
double not_after(const X509* cert) {
  std::tm tm{};
  if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
  return static_cast<double>(timegm(&tm));
}

PeerCertificate peer_certificate(SSL* ssl) {
  PeerCertificate out;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return out;
  char buf[256];
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  if (n > 0) out.cn.assign(buf, static_cast<std::size_t>(n));
  const int ou = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_organizationalUnitName,
                                           buf, sizeof buf);
  if (ou > 0) out.site.assign(buf, static_cast<std::size_t>(ou));
  out.serial = serial_hex(X509_get0_serialNumber(cert));
  out.not_after = not_after(cert);
  X509_free(cert);
  return out;
}

json agents_json(const std::vector<collector::AgentState>& agents,
                 const std::map<std::string, PeerCertificate>& certificates) {
  json arr = json::array();
  for (const auto& a : agents) {
    json probes = json::array();
    for (const auto& [name, p] : a.probes) {
      json values = json::array();
      for (const auto& m : p.metrics) {
        values.push_back({{"name", m.name}, {"value", m.value}});
        if (!m.unit.empty()) values.back()["unit"] = m.unit;
        if (!m.labels.empty()) values.back()["labels"] = m.labels;
      }
      probes.push_back({{"name", name},
                        {"type", p.type},
                        {"status", protocol::to_string(p.status)},
                        {"summary", p.summary},
                        {"ts", format_timestamp(p.ts)},
                        {"duration_seconds", p.duration},
                        {"metrics", std::move(values)}});
    }
    arr.push_back({{"id", a.id},
                   {"site", a.site},
                   {"hostname", a.hostname},
                   {"version", a.version},
                   {"up", a.up},
                   {"down_since", a.up ? json(nullptr) : json(format_timestamp(a.down_since))},
                   {"last_report", format_timestamp(a.last_report)},
                   {"first_seen", format_timestamp(a.first_seen)},
                   {"started_at", format_timestamp(a.started_at)},
                   {"heartbeat_seconds", a.heartbeat},
                   {"clock_skew_seconds", a.clock_skew},
                   {"last_seq", a.last_seq},
                   {"results", a.results},
                   {"dropped", a.dropped},
                   {"refused", a.refused},
                   {"last_refusal", a.last_refusal},
                   {"series", a.series},
                   {"probes", std::move(probes)}});
    // Known once the agent has connected since this collector started.
    if (auto c = certificates.find(a.id); c != certificates.end())
      arr.back()["certificate"] = {{"serial", c->second.serial},
                                   {"site", c->second.site},
                                   {"not_after", format_timestamp(c->second.not_after)}};
  }
  return arr;
}

// %XX escapes of a path segment decoded (dozorctl escapes an agent id that way).
std::string url_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    int byte = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, byte, 16).ptr == s.data() + i + 3) {
      out.push_back(static_cast<char>(byte));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool is_disconnect(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == ssl::error::stream_truncated;
}

// Counts a live connection for as long as it exists.
struct Live {
  explicit Live(std::size_t& n) : n_(n) { ++n_; }
  ~Live() { --n_; }
  Live(const Live&) = delete;
  Live& operator=(const Live&) = delete;
  std::size_t& n_;
};

// Logs the refusals of one source (an address, an agent) at most once a minute, with how many
// came meanwhile, so that a flood writes a line a minute rather than a line a connection.
// Bounded in sources.
class RefusalLog {
 public:
  void note(const std::string& source, std::string_view message) {
    const auto now = std::chrono::steady_clock::now();
    auto& e = by_source_[source];
    ++e.count;
    if (now < e.quiet_until) return;
    spdlog::info("{}{}", message,
                 e.count > 1 ? fmt::format(" ({} refusals since the last message)", e.count) : "");
    e.count = 0;
    e.quiet_until = now + std::chrono::minutes(1);
    if (by_source_.size() > kMaxSources) {
      std::erase_if(by_source_, [now](const auto& kv) { return kv.second.quiet_until <= now; });
      if (by_source_.size() > kMaxSources) by_source_.clear();  // a flood from everywhere
    }
  }

 private:
  static constexpr std::size_t kMaxSources = 4096;
  struct Entry {
    std::uint64_t count = 0;
    std::chrono::steady_clock::time_point quiet_until{};
  };
  std::unordered_map<std::string, Entry> by_source_;
};

// Holds one connection of a budget counted in total and per source address.
struct SourceSlot {
  SourceSlot(std::size_t& total, std::unordered_map<std::string, std::size_t>& by_source,
             std::string source)
      : total_(total), by_source_(by_source), source_(std::move(source)) {
    ++total_;
    ++by_source_[source_];
  }
  ~SourceSlot() { release(); }
  void release() {
    if (released_) return;
    released_ = true;
    --total_;
    if (--by_source_[source_] == 0) by_source_.erase(source_);
  }
  const std::string& source() const { return source_; }
  SourceSlot(const SourceSlot&) = delete;
  SourceSlot& operator=(const SourceSlot&) = delete;
  std::size_t& total_;
  std::unordered_map<std::string, std::size_t>& by_source_;
  std::string source_;
  bool released_ = false;
};

// The connections waiting for their next request: a shutdown closes them at once, and a full
// HTTP port closes the one idle longest to make room.
struct IdleConnection {
  std::function<void()> cancel;
  const std::string* http_source = nullptr;  // an HTTP port's connection: from where
  std::chrono::steady_clock::time_point since;
};
using IdleConnections = std::unordered_map<void*, IdleConnection>;

template <class Stream>
struct Idle {
  Idle(IdleConnections& idle, Stream& s, const std::string* http_source)
      : idle_(idle), s_(&s), http_source_(http_source) {}
  ~Idle() { idle_.erase(s_); }
  void set(bool waiting) {
    if (waiting)
      idle_[s_] = {[s = s_] { s->cancel(); }, http_source_, std::chrono::steady_clock::now()};
    else
      idle_.erase(s_);
  }
  Idle(const Idle&) = delete;
  Idle& operator=(const Idle&) = delete;
  IdleConnections& idle_;
  Stream* s_;
  const std::string* http_source_;
};

}  // namespace

namespace {

// Where the agent port's SSL_CTX keeps its RevokedSerials.
int revoked_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The chain verified, refuses an agent certificate whose serial was revoked: the handshake
// fails with a certificate_revoked alert.
int verify_not_revoked(int preverified, X509_STORE_CTX* store) {
  if (!preverified || X509_STORE_CTX_get_error_depth(store) != 0) return preverified;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* revoked = static_cast<const RevokedSerials*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), revoked_index()));
  if (revoked &&
      revoked->count(serial_hex(X509_get0_serialNumber(X509_STORE_CTX_get_current_cert(store))))) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REVOKED);
    return 0;
  }
  return 1;
}

}  // namespace

asio::ssl::context make_agent_tls(const ServerConfig& config, const RevokedSerials* revoked) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  protocol::apply_tls_profile(ctx.native_handle());
  ctx.use_certificate_chain_file(config.tls_cert);
  ctx.use_private_key_file(config.tls_key, ssl::context::pem);
  ctx.load_verify_file(config.tls_ca);
  // Tell clients which CA we take, and refuse a handshake without a certificate from it; with
  // enrollment on, a client without one may ask to enroll, and nothing else.
  SSL_CTX_set_client_CA_list(ctx.native_handle(), SSL_load_client_CA_file(config.tls_ca.c_str()));
  SSL_CTX_set_verify(ctx.native_handle(),
                     SSL_VERIFY_PEER | (config.enroll.on() ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
                     verify_not_revoked);
  SSL_CTX_set_ex_data(ctx.native_handle(), revoked_index(), const_cast<RevokedSerials*>(revoked));
  // No session resumption: agents keep one connection open and do not resume, and a resumed
  // session would skip the revocation check above. TLS 1.3 would otherwise send two tickets after
  // every handshake (each an encrypted copy of the session with the peer's certificate), and
  // TLS 1.2 would cache each session, peer certificate and all.
  SSL_CTX_set_num_tickets(ctx.native_handle(), 0);
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  return ctx;
}

constexpr auto kTick = std::chrono::milliseconds(250);
constexpr std::size_t kFirstRead = 1024;  // a request's first read: most requests whole
constexpr auto kStall = std::chrono::seconds(2);

struct Server::State : std::enable_shared_from_this<Server::State> {
  State(asio::io_context& io, ServerConfig c, collector::Health& h, collector::Desk* d,
        collector::Metrics& m, Clock clk, collector::Store* st)
      : io(io),
        config(std::move(c)),
        health(h),
        desk(d),
        metrics(m),
        clock(std::move(clk)),
        store(st),
        revoked(load_revoked(st)),
        tls(std::make_shared<ssl::context>(make_agent_tls(config, revoked.get()))),
        agents_acceptor(io),
        http_acceptor(io),
        board(h, d) {
    publish_own_expiry();
    enrollment = make_enrollment(config);
  }

  std::unique_ptr<Enrollment> make_enrollment(const ServerConfig& c) {
    if (!c.enroll.on()) return nullptr;
    if (!store) throw std::runtime_error("enrollment needs the store");
    return std::make_unique<Enrollment>(
        c, *store, metrics,
        [this](const std::string& agent, const std::vector<std::string>& serials,
               const std::string& by, const std::string& comment) {
          revoke_serials(agent, serials, by, comment, clock());
        });
  }

  void publish_own_expiry() {
    const double expiry = not_after(SSL_CTX_get0_certificate(tls->native_handle()));
    metrics.collector_cert_expiry.Set(expiry);
    if (desk) desk->own_certificate(expiry);
  }

  asio::io_context& io;
  ServerConfig config;
  collector::Health& health;
  collector::Desk* desk;
  collector::Metrics& metrics;
  Clock clock;
  collector::Store* store;
  std::shared_ptr<RevokedSerials> revoked;  // shared with every TLS context made
  std::shared_ptr<ssl::context> tls;
  std::unordered_multimap<std::string, TlsStream*> agent_streams;  // agent -> its connections
  std::unique_ptr<Enrollment> enrollment;                          // with the enroll section

  static std::shared_ptr<RevokedSerials> load_revoked(collector::Store* st) {
    auto out = std::make_shared<RevokedSerials>();
    if (st)
      for (const auto& r : st->revocations()) out->insert(r.serial);
    return out;
  }
  tcp::acceptor agents_acceptor;
  tcp::acceptor http_acceptor;
  std::size_t agent_connections = 0;  // past the handshake
  std::size_t http_connections = 0;
  std::unordered_map<std::string, std::size_t> http_by_source;
  std::size_t pending = 0;  // agent connections not yet past the handshake
  std::unordered_map<std::string, std::size_t> pending_by_source;
  RefusalLog refusals;
  std::string store_failure;  // the last store error, until a write succeeds again: /healthz 503

  void store_failed(const std::string& what) {
    metrics.store_errors.Increment();
    if (store_failure.empty())
      spdlog::error("store: {}; /healthz answers 503 until it writes", what);
    store_failure = what;
  }
  void store_ok() {
    if (store_failure.empty()) return;
    spdlog::info("store: writing again");
    store_failure.clear();
  }
  IdleConnections idle;                                 // the connections waiting for a request
  std::map<std::string, PeerCertificate> certificates;  // agent -> the one it last presented
  RateLimit report_tokens{static_cast<double>(config.reports_per_second), 1};  // per agent
  bool stopping = false;
  Board board;
  std::set<asio::steady_timer*> board_waits;  // open boards waiting for changes

  void listen(tcp::acceptor& acc, const Endpoint& ep) {
    tcp::endpoint endpoint(asio::ip::make_address(ep.host), ep.port);
    acc.open(endpoint.protocol());
    acc.set_option(asio::socket_base::reuse_address(true));
    acc.bind(endpoint);
    acc.listen(asio::socket_base::max_listen_connections);
  }

  // Several collectors on one store (lease set): whether this one runs the desk, by the term it
  // last took up; without a lease it always does.
  collector::Lease* lease = nullptr;
  std::uint64_t led_term = 0;
  bool leads() const { return !lease || led_term != 0; }

  // 200 on the leader, 503 on a follower: the check a proxy routes the HTTP address by.
  Response leader_reply() {
    json out{{"leader", leads()}, {"node", lease ? lease->node() : std::string("")}};
    if (lease) {
      out["term"] = led_term;
      out["holder"] = lease->holder();
    }
    return reply(leads() ? http::status::ok : http::status::service_unavailable, out.dump() + "\n");
  }

  // Follows the lease: a new term reads the desk and every agent from the store again before
  // this collector acts as leader; as leader, it takes the reports the followers logged.
  void follow_lease() {
    if (!lease) return;
    const auto term = lease->term();
    if (term != led_term) {
      if (led_term) {
        health.lead(false, clock());
        spdlog::info("cluster: taking reports only; {} runs the desk", lease->holder());
      }
      led_term = 0;
      if (term) {
        try {
          if (desk) desk->reload();
          health.lead(true, clock());
          led_term = term;
        } catch (const std::exception& e) {
          store_failed(std::string("taking the lead: ") + e.what());  // tried at the next tick
        }
      }
      metrics.collector_leader.Add({{"node", lease->node()}}).Set(led_term ? 1 : 0);
    }
    if (!led_term) return;
    try {
      // A backlog (the leader was away) is worked off a few batches a tick, between reports.
      for (int i = 0; i < 8 && health.replay(clock(), kReplayBatch) == kReplayBatch; ++i) {
      }
    } catch (const std::exception& e) {
      store_failed(std::string("reports from other collectors: ") + e.what());
    }
  }
  static constexpr std::size_t kReplayBatch = 500;

  // A revocation made through another collector: refused here too within a few seconds, and
  // the agent's connections to this one closed.
  void follow_revocations() {
    const auto now = std::chrono::steady_clock::now();
    if (!lease || now < next_revocations) return;
    next_revocations = now + kRevocationsEvery;
    try {
      for (const auto& r : store->revocations()) {
        if (!revoked->insert(r.serial).second) continue;
        std::size_t closed = 0;
        for (auto [it, end] = agent_streams.equal_range(r.agent); it != end; ++it, ++closed)
          it->second->close();
        spdlog::warn(
            "agent {} revoked through another collector: certificate {}, {} connection(s) "
            "closed",
            r.agent, r.serial, closed);
      }
    } catch (const std::exception& e) {
      store_failed(std::string("reading revocations: ") + e.what());
    }
  }
  std::chrono::steady_clock::time_point next_revocations{};
  static constexpr auto kRevocationsEvery = std::chrono::seconds(2);

  // Timers of the health and the desk: silent agents, held conditions, escalations.
  asio::awaitable<void> tick_loop() {
    auto self = shared_from_this();
    asio::steady_timer timer(io);
    auto next_trim = std::chrono::steady_clock::now();
    std::size_t peak = 0;  // connections at the most since the last trim
    auto last_tick = std::chrono::steady_clock::now();
    while (!stopping) {
      // Ticks 2 s apart instead of 250 ms: this process stood still, not the agents.
      if (const auto at = std::chrono::steady_clock::now(); at - last_tick > kStall) {
        spdlog::warn("the collector stood still for {:.1f} s; agents get one window to report",
                     std::chrono::duration<double>(at - last_tick).count());
        health.stalled(clock());
      }
      last_tick = std::chrono::steady_clock::now();
      follow_lease();
      follow_revocations();
      try {
        if (leads()) health.tick(clock());
      } catch (const std::exception& e) {
        store_failed(std::string("ticket timers: ") + e.what());  // retried at the next tick
      }
      if (board.update(clock()))
        for (auto* wait : board_waits) wait->cancel();
      // Give the heap back to the system once a minute, and at once when a spike of
      // connections (a flood, every agent reconnecting) has passed.
      const std::size_t open = pending + agent_connections + http_connections;
      peak = std::max(peak, open);
      if (const auto now = std::chrono::steady_clock::now();
          now >= next_trim || (peak >= 64 && open < peak / 2)) {
        // What the connections left of agents forgotten meanwhile (forget_after) goes too.
        std::erase_if(certificates, [&](const auto& kv) { return !health.knows(kv.first); });
        report_tokens.erase_if([&](const std::string& agent) { return !health.knows(agent); });
        malloc_trim(0);
        next_trim = now + std::chrono::minutes(1);
        peak = open;
      }
      timer.expires_after(kTick);
      boost::system::error_code ec;
      co_await timer.async_wait(redirect_error(use_awaitable, ec));
    }
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acc, bool agents) {
    auto self = shared_from_this();
    asio::steady_timer pause(io);
    auto backoff = std::chrono::milliseconds(10);
    for (;;) {
      boost::system::error_code ec;
      tcp::socket sock = co_await acc.async_accept(redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || stopping) co_return;
      if (ec) {
        // Out of descriptors (EMFILE, ENFILE) or memory: the connection waits in the backlog;
        // pause rather than spin on an accept that fails at once.
        metrics.rejected("accept_error");
        refusals.note("*", "accept: " + ec.message() + "; pausing");
        pause.expires_after(backoff);
        co_await pause.async_wait(redirect_error(use_awaitable, ec));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
        continue;
      }
      backoff = std::chrono::milliseconds(10);
      const auto remote = sock.remote_endpoint(ec);
      if (ec) continue;  // gone already
      std::string source = remote.address().to_string();
      if (!agents) {
        if (const char* over = make_http_room(source)) {
          metrics.rejected(over);
          refusals.note(source, "HTTP connection from " + source + " refused: over limits." +
                                    std::string(over));
          sock.close(ec);
          continue;
        }
        asio::co_spawn(io, http_session(std::move(sock), std::move(source)), asio::detached);
        continue;
      }
      const char* over = pending >= config.pending_total ? "pending_total"
                         : pending_by_source.count(source) &&
                                 pending_by_source[source] >= config.pending_per_source
                             ? "pending_per_source"
                             : nullptr;
      if (over) {
        metrics.rejected(over);
        refusals.note(source,
                      "connection from " + source + " refused: over limits." + std::string(over));
        sock.close(ec);
        continue;
      }
      asio::co_spawn(io, agent_session(std::move(sock), std::move(source)), asio::detached);
    }
  }

  // Room for one more HTTP connection from `source`: at a limit, the connection idle longest
  // (of that source, for its own limit) is closed. nullptr, or the limit that refuses it.
  const char* make_http_room(const std::string& source) {
    const bool source_full =
        http_by_source.count(source) && http_by_source[source] >= config.http_per_source;
    if (!source_full && http_connections < config.http_connections) return nullptr;
    IdleConnection* oldest = nullptr;
    for (auto& [stream, c] : idle)
      if (c.http_source && (!source_full || *c.http_source == source) &&
          (!oldest || c.since < oldest->since))
        oldest = &c;
    if (!oldest) return source_full ? "http_per_source" : "http_connections";
    auto cancel = std::move(oldest->cancel);
    std::erase_if(idle, [&](const auto& kv) { return &kv.second == oldest; });
    cancel();  // it closes on its own strand of work; the count drops then
    metrics.rejected("http_idle_closed");
    return nullptr;
  }

  // Reads requests off one connection until it closes, answering each with `handle`.
  // `http_source`: an HTTP port's connection (closed to make room while idle; its refusals are
  // counted as http_...). `wait`: how long it may wait for a request (default idle_timeout).
  template <class Stream, class Handler>
  asio::awaitable<void> serve(Stream& stream, Handler handle,
                              const std::string* http_source = nullptr,
                              std::optional<std::chrono::milliseconds> wait = {}) {
    auto& socket = beast::get_lowest_layer(stream);  // the deadlines
    Idle waiting(idle, socket, http_source);
    beast::flat_buffer buffer;
    for (;;) {
      boost::system::error_code ec;
      http::request_parser<http::string_body> parser;
      parser.body_limit(config.max_body);
      parser.header_limit(16 * 1024);
      if (stopping) co_return;
      if (buffer.size() == 0) {
        // Idle until the next request's first byte; from then on the whole request must come
        // within read_timeout, so a slow sender holds a connection seconds, not idle_timeout.
        waiting.set(true);
        buffer.shrink_to_fit();  // an idle connection keeps no buffer
        socket.expires_after(wait.value_or(config.idle_timeout));
        const auto n = co_await stream.async_read_some(buffer.prepare(kFirstRead),
                                                       redirect_error(use_awaitable, ec));
        buffer.commit(n);
        waiting.set(false);
        if (ec) co_return;  // closed or timed out while idle: not a refusal
      }
      socket.expires_after(config.read_timeout);
      co_await http::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
      if (!ec) co_await http::async_read(stream, buffer, parser, redirect_error(use_awaitable, ec));
      if (ec) {
        if (is_disconnect(ec) && !parser.got_some()) co_return;
        std::string_view reason = ec == http::error::body_limit ? "too_large"
                                  : ec == beast::error::timeout ? "timeout"
                                  : is_disconnect(ec)           ? "truncated"
                                                                : "bad_request";
        metrics.rejected(http_source ? "http_" + std::string(reason) : std::string(reason));
        spdlog::debug("request refused ({}): {}", reason, ec.message());
        if (reason == "too_large" || reason == "bad_request") {
          auto res = error_reply(
              reason == "too_large" ? http::status::payload_too_large : http::status::bad_request,
              reason, ec.message());
          res.keep_alive(false);
          res.prepare_payload();
          socket.expires_after(config.read_timeout);
          co_await http::async_write(stream, res, redirect_error(use_awaitable, ec));
        }
        co_return;
      }
      if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
        if (http_source && is_board_stream(parser.get()) && leads()) {
          co_await board_stream(stream, parser.get());
          co_return;
        }
      }
      Response res = handle(parser.get());
      const bool keep = parser.get().keep_alive() && res.keep_alive() && !stopping;
      res.keep_alive(keep);
      res.prepare_payload();
      socket.expires_after(config.read_timeout);
      co_await http::async_write(stream, res, redirect_error(use_awaitable, ec));
      if (ec || !keep) co_return;
    }
  }

  static bool is_board_stream(const Request& req) {
    std::string_view target = req.target();
    return req.method() == http::verb::get &&
           target.substr(0, target.find('?')) == "/api/v1/board/events";
  }

  // What every board snapshot starts with.
  json board_head() const { return {{"version", kVersion}, {"writes", !config.api_token.empty()}}; }

  // Server-Sent Events to one open board: a snapshot, then only what changed, as it changes
  // (the board's update on the tick wakes every stream), a comment every 15 s to keep proxies
  // from timing it out. A board that does not read its changes within read_timeout is cut off
  // and reconnects to a fresh snapshot; it never holds up the others.
  asio::awaitable<void> board_stream(beast::tcp_stream& stream, const Request& req) {
    boost::system::error_code ec;
    const auto query = query_of(req.target());
    const std::string site = query.count("site") ? query.at("site") : "";
    http::response<http::empty_body> head{http::status::ok, 11};
    head.set(http::field::server, std::string("dozor-collector/") + kVersion);
    head.set(http::field::content_type, "text/event-stream; charset=utf-8");
    head.set(http::field::cache_control, "no-cache");
    head.set("X-Accel-Buffering", "no");  // nginx: pass each event on at once
    head.keep_alive(false);
    http::response_serializer<http::empty_body> serializer(head);
    stream.expires_after(config.read_timeout);
    co_await http::async_write_header(stream, serializer, redirect_error(use_awaitable, ec));
    if (ec) co_return;
    board.watch(site);
    asio::steady_timer wait(io);
    board_waits.insert(&wait);
    metrics.boards_open.Increment();
    struct Leave {
      State& s;
      const std::string& site;
      asio::steady_timer* wait;
      ~Leave() {
        s.board_waits.erase(wait);
        s.board.unwatch(site);
        s.metrics.boards_open.Decrement();
      }
    } leave{*this, site, &wait};
    std::uint64_t sent = board.seq();
    std::string out =
        "retry: 1000\nevent: snapshot\ndata: " + board.snapshot(site, board_head()) + "\n\n";
    while (!stopping) {
      if (!out.empty()) {
        stream.expires_after(config.read_timeout);
        co_await asio::async_write(stream, asio::buffer(out), redirect_error(use_awaitable, ec));
        if (ec || stopping) break;
        std::string().swap(out);  // an idle board keeps no copy of its snapshot
      }
      if (board.seq() == sent) {
        wait.expires_after(std::chrono::seconds(15));
        co_await wait.async_wait(redirect_error(use_awaitable, ec));
        if (stopping) break;
        if (!ec) {  // 15 s without a change
          out = ": keep-alive\n\n";
          continue;
        }
      }
      const auto changes = board.changes_after(sent, site);
      out = !changes ? "event: snapshot\ndata: " + board.snapshot(site, board_head()) + "\n\n"
            : changes->empty() ? ""
                               : "id: " + std::to_string(board.seq()) +
                                     "\nevent: changes\ndata: " + *changes + "\n\n";
      sent = board.seq();
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  // /api/v1/reports[/{site}[/incidents.csv]] and /report/{site}: the service reports, for a
  // month (?month=2026-11; the last complete one by default) or ?from=&to= (RFC 3339).
  Response report(std::string_view path, std::string_view target) {
    if (!store || !desk)
      return error_reply(http::status::not_found, "not_found", "reports need the store");
    auto query = query_of(target);
    const std::string lang = query.count("lang") ? query["lang"] : "en";
    if (!report_language_known(lang))
      return error_reply(http::status::bad_request, "bad_query", "lang: en or uk");
    constexpr std::string_view api = "/api/v1/reports", page = "/report/", csv = "/incidents.csv";
    const bool fleet = path == api;
    const bool html = path.starts_with(page);
    const bool as_csv = !html && path.ends_with(csv);
    std::string site;
    if (html)
      site = url_unescape(path.substr(page.size()));
    else if (!fleet)
      site = url_unescape(
          path.substr(api.size() + 1, path.size() - api.size() - 1 - (as_csv ? csv.size() : 0)));
    if (!fleet && site.empty())
      return error_reply(http::status::not_found, "not_found", "which site? /report/{site}");
    const auto& calendar = desk->calendar_of(site);
    const std::string zone = calendar.is_24x7() ? config.report.zone : calendar.zone_name();
    const double now = clock();
    collector::ReportRequest request;
    request.site = site;
    request.notice_within = config.report.notice_within;
    for (const auto& rule : desk->config().rules)
      if (rule.kind == collector::RuleKind::forecast) request.forecast_rules.insert(rule.name);
    std::string month, error;
    if (query.count("from") || query.count("to")) {
      const auto from = parse_timestamp(query["from"]), to = parse_timestamp(query["to"]);
      if (!from || !to || *to <= *from)
        return error_reply(http::status::bad_request, "bad_query",
                           "from and to: RFC 3339 times, from before to");
      request.from = *from;
      request.to = *to;
    } else {
      month = query.count("month") ? query["month"] : "";
      if (month.empty()) {  // the last complete month
        const auto current = collector::month_in_zone(collector::month_at(now, zone), zone, error);
        month = collector::month_at(current->first - 1, zone);
      }
      const auto bounds = collector::month_in_zone(month, zone, error);
      if (!bounds) return error_reply(http::status::bad_request, "bad_query", error);
      std::tie(request.from, request.to) = *bounds;
    }
    json out;
    try {
      out = fleet ? collector::fleet_report(
                        store->db(),
                        [this](const std::string& s) -> const collector::ServiceCalendar& {
                          return desk->calendar_of(s);
                        },
                        request, now)
                  : collector::site_report(store->db(), calendar, request, now);
    } catch (const std::exception& e) {
      return error_reply(http::status::service_unavailable, "store_error", e.what());
    }
    if (!fleet && out["probes"].empty() && out["incidents"].empty())
      return error_reply(http::status::not_found, "not_found",
                         "no history of site " + site + " in this period");
    std::string targets;
    for (const auto& [key, target] : desk->config().targets.by_key)
      targets += (targets.empty() ? "" : ", ") + key + " " + format_duration(target);
    const auto client = config.report.clients.find(site);
    if (!fleet) out["client"] = client != config.report.clients.end() ? client->second : site;
    out["company"] = config.report.company;
    out["month"] = month;
    out["targets"] = targets;
    if (as_csv) {
      auto res = reply(http::status::ok, collector::incidents_csv(out), "text/csv; charset=utf-8");
      res.set(http::field::content_disposition,
              "attachment; filename=\"incidents-" + (month.empty() ? "range" : month) + ".csv\"");
      return res;
    }
    if (!html)
      return reply(http::status::ok,
                   out.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    ReportHeading heading{config.report.company,
                          out["client"],
                          site,
                          month,
                          targets,
                          calendar.is_24x7() ? std::string("24x7") : "calendar, " + zone};
    auto res = reply(http::status::ok, report_html(out, heading, lang), "text/html; charset=utf-8");
    res.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
    return res;
  }

  // The board's files, revalidated by ETag (a new collector version may bring new ones).
  Response board_file(const Asset& asset, const Request& req) {
    Response res = reply(http::status::ok, "", asset.content_type);
    if (req[http::field::if_none_match] == asset.etag)
      res.result(http::status::not_modified);
    else if (req.method() == http::verb::get)
      res.body() = std::string(asset.body);
    res.set(http::field::etag, asset.etag);
    res.set(http::field::cache_control, "no-cache");
    // Nothing loads from anywhere but this collector, and no other site may frame the board.
    res.set("Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'");
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Referrer-Policy", "no-referrer");
    return res;
  }

  asio::awaitable<void> agent_session(tcp::socket sock, std::string remote) {
    auto self = shared_from_this();
    SourceSlot pending_slot(pending, pending_by_source, remote);
    const auto deadline = std::chrono::steady_clock::now() + config.handshake_timeout;
    boost::system::error_code ec;
    // Until its first byte, a connection costs a socket and this frame, not a TLS session:
    // idle connections of a flood stay cheap.
    auto raw = std::make_shared<tcp::socket>(std::move(sock));
    asio::steady_timer first_byte(io, deadline);
    first_byte.async_wait([raw](const boost::system::error_code& e) {
      boost::system::error_code ignored;
      if (!e) raw->cancel(ignored);
    });
    co_await raw->async_wait(tcp::socket::wait_read, redirect_error(use_awaitable, ec));
    first_byte.cancel();
    if (ec) {
      metrics.rejected("handshake_timeout");
      refusals.note(remote, "connection from " + remote +
                                " refused: no TLS handshake within limits.handshake_timeout");
      co_return;
    }
    auto tls_context = tls;  // a reload must not free the context under this connection
    TlsStream stream(std::move(*raw), tls_context->native_handle());
    stream.expires_at(deadline);
    co_await stream.async_handshake(redirect_error(use_awaitable, ec));
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      // A plain TCP check of this port (a tcp probe, a load balancer): no handshake was tried.
      spdlog::debug("connection from {} closed before a TLS handshake", remote);
      co_return;
    }
    if (ec) {
      const bool timeout = ec == beast::error::timeout;
      const bool was_revoked =
          SSL_get_verify_result(stream.native_handle()) == X509_V_ERR_CERT_REVOKED;
      metrics.rejected(timeout ? "handshake_timeout" : was_revoked ? "revoked" : "tls_handshake");
      refusals.note(remote, "connection from " + remote + " refused: " +
                                (timeout       ? "TLS handshake not finished within "
                                                 "limits.handshake_timeout"
                                 : was_revoked ? "its certificate is revoked"
                                               : "TLS handshake: " + ec.message()));
      co_return;
    }
    if (!SSL_get0_peer_certificate(stream.native_handle()) && enrollment) {
      // No certificate yet: one enrollment request, soon, still on the strangers' budget.
      co_await serve(
          stream, [&](const Request& req) { return handle_enrollment(remote, req); }, nullptr,
          config.read_timeout);
      co_return;
    }
    pending_slot.release();
    PeerCertificate certificate = peer_certificate(stream.native_handle());
    const std::string agent = certificate.cn;
    if (agent.empty()) {
      metrics.rejected("no_identity");
      refusals.note(remote, "connection from " + remote + " refused: certificate has no CN");
      co_return;
    }
    if (agent_connections >= config.max_connections) {
      metrics.rejected("too_many_connections");
      refusals.note(remote, "connection from " + remote +
                                " refused: over limits.max_connections (agent " + agent + ")");
      co_return;
    }
    Live live(agent_connections);
    spdlog::debug("agent {} connected from {}", agent, remote);
    const std::string site = certificate.site;
    health.connected(agent, certificate.not_after);
    if (store) {
      try {
        store->save_certificate(agent, certificate.serial, certificate.not_after, clock());
      } catch (const std::exception& e) {
        store_failed(std::string("certificate of ") + agent + ": " + e.what());
      }
    }
    const auto registered = agent_streams.emplace(agent, &stream);
    struct Unregister {
      std::unordered_multimap<std::string, TlsStream*>& streams;
      decltype(registered) it;
      ~Unregister() { streams.erase(it); }
    } unregister{agent_streams, registered};
    certificates[agent] = std::move(certificate);
    co_await serve(stream, [&](const Request& req) {
      if (req.target() == "/v1/renew" && req.method() == http::verb::post) {
        if (!enrollment)
          return error_reply(http::status::not_found, "enrollment_off",
                             "this collector issues no certificates (no enroll section)");
        return enrollment->renew(agent, site, SSL_get0_peer_certificate(stream.native_handle()),
                                 remote, clock());
      }
      return handle_report(agent, site, req);
    });
    stream.expires_after(std::chrono::seconds(1));
    co_await stream.async_shutdown(redirect_error(use_awaitable, ec));
  }

  asio::awaitable<void> http_session(tcp::socket sock, std::string source) {
    auto self = shared_from_this();
    SourceSlot slot(http_connections, http_by_source, std::move(source));
    beast::tcp_stream stream(std::move(sock));
    co_await serve(
        stream, [&](const Request& req) { return handle_http(req); }, &slot.source());
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  // A connection without a client certificate: GET /v1/enroll/ca or POST /v1/enroll, once.
  Response handle_enrollment(const std::string& remote, const Request& req) {
    Response res = [&] {
      if (!enrollment)  // switched off by a reload since this connection's handshake
        return error_reply(http::status::not_found, "enrollment_off",
                           "this collector enrolls no agents");
      if (req.target() == "/v1/enroll/ca" && req.method() == http::verb::get)
        return enrollment->ca(remote, clock());
      if (req.target() == "/v1/enroll" && req.method() == http::verb::post) {
        try {
          return enrollment->enroll(req, remote, clock());
        } catch (const std::exception& e) {
          store_failed(std::string("enrollment: ") + e.what());
          return error_reply(http::status::service_unavailable, "store_error", e.what());
        }
      }
      metrics.rejected("no_certificate");
      refusals.note(remote, "connection from " + remote + " refused: no client certificate");
      return error_reply(http::status::forbidden, "no_certificate",
                         "a client certificate is required; without one only GET /v1/enroll/ca "
                         "and POST /v1/enroll are served");
    }();
    res.keep_alive(false);
    return res;
  }

  // `site`: the one the agent's certificate names; empty when it names none (the report's then).
  Response handle_report(const std::string& agent, const std::string& site, const Request& req) {
    if (req.target() != "/v1/report") {
      metrics.rejected("not_found");
      return error_reply(http::status::not_found, "not_found", "no such endpoint; POST /v1/report");
    }
    if (req.method() != http::verb::post) {
      metrics.rejected("method_not_allowed");
      auto res = error_reply(http::status::method_not_allowed, "method_not_allowed",
                             "use POST for /v1/report");
      res.set(http::field::allow, "POST");
      return res;
    }
    const double now =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    if (!report_tokens.take(agent, now)) {
      metrics.rejected("limit_reports_per_second");
      refusals.note(agent, "agent " + agent + ": report refused: over limits.reports_per_second");
      auto res = error_reply(http::status::too_many_requests, "limit_reports_per_second",
                             "more than " + std::to_string(config.reports_per_second) +
                                 " reports a second (limits.reports_per_second)");
      res.set(http::field::retry_after, "1");
      return res;
    }
    auto decoded = protocol::decode_report(req.body());
    if (!decoded) {
      const char* reason = decoded.error.field.empty() ? "bad_json" : "invalid_report";
      metrics.rejected(reason);
      spdlog::info("report from {} refused: {}", agent, decoded.error.to_string());
      return error_reply(http::status::bad_request, reason, decoded.error.to_string());
    }
    if (!site.empty() && decoded.value->agent.site != site) {
      // The certificate's site wins: an agent's config cannot move it to another client.
      metrics.rejected("site_claimed");
      refusals.note(agent, "agent " + agent + ": report claims site '" + decoded.value->agent.site +
                               "'; its certificate says '" + site + "', which is kept");
      decoded.value->agent.site = site;
    }
    const auto presented = certificates.find(agent);
    try {
      auto outcome = health.ingest(agent, *decoded.value, clock(),
                                   presented != certificates.end() ? presented->second.serial : "");
      store_ok();
      protocol::Ack ack{outcome.acked_seq, {}};
      for (auto& r : outcome.refused) {
        refusals.note(agent, "agent " + agent + ": result refused: " + r.message);
        ack.refused.push_back({r.seq, std::move(r.reason), std::move(r.message)});
      }
      return reply(http::status::ok, protocol::encode(ack));
    } catch (const collector::AgentRevoked& e) {
      // Revoked through another collector since this connection's handshake.
      metrics.rejected("revoked");
      if (presented != certificates.end()) revoked->insert(presented->second.serial);
      refusals.note(agent, std::string(e.what()) + ": report refused, connection closed");
      auto res = error_reply(http::status::forbidden, "revoked", e.what());
      res.keep_alive(false);
      return res;
    } catch (const std::exception& e) {
      // Not stored, so not acked: the agent keeps the results and sends them again.
      metrics.rejected("store_error");
      health.heard_from(agent, clock());  // alive: not silent for the collector's fault
      store_failed(std::string("report from ") + agent + " not stored: " + e.what());
      return error_reply(http::status::service_unavailable, "store_error", "report not stored");
    }
  }

  // Revokes `serials` of `agent`: refused at every handshake from now on, kept in the store
  // across restarts; the agent's open connections are closed at once. How many were closed.
  std::size_t revoke_serials(const std::string& agent, const std::vector<std::string>& serials,
                             const std::string& by, const std::string& comment, double at) {
    for (const auto& serial : serials) store->revoke({serial, agent, by, comment, at});
    revoked->insert(serials.begin(), serials.end());
    std::size_t closed = 0;
    for (auto [it, end] = agent_streams.equal_range(agent); it != end; ++it, ++closed)
      it->second->close();
    spdlog::warn("agent {} revoked by {}: certificate(s) {}, {} connection(s) closed: {}", agent,
                 by.empty() ? "?" : by, fmt::join(serials, ", "), closed, comment);
    return closed;
  }

  // Revokes every certificate of `id` that may still be in use: the one it presented last and
  // those issued to it; its unused enrollment tokens too. The agent is forgotten (its client
  // left, its machine was stolen: no agent-silent ticket follows).
  Response revoke(const std::string& id, const Request& req) {
    if (!store) return error_reply(http::status::not_found, "not_found", "no store");
    const auto body = json::parse(req.body(), nullptr, false);
    const std::string by = body.is_object() ? body.value("by", "") : "";
    const std::string comment = body.is_object() ? body.value("comment", "") : "";
    const double now = clock();
    std::vector<std::string> serials;
    std::size_t closed = 0, tokens = 0;
    try {
      serials = store->live_serials(id, now);
      if (serials.empty())
        return error_reply(http::status::not_found, "not_found",
                           "no certificate of agent " + id + " in use is known here");
      closed = revoke_serials(id, serials, by, comment, now);
      tokens = store->revoke_tokens_of(id, now);
      health.forget(id, now);
    } catch (const std::exception& e) {
      store_failed(std::string("revoking ") + id + ": " + e.what());
      return error_reply(http::status::service_unavailable, "store_error", e.what());
    }
    certificates.erase(id);
    report_tokens.erase(id);
    return reply(http::status::ok, json{{"id", id},
                                        {"serial", serials.front()},
                                        {"serials", serials},
                                        {"revoked", true},
                                        {"connections_closed", closed},
                                        {"tokens_revoked", tokens}}
                                           .dump() +
                                       "\n");
  }

  // /api/v1/enroll/tokens[/ID/revoke], /api/v1/certificates, /api/v1/crl; nullopt otherwise.
  std::optional<Response> handle_enrollment_api(std::string_view path, const Request& req) {
    constexpr std::string_view tokens_path = "/api/v1/enroll/tokens";
    const bool ours =
        path.starts_with(tokens_path) || path == "/api/v1/certificates" || path == "/api/v1/crl";
    if (!ours) return std::nullopt;
    if (!enrollment)
      return error_reply(http::status::not_found, "enrollment_off",
                         "enrollment is off: set enroll.ca_cert and enroll.ca_key in "
                         "collector.yaml");
    const auto method = req.method();
    const bool read = method == http::verb::get || method == http::verb::head;
    if (!read)
      if (auto refused = refuse_write(req, config.api_token)) return refused;
    const double now = clock();
    try {
      if (path == tokens_path && read) return enrollment->tokens(now);
      if (path == tokens_path && method == http::verb::post)
        return enrollment->create_token(req, now);
      if (path.starts_with(std::string(tokens_path) + "/") && path.ends_with("/revoke") &&
          method == http::verb::post)
        return enrollment->revoke_token(
            std::string(
                path.substr(tokens_path.size() + 1, path.size() - tokens_path.size() - 1 - 7)),
            now);
      if (path == "/api/v1/certificates" && read) {
        std::string_view target = req.target();
        const auto q = target.find("?agent=");
        return enrollment->certificates(
            q == std::string_view::npos ? "" : url_unescape(target.substr(q + 7)));
      }
      if (path == "/api/v1/crl" && read) return enrollment->crl(now);
    } catch (const std::exception& e) {
      store_failed(std::string("enrollment API: ") + e.what());
      return error_reply(http::status::service_unavailable, "store_error", e.what());
    }
    return error_reply(http::status::method_not_allowed, "method_not_allowed",
                       "no such method on " + std::string(path));
  }

  Response handle_http(const Request& req) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    if (path == "/api/v1/leader") return leader_reply();
    // A follower holds only the agents it serves: what people read and change is the leader's.
    if (!leads() && path != "/metrics" && path != "/healthz") {
      const std::string holder = lease->holder();
      return error_reply(http::status::service_unavailable, "not_leader",
                         "collector " + lease->node() + " only takes agents' reports; " +
                             (holder.empty() ? "no collector leads yet (the lease is free)"
                                             : "ask the leader, " + holder) +
                             " (the cluster's HTTP address follows it: /api/v1/leader)");
    }
    if (desk) {
      try {
        if (auto res = handle_desk_api(*desk, config.api_token, req, clock())) return *res;
      } catch (const std::exception& e) {
        spdlog::error("{} {}: {}", std::string(http::to_string(req.method())), std::string(path),
                      e.what());
        return error_reply(http::status::service_unavailable, "store_error", e.what());
      }
    }
    if (auto res = handle_enrollment_api(path, req)) return *res;
    if (path.starts_with("/api/v1/agents/") && path.ends_with("/revoke") &&
        req.method() == http::verb::post) {
      if (auto refused = refuse_write(req, config.api_token)) return *refused;
      constexpr std::string_view prefix = "/api/v1/agents/", suffix = "/revoke";
      return revoke(
          url_unescape(path.substr(prefix.size(), path.size() - prefix.size() - suffix.size())),
          req);
    }
    if (path == "/api/v1/revocations" && req.method() == http::verb::get) {
      json out = json::array();
      try {
        if (store)
          for (const auto& r : store->revocations())
            out.push_back({{"serial", r.serial},
                           {"agent", r.agent},
                           {"revoked_at", format_timestamp(r.revoked_at)},
                           {"by", r.by},
                           {"comment", r.comment}});
      } catch (const std::exception& e) {
        return error_reply(http::status::service_unavailable, "store_error", e.what());
      }
      return reply(http::status::ok, json{{"revocations", out}}.dump(2) + "\n");
    }
    if (path.starts_with("/api/v1/agents/") && req.method() == http::verb::delete_) {
      if (auto refused = refuse_write(req, config.api_token)) return *refused;
      const std::string id = url_unescape(path.substr(std::string_view("/api/v1/agents/").size()));
      try {
        if (!health.forget(id, clock()))
          return error_reply(http::status::not_found, "not_found", "no agent " + id);
      } catch (const std::exception& e) {
        store_failed(std::string("forgetting agent ") + id + ": " + e.what());
        return error_reply(http::status::service_unavailable, "store_error", e.what());
      }
      certificates.erase(id);
      report_tokens.erase(id);
      spdlog::info("agent {} forgotten through the API", id);
      return reply(http::status::ok, json{{"id", id}, {"forgotten", true}}.dump() + "\n");
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      auto res = error_reply(http::status::method_not_allowed, "method_not_allowed", "use GET");
      res.set(http::field::allow, "GET, HEAD");
      return res;
    }
    if (path == "/metrics") {
      health.refresh(clock());
      return reply(http::status::ok, metrics.scrape(), "text/plain; version=0.0.4; charset=utf-8");
    }
    if (path == "/healthz") {
      if (!store_failure.empty())
        return reply(http::status::service_unavailable, "store failing: " + store_failure + "\n",
                     "text/plain");
      return reply(http::status::ok, "ok\n", "text/plain");
    }
    if (const Asset* asset = find_asset(path)) return board_file(*asset, req);
    if (path.starts_with("/report/") || path == "/api/v1/reports" ||
        path.starts_with("/api/v1/reports/"))
      return report(path, target);
    if (path == "/api/v1/board") {
      const auto query = query_of(target);
      const std::string site = query.count("site") ? query.at("site") : "";
      board.watch(site);
      auto snapshot = board.snapshot(site, board_head());
      board.unwatch(site);
      return reply(http::status::ok, std::move(snapshot));
    }
    if (path == "/api/v1/agents")
      return reply(http::status::ok,
                   agents_json(health.agents(clock()), certificates).dump(2) + "\n");
    return error_reply(http::status::not_found, "not_found",
                       "no such endpoint; try / (the board), /metrics, /healthz, /api/v1/agents, "
                       "/api/v1/tickets");
  }
};

Server::Server(asio::io_context& io, ServerConfig config, collector::Health& health,
               collector::Desk* desk, collector::Metrics& metrics, Clock clock,
               collector::Store* store)
    : state_(std::make_shared<State>(io, std::move(config), health, desk, metrics, std::move(clock),
                                     store)) {}

Server::~Server() {
  boost::system::error_code ec;
  state_->agents_acceptor.close(ec);
  state_->http_acceptor.close(ec);
}

void Server::set_lease(collector::Lease* lease) {
  state_->lease = lease;
  state_->health.share_store(true);
  state_->health.lead(false, state_->clock());
  state_->metrics.collector_leader.Add({{"node", lease->node()}}).Set(0);
  if (state_->desk)
    state_->desk->set_fence([s = state_.get()] { s->lease->fence(s->store->db(), s->led_term); });
  state_->follow_lease();
}

void Server::start() {
  // TlsStream writes to its socket with write(2): a peer that has closed must be an EPIPE
  // error of that connection, not a SIGPIPE that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  state_->listen(state_->agents_acceptor, state_->config.agents);
  state_->listen(state_->http_acceptor, state_->config.http);
  asio::co_spawn(state_->io, state_->accept_loop(state_->agents_acceptor, true), asio::detached);
  asio::co_spawn(state_->io, state_->accept_loop(state_->http_acceptor, false), asio::detached);
  asio::co_spawn(state_->io, state_->tick_loop(), asio::detached);
}

void Server::stop(std::chrono::milliseconds grace) {
  auto s = state_;
  s->stopping = true;
  boost::system::error_code ec;
  s->agents_acceptor.close(ec);
  s->http_acceptor.close(ec);
  for (auto& [stream, c] : IdleConnections(s->idle)) c.cancel();
  for (auto* wait : s->board_waits) wait->cancel();
  // Poll until the last request is answered or the grace period is over, then stop the loop.
  asio::co_spawn(
      s->io,
      [s, grace]() -> asio::awaitable<void> {
        asio::steady_timer timer(s->io);
        const auto deadline = std::chrono::steady_clock::now() + grace;
        while (s->agent_connections + s->http_connections > 0 &&
               std::chrono::steady_clock::now() < deadline) {
          timer.expires_after(std::chrono::milliseconds(20));
          co_await timer.async_wait(use_awaitable);
        }
        s->io.stop();
      },
      asio::detached);
}

void Server::reload(const ServerConfig& config) {
  auto tls = std::make_shared<ssl::context>(make_agent_tls(config, state_->revoked.get()));
  auto enrollment = state_->make_enrollment(config);
  const Endpoint agents = state_->config.agents, http = state_->config.http;
  state_->config = config;  // limits and the API token; the listeners stay where they are
  state_->config.agents = agents;
  state_->config.http = http;
  state_->report_tokens.set_rate(static_cast<double>(config.reports_per_second));
  state_->tls = std::move(tls);
  state_->enrollment = std::move(enrollment);
  state_->publish_own_expiry();
}

}  // namespace dozor::server
