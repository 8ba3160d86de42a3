#include "modbus/point.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <set>

#include "dozor/protocol/report.h"

namespace dozor::probes::modbus {
namespace {

constexpr std::array<std::pair<std::string_view, RegisterType>, 4> kRegisters{{
    {"coil", RegisterType::coil},
    {"discrete", RegisterType::discrete},
    {"holding", RegisterType::holding},
    {"input", RegisterType::input},
}};
constexpr std::array<std::pair<std::string_view, DataType>, 10> kTypes{{
    {"bool", DataType::boolean},
    {"int16", DataType::int16},
    {"uint16", DataType::uint16},
    {"int32", DataType::int32},
    {"uint32", DataType::uint32},
    {"int64", DataType::int64},
    {"uint64", DataType::uint64},
    {"float32", DataType::float32},
    {"float64", DataType::float64},
    {"string", DataType::string},
}};
constexpr std::array<std::pair<std::string_view, ByteOrder>, 4> kOrders{{
    {"ABCD", ByteOrder::abcd},
    {"DCBA", ByteOrder::dcba},
    {"BADC", ByteOrder::badc},
    {"CDAB", ByteOrder::cdab},
}};

template <class T, std::size_t N>
std::string_view name_of(const std::array<std::pair<std::string_view, T>, N>& table, T v) {
  for (const auto& [name, value] : table)
    if (value == v) return name;
  return "?";
}
template <class T, std::size_t N>
std::optional<T> value_of(const std::array<std::pair<std::string_view, T>, N>& table,
                          std::string_view s) {
  for (const auto& [name, value] : table)
    if (name == s) return value;
  return std::nullopt;
}
template <class T, std::size_t N>
std::string names(const std::array<std::pair<std::string_view, T>, N>& table) {
  std::string out;
  for (const auto& [name, value] : table) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

int words_of(DataType t) {
  switch (t) {
    case DataType::boolean:
    case DataType::int16:
    case DataType::uint16:
      return 1;
    case DataType::int32:
    case DataType::uint32:
    case DataType::float32:
      return 2;
    case DataType::int64:
    case DataType::uint64:
    case DataType::float64:
      return 4;
    case DataType::string:
      return 0;
  }
  return 1;
}

// The point's bytes, most significant first, whatever order the device keeps them in.
std::vector<std::uint8_t> canonical_bytes(std::span<const std::uint16_t> regs, ByteOrder order,
                                          bool text) {
  std::vector<std::uint8_t> b;
  b.reserve(regs.size() * 2);
  for (auto r : regs) {
    b.push_back(static_cast<std::uint8_t>(r >> 8));
    b.push_back(static_cast<std::uint8_t>(r & 0xff));
  }
  const bool swap_bytes = order == ByteOrder::badc || order == ByteOrder::dcba;
  const bool swap_words = !text && (order == ByteOrder::cdab || order == ByteOrder::dcba);
  if (swap_bytes)
    for (std::size_t i = 0; i + 1 < b.size(); i += 2) std::swap(b[i], b[i + 1]);
  if (swap_words)  // reverse the order of the 16-bit words
    for (std::size_t i = 0, j = b.size() - 2; i < j; i += 2, j -= 2) {
      std::swap(b[i], b[j]);
      std::swap(b[i + 1], b[j + 1]);
    }
  return b;
}

std::uint64_t big_endian(const std::vector<std::uint8_t>& b) {
  std::uint64_t v = 0;
  for (auto x : b) v = (v << 8) | x;
  return v;
}

constexpr OptionSpec kPointOptions[] = {
    {"name", OptionKind::string, "", true, "metric name, e.g. voltage_l1"},
    {"register", OptionKind::string, "", true, "coil, discrete, holding or input"},
    {"address", OptionKind::integer, "", true, "0-based address, 0-65535"},
    {"type", OptionKind::string, "", false,
     "bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string"},
    {"order", OptionKind::string, "ABCD", false, "byte order: ABCD, DCBA, BADC or CDAB"},
    {"bit", OptionKind::integer, "", false, "bool from this bit (0-15) of a register"},
    {"length", OptionKind::integer, "", false, "string: characters"},
    {"scale", OptionKind::number, "1", false, "value = raw * scale + offset"},
    {"offset", OptionKind::number, "0", false, "value = raw * scale + offset"},
    {"unit", OptionKind::string, "", false, "unit of measure, e.g. V, kWh"},
    {"labels", OptionKind::string_map, "", false,
     "labels of its metric, e.g. {phase: L1}: points of one name told apart by them"},
    {"warning", OptionKind::yaml, "", false, "[low, high]: outside is a warning"},
    {"critical", OptionKind::yaml, "", false, "[low, high]: outside is critical"},
    {"stale", OptionKind::duration, "", false, "a value unchanged this long is critical"},
};

constexpr OptionSpec kForbiddenOptions[] = {
    {"register", OptionKind::string, "", true, "coil, discrete, holding or input"},
    {"from", OptionKind::integer, "", true, "first forbidden address"},
    {"to", OptionKind::integer, "", false, "last forbidden address (inclusive); default from"},
};

std::optional<Range> read_range(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  const YAML::Node n = o.yaml(key);
  try {
    if (n.IsSequence() && n.size() == 2) {
      Range r{n[0].as<double>(), n[1].as<double>()};
      if (std::isfinite(r.low) && std::isfinite(r.high) && r.low <= r.high) return r;
    }
  } catch (const YAML::Exception&) {
  }
  o.error(key, "expected [low, high] with low <= high");
  return std::nullopt;
}

bool valid_name(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::optional<RegisterType> read_register(const Options& o) {
  auto reg = parse_register_type(o.string("register"));
  if (!reg)
    o.error("register",
            "unknown register type '" + o.string("register") + "'; expected " + names(kRegisters));
  return reg;
}

}  // namespace

std::string_view to_string(RegisterType t) { return name_of(kRegisters, t); }
std::string_view to_string(DataType t) { return name_of(kTypes, t); }
std::string_view to_string(ByteOrder o) { return name_of(kOrders, o); }
std::optional<RegisterType> parse_register_type(std::string_view s) {
  return value_of(kRegisters, s);
}
std::optional<DataType> parse_data_type(std::string_view s) { return value_of(kTypes, s); }
std::optional<ByteOrder> parse_byte_order(std::string_view s) { return value_of(kOrders, s); }

int Point::count() const {
  if (is_bit_type(reg)) return 1;
  if (type == DataType::string) return (length + 1) / 2;
  return words_of(type);
}

Value decode(const Point& p, std::span<const std::uint16_t> regs) {
  Value v;
  if (p.type == DataType::string) {
    auto b = canonical_bytes(regs, p.order, true);
    v.is_text = true;
    v.text.assign(b.begin(), b.begin() + std::min<std::size_t>(b.size(), p.length));
    if (auto nul = v.text.find('\0'); nul != std::string::npos) v.text.resize(nul);
    while (!v.text.empty() && v.text.back() == ' ') v.text.pop_back();
    return v;
  }
  if (p.type == DataType::boolean) {
    const std::uint16_t r = regs.empty() ? 0 : regs[0];
    v.number = p.bit >= 0 ? ((r >> p.bit) & 1) : (r != 0);
    return v;
  }
  const std::uint64_t raw = big_endian(canonical_bytes(regs, p.order, false));
  double x = 0;
  switch (p.type) {
    case DataType::int16:
      x = static_cast<std::int16_t>(raw);
      break;
    case DataType::uint16:
      x = static_cast<std::uint16_t>(raw);
      break;
    case DataType::int32:
      x = static_cast<std::int32_t>(raw);
      break;
    case DataType::uint32:
      x = static_cast<std::uint32_t>(raw);
      break;
    case DataType::int64:
      x = static_cast<double>(static_cast<std::int64_t>(raw));
      break;
    case DataType::uint64:
      x = static_cast<double>(raw);
      break;
    case DataType::float32:
      x = std::bit_cast<float>(static_cast<std::uint32_t>(raw));
      break;
    case DataType::float64:
      x = std::bit_cast<double>(raw);
      break;
    case DataType::boolean:
    case DataType::string:
      break;
  }
  v.number = x * p.scale + p.offset;
  return v;
}

Value decode_bit(bool bit) {
  Value v;
  v.number = bit ? 1 : 0;
  return v;
}

std::vector<Forbidden> read_forbidden(const Options& o) {
  std::vector<Forbidden> out;
  if (!o.has("forbidden")) return out;
  const YAML::Node list = o.yaml("forbidden");
  if (!list.IsSequence()) {
    o.error("forbidden", "expected a list of {register, from, to}");
    return out;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    Options f = o.nested(list[i], kForbiddenOptions, "forbidden[" + std::to_string(i) + "]");
    if (!f.ok()) continue;
    auto reg = read_register(f);
    const auto from = f.integer("from");
    const auto to = f.has("to") ? f.integer("to") : from;
    if (from < 0 || from > 65535) f.error("from", "expected an address 0-65535");
    if (to < from || to > 65535) f.error("to", "expected an address from 'from' to 65535");
    if (!f.ok() || !reg) continue;
    out.push_back({*reg, static_cast<std::uint16_t>(from), static_cast<std::uint16_t>(to)});
  }
  return out;
}

std::vector<Point> read_points(const Options& o, std::span<const Forbidden> forbidden) {
  std::vector<Point> out;
  const YAML::Node list = o.yaml("points");
  if (!list.IsSequence() || list.size() == 0) {
    o.error("points", "expected a non-empty list of points");
    return out;
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    Options po = o.nested(list[i], kPointOptions, "points[" + std::to_string(i) + "]");
    if (!po.ok()) continue;
    Point p;
    p.line = list[i].Mark().line + 1;
    p.name = po.string("name");
    if (po.has("labels")) p.labels = po.string_map("labels");
    for (const auto& [key, value] : p.labels)
      if (const auto problem = protocol::label_name_problem(key); !problem.empty())
        po.error("labels", "'" + key + "': " + problem);
    if (p.labels.size() > protocol::kMaxMetricLabels)
      po.error("labels", "at most " + std::to_string(protocol::kMaxMetricLabels) + " labels");
    const std::string series = protocol::series_name({p.name, 0, "", p.labels});
    if (!valid_name(p.name))
      po.error("name", "expected letters, digits and _, not starting with a digit");
    else if (!seen.insert(series).second)
      po.error("name", "duplicate point '" + series + "' (the same name and labels)");
    auto reg = read_register(po);
    if (!reg) continue;
    p.reg = *reg;
    const std::string type = po.has("type")       ? po.string("type")
                             : is_bit_type(p.reg) ? "bool"
                                                  : "uint16";
    if (auto t = parse_data_type(type))
      p.type = *t;
    else {
      po.error("type", "unknown type '" + type + "'; expected " + names(kTypes));
      continue;
    }
    if (is_bit_type(p.reg) && p.type != DataType::boolean)
      po.error("type", std::string(to_string(p.reg)) + " holds one bit; expected bool");
    if (auto ord = parse_byte_order(po.string("order")))
      p.order = *ord;
    else
      po.error("order",
               "unknown byte order '" + po.string("order") + "'; expected " + names(kOrders));
    if (po.has("bit")) {
      const auto bit = po.integer("bit");
      if (p.type != DataType::boolean || is_bit_type(p.reg))
        po.error("bit", "only for a bool read from a holding or input register");
      else if (bit < 0 || bit > 15)
        po.error("bit", "expected 0-15");
      else
        p.bit = static_cast<int>(bit);
    }
    if (p.type == DataType::string) {
      const auto len = po.has("length") ? po.integer("length") : 0;
      if (len < 1 || len > 250)
        po.error("length", "a string needs a length of 1-250 characters");
      else
        p.length = static_cast<int>(len);
    } else if (po.has("length")) {
      po.error("length", "only for type string");
    }
    p.scale = po.number("scale");
    p.offset = po.number("offset");
    if (p.scale == 0) po.error("scale", "must not be 0");
    p.unit = po.string("unit");
    p.warning = read_range(po, "warning");
    p.critical = read_range(po, "critical");
    if (po.has("stale")) {
      p.stale = po.duration("stale");
      if (*p.stale <= std::chrono::milliseconds(0)) po.error("stale", "must be positive");
    }
    const auto address = po.integer("address");
    if (address < 0 || address > 65535) {
      po.error("address", "expected 0-65535");
      continue;
    }
    if (address + std::max(p.count(), 1) - 1 > 65535) {
      po.error("address", "the point's " + std::to_string(p.count()) + " registers run past 65535");
      continue;
    }
    p.address = static_cast<std::uint16_t>(address);
    const int last = p.address + std::max(p.count(), 1) - 1;
    for (const auto& f : forbidden)
      if (f.reg == p.reg && f.first <= last && f.last >= p.address)
        po.error("address", std::string(to_string(p.reg)) + " " + std::to_string(p.address) + "-" +
                                std::to_string(last) + " overlaps forbidden " +
                                std::to_string(f.first) + "-" + std::to_string(f.last));
    if (po.ok()) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace dozor::probes::modbus
