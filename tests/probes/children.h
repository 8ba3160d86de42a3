#pragma once

// Child processes for the tests that watch processes: started, killed and reaped.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace dozor::probes::probe_testing {

/// Child processes started with posix_spawn, killed and reaped at the end of the test.
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    for (const pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  /// SIGKILL, as a crash or the OOM killer ends a process, and reaped at once.
  void kill(pid_t pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    std::erase(pids_, pid);
  }
  pid_t spawn(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0)
      throw std::runtime_error("cannot spawn " + argv[0]);
    pids_.push_back(pid);
    // posix_spawn returns when the exec has begun, a moment before the kernel shows the new
    // command line in /proc: wait for it, so that a busy machine does not miss a child.
    const std::string proc = "/proc/" + std::to_string(pid) + "/cmdline";
    for (int i = 0; i < 400; ++i) {
      std::ifstream in(proc);
      std::string first;
      std::getline(in, first, '\0');
      if (first == argv[0]) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pid;
  }

 private:
  std::vector<pid_t> pids_;
};

// A `sleep` argument no other process on the machine has, e.g. "3600.4242017": the tests
// count their own children among whatever else runs here.
inline std::string distinctive_seconds() {
  static int n = 0;
  return "3600." + std::to_string(::getpid()) + std::to_string(++n);
}

}  // namespace dozor::probes::probe_testing
