// Fuzz target for the parser of what the 1C:Enterprise `rac` client prints (probes/bas): any
// bytes either parse into blocks or give an error naming a line; parsed blocks printed again
// read back as the same blocks; the typed readers never crash on whatever parsed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "bas/rac_output.h"

namespace {

using namespace dozor::probes::bas;

void check(bool ok) {
  if (!ok) std::abort();
}

template <class T>
void read_typed(const RacOutput& out, std::string (*reader)(const RacOutput&, std::vector<T>&)) {
  std::vector<T> items;
  const std::string error = reader(out, items);
  check(error.empty() ? items.size() == out.blocks.size() : items.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const RacOutput out = parse_rac_output(text);
  if (!out.ok()) {
    check(out.blocks.empty());
    check(out.error.starts_with("line "));
    return 0;
  }
  for (const auto& b : out.blocks) {
    check(!b.fields.empty());
    for (const auto& f : b.fields) {
      check(!f.key.empty());
      check(f.quoted || f.value.find('\n') == std::string::npos);
    }
  }
  const RacOutput again = parse_rac_output(format_rac_output(out.blocks));
  check(again.ok());
  check(again.blocks == out.blocks);

  read_typed(out, read_clusters);
  read_typed(out, read_infobases);
  read_typed(out, read_sessions);
  read_typed(out, read_processes);
  read_typed(out, read_licenses);
  return 0;
}
