// Checking device answers on byte buffers: RTU reply frames and Modbus TCP ADUs.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "modbus/frame.h"

namespace dozor::probes::modbus {
namespace {

// Appends the CRC, low byte first.
std::vector<std::uint8_t> rtu(std::vector<std::uint8_t> f) {
  const std::uint16_t crc = crc16(f);
  f.push_back(static_cast<std::uint8_t>(crc & 0xff));
  f.push_back(static_cast<std::uint8_t>(crc >> 8));
  return f;
}

Exchange read_of(int unit, RegisterType reg, int count) {
  Exchange x;
  x.unit = unit;
  x.reg = reg;
  x.count = count;
  return x;
}

TEST(ModbusFrame, RtuReplyOfTwoHoldingRegisters) {
  const auto f = rtu({0x11, 0x03, 0x04, 0x12, 0x34, 0xAB, 0xCD});
  EXPECT_EQ(rtu_reply_size(f.data(), 2), 5u);
  EXPECT_EQ(rtu_reply_size(f.data(), 3), 9u);
  std::uint16_t regs[2] = {};
  const Reply r =
      parse_rtu_reply(f.data(), f.size(), read_of(0x11, RegisterType::holding, 2), regs, nullptr);
  ASSERT_EQ(r.status, Reply::Status::ok) << r.message;
  EXPECT_EQ(regs[0], 0x1234);
  EXPECT_EQ(regs[1], 0xABCD);
}

TEST(ModbusFrame, RtuReplyOfCoilsUnpacksLowBitFirst) {
  const auto f = rtu({0x01, 0x01, 0x02, 0b1000'0101, 0b0000'0001});
  std::uint8_t bits[10] = {};
  const Reply r =
      parse_rtu_reply(f.data(), f.size(), read_of(1, RegisterType::coil, 10), nullptr, bits);
  ASSERT_EQ(r.status, Reply::Status::ok) << r.message;
  const std::uint8_t want[10] = {1, 0, 1, 0, 0, 0, 0, 1, 1, 0};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(bits[i], want[i]) << i;
}

TEST(ModbusFrame, RtuExceptionBadCrcOtherUnitAndWrongLength) {
  const auto x = read_of(1, RegisterType::input, 1);
  std::uint16_t reg = 0x5555;
  auto ex = rtu({0x01, 0x84, 0x02});
  EXPECT_EQ(rtu_reply_size(ex.data(), 3), 5u);
  Reply r = parse_rtu_reply(ex.data(), ex.size(), x, &reg, nullptr);
  EXPECT_EQ(r.status, Reply::Status::exception);
  EXPECT_EQ(r.exception, 2);
  EXPECT_EQ(r.message, "illegal data address");

  auto ok = rtu({0x01, 0x04, 0x02, 0x00, 0x07});
  ok[3] ^= 1;
  EXPECT_EQ(parse_rtu_reply(ok.data(), ok.size(), x, &reg, nullptr).message, "bad CRC");
  auto other = rtu({0x02, 0x04, 0x02, 0x00, 0x07});
  EXPECT_EQ(parse_rtu_reply(other.data(), other.size(), x, &reg, nullptr).message,
            "answer from unit 2");
  auto fn = rtu({0x01, 0x03, 0x02, 0x00, 0x07});
  EXPECT_EQ(parse_rtu_reply(fn.data(), fn.size(), x, &reg, nullptr).message,
            "answer to another function");
  auto len = rtu({0x01, 0x04, 0x04, 0x00, 0x07, 0x00, 0x08});
  EXPECT_EQ(parse_rtu_reply(len.data(), len.size(), x, &reg, nullptr).message, "answer of 4 bytes");
  auto cut = rtu({0x01, 0x04, 0x02, 0x00, 0x07});
  EXPECT_EQ(parse_rtu_reply(cut.data(), cut.size() - 1, x, &reg, nullptr).status,
            Reply::Status::bad_response);
  EXPECT_EQ(reg, 0x5555);  // untouched by every refusal
}

TEST(ModbusFrame, TcpReplyChecksUnitFunctionAndLength) {
  const auto x = read_of(7, RegisterType::holding, 1);
  std::uint16_t reg = 0;
  std::vector<std::uint8_t> adu = {0x00, 0x01, 0x00, 0x00, 0x00, 0x05,
                                   0x07, 0x03, 0x02, 0x01, 0x02};
  Reply r = parse_tcp_reply(adu.data(), adu.size(), x, &reg, nullptr);
  ASSERT_EQ(r.status, Reply::Status::ok) << r.message;
  EXPECT_EQ(reg, 0x0102);
  EXPECT_EQ(parse_tcp_reply(adu.data(), adu.size() - 1, x, &reg, nullptr).status,
            Reply::Status::bad_response);
  adu[6] = 8;
  EXPECT_EQ(parse_tcp_reply(adu.data(), adu.size(), x, &reg, nullptr).message,
            "answer from another unit");
  adu = {0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x07, 0x83, 0x04};
  r = parse_tcp_reply(adu.data(), adu.size(), x, &reg, nullptr);
  EXPECT_EQ(r.status, Reply::Status::exception);
  EXPECT_EQ(r.exception, 4);
}

}  // namespace
}  // namespace dozor::probes::modbus
