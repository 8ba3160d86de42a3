#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace dozor {

/// A configuration mistake, located for the operator: "agent.yaml:7: probes[1].port: message".
struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when unknown
  std::string key;  // full path of the key, e.g. "probes[1].port"
  std::string message;
  std::string to_string() const;
};

// `yaml`: any YAML value (a list of mappings, a [low, high] pair) that the probe reads itself,
// usually entry by entry through Options::nested so its errors keep file, line and key.
enum class OptionKind { string, integer, number, boolean, duration, size, string_map, yaml };

/// One configuration key, declared once: validation, defaults and documentation come from here.
struct OptionSpec {
  std::string_view key;
  OptionKind kind;
  std::string_view fallback;  // default in config spelling ("10s", "200"); empty: none
  bool required = false;
  std::string_view help;
};

/// Validated values of one YAML mapping, read against an OptionSpec table. Not thread-safe.
class Options {
 public:
  using StringMap = std::map<std::string, std::string>;
  using Value = std::variant<std::monostate, std::string, std::int64_t, double, bool,
                             std::chrono::milliseconds, std::uint64_t, StringMap, YAML::Node>;

  Options(std::string file, std::string path, std::vector<ConfigError>* errors)
      : file_(std::move(file)), path_(std::move(path)), errors_(errors) {}

  /// True when the key was given or has a default.
  bool has(std::string_view key) const;
  std::string string(std::string_view key) const;
  std::int64_t integer(std::string_view key) const;
  double number(std::string_view key) const;
  bool boolean(std::string_view key) const;
  std::chrono::milliseconds duration(std::string_view key) const;
  std::uint64_t size(std::string_view key) const;
  StringMap string_map(std::string_view key) const;
  /// The raw value of an OptionKind::yaml key; a null node when absent.
  YAML::Node yaml(std::string_view key) const;
  /// Reads `node` against `specs` into the same error list, under path "<this path>.<subpath>".
  Options nested(const YAML::Node& node, std::span<const OptionSpec> specs,
                 std::string_view subpath) const;

  /// Records a validation error against key (its line when it was given, else the mapping's).
  void error(std::string_view key, std::string message) const;
  bool ok() const { return errors_->size() == errors_at_start_; }
  const std::string& path() const { return path_; }

  // Used by read_options.
  void set(std::string key, Value v, int line) { values_[std::move(key)] = {std::move(v), line}; }
  void set_line(int line) { line_ = line; }
  void mark_start() { errors_at_start_ = errors_->size(); }

 private:
  struct Entry {
    Value value;
    int line = 0;
  };
  template <class T>
  T get(std::string_view key) const;

  std::string file_;
  std::string path_;
  int line_ = 0;
  std::vector<ConfigError>* errors_;
  std::size_t errors_at_start_ = 0;
  std::map<std::string, Entry, std::less<>> values_;
};

/// Reads `node` (a mapping) against `specs`: fills defaults, reports unknown keys (listing the
/// known ones), missing required keys and values of the wrong kind into `errors`.
Options read_options(const YAML::Node& node, std::span<const OptionSpec> specs,
                     const std::string& file, const std::string& path,
                     std::vector<ConfigError>& errors);

/// Parses one scalar of a kind; false and a message when it does not fit.
bool parse_option_value(OptionKind kind, const YAML::Node& node, Options::Value& out,
                        std::string& message);

/// Loads a YAML file; a syntax error becomes one ConfigError with its line.
bool load_yaml_file(const std::string& file, YAML::Node& out, std::vector<ConfigError>& errors);

std::string_view to_string(OptionKind kind);

/// A path from a config file, read from that file's folder when it is relative.
std::string resolve_path(const std::string& config_file, const std::string& path);

/// The `log:` section both daemons share: `level`, checked against spdlog's level names.
std::span<const OptionSpec> log_options();
void check_log_level(const Options& log);

}  // namespace dozor
