#pragma once

// What is left of a process group after a probe's child process, read from /proc.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace dozor::probes::probe_testing {

/// Live (not zombie) processes whose process group is `pgid`.
inline std::vector<pid_t> live_processes_in_group(pid_t pgid) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    char state = 0;
    pid_t ppid = 0, pgrp = 0;
    fields >> state >> ppid >> pgrp;
    if (fields && pgrp == pgid && state != 'Z') found.push_back(std::stoi(name));
  }
  return found;
}

/// Waits (up to 2s: SIGKILL is delivered, but dying takes a moment) for the group to be gone.
inline bool group_gone(pid_t pgid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!live_processes_in_group(pgid).empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace dozor::probes::probe_testing
