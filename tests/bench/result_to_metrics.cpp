// From a probe's result to its value in the collector's /metrics, through the real path: the
// agent's Spool and Uplink (mutual TLS, keep-alive) to a running dozor-collector, then a scrape.
// Each result carries a fresh value; the clock runs from handing the result to the agent's queue
// (the spool, where the scheduler puts a probe's result; committed before it is sent) until a
// scrape of /metrics shows that value.
//
//   result_to_metrics COLLECTOR_URL HTTP_HOST:PORT CA CERT KEY [COUNT [SPOOL_FILE]]
//
// tests/bench/result_to_metrics.sh starts the collector and makes the certificates.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench_agent.h"

namespace {

double value_of(const std::string& text) {
  const std::string key = "metric=\"bench_value\"";
  auto pos = text.find(key);
  if (pos == std::string::npos) return -1;
  pos = text.find("} ", pos);
  return std::stod(text.substr(pos + 2));
}

}  // namespace

int main(int argc, char** argv) {
  using dozor::bench::Clock;
  dozor::bench::Agent agent(argc, argv, 200);
  dozor::bench::HttpClient scraper(agent.http_at());
  std::vector<double> ms;
  for (int i = 1; i <= agent.count() + 5; ++i) {
    dozor::protocol::Result r;
    r.probe = "bench";
    r.type = "bench";
    r.status = dozor::protocol::Status::ok;
    r.metrics.push_back({"bench_value", double(i), ""});
    const auto t0 = agent.send(std::move(r));
    while (value_of(scraper.get("/metrics")) != double(i)) {
    }
    const auto t1 = Clock::now();
    if (i > 5) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());  // warm-up
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // results arrive one at a time
  }
  const double median = dozor::bench::percentile(ms, 0.5);
  std::printf("result_to_metrics: %zu results, median %.2f ms, p99 %.2f ms, max %.2f ms\n",
              ms.size(), median, dozor::bench::percentile(ms, 0.99), ms.back());
  return 0;
}
