// Fuzz target for what a monitoring plugin prints on stdout (the command probe): the summary line
// and the performance data on the first line and in the long output.
//
// Invariants: the summary is one line; every item has a label and a finite value; a unit of the
// plugin API's table comes out in base units; metric names are short and never empty; a label
// written back quoted ('' for a quote) parses to itself.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "command/perfdata.h"

namespace {

using namespace dozor::probes::command;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string quoted(const std::string& label) {
  std::string q = "'";
  for (char c : label) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const PluginOutput out = parse_plugin_output(text);
  check(out.summary.find('\n') == std::string::npos);
  check(out.summary.size() <= text.size());
  for (const PerfValue& v : out.perfdata) {
    check(!v.label.empty());
    check(std::isfinite(v.value));
    if (v.uom == "ms" || v.uom == "us") check(v.unit == "s");
    if (v.uom == "KB" || v.uom == "MB" || v.uom == "GB" || v.uom == "TB") check(v.unit == "bytes");
    // Within the collector's name_length (128), and no control character in a label value.
    const std::string label = perfdata_label(v.label);
    check(!label.empty() && label.size() <= 104);
    for (unsigned char c : label) check(c >= 0x20 && c != 0x7f);

    PluginOutput again;
    parse_perfdata(quoted(v.label) + "=1", again);
    check(again.perfdata.size() == 1 && again.perfdata[0].label == v.label);
  }
  return 0;
}
