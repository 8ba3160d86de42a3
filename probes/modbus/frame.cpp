#include "modbus/frame.h"

#include <string>

namespace dozor::probes::modbus {

int function_of(RegisterType reg) {
  switch (reg) {
    case RegisterType::coil:
      return 0x01;
    case RegisterType::discrete:
      return 0x02;
    case RegisterType::holding:
      return 0x03;
    case RegisterType::input:
      return 0x04;
  }
  return 0x03;
}

int answer_bytes(const Exchange& x) { return is_bit_type(x.reg) ? (x.count + 7) / 8 : x.count * 2; }

std::size_t rtu_reply_size(const std::uint8_t* head, std::size_t have) {
  if (have < 3 || (head[1] & 0x80)) return 5;  // the shortest frame: an exception
  return 5 + std::size_t{head[2]};
}

Reply parse_rtu_reply(const std::uint8_t* rsp, std::size_t n, const Exchange& x,
                      std::uint16_t* regs, std::uint8_t* bits) {
  // The transport reads exactly rtu_reply_size() bytes; anything else is no frame at all.
  if (n < 5 || n != rtu_reply_size(rsp, n))
    return {Reply::Status::bad_response, 0, "frame of " + std::to_string(n) + " bytes"};
  const int fc = function_of(x.reg);
  if (crc16({rsp, n - 2}) != (rsp[n - 2] | (rsp[n - 1] << 8)))
    return {Reply::Status::bad_response, 0, "bad CRC"};
  if (rsp[0] != x.unit)
    return {Reply::Status::bad_response, 0, "answer from unit " + std::to_string(rsp[0])};
  if (rsp[1] == (fc | 0x80))
    return {Reply::Status::exception, rsp[2], std::string(exception_name(rsp[2]))};
  if (rsp[1] != fc) return {Reply::Status::bad_response, 0, "answer to another function"};
  if (rsp[2] != answer_bytes(x))
    return {Reply::Status::bad_response, 0, "answer of " + std::to_string(rsp[2]) + " bytes"};
  for (int i = 0; i < x.count; ++i) {
    if (is_bit_type(x.reg))
      bits[i] = (rsp[3 + i / 8] >> (i % 8)) & 1;
    else
      regs[i] = static_cast<std::uint16_t>((rsp[3 + 2 * i] << 8) | rsp[4 + 2 * i]);
  }
  return {};
}

Reply parse_tcp_reply(const std::uint8_t* rsp, std::size_t n, const Exchange& x,
                      std::uint16_t* regs, std::uint8_t* bits) {
  if (n < 9) return {Reply::Status::bad_response, 0, "short answer"};
  const int fc = function_of(x.reg);
  if (rsp[6] != x.unit) return {Reply::Status::bad_response, 0, "answer from another unit"};
  if (rsp[7] == (fc | 0x80))
    return {Reply::Status::exception, rsp[8], std::string(exception_name(rsp[8]))};
  if (rsp[7] != fc || rsp[8] != answer_bytes(x) || n < 9 + std::size_t{rsp[8]})
    return {Reply::Status::bad_response, 0, "answer does not match the request"};
  for (int i = 0; i < x.count; ++i) {
    if (is_bit_type(x.reg))
      bits[i] = (rsp[9 + i / 8] >> (i % 8)) & 1;
    else
      regs[i] = static_cast<std::uint16_t>((rsp[9 + 2 * i] << 8) | rsp[10 + 2 * i]);
  }
  return {};
}

}  // namespace dozor::probes::modbus
