#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

#include "dozor/agent/config.h"
#include "dozor/agent/spool.h"

namespace dozor::agent {

namespace asio = boost::asio;

/// Builds the agent's TLS client context: its certificate for the collector to check, and the CA
/// the collector's certificate must come from. Throws on unreadable files.
asio::ssl::context make_client_tls(const CollectorLink& link);

/// The agent's connection to its collector: one HTTPS keep-alive connection with the agent's
/// client certificate; reports carry the spool's oldest results in seq order plus the newest
/// result of each probe, so that a backlog never holds back fresh news; results leave the spool
/// only when acked; a report at least every heartbeat; reconnects with capped exponential
/// backoff and jitter.
/// Lives on the I/O thread; not thread-safe.
class Uplink {
 public:
  Uplink(asio::io_context& io, CollectorLink link, protocol::AgentInfo info, Spool& spool);
  ~Uplink();

  void start();
  /// Results were queued: send them now rather than at the next heartbeat.
  void notify();
  /// Stops after the current exchange; pending results stay in the spool.
  void stop();
  /// Calls `done` once the spool is empty (everything acked) or after `limit`, whichever first.
  void drain(std::chrono::milliseconds limit, std::function<void()> done);
  /// New link settings (SIGHUP): reconnects only when they changed.
  void reconfigure(const CollectorLink& link, std::chrono::milliseconds heartbeat);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace dozor::agent
