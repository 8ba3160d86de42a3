#include "tcp/tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "src/human_units.h"

namespace dozor::probes::tcp {
namespace {

namespace beast = boost::beast;
using boost::asio::redirect_error;
using boost::asio::use_awaitable;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxReply = 64 * 1024;

constexpr OptionSpec kOptions[] = {
    {"host", OptionKind::string, "", true, "host name or address"},
    {"port", OptionKind::integer, "", true, "TCP port"},
    {"send", OptionKind::string, "", false, "bytes to send after connecting, e.g. a request line"},
    {"expect", OptionKind::string, "", false, "substring the reply must contain"},
    {"warning", OptionKind::duration, "", false, "connect time at or above this is a warning"},
    {"critical", OptionKind::duration, "", false, "connect time at or above this is critical"},
    {"hold", OptionKind::boolean, "false", false,
     "keep the connection open between runs: its close or reset is checked at once with a "
     "fresh connect (for services where an idle connection is harmless; not with send)"},
};

// A held connection the peer closes sooner than this is not held again until the next interval:
// a service that drops idle connections at once must not turn into a reconnect loop.
constexpr auto kShortestHold = std::chrono::seconds(1);
// More than this arriving on an idle connection: the service talks, holding it costs reads.
constexpr std::size_t kMaxIdleBytes = 64 * 1024;

/// The connection a `hold: true` probe keeps open, read on the I/O executor until it ends.
struct Held {
  explicit Held(asio::ip::tcp::socket s) : socket(std::move(s)) {}
  asio::ip::tcp::socket socket;
  std::array<char, 512> buf{};
  std::size_t idle_bytes = 0;
  Clock::time_point since = Clock::now();
  std::string ended;  // why it ended: "End of file", "Connection reset by peer"
  Clock::duration lasted{};
};

struct Config {
  std::string host;
  std::string port;
  std::string send;
  std::string expect;
  std::optional<double> warning, critical;  // seconds
  bool hold = false;
};

std::optional<double> seconds_option(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  return std::chrono::duration<double>(o.duration(key)).count();
}

class TcpProbe final : public Probe {
 public:
  explicit TcpProbe(Config c) : c_(std::move(c)) {}
  ~TcpProbe() override { release(); }

  void watch(Changed changed) override {
    if (c_.hold) changed_ = std::make_shared<Changed>(std::move(changed));
  }
  void unwatch() override {
    changed_.reset();
    release();
  }

  // A run for a change is the fresh connect that confirms a held connection's end.
  asio::awaitable<Result> run(ProbeContext& ctx) override {
    std::shared_ptr<Held> ended;
    if (held_ && !held_->ended.empty()) ended = std::exchange(held_, nullptr);
    // Dropped at once: the service closes idle connections; the next interval holds again.
    const bool may_hold = !ended || ended->lasted >= kShortestHold;
    Result r = co_await check(ctx, may_hold);
    if (ended)
      r.summary += "; the held connection ended after " +
                   human_seconds(std::chrono::duration<double>(ended->lasted).count()) + " (" +
                   ended->ended + ")";
    co_return r;
  }

