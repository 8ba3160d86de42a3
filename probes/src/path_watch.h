#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <string>

#include "dozor/probes/probe.h"

namespace dozor::probes {

/// What a PathWatch follows in a path's folder.
enum class Entries {
  named,     // only the entry with the path's own name (a log file being followed)
  matching,  // entries matching the path's last part as a glob(3) pattern (*.xml)
};

/// Follows a path through inotify on the I/O executor and calls `changed` when what it names
/// changes: an entry of its folder created, removed, renamed, written or closed after writing,
/// and, for Entries::named, the file itself written to (also through another name, or through a
/// symlink). The file's own watch moves to the new file when the name is given to another one
/// (rotation). One inotify instance each (fs.inotify.max_user_instances is 128 by default):
/// when none can be had, or the folder is missing, start() says why and the probe polls.
class PathWatch : public std::enable_shared_from_this<PathWatch> {
 public:
  /// nullptr with `error` set when the path cannot be watched.
  static std::shared_ptr<PathWatch> start(const asio::any_io_executor& io, const std::string& path,
                                          Entries entries, Changed changed, std::string& error);
  ~PathWatch();
  PathWatch(const PathWatch&) = delete;
  PathWatch& operator=(const PathWatch&) = delete;

  /// False once the folder went away (removed, renamed, unmounted): start a new watch.
  bool alive() const { return alive_; }
  /// No more calls to `changed`; the descriptor closes.
  void stop();

 private:
  PathWatch(const asio::any_io_executor& io, int fd, std::string path, Entries entries,
            Changed changed);
  void arm_file();
  void read();
  bool concerns(const char* name) const;

  asio::posix::stream_descriptor fd_;
  std::string path_, folder_, name_;
  Entries entries_;
  Changed changed_;
  int folder_wd_ = -1;
  int file_wd_ = -1;
  bool alive_ = true;
};

/// A probe's side of a PathWatch: the scheduler's callback, and the watch its runs (re)start, as
/// the folder may come later than the agent, or go away and come back.
class FollowedPath {
 public:
  FollowedPath(bool enabled, std::string path, Entries entries)
      : enabled_(enabled), path_(std::move(path)), entries_(entries) {}
  ~FollowedPath() { unwatch(); }
  void watch(Changed changed) {
    if (enabled_) changed_ = std::move(changed);
  }
  void unwatch() {
    changed_ = nullptr;
    if (watch_) watch_->stop();
    watch_.reset();
  }
  /// Before each run: starts a watch where none is alive.
  void arm(const asio::any_io_executor& io) {
    if (!changed_ || (watch_ && watch_->alive())) return;
    error_.clear();
    watch_ = PathWatch::start(io, path_, entries_, changed_, error_);
  }
  /// Why changes are seen at the interval only; empty while watched, or when not asked to.
  const std::string& error() const { return error_; }

 private:
  bool enabled_;
  std::string path_;
  Entries entries_;
  Changed changed_;
  std::shared_ptr<PathWatch> watch_;
  std::string error_;
};

}  // namespace dozor::probes
