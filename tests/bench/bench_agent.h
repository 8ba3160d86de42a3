#pragma once
// Shared by the whole-path benchmarks (result_to_metrics, failure_to_ticket): the agent's real
// Spool and Uplink (mutual TLS, keep-alive) on their own I/O thread, reporting to a running
// dozor-collector, and a plain HTTP client for the collector's HTTP port. Command line:
//   NAME COLLECTOR_URL HTTP_HOST:PORT CA CERT KEY [COUNT [SPOOL_FILE]]
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dozor/agent/config.h"
#include "dozor/agent/spool.h"
#include "dozor/agent/uplink.h"

namespace dozor::bench {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

/// A plain HTTP/1.1 keep-alive client, as Prometheus or dozorctl talk to the collector.
class HttpClient {
 public:
  explicit HttpClient(const std::string& host_port) : stream_(io_) {
    const auto colon = host_port.rfind(':');
    asio::ip::tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve(host_port.substr(0, colon), host_port.substr(colon + 1)));
  }
  std::string get(const std::string& target) {
    namespace http = boost::beast::http;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "bench");
    http::write(stream_, req);
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    return std::move(res.body());
  }

 private:
  asio::io_context io_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
};

/// The agent's side; exits with a usage message when the command line is wrong.
class Agent {
 public:
  Agent(int argc, char** argv, int default_count) {
    if (argc < 6) usage(argv[0]);
    std::string message;
    if (!agent::parse_collector_url(argv[1], link_, message)) {
      std::fprintf(stderr, "%s\n", message.c_str());
      std::exit(2);
    }
    http_at_ = argv[2];
    link_.ca = argv[3];
    link_.cert = argv[4];
    link_.key = argv[5];
    count_ = argc > 6 ? std::atoi(argv[6]) : default_count;
    if (count_ < 1) usage(argv[0]);
    spool_ = std::make_unique<agent::Spool>(
        agent::SpoolConfig{argc > 7 ? argv[7] : std::string(argv[0]) + ".spool.db"});
    protocol::AgentInfo info{"bench", "bench", "bench", 0, 5, spool_->id()};
    uplink_ = std::make_unique<agent::Uplink>(io_, link_, info, *spool_);
    uplink_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Agent() {
    asio::post(io_, [this] {
      uplink_->stop();
      guard_.reset();
    });
    thread_.join();
  }

  int count() const { return count_; }
  const std::string& http_at() const { return http_at_; }

  /// Hands `r` to the spool on the I/O thread, as the scheduler does when a probe finishes;
  /// returns the moment it was handed over, once the spool has committed it.
  Clock::time_point send(protocol::Result r) {
    std::promise<Clock::time_point> queued;
    asio::post(io_, [&] {
      const auto t0 = Clock::now();
      r.ts = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                 .count();
      spool_->push(std::move(r));
      uplink_->notify();
      queued.set_value(t0);
    });
    return queued.get_future().get();
  }

 private:
  [[noreturn]] static void usage(const char* name) {
    std::fprintf(stderr, "usage: %s COLLECTOR_URL HTTP_HOST:PORT CA CERT KEY [COUNT [SPOOL]]\n",
                 name);
    std::exit(2);
  }

  agent::CollectorLink link_;
  std::string http_at_;
  int count_ = 0;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  std::unique_ptr<agent::Spool> spool_;
  std::unique_ptr<agent::Uplink> uplink_;
  std::thread thread_;
};

/// The value at fraction `p` (0-1) of `samples`, which it sorts.
inline double percentile(std::vector<double>& samples, double p) {
  std::sort(samples.begin(), samples.end());
  return samples[std::min(samples.size() - 1, static_cast<std::size_t>(p * samples.size()))];
}

}  // namespace dozor::bench
