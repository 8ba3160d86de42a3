#include "log/follower.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "src/regex_window.h"

namespace dozor::probes::log {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kChunk = 64 * 1024;
// A line is matched on its first 64 KiB: bounded memory and regex time for a runaway line (a
// binary dump, a stack trace without newlines). The rest of it is read and skipped.
constexpr std::size_t kMaxLine = 64 * 1024;
constexpr std::size_t kSummaryLine = 200;

std::string errno_text(int error) { return std::system_category().message(error); }

// Cut to at most kSummaryLine bytes without splitting a UTF-8 sequence.
std::string trimmed(const std::string& line) {
  if (line.size() <= kSummaryLine) return line;
  std::size_t cut = kSummaryLine;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  return line.substr(0, cut) + "...";
}

}  // namespace

LogFollower::LogFollower(FollowerConfig c) : c_(std::move(c)) {}

LogFollower::~LogFollower() { close_file(); }

void LogFollower::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pos_ = {};
}

Reading LogFollower::peek() const { return pending_; }

Reading LogFollower::take() {
  Reading out = std::move(pending_);
  pending_ = {};
  return out;
}

void LogFollower::advance(Clock::time_point deadline) {
  pending_.missing = false;
  pending_.problem.clear();
  pending_.state_problem.clear();
  Budget budget{c_.max_read, deadline};
  // The read buffer lives for one run only: an agent with 200 log probes would otherwise keep
  // 200 of them between runs.
  buffer_.resize(kChunk);
  struct Release {
    std::vector<char>& b;
    ~Release() { std::vector<char>().swap(b); }
  } release{buffer_};

  struct stat st {};
  const bool present = ::stat(c_.path.c_str(), &st) == 0;
  if (!present && errno != ENOENT && errno != ENOTDIR) {
    pending_.problem = "cannot stat " + c_.path + ": " + errno_text(errno);
    return;
  }
  const auto dev = static_cast<std::uint64_t>(st.st_dev);
  const auto inode = static_cast<std::uint64_t>(st.st_ino);
  if (!resumed_) {
    // Until the file can be opened, the first run (or the saved position) is kept for later.
    resumed_ = resume(present, dev, inode);
    if (!resumed_) return;
  }
  if (fd_ >= 0 && (!present || dev != pos_.dev || inode != pos_.inode)) {
    // Renamed away by rotation, or deleted: what the old file still holds comes first.
    if (!drain(budget, true)) return save_state();
    close_file();
    pending_.events.push_back(present ? "rotated" : "removed");
  }
  if (fd_ < 0) {
    if (!present) {
      pending_.missing = true;
      return save_state();
    }
    // A new file, or one that appeared after it was missing: all of it is new.
    if (!open_current()) return save_state();
  }
  struct stat now {};
  if (::fstat(fd_, &now) == 0 && static_cast<std::uint64_t>(now.st_size) < pos_.offset) {
    pending_.events.push_back("truncated, read from the start");
    pos_.offset = 0;
  }
  drain(budget, false);
  save_state();
}

bool LogFollower::resume(bool present, std::uint64_t dev, std::uint64_t inode) {
  const std::optional<LogPosition> saved = load_state();
  if (!saved) {
    // The first run ever. A missing file stays closed: when it appears, all of it is new.
    if (present && open_current()) pos_.offset = c_.from_start ? 0 : last_line_start();
    return pending_.problem.empty();
  }
  saved_ = saved;
  if (saved->inode == 0) return true;  // it was missing when the agent stopped
  if (present && saved->dev == dev && saved->inode == inode) {
    if (open_current()) pos_.offset = saved->offset;
    return pending_.problem.empty();
  }
  // Rotated while the agent was stopped: finish the old file if it still has logrotate's first
  // name. Otherwise what it got after our position is lost, and the new file is read whole.
  const std::string rotated = c_.path + ".1";
  const int fd = ::open(rotated.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return true;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == saved->dev &&
      static_cast<std::uint64_t>(st.st_ino) == saved->inode) {
    fd_ = fd;
    pos_ = *saved;
    return true;
  }
  ::close(fd);
  return true;
}

bool LogFollower::open_current() {
  // O_NONBLOCK: a FIFO at the path must not block the pool thread in open().
  const int fd = ::open(c_.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT)
      pending_.missing = true;
    else
      pending_.problem = "cannot open " + c_.path + ": " + errno_text(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    pending_.problem = S_ISREG(st.st_mode) ? "cannot stat " + c_.path + ": " + errno_text(errno)
                                           : c_.path + " is not a regular file";
    ::close(fd);
    return false;
  }
  fd_ = fd;
  pos_ = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino), 0};
  return true;
}

