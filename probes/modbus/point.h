#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/protocol/options.h"

namespace dozor::probes::modbus {

enum class RegisterType { coil, discrete, holding, input };
enum class DataType {
  boolean,
  int16,
  uint16,
  int32,
  uint32,
  int64,
  uint64,
  float32,
  float64,
  string
};
/// Byte order of a multi-register value, named by where bytes A (most significant) .. D land:
/// ABCD big-endian, DCBA little-endian, BADC bytes swapped in each word, CDAB words swapped.
enum class ByteOrder { abcd, dcba, badc, cdab };

std::string_view to_string(RegisterType t);
std::string_view to_string(DataType t);
std::string_view to_string(ByteOrder o);
std::optional<RegisterType> parse_register_type(std::string_view s);
std::optional<DataType> parse_data_type(std::string_view s);
std::optional<ByteOrder> parse_byte_order(std::string_view s);
/// Coils and discrete inputs are read as bits, holding and input registers as 16-bit words.
inline bool is_bit_type(RegisterType t) {
  return t == RegisterType::coil || t == RegisterType::discrete;
}

/// Values inside [low, high] are fine.
struct Range {
  double low = 0;
  double high = 0;
  bool contains(double v) const { return v >= low && v <= high; }
};

/// One value read from a device, as the config declares it.
struct Point {
  std::string name;
  RegisterType reg = RegisterType::holding;
  std::uint16_t address = 0;  // 0-based
  DataType type = DataType::uint16;
  ByteOrder order = ByteOrder::abcd;
  int bit = -1;    // bool from one bit of a register; -1: the whole register (non-zero = true)
  int length = 0;  // string: characters
  double scale = 1;
  double offset = 0;
  std::string unit;
  std::map<std::string, std::string> labels;  // of its metric, e.g. {phase: L1}
  std::optional<Range> warning, critical;
  std::optional<std::chrono::milliseconds> stale;
  int line = 0;  // in the config, for messages

  /// Registers (for coil/discrete: bits) the point occupies from `address`.
  int count() const;
};

/// Addresses the device must never be asked for (reading them faults or has side effects).
struct Forbidden {
  RegisterType reg = RegisterType::holding;
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive
};

/// A decoded reading: a number (scale and offset applied), or text for `string` points.
struct Value {
  double number = 0;
  std::string text;
  bool is_text = false;
  bool operator==(const Value&) const = default;
};

/// Registers of a point in the config's byte order, from `regs` (exactly count() words).
Value decode(const Point& p, std::span<const std::uint16_t> regs);
/// A coil or discrete input.
Value decode_bit(bool bit);

/// Reads the `forbidden` list (OptionKind::yaml) of a probe's options; errors go through `o`
/// with the entry's file, line and key.
std::vector<Forbidden> read_forbidden(const Options& o);
/// Reads the `points` list: names, types, ranges and addresses, and that no point touches a
/// forbidden address.
std::vector<Point> read_points(const Options& o, std::span<const Forbidden> forbidden);

}  // namespace dozor::probes::modbus
