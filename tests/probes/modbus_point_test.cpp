// Point decoding (golden values for every type and byte order) and config validation.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dozor/probes/registry.h"
#include "modbus/point.h"

namespace dozor::probes::modbus {
namespace {

struct Golden {
  const char* type;
  const char* order;
  std::vector<std::uint16_t> regs;
  double value;
};

const Golden kGolden[] = {
    {"int16", "ABCD", {0xFFFE}, -2},
    {"int16", "DCBA", {0xFEFF}, -2},
    {"int16", "BADC", {0xFEFF}, -2},
    {"int16", "CDAB", {0xFFFE}, -2},
    {"uint16", "ABCD", {0xFDE8}, 65000},
    {"uint16", "DCBA", {0xE8FD}, 65000},
    {"uint16", "BADC", {0xE8FD}, 65000},
    {"uint16", "CDAB", {0xFDE8}, 65000},
    {"int32", "ABCD", {0xF8A4, 0x32EB}, -123456789},
    {"int32", "DCBA", {0xEB32, 0xA4F8}, -123456789},
    {"int32", "BADC", {0xA4F8, 0xEB32}, -123456789},
    {"int32", "CDAB", {0x32EB, 0xF8A4}, -123456789},
    {"uint32", "ABCD", {0xB2D0, 0x5E00}, 3000000000},
    {"uint32", "DCBA", {0x005E, 0xD0B2}, 3000000000},
    {"uint32", "BADC", {0xD0B2, 0x005E}, 3000000000},
    {"uint32", "CDAB", {0x5E00, 0xB2D0}, 3000000000},
    {"int64", "ABCD", {0xFFFF, 0xFEE0, 0x8E04, 0xFB35}, -1234567890123},
    {"int64", "DCBA", {0x35FB, 0x048E, 0xE0FE, 0xFFFF}, -1234567890123},
    {"int64", "BADC", {0xFFFF, 0xE0FE, 0x048E, 0x35FB}, -1234567890123},
    {"int64", "CDAB", {0xFB35, 0x8E04, 0xFEE0, 0xFFFF}, -1234567890123},
    {"uint64",
     "ABCD",
     {0x0102, 0x0304, 0x0506, 0x0708},
     static_cast<double>(0x0102030405060708ULL)},
    {"uint64",
     "DCBA",
     {0x0807, 0x0605, 0x0403, 0x0201},
     static_cast<double>(0x0102030405060708ULL)},
    {"uint64",
     "BADC",
     {0x0201, 0x0403, 0x0605, 0x0807},
     static_cast<double>(0x0102030405060708ULL)},
    {"uint64",
     "CDAB",
     {0x0708, 0x0506, 0x0304, 0x0102},
     static_cast<double>(0x0102030405060708ULL)},
    {"float32", "ABCD", {0x47F1, 0x2000}, 123456.0},
    {"float32", "DCBA", {0x0020, 0xF147}, 123456.0},
    {"float32", "BADC", {0xF147, 0x0020}, 123456.0},
    {"float32", "CDAB", {0x2000, 0x47F1}, 123456.0},
    {"float64", "ABCD", {0xC217, 0x4876, 0xE7FF, 0x0000}, -24999999999.75},
    {"float64", "DCBA", {0x0000, 0xFFE7, 0x7648, 0x17C2}, -24999999999.75},
    {"float64", "BADC", {0x17C2, 0x7648, 0xFFE7, 0x0000}, -24999999999.75},
    {"float64", "CDAB", {0x0000, 0xE7FF, 0x4876, 0xC217}, -24999999999.75},
};

Point point(const char* type, const char* order) {
  Point p;
  p.type = *parse_data_type(type);
  p.order = *parse_byte_order(order);
  return p;
}

TEST(ModbusDecode, GoldenValuesForEveryTypeAndOrder) {
  for (const auto& g : kGolden) {
    Point p = point(g.type, g.order);
    ASSERT_EQ(p.count(), static_cast<int>(g.regs.size())) << g.type;
    EXPECT_EQ(decode(p, g.regs).number, g.value) << g.type << " " << g.order;
  }
}

TEST(ModbusDecode, ScaleAndOffset) {
  Point p = point("uint32", "ABCD");
  p.scale = 0.01;
  p.offset = -5;
  const std::uint16_t regs[] = {0x0001, 0xE240};  // 123456
  EXPECT_DOUBLE_EQ(decode(p, regs).number, 1234.56 - 5);
}

TEST(ModbusDecode, BoolFromBitOrWholeRegister) {
  Point p = point("bool", "ABCD");
  const std::uint16_t regs[] = {0x8004};
  EXPECT_EQ(decode(p, regs).number, 1);
  p.bit = 2;
  EXPECT_EQ(decode(p, regs).number, 1);
  p.bit = 3;
  EXPECT_EQ(decode(p, regs).number, 0);
  p.bit = 15;
  EXPECT_EQ(decode(p, regs).number, 1);
  const std::uint16_t zero[] = {0};
  p.bit = -1;
  EXPECT_EQ(decode(p, zero).number, 0);
  EXPECT_EQ(decode_bit(true).number, 1);
}

TEST(ModbusDecode, StringsTrimNulAndSpacesAndSwapBytes) {
  Point p = point("string", "ABCD");
  p.length = 7;
  EXPECT_EQ(p.count(), 4);
  const std::uint16_t regs[] = {0x4142, 0x3132, 0x3320, 0x0000};  // "AB123 "
  auto v = decode(p, regs);
  EXPECT_TRUE(v.is_text);
  EXPECT_EQ(v.text, "AB123");
  p.order = ByteOrder::badc;
  const std::uint16_t swapped[] = {0x4241, 0x3231, 0x2033, 0x0000};
  EXPECT_EQ(decode(p, swapped).text, "AB123");
}

// --- config -------------------------------------------------------------------------------

std::vector<std::string> errors_of(const std::string& yaml) {
  std::vector<ConfigError> errors;
  read_probe(YAML::Load(yaml), "test.yaml", "probes[0]", errors);
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.to_string());
  return out;
}

std::string device(const std::string& points, const std::string& extra = "") {
  return "name: meter\ntype: modbus\nlink: tcp://127.0.0.1:5020\n" + extra + "points:\n" + points;
}

TEST(ModbusConfig, TheIssueExampleIsValid) {
  const std::string yaml = R"(
name: meter-1
type: modbus
link: tcp://127.0.0.1:5020
unit: 1
interval: 10s
timeout: 500ms
points:
  - { name: voltage_l1, register: input, address: 0, type: float32, order: CDAB, unit: V, warning: [207, 253], critical: [195, 265] }
  - { name: energy_total, register: holding, address: 100, type: uint32, order: ABCD, scale: 0.01, unit: kWh, stale: 15m }
  - { name: breaker_closed, register: coil, address: 5, type: bool }
)";
  std::vector<ConfigError> errors;
  auto spec = read_probe(YAML::Load(yaml), "test.yaml", "probes[0]", errors);
  ASSERT_TRUE(errors.empty()) << errors.front().to_string();
  ASSERT_TRUE(spec);
  const std::string plan = spec->probe->plan();
  EXPECT_NE(plan.find("3 requests per cycle"), std::string::npos) << plan;
  EXPECT_NE(plan.find("read input 0-1 (2 registers): voltage_l1"), std::string::npos) << plan;
  EXPECT_NE(plan.find("read coil 5 (1 bits): breaker_closed"), std::string::npos) << plan;
}

