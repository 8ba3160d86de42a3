#include "bas/rac_output.h"

#include <charconv>

namespace dozor::probes::bas {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view ltrim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// Keys are kebab-case words; a space inside is allowed because some platform releases print
// "duration current-dbms".
bool valid_key(std::string_view key) {
  if (key.empty() || !is_key_char(key.front())) return false;
  for (char c : key)
    if (!is_key_char(c) && c != ' ') return false;
  return true;
}

// A quoted value ends at a '"' that ends a line and is not itself escaped.
bool closes_quote(std::string_view body) {
  if (body.empty() || body.back() != '"') return false;
  std::size_t backslashes = 0;
  for (std::size_t i = body.size() - 1; i > 0 && body[i - 1] == '\\'; --i) ++backslashes;
  return backslashes % 2 == 0;
}

// Only \" and \\ are escapes; any other backslash is literal, as in a Windows path.
std::string unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size() && (raw[i + 1] == '"' || raw[i + 1] == '\\')) ++i;
    out += raw[i];
  }
  return out;
}

std::string escape(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// A line of the input for an error message: at most 60 bytes, cut on a UTF-8 boundary, control
// characters shown as '?'.
std::string excerpt(std::string_view line) {
  if (line.size() > 60) {
    std::size_t cut = 60;
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    line = line.substr(0, cut);
  }
  std::string out;
  for (char c : line) out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
  return out;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

/// Typed reads of one block's fields; the first problem goes to `error`.
class BlockReader {
 public:
  BlockReader(const RacBlock& block, std::string what, std::string& error)
      : block_(block), what_(std::move(what)), error_(error) {}

  std::string text(std::string_view key) const {
    const std::string* v = block_.find(key);
    return v ? *v : std::string();
  }

  std::string required(std::string_view key) const {
    const std::string* v = block_.find(key);
    if (!v || v->empty()) fail(key, "missing");
    return v ? *v : std::string();
  }

  void integer(std::string_view key, std::int64_t& out) const {
    const std::string* v = block_.find(key);
    if (!v || v->empty()) return;
    const char* end = v->data() + v->size();
    const auto [ptr, ec] = std::from_chars(v->data(), end, out);
    if (ec != std::errc() || ptr != end)
      fail(key, "expected an integer, got '" + excerpt(*v) + "'");
  }

  void number(std::string_view key, double& out) const {
    const std::string* v = block_.find(key);
    if (!v || v->empty()) return;
    const char* end = v->data() + v->size();
    const auto [ptr, ec] = std::from_chars(v->data(), end, out);
    if (ec != std::errc() || ptr != end) fail(key, "expected a number, got '" + excerpt(*v) + "'");
  }

  void yes_no(std::string_view key, bool& out) const {
    const std::string* v = block_.find(key);
    if (!v || v->empty()) return;
    if (*v == "yes" || *v == "1" || *v == "true")
      out = true;
    else if (*v == "no" || *v == "0" || *v == "false")
      out = false;
    else
      fail(key, "expected yes or no, got '" + excerpt(*v) + "'");
  }

 private:
  void fail(std::string_view key, const std::string& message) const {
    if (error_.empty()) error_ = what_ + ": " + std::string(key) + ": " + message;
  }

  const RacBlock& block_;
  std::string what_;
  std::string& error_;
};

// Runs `read` over every block, numbering them from 1 in errors ("session 3: ...").
template <class T, class Read>
std::string read_all(const RacOutput& out, std::string_view noun, std::vector<T>& items,
                     Read read) {
  if (!out.ok()) return out.error;
  std::string error;
  items.clear();
  for (std::size_t i = 0; i < out.blocks.size() && error.empty(); ++i) {
    BlockReader r(out.blocks[i], std::string(noun) + " " + std::to_string(i + 1), error);
    items.push_back(read(r));
  }
  if (!error.empty()) items.clear();
  return error;
}

}  // namespace

const std::string* RacBlock::find(std::string_view key) const {
  for (const auto& f : fields)
    if (f.key == key) return &f.value;
  return nullptr;
}

RacOutput parse_rac_output(std::string_view text) {
  RacOutput out;
  if (text.starts_with(kBom)) text.remove_prefix(kBom.size());
  const auto lines = split_lines(text);
  RacBlock block;
  auto end_block = [&] {
    if (!block.fields.empty()) out.blocks.push_back(std::move(block));
    block = RacBlock();
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = ltrim(rtrim(lines[i]));
    if (line.empty()) {
      end_block();
      continue;
    }
    const auto colon = line.find(':');
    const std::string_view key =
        colon == std::string_view::npos ? line : rtrim(line.substr(0, colon));
    if (colon == std::string_view::npos || !valid_key(key) ||
        (colon + 1 < line.size() && !is_space(line[colon + 1]))) {
      out.error =
          "line " + std::to_string(i + 1) + ": expected 'key : value', got '" + excerpt(line) + "'";
      out.blocks.clear();
      return out;
    }
    RacField field{std::string(key), {}, false};
    std::string_view rest = ltrim(line.substr(colon + 1));
    if (rest.starts_with('"')) {
      const std::size_t first = i;
      std::string raw;
      std::string_view body = rest.substr(1);
      while (!closes_quote(body)) {
        if (++i == lines.size()) {
          out.error = "line " + std::to_string(first + 1) + ": quoted value of '" + field.key +
                      "' has no closing quote";
          out.blocks.clear();
          return out;
        }
        raw.append(body);
        raw += '\n';
        body = rtrim(lines[i]);
      }
      raw.append(body.substr(0, body.size() - 1));
      field.value = unescape(raw);
      field.quoted = true;
    } else {
      field.value = std::string(rest);
    }
    block.fields.push_back(std::move(field));
  }
  end_block();
  return out;
}

std::string format_rac_output(const std::vector<RacBlock>& blocks) {
  std::string out;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    if (b > 0) out += '\n';
    for (const auto& f : blocks[b].fields) {
      out += f.key;
      out += " : ";
      out += f.quoted ? '"' + escape(f.value) + '"' : f.value;
      out += '\n';
    }
  }
  return out;
}

