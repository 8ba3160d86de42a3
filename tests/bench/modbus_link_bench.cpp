// Per-request overhead of the Modbus probe against raw libmodbus calls, over loopback TCP to a
// libmodbus server, both reading 10 registers a request; RTU cycle time on a socat pty pair
// against requests x (gap + round trip). The agent's CPU to poll 1,000 points a second, as a
// whole process, is tests/bench/agent_modbus.sh.
//   build/tests/bench/modbus_link_bench --benchmark_filter='Tcp|Rtu'

#include <benchmark/benchmark.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "dozor/probes/registry.h"
#include "modbus/link.h"
#include "modbus_peer.h"

namespace {

using namespace dozor;
using namespace dozor::probes;
using dozor::probes::modbus::testing::ModbusServer;
using dozor::probes::modbus::testing::PtyPair;
using Clock = std::chrono::steady_clock;

ProbeSpec build(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto spec = read_probe(YAML::Load(yaml), "bench.yaml", "probes[0]", errors);
  if (!spec) throw std::runtime_error(errors.empty() ? "config" : errors[0].to_string());
  return *spec;
}

/// Runs a probe again and again on one io_context and pool, as the agent's scheduler does.
struct Runner {
  boost::asio::io_context ioc;
  boost::asio::thread_pool pool{2};
  Result run(const ProbeSpec& s) {
    ProbeContext ctx{ioc.get_executor(), &pool, s.timeout};
    auto f = boost::asio::co_spawn(ioc, s.probe->run(ctx), boost::asio::use_future);
    ioc.restart();
    ioc.run();
    return f.get();
  }
};

// n points of one register each, `stride` registers apart.
std::string points(int n, int stride) {
  std::string out = "points:\n";
  for (int i = 0; i < n; ++i)
    out += "  - { name: p" + std::to_string(i) +
           ", register: holding, address: " + std::to_string(i * stride) + " }\n";
  return out;
}

// n requests of kRegisters contiguous one-register points each, groups 126 registers apart so
// that no two of them fit in one request (125 at most).
constexpr int kRegisters = 10;
std::string request_groups(int n) {
  std::string out = "points:\n";
  for (int g = 0; g < n; ++g)
    for (int i = 0; i < kRegisters; ++i)
      out += "  - { name: p" + std::to_string(g) + "_" + std::to_string(i) +
             ", register: holding, address: " + std::to_string(g * 126 + i) + " }\n";
  return out;
}

void BM_TcpRawLibmodbus(benchmark::State& state) {
  ModbusServer server(ModbusServer::Framing::tcp);
  modbus_t* ctx = modbus_new_tcp("127.0.0.1", server.port());
  modbus_connect(ctx);
  modbus_set_slave(ctx, 1);
  std::uint16_t regs[125];
  for (auto _ : state)
    if (modbus_read_registers(ctx, 0, kRegisters, regs) != kRegisters)
      state.SkipWithError("read failed");
  modbus_close(ctx);
  modbus_free(ctx);
}

// A cycle of N requests of kRegisters registers each, through the whole probe (coroutine, pool
// hop, link lock, decoding of every point): (time(8) - time(1)) / 7 is what one more request
// costs inside a cycle, to compare with one raw libmodbus call of the same kRegisters registers.
void BM_TcpProbeCycle(benchmark::State& state) {
  ModbusServer server(ModbusServer::Framing::tcp);
  const int n = static_cast<int>(state.range(0));
  auto spec =
      build("name: b\ntype: modbus\nlink: tcp://127.0.0.1:" + std::to_string(server.port()) + "\n" +
            request_groups(n));
  Runner r;
  // One cycle first (it also opens the connection): the plan must be n requests.
  double requests = 0;
  for (const auto& m : r.run(spec).metrics)
    if (m.name == "requests") requests = m.value;
  if (requests != n) state.SkipWithError("plan is not one request per group");
  for (auto _ : state)
    if (r.run(spec).status != Status::ok) state.SkipWithError("probe failed");
  state.counters["requests"] = requests;
}

// RTU at 115200 baud on a pty pair: a cycle of 4 requests against 4 x (1.75 ms gap + the round
// trip measured with raw libmodbus calls on the same line).
void BM_RtuPtyCycle(benchmark::State& state) {
  PtyPair pty;
  ModbusServer server(ModbusServer::Framing::rtu_serial, 0, pty.b());
  modbus_t* raw = modbus_new_rtu(pty.a().c_str(), 115200, 'N', 8, 1);
  modbus_connect(raw);
  modbus_set_slave(raw, 1);
  std::uint16_t regs[125];
  // The server opens its end on its own thread; wait for its first answer (bounded).
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (modbus_read_registers(raw, 0, 1, regs) != 1 && Clock::now() < deadline) {
  }
  const int rounds = 200;
  const auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) modbus_read_registers(raw, 0, 1, regs);
  const double rtt = std::chrono::duration<double>(Clock::now() - t0).count() / rounds;
  modbus_close(raw);
  modbus_free(raw);

  auto spec = build("name: b\ntype: modbus\nlink: rtu://" + pty.a() +
                    "?baud=115200\ntimeout: 2s\n" + points(4, 200));
  Runner r;
  const auto start = Clock::now();
  for (auto _ : state)
    if (r.run(spec).status != Status::ok) state.SkipWithError("probe failed");
  const double cycle =
      std::chrono::duration<double>(Clock::now() - start).count() / state.iterations();
  const double model = 4 * (0.00175 + rtt);
  state.counters["round_trip_ms"] = rtt * 1000;
  state.counters["model_cycle_ms"] = model * 1000;
  state.counters["cycle_ms"] = cycle * 1000;
  state.counters["ratio"] = cycle / model;
}

BENCHMARK(BM_TcpRawLibmodbus)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TcpProbeCycle)->Arg(1)->Arg(8)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RtuPtyCycle)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