 private:
  asio::awaitable<Result> check(ProbeContext& ctx, bool may_hold) {
    const std::string where = c_.host + ":" + c_.port;
    beast::tcp_stream stream(ctx.io);
    boost::system::error_code ec;
    const auto start = Clock::now();
    stream.expires_after(ctx.timeout);

    asio::ip::tcp::resolver resolver(ctx.io);
    auto endpoints =
        co_await resolver.async_resolve(c_.host, c_.port, redirect_error(use_awaitable, ec));
    if (ec)
      co_return make_result(Status::critical, "cannot resolve " + c_.host + ": " + ec.message());

    co_await stream.async_connect(endpoints, redirect_error(use_awaitable, ec));
    const double connect_s = seconds_between(start, Clock::now());
    if (ec) {
      auto what = ec == beast::error::timeout ? std::string("timed out") : ec.message();
      co_return make_result(Status::critical, "connect to " + where + ": " + what);
    }
    Result r;
    r.metrics.push_back({"connect_seconds", connect_s, "s"});

    if (!c_.send.empty()) {
      co_await asio::async_write(stream, asio::buffer(c_.send), redirect_error(use_awaitable, ec));
      if (ec)
        co_return with(std::move(r), Status::critical, "send to " + where + ": " + ec.message());
    }
    if (!c_.expect.empty()) {
      std::string reply;
      char buf[4096];
      while (reply.find(c_.expect) == std::string::npos && reply.size() < kMaxReply) {
        std::size_t n =
            co_await stream.async_read_some(asio::buffer(buf), redirect_error(use_awaitable, ec));
        reply.append(buf, n);
        if (ec) break;
      }
      if (reply.find(c_.expect) == std::string::npos) {
        auto why = ec == beast::error::timeout ? std::string("timed out")
                   : ec                        ? ec.message()
                                               : std::string("reply too long");
        co_return with(std::move(r), Status::critical,
                       "expected '" + c_.expect + "' from " + where + ", got " + quote(reply) +
                           " (" + why + ")");
      }
    }
    Status s = threshold_status(connect_s, c_.warning, c_.critical);
    if (changed_ && !held_ && may_hold) hold(stream.release_socket());
    co_return with(std::move(r), s,
                   where + " connected in " + human_seconds(connect_s) +
                       (c_.expect.empty() ? "" : ", reply matched"));
  }

  // Keeps the check's connection and waits for its end. Keepalive notices a peer that vanished
  // without a word (a host switched off) within about 25 s.
  void hold(asio::ip::tcp::socket socket) {
    const int fd = socket.native_handle();
    const int on = 1, idle = 10, gap = 5, count = 3;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &gap, sizeof gap);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    held_ = std::make_shared<Held>(std::move(socket));
    read_held(held_, changed_);
  }

  static void read_held(std::shared_ptr<Held> held, std::weak_ptr<Changed> changed) {
    auto& socket = held->socket;
    socket.async_read_some(
        asio::buffer(held->buf), [held = std::move(held), changed = std::move(changed)](
                                     const boost::system::error_code& ec, std::size_t n) {
          if (ec == asio::error::operation_aborted || !held->socket.is_open()) return;
          held->idle_bytes += n;
          if (!ec && held->idle_bytes <= kMaxIdleBytes) return read_held(held, changed);
          held->ended = ec ? ec.message() : "the service sends on an idle connection";
          held->lasted = Clock::now() - held->since;
          boost::system::error_code ignored;
          held->socket.close(ignored);
          if (auto c = changed.lock()) (*c)();
        });
  }

  void release() {
    if (!held_) return;
    boost::system::error_code ignored;
    held_->socket.close(ignored);
    held_.reset();
  }

  static Result with(Result r, Status s, std::string summary) {
    r.status = s;
    r.summary = std::move(summary);
    return r;
  }
  // First line of a peer's reply, bounded, for a one-line summary.
  static std::string quote(const std::string& reply) {
    std::string first = reply.substr(0, reply.find_first_of("\r\n"));
    if (first.size() > 80) first = first.substr(0, 80) + "...";
    return "'" + first + "'";
  }

  Config c_;
  std::shared_ptr<Changed> changed_;  // handlers hold it weakly: nothing calls back after unwatch
  std::shared_ptr<Held> held_;
};

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.host = o.string("host");
  auto port = o.integer("port");
  if (port < 1 || port > 65535) o.error("port", "expected 1-65535");
  c.port = std::to_string(port);
  c.send = o.string("send");
  c.expect = o.string("expect");
  c.warning = seconds_option(o, "warning");
  c.critical = seconds_option(o, "critical");
  if (c.host.empty()) o.error("host", "must not be empty");
  c.hold = o.boolean("hold");
  if (c.hold && !c.send.empty())
    o.error("hold", "holds the connection the check opened: not with send, whose reply ends it");
  return std::make_unique<TcpProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() { return {"tcp", "TCP connect, optional send/expect", kOptions, &make}; }

}  // namespace dozor::probes::tcp
