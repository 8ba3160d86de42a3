#pragma once

// Builds probes from YAML the way the agent's config does, and runs one on a real io_context.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dozor/probes/registry.h"

namespace dozor::probes::probe_testing {

namespace asio = boost::asio;

/// Reads `yaml` as the first entry of a `probes:` list of test.yaml.
inline std::optional<ProbeSpec> build(const std::string& yaml, std::vector<ConfigError>& errors) {
  return read_probe(YAML::Load(yaml), "test.yaml", "probes[0]", errors);
}

/// Config errors of `yaml`, each as "file:line: key: message".
inline std::vector<std::string> config_errors(const std::string& yaml) {
  std::vector<ConfigError> errors;
  build(yaml, errors);
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.to_string());
  return out;
}

struct ProbeRun {
  Result result;
  double seconds = 0;  // wall time of the run
};

/// Runs a probe once, on a fresh io_context and a two-thread blocking pool.
inline ProbeRun run(const ProbeSpec& spec) {
  asio::io_context ioc;
  asio::thread_pool pool(2);
  ProbeContext ctx{ioc.get_executor(), &pool, spec.timeout};
  const auto start = std::chrono::steady_clock::now();
  auto done = asio::co_spawn(ioc, spec.probe->run(ctx), asio::use_future);
  ioc.run();
  ProbeRun out;
  out.result = done.get();
  out.seconds = seconds_between(start, std::chrono::steady_clock::now());
  return out;
}

/// Builds and runs; a config error fails the test and yields an unknown result.
inline ProbeRun run(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto spec = build(yaml, errors);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  if (!spec) return {make_result(Status::unknown, "config error"), 0};
  return run(*spec);
}

inline std::optional<double> metric(const Result& r, std::string_view name) {
  for (const auto& m : r.metrics)
    if (m.name == name) return m.value;
  return std::nullopt;
}

inline std::string to_text(const Result& r) {
  std::string out = std::string(protocol::to_string(r.status)) + ": " + r.summary;
  for (const auto& m : r.metrics) out += " | " + m.name + "=" + std::to_string(m.value) + m.unit;
  return out;
}

/// An io_context on a thread of its own, for the peers a test talks to.
class PeerThread {
 public:
  PeerThread() : work_(asio::make_work_guard(ioc_)), thread_([this] { ioc_.run(); }) {}
  ~PeerThread() { stop(); }
  /// Stops the thread; call it first in an owner's destructor, before its sockets go away.
  void stop() {
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  PeerThread(const PeerThread&) = delete;
  PeerThread& operator=(const PeerThread&) = delete;
  asio::io_context& ioc() { return ioc_; }

 private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

}  // namespace dozor::probes::probe_testing
