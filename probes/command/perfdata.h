#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dozor::probes::command {

/// One item of monitoring-plugins performance data: 'label'=value[UOM];warn;crit;min;max.
struct PerfValue {
  std::string label;  // as the plugin wrote it, quotes removed
  double value = 0;   // in base units: seconds for s/ms/us, bytes for B/KB/MB/GB/TB
  std::string unit;   // "s", "bytes", "%", "c" (a counter), "" or the plugin's own text
  std::string uom;    // the unit as the plugin wrote it
  std::string warn, crit, min, max;  // as written (ranges such as "@10:20"), unconverted
};

/// What a plugin printed on stdout, read by the plugin API's rules: the first line is the summary,
/// performance data follows a `|` on the first line and on the long output, where everything after
/// the first `|` of the later lines is performance data too.
struct PluginOutput {
  std::string summary;  // the first line before `|`, trimmed
  std::vector<PerfValue> perfdata;
  std::size_t skipped = 0;  // malformed items, and items whose value is "U" (unknown)
};

PluginOutput parse_plugin_output(std::string_view text);

/// Appends the items of one stretch of performance data ("a=1 'b c'=2ms;3;4").
void parse_perfdata(std::string_view text, PluginOutput& out);

/// A plugin's label as the `label` label of its metric: as written, without control characters,
/// at most about 100 bytes (cut between UTF-8 characters, within the collector's name_length).
/// Never empty.
std::string perfdata_label(std::string_view label);

}  // namespace dozor::probes::command
