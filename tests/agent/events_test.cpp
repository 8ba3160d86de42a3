// The event paths end to end inside the agent: the Scheduler with real probes, watching real
// processes, files, sockets and a real systemd. Each probe's interval is 60 s, so a result
// within a second of the change can only have come from its event.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../probes/children.h"
#include "../probes/temp_dir.h"
#include "running_scheduler.h"

extern char** environ;

namespace dozor::agent {
namespace {

namespace fs = std::filesystem;
using agent_testing::Clock;
using protocol::Status;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::optional<double> metric(const protocol::Result& r, std::string_view name) {
  for (const auto& m : r.metrics)
    if (m.name == name) return m.value;
  return std::nullopt;
}

// The agent's Scheduler with one probe from YAML.
class Agent : public agent_testing::RunningScheduler {
 public:
  explicit Agent(const std::string& yaml) : RunningScheduler(agent_testing::probe_from(yaml)) {}
  void reload(const std::string& yaml) {
    RunningScheduler::reload(agent_testing::probe_from(yaml));
  }
  std::size_t count() { return results().size(); }
};

void append(const fs::path& file, const std::string& text) {
  std::ofstream(file, std::ios::app) << text << std::flush;
}

TEST(Events, AKilledProcessIsCriticalWithinASecond) {
  probes::probe_testing::Children children;
  const std::string arg = probes::probe_testing::distinctive_seconds();
  const pid_t child = children.spawn({"sleep", arg});
  Agent agent("{name: erp-server, type: process, interval: 60s, cmdline: '^sleep " + arg + "$'}");
  ASSERT_TRUE(agent.wait_for(Status::ok, std::chrono::seconds(5)));
  const auto killed = Clock::now();
  children.kill(child);
  const auto r = agent.wait_for(Status::critical, std::chrono::seconds(3));
  const double took = seconds_since(killed);
  ASSERT_TRUE(r);
  EXPECT_LT(took, 1.0);
  EXPECT_EQ(metric(*r, "processes"), 0.0);
}

std::size_t open_descriptors() {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), {}));
}

TEST(Events, StoppingTheProbesClosesTheirPidfdsWhileTheProcessesRunOn) {
  probes::probe_testing::Children children;
  const std::string arg = probes::probe_testing::distinctive_seconds();
  for (int i = 0; i < 3; ++i) children.spawn({"sleep", arg});
  const std::size_t before = open_descriptors();
  Agent agent("{name: workers, type: process, interval: 60s, cmdline: '^sleep " + arg + "$'}");
  const auto r = agent.wait_for(Status::ok, std::chrono::seconds(5));
  ASSERT_TRUE(r);
  EXPECT_EQ(metric(*r, "processes"), 3.0);
  const std::size_t watching = open_descriptors();
  EXPECT_GE(watching, before + 3);  // a pidfd each
  agent.reload("{name: workers, type: process, interval: 60s, watch: false, cmdline: '^sleep " +
               arg + "$'}");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(open_descriptors(), watching - 3);
}

TEST(Events, ALogLineIsAResultWithinASecondAlsoRightAfterARotation) {
  probes::TempDir dir;
  const fs::path log = dir.path() / "rphost.log";
  append(log, "started\n");
  Agent agent(
      "{name: erp-log, type: log, interval: 60s, pattern: ERROR, warning: 1, critical: "
      "2, path: " +
      log.string() + ", state: " + (dir.path() / "state").string() + "}");
  ASSERT_TRUE(agent.wait_for(Status::ok, std::chrono::seconds(5)));

  auto written = Clock::now();
  append(log, "ERROR disk full\n");
  auto r = agent.wait_for(Status::warning, std::chrono::seconds(3));
  ASSERT_TRUE(r);
  EXPECT_LT(seconds_since(written), 1.0);
  EXPECT_NE(r->summary.find("ERROR disk full"), std::string::npos) << r->summary;

  // logrotate's default: the file renamed away, a new one in its place.
  fs::rename(log, dir.path() / "rphost.log.1");
  written = Clock::now();
  append(log, "ERROR after rotation\n");
  r = agent.wait_for(Status::critical, std::chrono::seconds(3));
  ASSERT_TRUE(r);
  EXPECT_LT(seconds_since(written), 1.0);
  EXPECT_NE(r->summary.find("ERROR after rotation"), std::string::npos) << r->summary;
}

