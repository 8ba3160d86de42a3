#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "dozor/protocol/units.h"

namespace dozor::probes {

/// Bytes for a summary, in binary units: "512 B", "75.9 GiB".
inline std::string human_bytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  while (bytes >= 1024 && i < 5) {
    bytes /= 1024;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, i == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[i]);
  return buf;
}

/// A number for a summary as printf's %g writes it: "42", "0.5", "1.5e+06".
inline std::string human_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

/// Seconds for a summary, as a person reads them: "0.6 ms", "31 ms", "1.5s", "3m5s".
inline std::string human_seconds(double s) {
  char buf[32];
  if (s < 1)
    std::snprintf(buf, sizeof buf, s < 0.01 ? "%.1f ms" : "%.0f ms", s * 1000);
  else if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else
    return format_duration(std::chrono::seconds(std::llround(s)));
  return buf;
}

}  // namespace dozor::probes
