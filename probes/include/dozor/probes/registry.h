#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/probes/probe.h"
#include "dozor/protocol/options.h"

namespace dozor::probes {

/// A kind of probe: its type name, its option table and how to build one from validated options.
/// `make` reports validation errors through Options::error and may return nullptr then.
struct ProbeType {
  std::string_view name;
  std::string_view description;
  std::span<const OptionSpec> options;
  std::unique_ptr<Probe> (*make)(const Options& options);
  /// The timeout when the config names none (or the interval, if shorter).
  std::chrono::milliseconds default_timeout{5000};
};

/// Every probe type this build knows, in one visible list (probes/src/registry.cpp).
std::span<const ProbeType> probe_types();
const ProbeType* find_probe_type(std::string_view name);

/// Keys every probe has besides its own: name, type, interval, timeout, labels, confirm.
std::span<const OptionSpec> common_probe_options();

/// A probe as configured: the common keys and the built probe.
struct ProbeSpec {
  std::string name;
  std::string type;
  std::chrono::milliseconds interval{};
  std::chrono::milliseconds timeout{};
  std::map<std::string, std::string> labels;
  bool confirm = true;  // re-check a result worse than the one before (Scheduler)
  std::shared_ptr<Probe> probe;
};

/// Reads one entry of the `probes:` list; errors (with file, line and key) go to `errors`.
std::optional<ProbeSpec> read_probe(const YAML::Node& node, const std::string& file,
                                    const std::string& path, std::vector<ConfigError>& errors);

}  // namespace dozor::probes
