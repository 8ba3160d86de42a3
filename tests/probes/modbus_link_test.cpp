// The Modbus probe against real peers: libmodbus servers over TCP, over a socat pty pair (RTU)
// and RTU frames over TCP, all started by the tests on 127.0.0.1.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dozor/probes/registry.h"
#include "modbus/link.h"
#include "modbus_peer.h"

namespace dozor::probes::modbus {
namespace {

using namespace std::chrono_literals;
using testing::ModbusServer;
using testing::PtyPair;
using Clock = std::chrono::steady_clock;

ProbeSpec build(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto spec = read_probe(YAML::Load(yaml), "test.yaml", "probes[0]", errors);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  if (!spec) throw std::runtime_error("config error");
  return *spec;
}

/// Runs probes at the same time on one io_context, with a two-thread blocking pool.
std::vector<Result> run_all(const std::vector<const ProbeSpec*>& specs) {
  boost::asio::io_context ioc;
  boost::asio::thread_pool pool(2);
  std::vector<ProbeContext> ctxs;
  ctxs.reserve(specs.size());
  std::vector<std::future<Result>> futures;
  for (const auto* s : specs) {
    ctxs.push_back({ioc.get_executor(), &pool, s->timeout});
    futures.push_back(
        boost::asio::co_spawn(ioc, s->probe->run(ctxs.back()), boost::asio::use_future));
  }
  ioc.run();
  std::vector<Result> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}
Result run(const ProbeSpec& s) { return run_all({&s}).front(); }

double metric(const Result& r, std::string_view name) {
  for (const auto& m : r.metrics)
    if (m.name == name) return m.value;
  ADD_FAILURE() << "no metric " << name << " in: " << r.summary;
  return -1;
}

int planned_requests(const ProbeSpec& s) {
  const std::string plan = s.probe->plan();
  return std::stoi(plan.substr(plan.find(": ") + 2));
}

std::string meter(const std::string& link, int unit, const std::string& extra = "") {
  return "name: meter-" + std::to_string(unit) + "\ntype: modbus\nlink: " + link +
         "\nunit: " + std::to_string(unit) + "\ninterval: 2s\ntimeout: 1500ms\n" + extra +
         R"(points:
  - { name: voltage_l1, register: input, address: 0, type: float32, order: CDAB, unit: V, warning: [207, 253], critical: [195, 265] }
  - { name: energy_total, register: holding, address: 100, type: uint32, order: ABCD, scale: 0.01, unit: kWh }
  - { name: status_word, register: holding, address: 110 }
  - { name: alarm, register: holding, address: 110, type: bool, bit: 3 }
  - { name: breaker_closed, register: coil, address: 5, type: bool }
  - { name: door_open, register: discrete, address: 2, type: bool }
  - { name: temperature, register: holding, address: 400, type: int16, scale: 0.1, unit: C, labels: {sensor: cabinet} }
)";
}

void fill(modbus_mapping_t* m, float volts, std::uint32_t energy, std::int16_t temp) {
  std::uint32_t bits;
  std::memcpy(&bits, &volts, 4);
  m->tab_input_registers[0] = static_cast<std::uint16_t>(bits & 0xffff);  // CDAB: low word first
  m->tab_input_registers[1] = static_cast<std::uint16_t>(bits >> 16);
  m->tab_registers[100] = static_cast<std::uint16_t>(energy >> 16);
  m->tab_registers[101] = static_cast<std::uint16_t>(energy & 0xffff);
  m->tab_registers[110] = 0x0008;
  m->tab_bits[5] = 1;
  m->tab_input_bits[2] = 0;
  m->tab_registers[400] = static_cast<std::uint16_t>(temp);
}

void expect_values(const Result& r, double volts, double energy, double temp) {
  EXPECT_EQ(r.status, Status::ok) << r.summary;
  EXPECT_FLOAT_EQ(metric(r, "voltage_l1"), volts);
  EXPECT_DOUBLE_EQ(metric(r, "energy_total"), energy);
  EXPECT_EQ(metric(r, "status_word"), 8);
  EXPECT_EQ(metric(r, "alarm"), 1);
  EXPECT_EQ(metric(r, "breaker_closed"), 1);
  EXPECT_EQ(metric(r, "door_open"), 0);
  EXPECT_DOUBLE_EQ(metric(r, "temperature"), temp);
  for (const auto& m : r.metrics) {
    if (m.name == "temperature") {
      EXPECT_EQ(m.labels.at("sensor"), "cabinet");  // the point's own labels
    }
  }
  EXPECT_EQ(metric(r, "up"), 1);
}

TEST(ModbusTcp, ReadsValuesInThePlannedRequests) {
  ModbusServer server(ModbusServer::Framing::tcp);
  fill(server.unit(1), 230.5f, 123456, -125);
  auto spec = build(meter("tcp://127.0.0.1:" + std::to_string(server.port()), 1));
  const int planned = planned_requests(spec);
  EXPECT_EQ(planned, 5) << spec.probe->plan();  // coil, discrete, holding 100-110 and 400, input
  for (int cycle = 0; cycle < 3; ++cycle) {
    const int before = server.requests();
    auto r = run(spec);
    expect_values(r, 230.5, 1234.56, -12.5);
    EXPECT_EQ(server.requests() - before, planned);
    EXPECT_EQ(metric(r, "requests"), planned);
    EXPECT_EQ(metric(r, "timeouts"), 0);
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST(ModbusTcp, RangesMakeWarningAndCritical) {
  ModbusServer server(ModbusServer::Framing::tcp);
  const std::string link = "tcp://127.0.0.1:" + std::to_string(server.port());
  auto spec = build(meter(link, 1));
  fill(server.unit(1), 255.0f, 1, 0);
  auto r = run(spec);
  EXPECT_EQ(r.status, Status::warning) << r.summary;
  EXPECT_NE(r.summary.find("voltage_l1 255V outside warning [207, 253]"), std::string::npos)
      << r.summary;
  fill(server.unit(1), 180.0f, 1, 0);
  EXPECT_EQ(run(spec).status, Status::critical);
}

TEST(ModbusTcp, StaleValueIsCritical) {
  ModbusServer server(ModbusServer::Framing::tcp);
  fill(server.unit(1), 230.0f, 5, 0);
  auto spec =
      build("name: m\ntype: modbus\nlink: tcp://127.0.0.1:" + std::to_string(server.port()) + R"(
interval: 1s
points:
  - { name: energy_total, register: holding, address: 100, type: uint32, stale: 200ms }
)");
  EXPECT_EQ(run(spec).status, Status::ok);
  // The value stays frozen; poll until the probe calls it stale (bounded by a deadline).
  const auto deadline = Clock::now() + 3s;
  Result r;
  do r = run(spec);
  while (r.status == Status::ok && Clock::now() < deadline);
  EXPECT_EQ(r.status, Status::critical) << r.summary;
  EXPECT_NE(r.summary.find("energy_total unchanged for"), std::string::npos) << r.summary;
  server.unit(1)->tab_registers[101] = 6;
  EXPECT_EQ(run(spec).status, Status::ok);
}

TEST(ModbusTcp, IllegalAddressReportsException02) {
  ModbusServer server(ModbusServer::Framing::tcp);
  auto spec =
      build("name: m\ntype: modbus\nlink: tcp://127.0.0.1:" + std::to_string(server.port()) + R"(
points:
  - { name: fine, register: holding, address: 10 }
  - { name: beyond, register: input, address: 5000 }
)");
  auto r = run(spec);
  EXPECT_EQ(r.status, Status::critical) << r.summary;
  EXPECT_NE(r.summary.find("exception 02 (illegal data address) reading input 5000"),
            std::string::npos)
      << r.summary;
  EXPECT_EQ(metric(r, "exceptions"), 1);
  EXPECT_EQ(metric(r, "up"), 1);
  EXPECT_EQ(metric(r, "fine"), 0);
}

TEST(ModbusTcp, AbsentUnitTimesOutOnceWithoutDisturbingTheOthers) {
  ModbusServer server(ModbusServer::Framing::tcp);
  fill(server.unit(1), 230.5f, 100, 1);
  fill(server.unit(2), 231.5f, 200, 2);
  const std::string link = "tcp://127.0.0.1:" + std::to_string(server.port());
  auto one = build(meter(link, 1));
  auto two = build(meter(link, 2));
  auto absent = build(meter(link, 9, "request_timeout: 300ms\n"));
  for (int cycle = 0; cycle < 2; ++cycle) {
    const auto start = Clock::now();
    auto rs = run_all({&one, &absent, &two});
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    expect_values(rs[0], 230.5, 1.0, 0.1);
    expect_values(rs[2], 231.5, 2.0, 0.2);
    EXPECT_EQ(rs[1].status, Status::critical) << rs[1].summary;
    EXPECT_EQ(metric(rs[1], "up"), 0);
    EXPECT_EQ(metric(rs[1], "timeouts"), 1);  // four planned requests, one timeout
    EXPECT_EQ(metric(rs[1], "requests"), 1);
    EXPECT_LT(took, 0.3 + 2.0);  // one request timeout per cycle (the metrics above), no more
  }
  // Two silent cycles: the third is skipped (backoff), the others still read.
  auto rs = run_all({&one, &absent, &two});
  EXPECT_EQ(metric(rs[1], "requests"), 0);
  EXPECT_NE(rs[1].summary.find("no answer in 2 cycles"), std::string::npos) << rs[1].summary;
  expect_values(rs[0], 230.5, 1.0, 0.1);
  EXPECT_EQ(server.connections(), 1);  // the connection was never reset
}

TEST(ModbusTcp, LateReplyDoesNotShiftLaterAnswers) {
  ModbusServer server(ModbusServer::Framing::tcp);
  const std::string link = "tcp://127.0.0.1:" + std::to_string(server.port());
  const std::string points = R"(points:
  - { name: value, register: holding, address: 0 }
)";
  auto one = build("name: one\ntype: modbus\nlink: " + link +
                   "\nunit: 1\ntimeout: 1s\nrequest_timeout: 200ms\n" + points);
  auto two = build("name: two\ntype: modbus\nlink: " + link + "\nunit: 2\ntimeout: 2s\n" + points);
  server.unit(1)->tab_registers[0] = 111;
  server.unit(2)->tab_registers[0] = 222;
  server.delay_next(1, 600ms);
  auto late = run(one);
  EXPECT_EQ(late.status, Status::critical) << late.summary;
  EXPECT_EQ(metric(late, "timeouts"), 1);
  // The answer to `one` arrives while `two` waits for its own: same function, same length.
  auto r2 = run(two);
  EXPECT_EQ(r2.status, Status::ok) << r2.summary;
  EXPECT_EQ(metric(r2, "value"), 222);
  auto r1 = run(one);
  EXPECT_EQ(metric(r1, "value"), 111) << r1.summary;
  EXPECT_EQ(metric(run(two), "value"), 222);
  EXPECT_EQ(server.connections(), 1);
}

TEST(ModbusTcp, GatewayRestartFirstGoodReadingWithinIntervalPlusOneSecond) {
  auto server = std::make_unique<ModbusServer>(ModbusServer::Framing::tcp);
  const int port = server->port();
  fill(server->unit(1), 230.5f, 100, 1);
  auto spec = build(meter("tcp://127.0.0.1:" + std::to_string(port), 1, "request_timeout: 300ms\n")
                        .replace(0, 0, ""));
  const auto interval = 500ms;
  EXPECT_EQ(run(spec).status, Status::ok);
  server->stop();
  // Down for a while: several cycles fail and the reconnect backoff grows to its cap.
  for (int i = 0; i < 6; ++i) {
    auto r = run(spec);
    EXPECT_EQ(r.status, Status::critical) << r.summary;
    EXPECT_EQ(metric(r, "up"), 0);
    std::this_thread::sleep_for(interval);  // the scheduler's interval between cycles
  }
  server->start(port);
  const auto back = Clock::now();
  Result r;
  for (;;) {
    const auto cycle = Clock::now();
    r = run(spec);
    if (r.status == Status::ok || Clock::now() - back > 5s) break;
    std::this_thread::sleep_until(cycle + interval);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - back).count();
  EXPECT_EQ(r.status, Status::ok) << r.summary;
  EXPECT_LE(seconds, 0.5 + 1.0);
  RecordProperty("first_good_reading_seconds", std::to_string(seconds));
  std::printf("gateway restart: first good reading %.3f s after the gateway returned\n", seconds);
}

TEST(ModbusRtuOverTcp, ReadsValuesChecksFramesAndIsolatesAbsentUnit) {
  ModbusServer server(ModbusServer::Framing::rtu_over_tcp);
  fill(server.unit(1), 230.5f, 123456, 7);
  const std::string link = "rtu+tcp://127.0.0.1:" + std::to_string(server.port()) + "?baud=19200";
  auto spec = build(meter(link, 1));
  auto absent = build(meter(link, 5, "request_timeout: 200ms\n"));
  const int before = server.requests();
  auto r = run(spec);
  expect_values(r, 230.5, 1234.56, 0.7);
  EXPECT_EQ(server.requests() - before, planned_requests(spec));
  auto a = run(absent);
  EXPECT_EQ(a.status, Status::critical) << a.summary;
  EXPECT_EQ(metric(a, "timeouts"), 1);
  expect_values(run(spec), 230.5, 1234.56, 0.7);
  auto ex = build("name: m\ntype: modbus\nlink: " + link + R"(
points:
  - { name: beyond, register: holding, address: 1500 }
)");
  auto e = run(ex);
  EXPECT_NE(e.summary.find("exception 02"), std::string::npos) << e.summary;
  EXPECT_EQ(server.connections(), 1);
}

TEST(ModbusRtu, OverASocatPtyPair) {
  PtyPair pty;
  ModbusServer server(ModbusServer::Framing::rtu_serial, 0, pty.b());
  fill(server.unit(1), 230.5f, 123456, 7);
  const std::string link = "rtu://" + pty.a() + "?baud=19200&parity=N&data=8&stop=1";
  auto spec = build(meter(link, 1));
  auto absent = build(meter(link, 2, "request_timeout: 200ms\n"));
  // The server opens its end on its own thread: poll until the first good reading.
  const auto deadline = Clock::now() + 5s;
  Result r;
  do r = run(spec);
  while (r.status != Status::ok && Clock::now() < deadline);
  expect_values(r, 230.5, 1234.56, 0.7);
  auto rs = run_all({&spec, &absent});
  expect_values(rs[0], 230.5, 1234.56, 0.7);
  EXPECT_EQ(rs[1].status, Status::critical) << rs[1].summary;
  EXPECT_EQ(metric(rs[1], "timeouts"), 1);
  expect_values(run(spec), 230.5, 1234.56, 0.7);
}

TEST(ModbusRtu, Crc16OfTheSpecExample) {
  const std::uint8_t frame[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};
  EXPECT_EQ(crc16(frame), 0xCDC5);  // sent as C5 CD
}

TEST(ModbusRtu, FrameGapIsThreeAndAHalfCharactersOrFixedAbove19200) {
  std::string error;
  auto s = parse_link("rtu:///dev/ttyUSB0?baud=9600&parity=E", &error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->bits_per_char(), 11);
  EXPECT_EQ(s->frame_gap().count(), 4011);  // 3.5 * 11 / 9600 s, rounded up
  s = parse_link("rtu:///dev/ttyUSB0?baud=115200", &error);
  EXPECT_EQ(s->frame_gap().count(), 1750);
  EXPECT_EQ(parse_link("tcp://h:502", &error)->frame_gap().count(), 0);
}

}  // namespace
}  // namespace dozor::probes::modbus
