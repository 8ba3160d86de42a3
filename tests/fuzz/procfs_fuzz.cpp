// Fuzz target for the /proc parsers of the process and host probes: /proc/PID/stat (a comm with
// spaces and parentheses), the Uid line of /proc/PID/status, /proc/PID/cmdline, and /proc/stat,
// /proc/meminfo, /proc/loadavg, /proc/uptime. Every parser sees the whole input. What they
// return is checked against the input: comm is taken from it, CPU idle time never exceeds the
// total, load and uptime are finite and not negative, a command line stays within its limit.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "host/procfs.h"
#include "process/procstat.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool sane(double v) { return std::isfinite(v) && v >= 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace process = dozor::probes::process;
  namespace host = dozor::probes::host;

  if (const auto st = process::parse_proc_stat(text)) {
    check(text.find(st->comm) != std::string_view::npos);
  }
  (void)process::parse_status_euid(text);
  for (const std::size_t limit : {std::size_t{0}, std::size_t{7}, std::size_t{4096}}) {
    const std::string line = process::cmdline_text(text, limit);
    check(line.size() <= limit && line.find('\0') == std::string::npos);
  }

  if (const auto cpu = host::parse_proc_stat(text))
    check(cpu->idle <= cpu->total && cpu->cores >= 0);
  if (const auto mem = host::parse_meminfo(text)) (void)mem->mem_available;
  if (const auto load = host::parse_loadavg(text))
    check(sane(load->one) && sane(load->five) && sane(load->fifteen));
  if (const auto up = host::parse_uptime(text)) check(sane(*up));
  return 0;
}