// Starting at the end, but at a line boundary: a line being written is counted once complete.
std::uint64_t LogFollower::last_line_start() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || st.st_size <= 0) return 0;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t from = size > kChunk ? size - kChunk : 0;
  const ssize_t n = ::pread(fd_, buffer_.data(), size - from, static_cast<off_t>(from));
  if (n <= 0) return size;
  for (ssize_t i = n; i > 0; --i)
    if (buffer_[static_cast<std::size_t>(i - 1)] == '\n')
      return from + static_cast<std::uint64_t>(i);
  return from == 0 ? 0 : size;
}

// Reads complete lines from pos_.offset; true when it reached the end of the file. `final`: the
// file gets no more lines (rotated away), so a last line without a newline counts too.
bool LogFollower::drain(Budget& budget, bool final) {
  std::string line;
  const std::uint64_t start = pos_.offset;
  std::uint64_t pos = start, committed = start;
  bool eof = false, stopped = false;
  while (budget.left > 0 && !stopped) {
    if (Clock::now() >= budget.deadline) break;
    const std::size_t want = std::min<std::uint64_t>(buffer_.size(), budget.left);
    const ssize_t n = ::pread(fd_, buffer_.data(), want, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      pending_.problem = "cannot read " + c_.path + ": " + errno_text(errno);
      break;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    budget.left -= static_cast<std::uint64_t>(n);
    const char* p = buffer_.data();
    const char* const end = p + n;
    while (p < end) {
      const char* nl =
          static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      const char* seg_end = nl ? nl : end;
      const std::size_t room = kMaxLine - std::min(kMaxLine, line.size());
      line.append(p, std::min<std::size_t>(room, static_cast<std::size_t>(seg_end - p)));
      if (!nl) break;
      committed = pos + static_cast<std::uint64_t>(nl + 1 - buffer_.data());
      count_line(line);
      p = nl + 1;
      if (Clock::now() >= budget.deadline) {
        stopped = true;  // the rest of this chunk is read again next run
        break;
      }
    }
    pos = stopped ? committed : pos + static_cast<std::uint64_t>(n);
  }
  if (pos > committed) {
    // A last line without a newline counts when the file is done with, or when it alone is
    // longer than max_read (else it would never be read past).
    if ((final && eof) || (committed == start && !eof && budget.left == 0)) {
      count_line(line);
      committed = pos;
    }
  }
  pending_.bytes += committed - start;
  pos_.offset = committed;
  return eof;
}

void LogFollower::count_line(std::string& line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++pending_.lines;
  if (c_.pattern && search_in_windows(line, *c_.pattern)) {
    ++pending_.matches;
    pending_.last_match = trimmed(line);
  }
  line.clear();
}

std::optional<LogPosition> LogFollower::load_state() {
  const int fd = ::open(c_.state_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT)
      pending_.events.push_back("cannot read " + c_.state_path + " (" + errno_text(errno) +
                                "), position lost");
    return std::nullopt;
  }
  char text[256];
  const ssize_t n = ::read(fd, text, sizeof text);
  ::close(fd);
  auto pos =
      n > 0 ? parse_log_state(std::string_view(text, static_cast<std::size_t>(n))) : std::nullopt;
  if (!pos) pending_.events.push_back("ignored a damaged " + c_.state_path + ", position lost");
  return pos;
}

// Temp file and rename: a crash leaves the old position or the new one, never half of one.
void LogFollower::save_state() {
  if (saved_ && *saved_ == pos_) return;
  const std::string text = format_log_state(pos_);
  const std::string temp = c_.state_path + ".tmp";
  auto fail = [&](const std::string& what) {
    pending_.state_problem = "cannot save the position to " + what + ": " + errno_text(errno);
  };
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(temp);
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                       ::fsync(fd) == 0;
  if (!written) fail(temp);
  ::close(fd);
  if (!written) {
    ::unlink(temp.c_str());
    return;
  }
  if (::rename(temp.c_str(), c_.state_path.c_str()) != 0) {
    fail(c_.state_path);
    ::unlink(temp.c_str());
    return;
  }
  saved_ = pos_;
}

}  // namespace dozor::probes::log
