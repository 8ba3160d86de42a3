// Fuzz target for turning the registers a Modbus device answered into values: every point type
// in every byte order, strings of every length that fits, bools from every bit.
//
// Input: a scale and an offset selector (1 byte each), then the registers, big-endian. Each
// decode is compared with a reading of the same bits done here the plain way: the byte order
// permutes bytes A..D as documented; integers come out exact before scale and offset; a number
// is finite unless the device's float is not, or scale and offset push it out of range (the agent
// drops such metrics); strings stay within their length and the registers.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "modbus/point.h"

namespace {

using namespace dozor::probes::modbus;

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr DataType kNumbers[] = {DataType::int16,   DataType::uint16, DataType::int32,
                                 DataType::uint32,  DataType::int64,  DataType::uint64,
                                 DataType::float32, DataType::float64};
constexpr ByteOrder kOrders[] = {ByteOrder::abcd, ByteOrder::dcba, ByteOrder::badc,
                                 ByteOrder::cdab};
constexpr double kScales[] = {1, 0.1, 0.01, -1, 10, 1e-9, 3.5, -0.001, 1e300, -1e300};
constexpr double kOffsets[] = {0, 1, -273.15, 1e6, -1e300, 1e300};

// The value's bytes, most significant first, read the plain way: for a point of n words the
// device keeps bytes A B C D ... as the order says.
std::vector<std::uint8_t> msb_first(std::span<const std::uint16_t> regs, ByteOrder order,
                                    bool text) {
  std::vector<std::uint8_t> wire;  // as the registers arrived
  for (auto r : regs) {
    wire.push_back(static_cast<std::uint8_t>(r >> 8));
    wire.push_back(static_cast<std::uint8_t>(r));
  }
  if (text) {  // strings: characters in register order, bytes swapped for BADC and DCBA
    if (order == ByteOrder::badc || order == ByteOrder::dcba)
      for (std::size_t i = 0; i + 1 < wire.size(); i += 2) std::swap(wire[i], wire[i + 1]);
    return wire;
  }
  const std::size_t n = wire.size();
  std::vector<std::uint8_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t word = i / 2, in_word = i % 2;
    switch (order) {
      case ByteOrder::abcd:
        out[i] = wire[i];
        break;
      case ByteOrder::dcba:
        out[i] = wire[n - 1 - i];
        break;
      case ByteOrder::badc:
        out[i] = wire[2 * word + (1 - in_word)];
        break;
      case ByteOrder::cdab:
        out[i] = wire[2 * (n / 2 - 1 - word) + in_word];
        break;
    }
  }
  return out;
}

double raw_value(DataType t, const std::vector<std::uint8_t>& b) {
  std::uint64_t v = 0;
  for (auto x : b) v = (v << 8) | x;
  switch (t) {
    case DataType::int16:
      return static_cast<std::int16_t>(v);
    case DataType::uint16:
      return static_cast<std::uint16_t>(v);
    case DataType::int32:
      return static_cast<std::int32_t>(v);
    case DataType::uint32:
      return static_cast<std::uint32_t>(v);
    case DataType::int64:
      return static_cast<double>(static_cast<std::int64_t>(v));
    case DataType::uint64:
      return static_cast<double>(v);
    case DataType::float32:
      return std::bit_cast<float>(static_cast<std::uint32_t>(v));
    case DataType::float64:
      return std::bit_cast<double>(v);
    default:
      std::abort();
  }
}

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const double scale = kScales[data[0] % std::size(kScales)];
  const double offset = kOffsets[data[1] % std::size(kOffsets)];
  std::vector<std::uint16_t> regs;
  for (std::size_t i = 2; i + 1 < size && regs.size() < 256; i += 2)
    regs.push_back(static_cast<std::uint16_t>((data[i] << 8) | data[i + 1]));
  const std::span<const std::uint16_t> all(regs);

  for (auto order : kOrders) {
    Point p;
    p.order = order;
    p.scale = scale;
    p.offset = offset;
    for (auto type : kNumbers) {
      p.type = type;
      const auto n = static_cast<std::size_t>(p.count());
      check(n >= 1 && n <= 4);
      if (regs.size() < n) continue;
      // The value at the start and the one at the end of the registers.
      for (std::size_t at : {std::size_t{0}, regs.size() - n}) {
        const auto window = all.subspan(at, n);
        const Value v = decode(p, window);
        check(!v.is_text && v.text.empty());
        const double raw = raw_value(type, msb_first(window, order, false));
        check(same(v.number, raw * scale + offset));
        const bool is_float = type == DataType::float32 || type == DataType::float64;
        if (!is_float) check(std::trunc(raw) == raw && std::isfinite(raw));
        if (std::isfinite(raw) && std::fabs(raw * scale) < 1e300 / 2 &&
            std::fabs(offset) < 1e300 / 2)
          check(std::isfinite(v.number));
        if (!std::isfinite(raw)) check(!std::isfinite(v.number));
        if (scale == 1 && offset == 0) check(same(v.number, raw));
      }
    }

    // Bools: the whole register, then each of its bits.
    p.type = DataType::boolean;
    if (!regs.empty()) {
      for (int bit = -1; bit < 16; ++bit) {
        p.bit = bit;
        const Value v = decode(p, all.first(1));
        check(!v.is_text);
        check(v.number == (bit < 0 ? (regs[0] != 0) : ((regs[0] >> bit) & 1)));
      }
    }
    p.bit = -1;

    // Strings of 1-250 characters over as many registers as they need.
    p.type = DataType::string;
    for (int length = 1; length <= 250; ++length) {
      p.length = length;
      const auto n = static_cast<std::size_t>(p.count());
      if (regs.size() < n) break;
      const auto window = all.first(n);
      const Value v = decode(p, window);
      check(v.is_text && v.number == 0);
      check(v.text.size() <= static_cast<std::size_t>(length) && v.text.size() <= 2 * n);
      // The first `length` characters, up to a NUL, without trailing spaces.
      const auto b = msb_first(window, order, true);
      std::string want(b.begin(), b.begin() + length);
      want.resize(std::min(want.size(), want.find('\0')));
      while (!want.empty() && want.back() == ' ') want.pop_back();
      check(v.text == want);
    }
  }

  check(decode_bit(true).number == 1 && decode_bit(false).number == 0);
  return 0;
}