std::string read_clusters(const RacOutput& out, std::vector<RacCluster>& clusters) {
  return read_all(out, "cluster", clusters, [](const BlockReader& r) {
    return RacCluster{r.required("cluster"), r.text("name"), r.text("host")};
  });
}

std::string read_infobases(const RacOutput& out, std::vector<RacInfobase>& infobases) {
  return read_all(out, "infobase", infobases, [](const BlockReader& r) {
    return RacInfobase{r.required("infobase"), r.text("name")};
  });
}

std::string read_sessions(const RacOutput& out, std::vector<RacSession>& sessions) {
  return read_all(out, "session", sessions, [](const BlockReader& r) {
    RacSession s;
    s.id = r.required("session");
    r.integer("session-id", s.number);
    s.infobase = r.text("infobase");
    s.app_id = r.text("app-id");
    s.user_name = r.text("user-name");
    s.host = r.text("host");
    r.integer("blocked-by-dbms", s.blocked_by_dbms);
    r.integer("blocked-by-ls", s.blocked_by_ls);
    // Assumption, from the platform's documentation of the session properties and from captured
    // output (a Designer session with duration-all 66184 after a minute of work): milliseconds.
    double ms = 0;
    r.number("duration-current", ms);
    s.call_seconds = ms / 1000;
    ms = 0;
    r.number("db-proc-took", ms);
    s.db_proc_took_seconds = ms / 1000;
    r.integer("memory-total", s.memory_total);
    r.yes_no("hibernate", s.hibernate);
    return s;
  });
}

std::string read_processes(const RacOutput& out, std::vector<RacProcess>& processes) {
  return read_all(out, "process", processes, [](const BlockReader& r) {
    RacProcess p;
    p.id = r.required("process");
    p.host = r.text("host");
    r.integer("port", p.port);
    r.integer("pid", p.pid);
    r.yes_no("is-enable", p.enabled);
    r.yes_no("running", p.running);
    p.use = r.text("use");
    if (!r.text("available-perfomance").empty()) {
      double perf = 0;
      r.number("available-perfomance", perf);
      p.available_performance = perf;
    }
    r.integer("connections", p.connections);
    double kib = 0;
    r.number("memory-size", kib);
    p.memory_bytes = kib * 1024;
    r.number("memory-excess-time", p.memory_excess_seconds);
    r.number("avg-call-time", p.avg_call_seconds);
    return p;
  });
}

std::string read_licenses(const RacOutput& out, std::vector<RacLicense>& licenses) {
  return read_all(out, "licence", licenses, [](const BlockReader& r) {
    RacLicense l;
    l.session = r.required("session");
    l.series = r.text("series");
    l.type = r.text("license-type");
    r.yes_no("issued-by-server", l.issued_by_server);
    r.yes_no("net", l.net);
    r.integer("max-users-all", l.max_users_all);
    l.full_name = r.text("full-name");
    return l;
  });
}

}  // namespace dozor::probes::bas
