// Per-request overhead of the Modbus probe against raw libmodbus calls, over loopback TCP to a
// libmodbus server; RTU cycle time on a socat pty pair against requests x (gap + round trip);
// and the agent's CPU seconds to poll 1,000 points a second.
//   build-modbus/tests/bench/modbus_link_bench --benchmark_filter='Tcp|Rtu'
//   build-modbus/tests/bench/modbus_link_bench --benchmark_filter=Cpu   (60 s; MODBUS_CPU_SECONDS)

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdlib>
#include <thread>

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

std::string points(int n, int per_point = 1) {
  std::string out = "points:\n";
  for (int i = 0; i < n; ++i)
    out += "  - { name: p" + std::to_string(i) +
           ", register: holding, address: " + std::to_string(i * per_point) + " }\n";
  return out;
}

void BM_TcpRawLibmodbus(benchmark::State& state) {
  ModbusServer server(ModbusServer::Framing::tcp);
  modbus_t* ctx = modbus_new_tcp("127.0.0.1", server.port());
  modbus_connect(ctx);
  modbus_set_slave(ctx, 1);
  std::uint16_t regs[125];
  for (auto _ : state)
    if (modbus_read_registers(ctx, 0, 10, regs) != 10) state.SkipWithError("read failed");
  modbus_close(ctx);
  modbus_free(ctx);
}

// One request per cycle through the whole probe: coroutine, pool hop, link lock, decoding.
void BM_TcpProbeOneRequest(benchmark::State& state) {
  ModbusServer server(ModbusServer::Framing::tcp);
  auto spec =
      build("name: b\ntype: modbus\nlink: tcp://127.0.0.1:" + std::to_string(server.port()) + "\n" +
            points(10));
  Runner r;
  for (auto _ : state)
    if (r.run(spec).status != Status::ok) state.SkipWithError("probe failed");
}

// A cycle of N requests (points 126 registers apart): (time(8) - time(1)) / 7 is what one more
// request costs inside a cycle, to compare with one raw libmodbus call.
void BM_TcpProbeCycle(benchmark::State& state) {
  ModbusServer server(ModbusServer::Framing::tcp);
  const int n = static_cast<int>(state.range(0));
  auto spec =
      build("name: b\ntype: modbus\nlink: tcp://127.0.0.1:" + std::to_string(server.port()) + "\n" +
            points(n, 126));
  Runner r;
  for (auto _ : state)
    if (r.run(spec).status != Status::ok) state.SkipWithError("probe failed");
  state.counters["requests"] = n;
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

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// 1,000 points a second for MODBUS_CPU_SECONDS (default 60): ten devices of 100 points on one
// link, each cycle once a second. The server runs in a child process, so only the agent side
// is counted.
void BM_CpuPoll1000PointsPerSecond(benchmark::State& state) {
  const char* env = std::getenv("MODBUS_CPU_SECONDS");
  const int seconds = env ? std::atoi(env) : 60;
  int port_pipe[2];
  if (pipe(port_pipe) != 0) return;
  const pid_t child = fork();
  if (child == 0) {
    ModbusServer server(ModbusServer::Framing::tcp);
    for (int u = 3; u <= 10; ++u) server.add_unit(u);
    int port = server.port();
    if (write(port_pipe[1], &port, sizeof port) != sizeof port) _exit(1);
    pause();
    _exit(0);
  }
  int port = 0;
  if (read(port_pipe[0], &port, sizeof port) != sizeof port) return;
  std::vector<ProbeSpec> specs;
  for (int u = 1; u <= 10; ++u)
    specs.push_back(build(
        "name: d" + std::to_string(u) + "\ntype: modbus\ninterval: 1s\nlink: tcp://127.0.0.1:" +
        std::to_string(port) + "\nunit: " + std::to_string(u) + "\n" + points(100, 2)));
  Runner r;
  int polled = 0;
  for (auto _ : state) {
    const double cpu0 = cpu_seconds();
    const auto start = Clock::now();
    for (int s = 0; s < seconds; ++s) {
      for (const auto& spec : specs)
        if (r.run(spec).status == Status::ok) polled += 100;
      std::this_thread::sleep_until(start + std::chrono::seconds(s + 1));
    }
    state.counters["cpu_seconds"] = cpu_seconds() - cpu0;
    state.counters["points_read"] = polled;
    state.counters["wall_seconds"] = std::chrono::duration<double>(Clock::now() - start).count();
  }
  kill(child, SIGTERM);
  waitpid(child, nullptr, 0);
}

BENCHMARK(BM_TcpRawLibmodbus)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TcpProbeOneRequest)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TcpProbeCycle)->Arg(1)->Arg(8)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RtuPtyCycle)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CpuPoll1000PointsPerSecond)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
