#pragma once

// The agent's Scheduler with one probe, on a thread of its own as in the agent, and the results
// it hands on with when they came.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dozor/agent/scheduler.h"

namespace dozor::agent::agent_testing {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

/// A probe from YAML, as one entry of an agent config's `probes:`; a config error fails the test.
inline probes::ProbeSpec probe_from(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto spec = probes::read_probe(YAML::Load(yaml), "test.yaml", "probes[0]", errors);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  if (!spec) throw std::runtime_error("bad probe: " + yaml);
  return *spec;
}

class RunningScheduler {
 public:
  struct Arrived {
    protocol::Result result;
    Clock::time_point at;
  };

  explicit RunningScheduler(probes::ProbeSpec spec)
      : scheduler_(io_, pool_, [this](protocol::Result r) {
          std::lock_guard lock(m_);
          results_.push_back({std::move(r), Clock::now()});
          cv_.notify_all();
        }) {
    scheduler_.start({std::move(spec)});
    thread_ = std::thread([this] { io_.run(); });
  }
  ~RunningScheduler() {
    asio::post(io_, [this] { scheduler_.stop(); });
    io_.stop();
    thread_.join();
    pool_.join();
  }
  RunningScheduler(const RunningScheduler&) = delete;
  RunningScheduler& operator=(const RunningScheduler&) = delete;

  /// Runs `fn` on the scheduler's thread, as the agent's signal handlers and watches do, and
  /// waits for it.
  void on_thread(const std::function<void(Scheduler&)>& fn) {
    std::promise<void> done;
    asio::post(io_, [&] {
      fn(scheduler_);
      done.set_value();
    });
    done.get_future().wait();
  }
  /// A reload (SIGHUP): the probes before are stopped, this one started.
  void reload(probes::ProbeSpec spec) {
    on_thread([&](Scheduler& s) { s.start({std::move(spec)}); });
  }

  /// Waits until `n` results have come (or `limit` passes) and returns those that came.
  std::vector<Arrived> wait(std::size_t n, std::chrono::milliseconds limit) {
    std::unique_lock lock(m_);
    cv_.wait_for(lock, limit, [&] { return results_.size() >= n; });
    return results_;
  }
  std::vector<Arrived> results() { return wait(0, std::chrono::milliseconds(0)); }
  /// The first result with `status` from the `after`-th on, or nullopt after `limit`.
  std::optional<protocol::Result> wait_for(protocol::Status status, std::chrono::milliseconds limit,
                                           std::size_t after = 0) {
    std::unique_lock lock(m_);
    std::optional<protocol::Result> found;
    cv_.wait_for(lock, limit, [&] {
      for (std::size_t i = after; i < results_.size(); ++i)
        if (results_[i].result.status == status) return found = results_[i].result, true;
      return false;
    });
    return found;
  }

 private:
  asio::io_context io_;
  asio::thread_pool pool_{2};
  Scheduler scheduler_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<Arrived> results_;
  std::thread thread_;
};

}  // namespace dozor::agent::agent_testing
