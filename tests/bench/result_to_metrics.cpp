// From a probe's result to its value in the collector's /metrics, through the real path: the
// agent's Spool and Uplink (mutual TLS, keep-alive) to a running dozor-collector, then a scrape.
// Each result carries a fresh value; the clock runs from handing the result to the agent's queue
// (the spool, where the scheduler puts a probe's result; committed before it is sent) until a
// scrape of /metrics shows that value.
//
//   result_to_metrics COLLECTOR_URL HTTP_HOST:PORT CA CERT KEY [COUNT [SPOOL_FILE]]
//
// tests/bench/result_to_metrics.sh starts the collector and makes the certificates.
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

namespace {

// A plain HTTP/1.1 keep-alive client for /metrics, as Prometheus would scrape it.
class Scraper {
 public:
  Scraper(const std::string& host, const std::string& port) : stream_(io_) {
    asio::ip::tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve(host, port));
  }
  std::string scrape() {
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
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

double value_of(const std::string& text) {
  const std::string key = "metric=\"bench_value\"";
  auto pos = text.find(key);
  if (pos == std::string::npos) return -1;
  pos = text.find("} ", pos);
  return std::stod(text.substr(pos + 2));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s COLLECTOR_URL HTTP_HOST:PORT CA CERT KEY [COUNT]\n", argv[0]);
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
  const int count = argc > 6 ? std::stoi(argv[6]) : 200;

  asio::io_context io(1);
  const std::string spool_path = argc > 7 ? argv[7] : "result_to_metrics.spool.db";
  dozor::agent::Spool spool({spool_path});
  dozor::protocol::AgentInfo info{"bench", "bench", "bench", 0, 5, spool.id()};
  dozor::agent::Uplink uplink(io, link, info, spool);
  uplink.start();
  auto guard = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  Scraper scraper(http_at.substr(0, http_at.rfind(':')), http_at.substr(http_at.rfind(':') + 1));
  std::vector<double> ms;
  for (int i = 1; i <= count + 5; ++i) {
    std::promise<Clock::time_point> queued;
    asio::post(io, [&, i] {
      dozor::protocol::Result r;
      r.probe = "bench";
      r.type = "bench";
      r.status = dozor::protocol::Status::ok;
      r.ts = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                 .count();
      r.metrics.push_back({"bench_value", double(i), ""});
      spool.push(std::move(r));
      uplink.notify();
      queued.set_value(Clock::now());
    });
    const auto t0 = queued.get_future().get();
    while (value_of(scraper.scrape()) != double(i)) {
    }
    const auto t1 = Clock::now();
    if (i > 5) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());  // warm-up
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // results arrive one at a time
  }
  asio::post(io, [&] {
    uplink.stop();
    guard.reset();
  });
  io_thread.join();

  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, std::size_t(p * ms.size()))]; };
  std::printf("result_to_metrics: %zu results, median %.2f ms, p99 %.2f ms, max %.2f ms\n",
              ms.size(), pct(0.5), pct(0.99), ms.back());
  return 0;
}
