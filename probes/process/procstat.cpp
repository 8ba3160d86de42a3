#include "process/procstat.h"

#include <algorithm>
#include <charconv>

namespace dozor::probes::process {
namespace {

std::string_view next_field(std::string_view& rest) {
  const std::size_t start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const std::size_t end = rest.find(' ');
  const std::string_view field = rest.substr(0, end);
  rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  return field;
}

template <class T>
bool to_number(std::string_view field, T& out) {
  if (field.empty()) return false;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out);
  return ec == std::errc() && end == field.data() + field.size();
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  // "PID (comm) state ppid ...": comm may itself hold ") ", so it ends at the LAST ')'.
  const std::size_t open = text.find('(');
  const std::size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return std::nullopt;
  ProcStat st;
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  std::string_view rest = text.substr(close + 1);
  if (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  // Fields numbered as in proc(5): 3 is state.
  for (int field = 3; field <= 24; ++field) {
    const std::string_view f = next_field(rest);
    if (f.empty()) return std::nullopt;
    bool ok = true;
    switch (field) {
      case 3:
        if (f.size() != 1) return std::nullopt;
        st.state = f[0];
        break;
      case 14:
        ok = to_number(f, st.utime);
        break;
      case 15:
        ok = to_number(f, st.stime);
        break;
      case 20:
        ok = to_number(f, st.threads);
        break;
      case 22:
        ok = to_number(f, st.starttime);
        break;
      case 24:
        ok = to_number(f, st.rss_pages);
        break;
      default:
        break;
    }
    if (!ok) return std::nullopt;
  }
  return st;
}

std::optional<std::uint32_t> parse_status_euid(std::string_view text) {
  // "Uid:\treal\teffective\tsaved\tfs"
  std::size_t at = text.starts_with("Uid:") ? 0 : text.find("\nUid:");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view line = text.substr(at + (text[at] == '\n' ? 5 : 4));
  line = line.substr(0, line.find('\n'));
  std::uint32_t uid = 0;
  for (int field = 0; field < 2; ++field) {
    const std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) return std::nullopt;
    line.remove_prefix(start);
    const std::size_t end = std::min(line.find_first_of(" \t"), line.size());
    if (field == 1 && !to_number(line.substr(0, end), uid)) return std::nullopt;
    line.remove_prefix(end);
  }
  return uid;
}

std::string cmdline_text(std::string_view raw, std::size_t limit) {
  std::string out(raw.substr(0, limit));
  while (!out.empty() && out.back() == '\0') out.pop_back();
  for (char& ch : out)
    if (ch == '\0') ch = ' ';
  return out;
}

}  // namespace dozor::probes::process