TEST(ModbusConfig, ErrorsNameFileLineAndKey) {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case cases[] = {
      {device("  - { name: a, register: holdin, address: 1 }\n"),
       "test.yaml:5: probes[0].points[0].register: unknown register type 'holdin'; expected coil, "
       "discrete, holding, input"},
      {device("  - { name: a, register: holding, address: 1, type: float32, order: ABDC }\n"),
       "test.yaml:5: probes[0].points[0].order: unknown byte order 'ABDC'; expected ABCD, DCBA, "
       "BADC, CDAB"},
      {device("  - { name: a, register: holding, address: 70000 }\n"),
       "test.yaml:5: probes[0].points[0].address: expected 0-65535"},
      {device("  - { name: a, register: holding, address: 65535, type: uint32 }\n"),
       "test.yaml:5: probes[0].points[0].address: the point's 2 registers run past 65535"},
      {device("  - { name: a, register: input, address: 1, type: float16 }\n"),
       "test.yaml:5: probes[0].points[0].type: unknown type 'float16'; expected bool, int16, "
       "uint16, int32, uint32, int64, uint64, float32, float64, string"},
      {device("  - { name: a, register: coil, address: 1, type: uint16 }\n"),
       "test.yaml:5: probes[0].points[0].type: coil holds one bit; expected bool"},
      {device("  - { name: a, register: holding, address: 1, type: bool, bit: 16 }\n"),
       "test.yaml:5: probes[0].points[0].bit: expected 0-15"},
      {device("  - { name: a, register: holding, address: 1, type: string }\n"),
       "test.yaml:5: probes[0].points[0].length: a string needs a length of 1-250 characters"},
      {device("  - { name: a, register: holding, address: 1, warning: [10] }\n"),
       "test.yaml:5: probes[0].points[0].warning: expected [low, high] with low <= high"},
      {device("  - { name: a, register: holding, address: 1, colour: red }\n"),
       "test.yaml:5: probes[0].points[0].colour: unknown key; known: name, register, address, "
       "type, order, bit, length, scale, offset, unit, labels, warning, critical, stale"},
      {device("  - { name: a, register: holding, address: 1 }\n"
              "  - { name: a, register: holding, address: 2 }\n"),
       "test.yaml:6: probes[0].points[1].name: duplicate point 'a' (the same name and labels)"},
      {device("  - { name: v, register: holding, address: 1, labels: {phase: L1} }\n"
              "  - { name: v, register: holding, address: 2, labels: {phase: L1} }\n"),
       "test.yaml:6: probes[0].points[1].name: duplicate point 'v{phase=\"L1\"}' (the same name "
       "and labels)"},
      {device("  - { name: v, register: holding, address: 1, labels: {site: x} }\n"),
       "test.yaml:5: probes[0].points[0].labels: 'site': 'site' is the collector's own label"},
      {device("  - { name: a, register: holding, address: 10, type: uint32 }\n",
              "forbidden:\n  - { register: holding, from: 11, to: 20 }\n"),
       "test.yaml:7: probes[0].points[0].address: holding 10-11 overlaps forbidden 11-20"},
      {device("  - { name: a, register: holding, address: 1 }\n", "unit: 300\n"),
       "test.yaml:4: probes[0].unit: expected 0-255"},
      {device("  - { name: a, register: holding, address: 1 }\n", "max_registers: 200\n"),
       "test.yaml:4: probes[0].max_registers: expected 1-125"},
      {device("  - { name: a, register: holding, address: 1, type: float64 }\n",
              "max_registers: 2\n"),
       "test.yaml:5: probes[0].points: holding 1-4 (4 registers) does not fit in one request of "
       "at most 2"},
      {device("  []\n"), "test.yaml:4: probes[0].points: expected a non-empty list of points"},
  };
  for (const auto& c : cases) {
    auto errors = errors_of(c.yaml);
    ASSERT_EQ(errors.size(), 1u) << c.yaml << (errors.empty() ? "" : "\n" + errors[0]);
    EXPECT_EQ(errors[0], c.error) << c.yaml;
  }
}

