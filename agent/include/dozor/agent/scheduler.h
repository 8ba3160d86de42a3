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
                                            asio::thread_pool& blocking);

/// Runs every configured probe at its interval, each from a random offset so that they do not
/// all fire together, and hands each result to the sink. Single-threaded: lives on the I/O thread.
class Scheduler {
 public:
  using Sink = std::function<void(protocol::Result)>;

  Scheduler(asio::io_context& io, asio::thread_pool& blocking, Sink sink);
  ~Scheduler();

  /// Starts the probes; probes started before are stopped first (a reload).
  void start(std::vector<probes::ProbeSpec> specs);
  /// Stops every probe loop; a run in progress finishes but its result is discarded.
  void stop();

 private:
  asio::awaitable<void> loop(std::shared_ptr<probes::ProbeSpec> spec,
                             std::shared_ptr<asio::steady_timer> timer, std::uint64_t generation);

  asio::io_context& io_;
  asio::thread_pool& blocking_;
  Sink sink_;
  std::uint64_t generation_ = 0;
  std::vector<std::shared_ptr<asio::steady_timer>> timers_;
};

}  // namespace dozor::agent
