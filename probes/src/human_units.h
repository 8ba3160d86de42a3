#pragma once

#include <cstdio>
#include <string>

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

}  // namespace dozor::probes
