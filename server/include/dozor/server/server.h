#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>

#include "dozor/collector/desk.h"
#include "dozor/collector/health.h"
#include "dozor/collector/lease.h"
#include "dozor/collector/metrics.h"
#include "dozor/collector/store.h"
#include "dozor/server/config.h"

namespace dozor::server {

namespace asio = boost::asio;

/// Serials (hex, as openssl prints them) of revoked agent certificates.
using RevokedSerials = std::unordered_set<std::string>;

/// Builds the TLS context for the agent listener: our certificate, and agents' certificates
/// required and verified against the configured CA, and refused when their serial is in
/// `revoked` (which must outlive the context). Throws on unreadable files.
asio::ssl::context make_agent_tls(const ServerConfig& config,
                                  const RevokedSerials* revoked = nullptr);

/// Throws std::runtime_error saying what is wrong when the enroll section's CA and key, or the
/// collector's own certificate, cannot serve enrollment; nothing when enrollment is off.
void check_enrollment(const ServerConfig& config);

/// The network front of dozor-collector: the mutual-TLS listener for agent reports and the plain
/// HTTP listener for /metrics, /healthz and /api/v1. Runs on one io_context; not thread-safe.
class Server {
 public:
  using Clock = std::function<double()>;  // unix seconds

  /// `desk` (may be null) answers /api/v1/tickets and /api/v1/silences; its timers and the
  /// health's run every 250 ms. `store` (may be null) keeps the agents' certificates and the
  /// revocations.
  Server(asio::io_context& io, ServerConfig config, collector::Health& health,
         collector::Desk* desk, collector::Metrics& metrics, Clock clock,
         collector::Store* store = nullptr);
  ~Server();

  /// Several collectors share the store: `lease` says when this one runs the desk; until then it
  /// takes reports for the leader and answers the API with 503 not_leader (see lease.h). Before
  /// start(); `lease` outlives the server.
  void set_lease(collector::Lease* lease);

  /// Binds both listeners (throws std::system_error when a port is taken) and starts accepting.
  void start();
  /// Stops accepting, lets requests in flight finish for up to `grace`, then closes the rest.
  void stop(std::chrono::milliseconds grace);
  /// New TLS material for new connections, the API token and the limits (SIGHUP); existing
  /// connections keep their TLS. Listen addresses change only on restart. Throws, changing
  /// nothing, when the TLS files cannot be used.
  void reload(const ServerConfig& config);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace dozor::server
