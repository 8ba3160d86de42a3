#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "log/state.h"

namespace dozor::probes::log {

/// What the follower read since the probe last took it. It adds up over runs whose answer the
/// probe did not wait for (a run past its timeout), so that no line is lost or counted twice.
struct Reading {
  std::uint64_t lines = 0;          // complete lines read
  std::uint64_t matches = 0;        // of which matched the pattern
  std::uint64_t bytes = 0;          // bytes of those lines
  std::string last_match;           // trimmed for a summary
  std::vector<std::string> events;  // "rotated", "truncated, read from the start", ...
  // The latest attempt only:
  bool missing = false;       // the path does not exist
  std::string problem;        // why the file could not be read; empty when it could
  std::string state_problem;  // why the position could not be saved
};

struct FollowerConfig {
  std::string path;
  std::string state_path;
  std::shared_ptr<const std::regex> pattern;
  bool from_start = false;             // first run ever: read what is already there
  std::uint64_t max_read = 16u << 20;  // per advance(): bounded work, the rest next time
};

/// Follows one log file like `tail -F`: keeps it open between runs, finishes a file renamed away
/// by rotation before it opens the new one, starts over after a truncation, and keeps its
/// position in a state file so that an agent restart goes on where it stopped. Only complete
/// lines count; a line still without its newline is read again next time. Blocking and not
/// thread-safe: the probe calls it on its pool, one call at a time.
class LogFollower {
 public:
  explicit LogFollower(FollowerConfig c);
  ~LogFollower();
  LogFollower(const LogFollower&) = delete;
  LogFollower& operator=(const LogFollower&) = delete;

  /// Reads the lines appended since the last call: at most max_read bytes, and stops at a line
  /// boundary once `deadline` has passed. Saves the position afterwards.
  void advance(std::chrono::steady_clock::time_point deadline);
  /// What advance() found since the last take(); starts a new tally.
  Reading take();
  /// The same without starting a new tally.
  Reading peek() const;

 private:
  struct Budget {
    std::uint64_t left;
    std::chrono::steady_clock::time_point deadline;
  };
  /// Opens what the state file (or the first run's rule) points at; false when the file is
  /// there but cannot be opened, so that the next run tries again from the same state.
  bool resume(bool present, std::uint64_t dev, std::uint64_t inode);
  bool open_current();
  std::uint64_t last_line_start();
  bool drain(Budget& budget, bool final);
  void count_line(std::string& line);
  std::optional<LogPosition> load_state();
  void save_state();
  void close_file();

  FollowerConfig c_;
  int fd_ = -1;
  LogPosition pos_;  // of fd_; all zero while no file is open
  bool resumed_ = false;
  std::optional<LogPosition> saved_;  // as last written to the state file
  std::vector<char> buffer_;          // during advance() only
  Reading pending_;
};

}  // namespace dozor::probes::log