TEST(ModbusConfig, PointsOfOneNameAreToldApartByTheirLabels) {
  auto errors = errors_of(
      device("  - { name: voltage, register: input, address: 0, labels: {phase: L1} }\n"
             "  - { name: voltage, register: input, address: 1, labels: {phase: L2} }\n"));
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST(ModbusConfig, BadLinks) {
  const std::pair<const char*, const char*> cases[] = {
      {"modbus://x:1", "expected tcp://host:port"},
      {"tcp://host:0", "expected a port 1-65535"},
      {"rtu://ttyUSB0", "expected a device path"},
      {"rtu:///dev/ttyUSB0?baud=9600&parity=X", "bad link parameter 'parity=X'"},
      {"rtu:///dev/ttyUSB0?data=9", "bad link parameter 'data=9'"},
      {"tcp://h:502?baud=9600", "tcp:// takes no parameters"},
  };
  for (const auto& [link, message] : cases) {
    std::string yaml = "name: m\ntype: modbus\nlink: " + std::string(link) +
                       "\npoints:\n  - { name: a, register: holding, address: 1 }\n";
    auto errors = errors_of(yaml);
    ASSERT_EQ(errors.size(), 1u) << link;
    EXPECT_NE(errors[0].find("test.yaml:3: probes[0].link: " + std::string(message)),
              std::string::npos)
        << errors[0];
  }
}

}  // namespace
}  // namespace dozor::probes::modbus

namespace dozor::probes::modbus {
namespace {

TEST(ModbusConfig, SampleYamlIsValid) {
  YAML::Node root = YAML::LoadFile(std::string(DOZOR_SOURCE_DIR) + "/probes/modbus/sample.yaml");
  ASSERT_TRUE(root["probes"].IsSequence());
  for (std::size_t i = 0; i < root["probes"].size(); ++i) {
    std::vector<ConfigError> errors;
    auto spec =
        read_probe(root["probes"][i], "sample.yaml", "probes[" + std::to_string(i) + "]", errors);
    for (const auto& e : errors) ADD_FAILURE() << e.to_string();
    ASSERT_TRUE(spec);
    if (std::getenv("MODBUS_PRINT_PLAN")) std::printf("%s\n", spec->probe->plan().c_str());
  }
}

}  // namespace
}  // namespace dozor::probes::modbus
