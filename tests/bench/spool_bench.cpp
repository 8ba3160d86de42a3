// Spool write throughput: results committed per second, each in its own transaction as the
// agent writes them (WAL, synchronous=NORMAL), with a realistic result and the size bound on.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "dozor/agent/spool.h"

namespace {

namespace fs = std::filesystem;

dozor::protocol::Result sample_result(int i) {
  dozor::protocol::Result r;
  r.probe = "probe-" + std::to_string(i % 50);
  r.type = "tcp";
  r.ts = 1795430000.0 + i;
  r.duration = 0.0012;
  r.status = dozor::protocol::Status::ok;
  r.summary = "127.0.0.1:1541 connected in 0.001 s";
  r.metrics = {{"connect_seconds", 0.0011, "s"}};
  return r;
}

void BM_SpoolPush(benchmark::State& state) {
  const auto path = fs::temp_directory_path() / ("dozor-spool-bench-" + std::to_string(getpid()));
  fs::remove_all(path);
  fs::create_directories(path);
  {
    dozor::agent::SpoolConfig config{(path / "spool.db").string()};
    config.max_age = std::chrono::hours(24 * 365 * 30);  // the sample results are old
    dozor::agent::Spool spool(config);
    int i = 0;
    for (auto _ : state) benchmark::DoNotOptimize(spool.push(sample_result(i++)));
    state.SetItemsProcessed(state.iterations());
  }
  fs::remove_all(path);
}
BENCHMARK(BM_SpoolPush)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();

// Reading a batch for a report and acking it, as the uplink does while draining a backlog.
void BM_SpoolBatchAndAck(benchmark::State& state) {
  const auto path = fs::temp_directory_path() / ("dozor-spool-bench-b-" + std::to_string(getpid()));
  fs::remove_all(path);
  fs::create_directories(path);
  {
    dozor::agent::SpoolConfig config{(path / "spool.db").string()};
    config.max_age = std::chrono::hours(24 * 365 * 30);
    dozor::agent::Spool spool(config);
    int i = 0;
    for (auto _ : state) {
      state.PauseTiming();
      for (int k = 0; k < 2000; ++k) spool.push(sample_result(i++));
      state.ResumeTiming();
      auto batch = spool.oldest(2000, 1 << 20);
      spool.ack(batch.back().seq);
    }
    state.SetItemsProcessed(state.iterations() * 2000);
  }
  fs::remove_all(path);
}
BENCHMARK(BM_SpoolBatchAndAck)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
