#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dozor/protocol/report.h"

namespace dozor::probes {

namespace asio = boost::asio;
using protocol::Metric;
using protocol::Result;
using protocol::Status;

/// Why a probe runs.
enum class Cause {
  interval,  // its interval came round (or the agent started)
  event,     // its watch() saw a change: the result goes out at once if its status changed
  recheck,   // confirming a result worse than the one before
};

/// What a probe may use while it runs.
struct ProbeContext {
  asio::any_io_executor io;     // the agent's I/O thread: network I/O only, never block it
  asio::thread_pool* blocking;  // small bounded pool for calls that block (syscalls on
                                // possibly hung mounts, serial lines, child processes)
  std::chrono::milliseconds timeout;
  Cause cause = Cause::interval;
};

/// Called by an event-driven probe, on the I/O executor, when the system told it of a change.
using Changed = std::function<void()>;

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

  /// Event-driven probes follow what the system tells at once (a process's exit, a file's
  /// growth, a unit's state, a held connection's close) and call `changed` when it happens; the
  /// scheduler then runs the probe with Cause::event. Called once before the first run; a probe
  /// arms its watches from its runs (what to watch is what the last run found). Nothing is
  /// called back after unwatch().
  virtual void watch(Changed changed) { (void)changed; }
  virtual void unwatch() {}
  /// False when a run reports what happened since the run before (a log's new lines): running
  /// it again at once cannot confirm the first run's finding.
  virtual bool confirmable() const { return true; }
};

/// One call on the blocking pool, shared by the coroutine waiting for it and the pool thread,
/// which outlives the wait when the call hangs (a dead NFS mount, a runaway regex). Touched only
/// on the I/O executor. A probe keeps a weak_ptr to its last call so that it does not take a
/// second pool thread while the first one still hangs.
template <class T>
struct BlockingCall {
  explicit BlockingCall(const asio::any_io_executor& io) : timer(io) {}
  bool running() const { return !answer.has_value(); }
  asio::steady_timer timer;
  std::optional<T> answer;
};

/// Runs `fn` on ctx.blocking and waits on the I/O executor until it answers or `deadline`
/// passes (nullopt). `co_await asio::post(pool, use_awaitable)` would not do: in Boost 1.74 the
/// coroutine resumes on its own executor, not on the pool. Pass a named `fn`, not a temporary
/// in the co_await expression: g++ 12 destroys such temporaries twice.
template <class T, class Fn>
asio::awaitable<std::optional<T>> run_blocking(ProbeContext& ctx,
                                               std::chrono::steady_clock::time_point deadline,
                                               Fn fn, std::weak_ptr<BlockingCall<T>>& last) {
  auto call = std::make_shared<BlockingCall<T>>(ctx.io);
  last = call;
  call->timer.expires_at(deadline);
  asio::post(*ctx.blocking, [call, fn = std::move(fn), io = ctx.io]() mutable {
    T answer = fn();
    asio::post(io, [call = std::move(call), answer = std::move(answer)]() mutable {
      call->answer = std::move(answer);
      call->timer.cancel();
    });
  });
  boost::system::error_code ec;
  co_await call->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return call->answer;
}

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
