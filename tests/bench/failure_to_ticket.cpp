// From a probe's critical result to its ticket in the collector's API, through the real path:
// the agent's Spool and Uplink (mutual TLS, keep-alive) to a running dozor-collector, its rules
// (`probe-critical`, `for: 0s`), then GET /api/v1/tickets?status=active over plain HTTP.
//
// Each failure is a new key: probe fail-N turns critical; the clock runs from handing that result
// to the agent's spool (as the scheduler does when a probe finishes) until a poll of the API shows
// an active ticket for fail-N. Then fail-N reports ok again and, untimed, the benchmark waits for
// the ticket to resolve (the collector runs with `recover_for: 0s`), so that the active list holds
// one ticket at most and every poll costs the same. The collector must run with the site-wide
// outage grouping off (`tickets: {outage_probes: 1000000}`), or the third failure within a minute
// would fold into a site ticket.
//
//   failure_to_ticket COLLECTOR_URL HTTP_HOST:PORT CA CERT KEY [COUNT [SPOOL_FILE]]
//
// tests/bench/failure_to_ticket.sh starts the collector and makes the certificates.
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dozor/agent/config.h"
#include "dozor/agent/spool.h"
#include "dozor/agent/uplink.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using dozor::protocol::Status;

namespace {

// A plain HTTP/1.1 keep-alive client for the collector's API.
class Api {
 public:
  Api(const std::string& host, const std::string& port) : stream_(io_) {
    asio::ip::tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve(host, port));
  }
  std::string get(const std::string& target) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "bench");
    http::write(stream_, req);
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    return std::move(res.body());
  }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string probe_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fail-%04d", i);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s COLLECTOR_URL HTTP_HOST:PORT CA CERT KEY [COUNT [SPOOL]]\n",
                 argv[0]);
    return 2;
  }
  dozor::agent::CollectorLink link;
  std::string message;
  if (!dozor::agent::parse_collector_url(argv[1], link, message)) {
    std::fprintf(stderr, "%s\n", message.c_str());
    return 2;
  }
  link.ca = argv[3];
  link.cert = argv[4];
  link.key = argv[5];
  const std::string http_at = argv[2];
  const int count = argc > 6 ? std::stoi(argv[6]) : 100;
  const int warmup = 3;

  asio::io_context io(1);
  const std::string spool_path = argc > 7 ? argv[7] : "failure_to_ticket.spool.db";
  dozor::agent::Spool spool({spool_path});
  dozor::protocol::AgentInfo info{"bench", "bench", "bench", 0, 5, spool.id()};
  dozor::agent::Uplink uplink(io, link, info, spool);
  uplink.start();
  auto guard = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  // Hands a result to the spool on the I/O thread, as the scheduler does; returns when it was.
  auto send = [&](const std::string& probe, Status status) {
    std::promise<Clock::time_point> queued;
    asio::post(io, [&] {
      const auto t0 = Clock::now();
      dozor::protocol::Result r;
      r.probe = probe;
      r.type = "bench";
      r.status = status;
      r.summary = status == Status::ok ? "connected" : "connection refused";
      r.ts = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                 .count();
      spool.push(std::move(r));
      uplink.notify();
      queued.set_value(t0);
    });
    return queued.get_future().get();
  };

  Api api(http_at.substr(0, http_at.rfind(':')), http_at.substr(http_at.rfind(':') + 1));
  const std::string active = "/api/v1/tickets?status=active";
  const auto deadline = Clock::now() + std::chrono::seconds(60 + 2 * (count + warmup));
  std::vector<double> ms;
  long polls = 0;
  for (int i = 1; i <= count + warmup; ++i) {
    const std::string probe = probe_name(i);
    const std::string needle = "\"probe\": \"" + probe + "\"";
    const auto t0 = send(probe, Status::critical);
    while (api.get(active).find(needle) == std::string::npos) {
      ++polls;
      if (Clock::now() > deadline) {
        std::fprintf(stderr, "failure_to_ticket: no ticket for %s\n", probe.c_str());
        return 1;
      }
    }
    const auto t1 = Clock::now();
    if (i > warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    // Untimed: the probe recovers and its ticket resolves, so the active list is empty again.
    send(probe, Status::ok);
    while (api.get(active).find(needle) != std::string::npos) {
      if (Clock::now() > deadline) {
        std::fprintf(stderr, "failure_to_ticket: ticket for %s did not resolve\n", probe.c_str());
        return 1;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // failures one at a time
  }
  asio::post(io, [&] {
    uplink.stop();
    guard.reset();
  });
  io_thread.join();

  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, std::size_t(p * ms.size()))]; };
  std::printf(
      "failure_to_ticket: %zu failures, p50 %.2f ms, p99 %.2f ms, max %.2f ms "
      "(%.1f polls a failure before the ticket showed)\n",
      ms.size(), pct(0.5), pct(0.99), ms.back(), static_cast<double>(polls) / (count + warmup));
  return 0;
}
