#pragma once

#include <mutex>

namespace dozor::collector {

/// Unix seconds for the collector's timers and timestamps: the system's wall clock, steered by
/// the monotonic clock so that a step of the wall clock (an NTP correction, a VM resumed, an
/// operator's `date -s`) does not move it at once: liveness windows, holds, silences' ends and
/// notifier backoffs would all jump with it, and every agent would look silent together. A step
/// is absorbed at 1 % of the time that passes (20 s in about half an hour); one of more than an
/// hour is taken at once, as a clock that was simply wrong at boot. Thread-safe.
class SteadyWallClock {
 public:
  double now();
  /// The same, from readings given: `wall` unix seconds, `steady` any monotonic seconds.
  double now(double wall, double steady);

 private:
  static constexpr double kSlew = 0.01;
  static constexpr double kJump = 3600;
  std::mutex mu_;
  bool started_ = false;
  double offset_ = 0;  // what is added to the monotonic clock
  double last_steady_ = 0;
  bool stepped_ = false;  // a step is being absorbed (logged once)
};

}  // namespace dozor::collector
