#include "tcp/tcp.h"

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
};

struct Config {
  std::string host;
  std::string port;
  std::string send;
  std::string expect;
  std::optional<double> warning, critical;  // seconds
};

std::optional<double> seconds_option(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  return std::chrono::duration<double>(o.duration(key)).count();
}

class TcpProbe final : public Probe {
 public:
  explicit TcpProbe(Config c) : c_(std::move(c)) {}

  asio::awaitable<Result> run(ProbeContext& ctx) override {
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
    co_return with(std::move(r), s,
                   where + " connected in " + human_seconds(connect_s) +
                       (c_.expect.empty() ? "" : ", reply matched"));
  }

 private:
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
  return std::make_unique<TcpProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() { return {"tcp", "TCP connect, optional send/expect", kOptions, &make}; }

}  // namespace dozor::probes::tcp
