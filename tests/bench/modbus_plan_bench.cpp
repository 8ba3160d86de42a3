// Planning time for 1,000 points, and requests per cycle against the lower bound and against one
// request per point for three reference maps, with the wire time each takes at 9600 baud 8N1.
//   build-modbus/tests/bench/modbus_plan_bench

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "modbus/plan.h"

namespace {

using namespace dozor::probes::modbus;

const CostModel k9600 = CostModel::serial(9600, 10, 0.005);

struct Map {
  std::vector<PointSpan> spans;
  std::vector<Forbidden> forbidden;
};

// 1,000 points: uint16 and float32 registers back to back from address 0.
Map contiguous() {
  Map m;
  int a = 0;
  for (int i = 0; i < 1000; ++i) {
    const int n = i % 3 == 0 ? 2 : 1;
    m.spans.push_back({RegisterType::holding, static_cast<std::uint16_t>(a), n});
    a += n;
  }
  return m;
}

// 1,000 points spread over 20,000 addresses, in clusters as meters lay out their blocks.
Map scattered(bool with_forbidden) {
  Map m;
  std::mt19937 rng(7);
  std::vector<bool> used(20100, false);
  while (m.spans.size() < 1000) {
    const int a = static_cast<int>(rng() % 20000);
    const int n = rng() % 3 == 0 ? 2 : 1;
    if (used[a] || used[a + 1]) continue;
    for (int k = 0; k < n; ++k) used[a + k] = true;
    m.spans.push_back({RegisterType::holding, static_cast<std::uint16_t>(a), n});
  }
  if (with_forbidden)  // every 50th free address is forbidden (e.g. registers that clear on read)
    for (int a = 0, k = 0; a < 20000; ++a)
      if (!used[a] && ++k % 50 == 0)
        m.forbidden.push_back(
            {RegisterType::holding, static_cast<std::uint16_t>(a), static_cast<std::uint16_t>(a)});
  return m;
}

void report(benchmark::State& state, const Map& m, const CostModel& cost) {
  RegisterPlan plan;
  for (auto _ : state) {
    plan = plan_requests(m.spans, m.forbidden, {}, cost);
    benchmark::DoNotOptimize(plan);
  }
  std::vector<PlannedRequest> naive;
  for (const auto& s : m.spans) naive.push_back({s.reg, s.address, s.count, {}});
  state.counters["requests"] = static_cast<double>(plan.requests.size());
  state.counters["lower_bound"] = plan.lower_bound;
  state.counters["one_per_point"] = plan.one_per_point;
  state.counters["wire_ms_plan"] = plan_cost(plan.requests, cost) * 1000;
  state.counters["wire_ms_one_per_point"] = plan_cost(naive, cost) * 1000;
}

void BM_PlanContiguous(benchmark::State& s) { report(s, contiguous(), k9600); }
void BM_PlanScattered(benchmark::State& s) { report(s, scattered(false), k9600); }
void BM_PlanScatteredForbidden(benchmark::State& s) { report(s, scattered(true), k9600); }
void BM_PlanScatteredTcp(benchmark::State& s) { report(s, scattered(true), CostModel::tcp(0.001)); }

BENCHMARK(BM_PlanContiguous)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanScattered)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanScatteredForbidden)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanScatteredTcp)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
