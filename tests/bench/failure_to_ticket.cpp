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
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench_agent.h"

namespace {

using dozor::bench::Clock;
using dozor::protocol::Status;

std::string probe_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fail-%04d", i);
  return buf;
}

dozor::protocol::Result result(const std::string& probe, Status status) {
  dozor::protocol::Result r;
  r.probe = probe;
  r.type = "bench";
  r.status = status;
  r.summary = status == Status::ok ? "connected" : "connection refused";
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  dozor::bench::Agent agent(argc, argv, 100);
  const int count = agent.count();
  const int warmup = 3;
  dozor::bench::HttpClient api(agent.http_at());
  const std::string active = "/api/v1/tickets?status=active";
  const auto deadline = Clock::now() + std::chrono::seconds(60 + 2 * (count + warmup));
  std::vector<double> ms;
  long polls = 0;
  for (int i = 1; i <= count + warmup; ++i) {
    const std::string probe = probe_name(i);
    const std::string needle = "\"probe\": \"" + probe + "\"";
    const auto t0 = agent.send(result(probe, Status::critical));
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
    agent.send(result(probe, Status::ok));
    while (api.get(active).find(needle) != std::string::npos) {
      if (Clock::now() > deadline) {
        std::fprintf(stderr, "failure_to_ticket: ticket for %s did not resolve\n", probe.c_str());
        return 1;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // failures one at a time
  }
  const double p50 = dozor::bench::percentile(ms, 0.5);
  std::printf(
      "failure_to_ticket: %zu failures, p50 %.2f ms, p99 %.2f ms, max %.2f ms "
      "(%.1f polls a failure before the ticket showed)\n",
      ms.size(), p50, dozor::bench::percentile(ms, 0.99), ms.back(),
      static_cast<double>(polls) / (count + warmup));
  return 0;
}
