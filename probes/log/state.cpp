#include "log/state.h"

#include <charconv>

namespace dozor::probes::log {
namespace {

constexpr std::string_view kMagic = "dozor-log-state 1";

// Reads " <key>=<decimal>" at the front of text.
bool read_field(std::string_view& text, std::string_view key, std::uint64_t& out) {
  if (!text.starts_with(' ')) return false;
  text.remove_prefix(1);
  if (!text.starts_with(key) || text.substr(key.size()).empty() || text[key.size()] != '=')
    return false;
  text.remove_prefix(key.size() + 1);
  if (text.empty() || text[0] < '0' || text[0] > '9') return false;
  if (text[0] == '0' && text.size() > 1 && text[1] >= '0' && text[1] <= '9') return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc()) return false;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return true;
}

}  // namespace

std::string format_log_state(const LogPosition& p) {
  return std::string(kMagic) + " dev=" + std::to_string(p.dev) +
         " inode=" + std::to_string(p.inode) + " offset=" + std::to_string(p.offset) + "\n";
}

std::optional<LogPosition> parse_log_state(std::string_view text) {
  if (!text.starts_with(kMagic)) return std::nullopt;
  text.remove_prefix(kMagic.size());
  LogPosition p;
  if (!read_field(text, "dev", p.dev) || !read_field(text, "inode", p.inode) ||
      !read_field(text, "offset", p.offset))
    return std::nullopt;
  if (text != "\n") return std::nullopt;
  return p;
}

}  // namespace dozor::probes::log
