#include "dozor/collector/clock.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace dozor::collector {

double SteadyWallClock::now() {
  using namespace std::chrono;
  return now(duration<double>(system_clock::now().time_since_epoch()).count(),
             duration<double>(steady_clock::now().time_since_epoch()).count());
}

double SteadyWallClock::now(double wall, double steady) {
  std::lock_guard lock(mu_);
  const double target = wall - steady;
  if (!started_) {
    started_ = true;
    offset_ = target;
  }
  const double behind = target - offset_;
  if (std::abs(behind) > kJump) {
    spdlog::warn("the system clock moved by {:+.0f} s; the collector's time follows at once",
                 behind);
    offset_ = target;
  } else if (std::abs(behind) > 1e-3) {
    if (!stepped_ && std::abs(behind) > 1)
      spdlog::warn(
          "the system clock stepped by {:+.1f} s; the collector's time follows it at "
          "1% of elapsed time, so that no timer jumps",
          behind);
    stepped_ = std::abs(behind) > 1;
    const double most = kSlew * std::max(0.0, steady - last_steady_);
    offset_ += std::clamp(behind, -most, most);
  } else {
    stepped_ = false;
  }
  last_steady_ = steady;
  return steady + offset_;
}

}  // namespace dozor::collector
