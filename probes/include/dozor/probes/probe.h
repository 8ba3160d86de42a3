#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "dozor/protocol/report.h"

namespace dozor::probes {

namespace asio = boost::asio;
using protocol::Metric;
using protocol::Result;
using protocol::Status;

/// What a probe may use while it runs.
struct ProbeContext {
  asio::any_io_executor io;     // the agent's I/O thread: network I/O only, never block it
  asio::thread_pool* blocking;  // small bounded pool for calls that block (syscalls on
                                // possibly hung mounts, serial lines, child processes)
  std::chrono::milliseconds timeout;
};

/// One configured check. run() fills status, summary and metrics; the scheduler fills the rest
/// (seq, names, timestamps). It must finish within ctx.timeout and never throws: a check that
/// cannot run returns Status::unknown with the reason. Instances are used from one coroutine at a
/// time.
class Probe {
 public:
  virtual ~Probe() = default;
  virtual asio::awaitable<Result> run(ProbeContext& ctx) = 0;
  /// How the probe will go about its check, for `dozor-agent --once --plan` (e.g. the requests
  /// a Modbus probe sends per cycle); empty when there is nothing to say beyond the config.
  virtual std::string plan() const { return {}; }
};

/// Higher-is-worse thresholds: critical at or above `critical`, warning at or above `warning`.
Status threshold_status(double value, std::optional<double> warning,
                        std::optional<double> critical);
/// Lower-is-worse thresholds, e.g. days left before a certificate expires.
Status threshold_status_below(double value, std::optional<double> warning,
                              std::optional<double> critical);

/// A Result with status and summary set.
Result make_result(Status status, std::string summary);

/// Seconds between two steady-clock points, as metrics report durations.
double seconds_between(std::chrono::steady_clock::time_point from,
                       std::chrono::steady_clock::time_point to);

}  // namespace dozor::probes
