#include "dozor/probes/probe.h"

namespace dozor::probes {

Status threshold_status(double value, std::optional<double> warning,
                        std::optional<double> critical) {
  if (critical && value >= *critical) return Status::critical;
  if (warning && value >= *warning) return Status::warning;
  return Status::ok;
}

Status threshold_status_below(double value, std::optional<double> warning,
                              std::optional<double> critical) {
  if (critical && value <= *critical) return Status::critical;
  if (warning && value <= *warning) return Status::warning;
  return Status::ok;
}

Result make_result(Status status, std::string summary) {
  Result r;
  r.status = status;
  r.summary = std::move(summary);
  return r;
}

double seconds_between(std::chrono::steady_clock::time_point from,
                       std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace dozor::probes
