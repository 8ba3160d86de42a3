#include "src/path_watch.h"

#include <fnmatch.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace dozor::probes {
namespace {

constexpr std::uint32_t kFolderMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                      IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF |
                                      IN_MOVE_SELF | IN_ONLYDIR;
// Truncation in place (copytruncate) is a write too.
constexpr std::uint32_t kFileMask = IN_MODIFY;

std::string errno_text(int e) { return std::system_category().message(e); }

}  // namespace

std::shared_ptr<PathWatch> PathWatch::start(const asio::any_io_executor& io,
                                            const std::string& path, Entries entries,
                                            Changed changed, std::string& error) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    error = "inotify: " + errno_text(errno);
    return nullptr;
  }
  std::shared_ptr<PathWatch> w(new PathWatch(io, fd, path, entries, std::move(changed)));
  w->folder_wd_ = ::inotify_add_watch(fd, w->folder_.c_str(), kFolderMask);
  if (w->folder_wd_ < 0) {
    error = "cannot watch " + w->folder_ + ": " + errno_text(errno);
    return nullptr;
  }
  w->arm_file();
  w->read();
  return w;
}

PathWatch::PathWatch(const asio::any_io_executor& io, int fd, std::string path, Entries entries,
                     Changed changed)
    : fd_(io, fd), path_(std::move(path)), entries_(entries), changed_(std::move(changed)) {
  const auto slash = path_.rfind('/');
  folder_ = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  name_ = slash == std::string::npos ? path_ : path_.substr(slash + 1);
}

PathWatch::~PathWatch() { stop(); }

void PathWatch::stop() {
  changed_ = nullptr;
  alive_ = false;
  boost::system::error_code ec;
  fd_.close(ec);
}

// Watches the file the path names now; a rotation gives the name to another file, whose watch
// then replaces this one. The old file's watch goes: the follower reads its rest anyway.
void PathWatch::arm_file() {
  if (entries_ != Entries::named || !fd_.is_open()) return;
  const int wd = ::inotify_add_watch(fd_.native_handle(), path_.c_str(), kFileMask);
  if (file_wd_ >= 0 && wd != file_wd_ && file_wd_ != folder_wd_)
    ::inotify_rm_watch(fd_.native_handle(), file_wd_);
  file_wd_ = wd;  // -1 while the file is missing: the folder's events tell when it comes
}

bool PathWatch::concerns(const char* name) const {
  if (entries_ == Entries::named) return name_ == name;
  return ::fnmatch(name_.c_str(), name, FNM_PERIOD) == 0;
}

void PathWatch::read() {
  fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                 [self = shared_from_this()](const boost::system::error_code& ec) {
                   if (ec || !self->changed_) return;
                   alignas(inotify_event) std::array<char, 8192> buf;
                   bool changed = false;
                   for (;;) {
                     const ssize_t n = ::read(self->fd_.native_handle(), buf.data(), buf.size());
                     if (n < 0 && errno == EINTR) continue;
                     if (n <= 0) break;
                     for (ssize_t at = 0; at < n;) {
                       const auto* e = reinterpret_cast<const inotify_event*>(buf.data() + at);
                       at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
                       if (e->mask & IN_Q_OVERFLOW) {
                         changed = true;  // events were lost: look again
                       } else if (e->wd == self->folder_wd_) {
                         if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
                           self->alive_ = false;
                           changed = true;
                         } else if (e->len > 0 && self->concerns(e->name)) {
                           changed = true;
                           if (e->mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))
                             self->arm_file();
                         }
                       } else if (e->wd == self->file_wd_ && (e->mask & kFileMask)) {
                         changed = true;
                       }
                     }
                   }
                   if (changed && self->changed_) self->changed_();
                   if (self->alive_ && self->changed_) self->read();
                 });
}

}  // namespace dozor::probes
