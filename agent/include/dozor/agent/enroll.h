#pragma once

#include <string>

#include "dozor/agent/config.h"

namespace dozor::agent {

/// `dozor-agent enroll`: what the command line gave.
struct EnrollOptions {
  std::string collector;  // https://host:port of the collector's agent port; "": the config's
  std::string token;      // dz1.... from dozorctl enroll create
  std::string ca_sha256;  // the CA's full SHA-256 fingerprint, to check beside the token's pin
  std::string agent;      // the agent id to ask for; "": the one the token names
  bool force = false;     // replace an existing certificate and key
};

/// Enrolls this machine: fetches the collector's CA and checks it against the token's pin,
/// makes a key here, sends a CSR with the token over TLS verified with that CA, and writes the
/// key, the certificate and the CA where `config` points (collector.key, .cert, .ca). Says what
/// it did and what to do next on stdout, what went wrong on stderr. Exit status: 0 enrolled, 1
/// refused or failed, 2 wrong usage.
int enroll(const AgentConfig& config, const EnrollOptions& options);

}  // namespace dozor::agent
