#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "dozor/agent/spool.h"
#include "dozor/probes/registry.h"
#include "dozor/protocol/options.h"

namespace dozor::agent {

/// Where and how the agent reports: the collector's URL and the agent's TLS identity.
struct CollectorLink {
  std::string url;
  std::string host;
  std::string port;
  std::string path_prefix;  // from the URL, before /v1/report
  std::string ca, cert, key;
  bool operator==(const CollectorLink&) const = default;
};

/// agent.yaml, validated. Relative paths are resolved against the config file's folder.
struct AgentConfig {
  std::string site;
  std::chrono::milliseconds heartbeat{5000};
  CollectorLink collector;
  SpoolConfig spool;
  std::vector<probes::ProbeSpec> probes;
  std::string log_level = "info";
};

/// Reads and validates an agent config; every problem goes to `errors` (file, line, key).
/// `need_files`: the spool's folder and the TLS files must exist (a real run, --check-config;
/// not --once, which only runs the probes, nor enroll, which writes the TLS files).
std::optional<AgentConfig> load_agent_config(const std::string& file,
                                             std::vector<ConfigError>& errors,
                                             bool need_files = true);

/// Splits "https://host:port/prefix"; false with a message when it is not an https URL.
bool parse_collector_url(const std::string& url, CollectorLink& out, std::string& message);

}  // namespace dozor::agent
