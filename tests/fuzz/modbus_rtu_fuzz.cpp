// Fuzz target for the answers Modbus devices send: RTU reply frames as our RTU-over-TCP transport
// reads them, and Modbus TCP ADUs as libmodbus hands them back after a stale answer.
//
// Input: unit, register type (low 2 bits), count (big-endian, 2 bytes), then the device's bytes.
// Whatever is accepted has a valid CRC, the request's unit and function and the right length,
// and the values are the frame's data; nothing is written past `count` values, and nothing at
// all unless the answer is accepted.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "modbus/frame.h"

namespace {

using namespace dozor::probes::modbus;

constexpr int kMaxCount = 2000;  // coils in one read; registers stop at 125
constexpr std::uint16_t kRegGuard = 0xA5A5;
constexpr std::uint8_t kBitGuard = 0x5A;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Buffers {
  std::vector<std::uint16_t> regs = std::vector<std::uint16_t>(kMaxCount + 8, kRegGuard);
  std::vector<std::uint8_t> bits = std::vector<std::uint8_t>(kMaxCount + 8, kBitGuard);
  bool untouched_from(int first) const {
    return std::all_of(regs.begin() + first, regs.end(), [](auto v) { return v == kRegGuard; }) &&
           std::all_of(bits.begin() + first, bits.end(), [](auto v) { return v == kBitGuard; });
  }
};

// Checks what the parser made of `n` bytes at `p`, whose unit byte is at `unit_at` (0 for RTU,
// 6 after the MBAP header for TCP); function, byte count and data follow it.
void check_reply(const Reply& r, const Buffers& b, const Exchange& x, const std::uint8_t* p,
                 std::size_t n, std::size_t unit_at) {
  const int fc = function_of(x.reg);
  switch (r.status) {
    case Reply::Status::ok: {
      check(n >= unit_at + 3);
      check(p[unit_at] == x.unit && p[unit_at + 1] == fc && p[unit_at + 2] == answer_bytes(x));
      check(n >= unit_at + 3 + p[unit_at + 2]);
      const std::uint8_t* data = p + unit_at + 3;
      for (int i = 0; i < x.count; ++i) {
        if (is_bit_type(x.reg))
          check(b.bits[i] == ((data[i / 8] >> (i % 8)) & 1));
        else
          check(b.regs[i] == ((data[2 * i] << 8) | data[2 * i + 1]));
      }
      check(b.untouched_from(std::max(x.count, 0)));
      break;
    }
    case Reply::Status::exception:
      check(n >= unit_at + 3);
      check(p[unit_at] == x.unit && p[unit_at + 1] == (fc | 0x80));
      check(r.exception == p[unit_at + 2] && !r.message.empty());
      check(b.untouched_from(0));
      break;
    case Reply::Status::bad_response:
      check(!r.message.empty());
      check(b.untouched_from(0));
      break;
    default:
      std::abort();  // a parser knows nothing of timeouts and links
  }
}

void rtu(const Exchange& x, const std::uint8_t* p, std::size_t n) {
  Buffers b;
  const Reply r = parse_rtu_reply(p, n, x, b.regs.data(), b.bits.data());
  check_reply(r, b, x, p, n, 0);
  if (r.status == Reply::Status::ok || r.status == Reply::Status::exception) {
    check(n == rtu_reply_size(p, n));
    check(crc16({p, n - 2}) == (p[n - 2] | (p[n - 1] << 8)));
    check(r.status != Reply::Status::exception || n == 5);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  Exchange x;
  x.unit = data[0];
  x.reg = static_cast<RegisterType>(data[1] & 3);
  x.count = ((data[2] << 8) | data[3]) % (kMaxCount + 1);
  const std::uint8_t* p = data + 4;
  const std::size_t n = size - 4;

  // The transport reads until rtu_reply_size() of what it has: that frame, whole bytes as given,
  // and every shorter prefix (the transport never passes those, but nothing may break).
  std::size_t want = 5;
  for (std::size_t have = 0; have < std::min(n, want); ++have) want = rtu_reply_size(p, have + 1);
  check(want >= 5 && want <= 260);
  if (n >= want) rtu(x, p, want);
  rtu(x, p, n);
  for (std::size_t cut = 0; cut < std::min<std::size_t>(n, 8); ++cut) rtu(x, p, cut);

  Buffers b;
  check_reply(parse_tcp_reply(p, n, x, b.regs.data(), b.bits.data()), b, x, p, n, 6);
  return 0;
}
