#include "dozor/protocol/options.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dozor/protocol/units.h"

namespace dozor {

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

std::string_view to_string(OptionKind kind) {
  switch (kind) {
    case OptionKind::string:
      return "string";
    case OptionKind::integer:
      return "integer";
    case OptionKind::number:
      return "number";
    case OptionKind::boolean:
      return "boolean";
    case OptionKind::duration:
      return "duration";
    case OptionKind::size:
      return "size";
    case OptionKind::string_map:
      return "mapping";
    case OptionKind::yaml:
      return "yaml";
  }
  return "?";
}

namespace {

std::string join(const std::string& path, std::string_view key) {
  std::string out = path;
  if (!out.empty()) out += ".";
  out += key;
  return out;
}

int line_of(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

}  // namespace

bool parse_option_value(OptionKind kind, const YAML::Node& node, Options::Value& out,
                        std::string& message) {
  if (kind == OptionKind::yaml) {
    out = node;
    return true;
  }
  if (kind == OptionKind::string_map) {
    if (!node.IsMap()) {
      message = "expected a mapping of strings";
      return false;
    }
    Options::StringMap m;
    for (const auto& kv : node) {
      if (!kv.second.IsScalar()) {
        message = "value of '" + kv.first.Scalar() + "' must be a string";
        return false;
      }
      m[kv.first.Scalar()] = kv.second.Scalar();
    }
    out = std::move(m);
    return true;
  }
  if (!node.IsScalar()) {
    message = (kind == OptionKind::integer ? "expected an " : "expected a ") +
              std::string(to_string(kind));
    return false;
  }
  const std::string& s = node.Scalar();
  switch (kind) {
    case OptionKind::string:
      out = s;
      return true;
    case OptionKind::integer: {
      std::size_t pos = 0;
      try {
        long long v = std::stoll(s, &pos);
        if (pos == s.size()) {
          out = static_cast<std::int64_t>(v);
          return true;
        }
      } catch (...) {
      }
      message = "expected an integer, got '" + s + "'";
      return false;
    }
    case OptionKind::number: {
      std::size_t pos = 0;
      try {
        double v = std::stod(s, &pos);
        // stod reads "nan" and "inf"; a threshold of either would silently never trigger.
        if (pos == s.size() && std::isfinite(v)) {
          out = v;
          return true;
        }
      } catch (...) {
      }
      message = "expected a number, got '" + s + "'";
      return false;
    }
    case OptionKind::boolean:
      if (s == "true" || s == "yes" || s == "on") {
        out = true;
        return true;
      }
      if (s == "false" || s == "no" || s == "off") {
        out = false;
        return true;
      }
      message = "expected true or false, got '" + s + "'";
      return false;
    case OptionKind::duration:
      if (auto d = parse_duration(s)) {
        out = *d;
        return true;
      }
      message = "expected a duration such as 500ms, 10s, 5m, 2h, got '" + s + "'";
      return false;
    case OptionKind::size:
      if (auto v = parse_size(s)) {
        out = *v;
        return true;
      }
      message = "expected a size such as 64MiB, got '" + s + "'";
      return false;
    case OptionKind::string_map:
    case OptionKind::yaml:
      break;
  }
  return false;
}

Options read_options(const YAML::Node& node, std::span<const OptionSpec> specs,
                     const std::string& file, const std::string& path,
                     std::vector<ConfigError>& errors) {
  Options opts(file, path, &errors);
  opts.mark_start();
  opts.set_line(line_of(node));
  if (!node.IsMap()) {
    errors.push_back({file, line_of(node), path, "expected a mapping"});
    return opts;
  }
  std::vector<std::string> rejected;  // given, but not of the declared kind
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const OptionSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.key == key) spec = &s;
    if (!spec) {
      std::string known;
      for (const auto& s : specs) known += (known.empty() ? "" : ", ") + std::string(s.key);
      errors.push_back({file, line_of(kv.first), join(path, key), "unknown key; known: " + known});
      continue;
    }
    Options::Value v;
    std::string message;
    if (!parse_option_value(spec->kind, kv.second, v, message)) {
      // An empty value ("port:") has no position of its own; yaml-cpp marks the next token.
      int line = kv.second.IsNull() ? line_of(kv.first) : line_of(kv.second);
      errors.push_back({file, line, join(path, key), message});
      rejected.push_back(key);
      continue;
    }
    opts.set(key, std::move(v), line_of(kv.first));
  }
  for (const auto& s : specs) {
    if (opts.has(s.key)) continue;
    if (s.required) {
      // A required key given with a bad value has its error already; "missing" would mislead.
      if (std::find(rejected.begin(), rejected.end(), s.key) == rejected.end())
        errors.push_back({file, line_of(node), join(path, s.key), "missing required key"});
    } else if (!s.fallback.empty()) {
      Options::Value v;
      std::string message;
      if (parse_option_value(s.kind, YAML::Node(std::string(s.fallback)), v, message))
        opts.set(std::string(s.key), std::move(v), 0);
    }
  }
  return opts;
}

bool Options::has(std::string_view key) const { return values_.find(key) != values_.end(); }

template <class T>
T Options::get(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return T{};
  if (const T* v = std::get_if<T>(&it->second.value)) return *v;
  return T{};
}

std::string Options::string(std::string_view key) const { return get<std::string>(key); }
std::int64_t Options::integer(std::string_view key) const { return get<std::int64_t>(key); }
double Options::number(std::string_view key) const {
  auto it = values_.find(key);
  if (it != values_.end())
    if (const auto* i = std::get_if<std::int64_t>(&it->second.value))
      return static_cast<double>(*i);
  return get<double>(key);
}
bool Options::boolean(std::string_view key) const { return get<bool>(key); }
std::chrono::milliseconds Options::duration(std::string_view key) const {
  return get<std::chrono::milliseconds>(key);
}
std::uint64_t Options::size(std::string_view key) const { return get<std::uint64_t>(key); }
Options::StringMap Options::string_map(std::string_view key) const { return get<StringMap>(key); }
YAML::Node Options::yaml(std::string_view key) const { return get<YAML::Node>(key); }

Options Options::nested(const YAML::Node& node, std::span<const OptionSpec> specs,
                        std::string_view subpath) const {
  return read_options(node, specs, file_, join(path_, subpath), *errors_);
}

void Options::error(std::string_view key, std::string message) const {
  auto it = values_.find(key);
  int line = (it != values_.end() && it->second.line > 0) ? it->second.line : line_;
  errors_->push_back({file_, line, join(path_, key), std::move(message)});
}

bool load_yaml_file(const std::string& file, YAML::Node& out, std::vector<ConfigError>& errors) {
  std::ifstream in(file);
  if (!in) {
    errors.push_back({file, 0, "", "cannot open file"});
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    out = YAML::Load(ss.str());
  } catch (const YAML::ParserException& e) {
    errors.push_back({file, e.mark.line + 1, "", e.msg});
    return false;
  }
  if (!out.IsMap()) {
    errors.push_back({file, 1, "", "expected a mapping at the top level"});
    return false;
  }
  return true;
}

std::string resolve_path(const std::string& config_file, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(config_file).parent_path() / path).lexically_normal().string();
}

std::span<const OptionSpec> log_options() {
  static constexpr OptionSpec kLog[] = {
      {"level", OptionKind::string, "info", false, "trace, debug, info, warn, error"},
  };
  return kLog;
}

void check_log_level(const Options& log) {
  static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::find(std::begin(kLevels), std::end(kLevels), log.string("level")) == std::end(kLevels))
    log.error("level", "expected trace, debug, info, warn or error");
}

}  // namespace dozor
