#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dozor/collector/desk.h"
#include "dozor/collector/health.h"
#include "dozor/collector/sql.h"
#include "dozor/protocol/options.h"

namespace dozor::server {

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

/// The `enroll` section: the issuing CA that signs agents' certificates at enrollment and
/// renewal. Off (no enrollment, no renewal) while ca_cert is empty.
struct EnrollSettings {
  std::string ca_cert, ca_key;
  std::chrono::seconds cert_lifetime{30 * 86400};
  std::chrono::seconds token_ttl{30 * 60};  // a token's lifetime unless dozorctl says otherwise
  std::size_t per_source = 10;              // enrollment requests a minute from one address
  std::size_t per_minute = 120;             // ... from all addresses
  bool on() const { return !ca_cert.empty(); }
};

/// collector.yaml, validated. Relative paths are resolved against the config file's folder.
/// `report:` of collector.yaml: what the service reports say about who serves whom.
struct ReportSettings {
  std::string company;
  std::map<std::string, std::string> clients;  // site -> client's name
  std::string zone = "UTC";                    // months of 24x7 sites
  double notice_within = 600;
};

struct ServerConfig {
  Endpoint agents;  // mutual-TLS listener for agent reports
  Endpoint http;    // plain HTTP: /metrics, /healthz, /api/v1
  std::string tls_ca, tls_cert, tls_key;
  // "store: sqlite:PATH" (the path resolved) or "store: postgres://...", and store_password_file.
  collector::sql::Options store{"sqlite:/var/lib/dozor/collector.db", ""};
  std::string node;  // the name of this collector among several sharing a PostgreSQL store
  std::uint64_t max_body = 4 << 20;
  std::chrono::milliseconds read_timeout{10'000};      // whole request, once its first byte came
  std::chrono::milliseconds idle_timeout{60'000};      // keep-alive connection with no request
  std::chrono::milliseconds handshake_timeout{3'000};  // from accept to a completed handshake
  std::size_t max_connections = 4096;                  // agents past the handshake
  // Connections that have not completed their handshake: a budget of their own, so that
  // strangers never take the room of authenticated agents, and one address not all of it.
  std::size_t pending_per_source = 16;
  std::size_t pending_total = 512;
  // The HTTP port's connections (Prometheus, Grafana, dozorctl, a reverse proxy): at a limit,
  // the longest idle keep-alive connection makes room; with none idle, the new one is refused.
  std::size_t http_connections = 512;
  std::size_t http_per_source = 64;
  collector::AgentLimits agent_limits;  // what one agent may report
  std::size_t reports_per_second = 20;  // per agent, with bursts of as many
  std::string log_level = "info";
  std::string api_token;       // bearer token for the API's writes; empty: writes refused
  collector::DeskConfig desk;  // rules, calendars, service targets, tickets, notifiers
  EnrollSettings enroll;
  ReportSettings report;
};

/// Reads and validates a collector config; every problem goes to `errors` (file, line, key).
std::optional<ServerConfig> load_server_config(const std::string& file,
                                               std::vector<ConfigError>& errors);

/// "host:port" or "[v6]:port"; nullopt with a message when malformed.
std::optional<Endpoint> parse_endpoint(const std::string& text, std::string& message);

}  // namespace dozor::server