TEST(Events, TheIntervalsResultStillCountsEveryLineOfTheInterval) {
  probes::TempDir dir;
  const fs::path log = dir.path() / "app.log";
  append(log, "");
  Agent agent("{name: app-log, type: log, interval: 3s, pattern: ERROR, path: " + log.string() +
              ", state: " + (dir.path() / "state").string() + "}");
  ASSERT_TRUE(agent.wait_for(Status::ok, std::chrono::seconds(5)));
  const std::size_t first = agent.count();
  for (int i = 0; i < 3; ++i) {
    append(log, "ERROR " + std::to_string(i) + "\nfine\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  // At once: the first match (warning); the others keep the status and wait for the interval.
  ASSERT_TRUE(agent.wait_for(Status::warning, std::chrono::seconds(1), first));
  for (int i = 0; i < 50 && agent.count() < first + 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto results = agent.results();
  ASSERT_GE(results.size(), first + 2);
  const auto& interval = results[first + 1].result;
  EXPECT_EQ(metric(interval, "matches"), 3.0) << interval.summary;
  EXPECT_EQ(metric(interval, "lines"), 6.0) << interval.summary;
}

// A TCP service on 127.0.0.1 that keeps what it accepts, or drops it after `drop_after`.
class Listener {
 public:
  explicit Listener(std::chrono::milliseconds drop_after = std::chrono::milliseconds(0))
      : drop_after_(drop_after) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot listen");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Listener() { close(); }
  int port() const { return port_; }
  int accepted() const { return accepted_; }
  /// The service dies: the listening socket and every connection close.
  void close() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void serve() {
    std::vector<std::pair<int, Clock::time_point>> open;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) == 1) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          open.emplace_back(c, Clock::now());
          ++accepted_;
        }
      }
      if (drop_after_.count() > 0)
        std::erase_if(open, [&](const auto& c) {
          return Clock::now() - c.second >= drop_after_ && ::close(c.first) == 0;
        });
    }
    ::close(fd_);
    for (const auto& c : open) ::close(c.first);
  }

  std::chrono::milliseconds drop_after_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(Events, AHeldConnectionsEndIsCriticalWithinASecondOnceAFreshConnectFails) {
  Listener service;
  Agent agent("{name: erp-port, type: tcp, interval: 60s, hold: true, host: 127.0.0.1, port: " +
              std::to_string(service.port()) + "}");
  ASSERT_TRUE(agent.wait_for(Status::ok, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto died = Clock::now();
  service.close();
  const auto r = agent.wait_for(Status::critical, std::chrono::seconds(3));
  ASSERT_TRUE(r);
  EXPECT_LT(seconds_since(died), 1.0);
  EXPECT_NE(r->summary.find("refused"), std::string::npos) << r->summary;
  EXPECT_NE(r->summary.find("the held connection ended"), std::string::npos) << r->summary;
}

TEST(Events, AServiceThatDropsIdleConnectionsIsNotCritical) {
  Listener service(std::chrono::milliseconds(1200));
  Agent agent("{name: erp-port, type: tcp, interval: 60s, hold: true, host: 127.0.0.1, port: " +
              std::to_string(service.port()) + "}");
  ASSERT_TRUE(agent.wait_for(Status::ok, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::seconds(4));
  for (const auto& a : agent.results()) EXPECT_EQ(a.result.status, Status::ok) << a.result.summary;
  EXPECT_EQ(agent.count(), 1u);  // each drop was confirmed by a fresh connect: no news to send
  // The first check, then per drop a fresh connect that is held again.
  EXPECT_GE(service.accepted(), 3);
}

TEST(Events, AServiceThatDropsConnectionsAtOnceIsNotHeldAgainUntilTheInterval) {
  Listener service(std::chrono::milliseconds(200));
  Agent agent("{name: erp-port, type: tcp, interval: 60s, hold: true, host: 127.0.0.1, port: " +
              std::to_string(service.port()) + "}");
  ASSERT_TRUE(agent.wait_for(Status::ok, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  for (const auto& a : agent.results()) EXPECT_EQ(a.result.status, Status::ok) << a.result.summary;
  // The check, then one fresh connect after its drop, not held: no reconnect every 200 ms.
  EXPECT_EQ(service.accepted(), 2);
}

TEST(Events, WhatCannotBeWatchedSaysItIsSeenAtTheIntervalOnly) {
  probes::TempDir dir;
  Agent log("{name: gone-log, type: log, interval: 60s, pattern: ERROR, path: " +
            (dir.path() / "no-such-folder/app.log").string() +
            ", state: " + (dir.path() / "state").string() + "}");
  auto r = log.wait_for(Status::critical, std::chrono::seconds(3));
  ASSERT_TRUE(r);
  EXPECT_NE(
      r->summary.find("read at the interval only (cannot watch " +
                      (dir.path() / "no-such-folder").string() + ": No such file or directory)"),
      std::string::npos)
      << r->summary;

  // No systemd to follow: an empty runtime folder and no session bus.
  const char* bus = std::getenv("DBUS_SESSION_BUS_ADDRESS");
  const std::string saved_bus = bus ? bus : "";
  ::unsetenv("DBUS_SESSION_BUS_ADDRESS");
  ::setenv("XDG_RUNTIME_DIR", dir.path().c_str(), 1);
  Agent unit("{name: erp-unit, type: service, interval: 60s, bus: user, unit: erp.service}");
  r = unit.wait_for(Status::unknown, std::chrono::seconds(5));
  ::unsetenv("XDG_RUNTIME_DIR");
  if (!saved_bus.empty()) ::setenv("DBUS_SESSION_BUS_ADDRESS", saved_bus.c_str(), 1);
  ASSERT_TRUE(r);
  EXPECT_NE(r->summary.find("; changes seen at the interval only (cannot reach systemd: no user "
                            "bus ("),
            std::string::npos)
      << r->summary;
}

TEST(Events, AFileInAWatchedFolderIsSeenWithinASecond) {
  probes::TempDir dir;
  Agent agent("{name: import-lock, type: file, interval: 60s, watch: true, exists: false, path: " +
              (dir.path() / "*.lock").string() + "}");
  ASSERT_TRUE(agent.wait_for(Status::ok, std::chrono::seconds(5)));
  const auto created = Clock::now();
  dir.write("exchange.lock", "");
  ASSERT_TRUE(agent.wait_for(Status::critical, std::chrono::seconds(3)));
  EXPECT_LT(seconds_since(created), 1.0);
}

// A real systemd: a user manager (systemd --user), in a mount namespace of its own where
// /run/systemd/system exists, the mark systemd looks for before it runs as a user instance on
// a machine it did not boot. Its units are real units with real processes; the probe talks to
// it through its private socket in XDG_RUNTIME_DIR, as systemctl --user does without a bus.
class UserSystemd {
 public:
  UserSystemd() {
    // scripts/test runs as root, as CI does: a missing systemd is a failure, not a skip.
    if (::geteuid() != 0) {
      why_not_ = "needs root for a mount namespace (unshare --mount): run the tests as root";
      return;
    }
    runtime_ = fs::temp_directory_path() / ("dozor-systemd-" + std::to_string(::getpid()));
    fs::create_directories(runtime_);
    fs::permissions(runtime_, fs::perms::owner_all);
    ::setenv("XDG_RUNTIME_DIR", runtime_.c_str(), 1);
    const char* argv[] = {"unshare",
                          "--mount",
                          "--propagation",
                          "private",
                          "sh",
                          "-c",
                          "mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && "
                          "mkdir /run/systemd/system && exec /lib/systemd/systemd --user",
                          nullptr};
    if (::posix_spawnp(&pid_, argv[0], nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
      why_not_ = "cannot run unshare";
    for (int i = 0; i < 250 && !fs::exists(runtime_ / "systemd/private"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (why_not_.empty() && !fs::exists(runtime_ / "systemd/private"))
      why_not_ = "systemd --user did not start (scripts/setup --test installs systemd)";
  }
  ~UserSystemd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    ::unsetenv("XDG_RUNTIME_DIR");
    std::error_code ec;
    if (!runtime_.empty()) fs::remove_all(runtime_, ec);
  }
  const std::string& why_not() const { return why_not_; }

 private:
  fs::path runtime_;
  pid_t pid_ = -1;
  std::string why_not_;
};

TEST(Events, AUnitThatFailsIsCriticalWithinASecondOnARealSystemd) {
  UserSystemd systemd;
  ASSERT_EQ(systemd.why_not(), "");
  const std::string unit = "dozor-events-" + std::to_string(::getpid()) + ".service";
  ASSERT_EQ(std::system(("systemd-run --user --quiet --unit=" + unit + " sleep 1000").c_str()), 0);
  Agent agent("{name: erp-unit, type: service, interval: 60s, bus: user, unit: " + unit + "}");
  const auto ok = agent.wait_for(Status::ok, std::chrono::seconds(5));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->summary.find("interval only"), std::string::npos) << ok->summary;
  const auto killed = Clock::now();
  ASSERT_EQ(std::system(("systemctl --user kill --signal=KILL " + unit).c_str()), 0);
  const auto r = agent.wait_for(Status::critical, std::chrono::seconds(3));
  ASSERT_TRUE(r);
  EXPECT_LT(seconds_since(killed), 1.0);
}

}  // namespace
}  // namespace dozor::agent
