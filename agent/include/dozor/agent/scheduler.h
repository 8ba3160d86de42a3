#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "dozor/probes/registry.h"

namespace dozor::agent {

namespace asio = boost::asio;

/// Runs one probe once: enforces the contract that a probe never throws, and stamps the result
/// with the probe's name, type, labels, start time and duration.
asio::awaitable<protocol::Result> run_probe(const probes::ProbeSpec& spec, asio::any_io_executor io,
                                            asio::thread_pool& blocking,
                                            probes::Cause cause = probes::Cause::interval);

/// Runs every configured probe at its interval, each from a random offset so that they do not
/// all fire together, and hands each result to the sink. Single-threaded: lives on the I/O thread.
///
/// Between intervals:
/// - a result worse than the last one sent is confirmed first (`confirm`): the probe runs again
///   up to kRechecks times kRecheckGap apart, and the last of them goes out, at once; one that is
///   no longer worse ends the sequence and is sent instead, so a single lost packet opens nothing.
///   A new sequence waits an interval after the last one ended: a probe flapping faster is sent
///   as it is, not re-checked in a storm.
/// - an event-driven probe's change runs it at once (at most every kEventGap); its result goes
///   out when its status differs from the last one sent, unconfirmed: the system said so.
class Scheduler {
 public:
  using Sink = std::function<void(protocol::Result)>;

  static constexpr int kRechecks = 2;
  static constexpr std::chrono::milliseconds kRecheckGap{1000};
  static constexpr std::chrono::milliseconds kEventGap{100};

  Scheduler(asio::io_context& io, asio::thread_pool& blocking, Sink sink);
  ~Scheduler();

  /// Starts the probes; probes started before are stopped first (a reload).
  void start(std::vector<probes::ProbeSpec> specs);
  /// Stops every probe loop; a run in progress finishes but its result is discarded.
  void stop();

 private:
  struct Slot;
  asio::awaitable<void> loop(std::shared_ptr<Slot> slot, std::uint64_t generation);
  asio::awaitable<void> run_at_interval(Slot& slot, std::uint64_t generation);
  asio::awaitable<void> run_for_change(Slot& slot, std::uint64_t generation);
  void send(Slot& slot, protocol::Result r);
  asio::awaitable<protocol::Result> confirmed(Slot& slot, protocol::Result first,
                                              std::uint64_t generation);

  asio::io_context& io_;
  asio::thread_pool& blocking_;
  Sink sink_;
  std::uint64_t generation_ = 0;
  std::vector<std::shared_ptr<Slot>> slots_;
};

}  // namespace dozor::agent
