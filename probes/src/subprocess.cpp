#include "src/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include "dozor/protocol/units.h"

extern char** environ;

namespace dozor::probes {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string errno_text(int err) { return std::system_category().message(err); }

/// A pipe whose both ends close with this object; close-on-exec so that no other child of the
/// multi-threaded agent inherits it (posix_spawn's dup2 clears the flag on the child's copy).
struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

/// The read end of one output stream: keeps the first `limit` bytes, drops the rest.
struct Stream {
  int fd = -1;
  std::string* text = nullptr;
  std::size_t limit = 0;
  bool truncated = false;

  bool open() const { return fd >= 0; }
  // Reads what poll reported; closes on end of file or error.
  void drain() {
    char buf[8192];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        const std::size_t room = limit - std::min(limit, text->size());
        const std::size_t keep = std::min(room, static_cast<std::size_t>(n));
        text->append(buf, keep);
        if (keep < static_cast<std::size_t>(n)) truncated = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      fd = -1;  // the Pipe closes the descriptor
      return;
    }
  }
};

/// The environment the child gets: the agent's, with the request's entries added or replaced.
std::vector<std::string> child_environment(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool replaced =
        std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == name; });
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  p.reserve(strings.size() + 1);
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

/// Starts the child in a new process group with stdout/stderr on the pipes. Returns its pid, or
/// -1 with `error` set.
pid_t spawn(const ProcessRequest& req, Pipe& out, Pipe& err, std::string& error) {
  std::vector<std::string> argv = req.argv;
  std::vector<std::string> env = child_environment(req.env);
  std::vector<char*> argv_p = pointers(argv);
  std::vector<char*> env_p = pointers(env);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], STDERR_FILENO);
  // Descriptors the agent opened without close-on-exec (a library's socket) stay with the agent.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  // The child starts clean: no signal blocked, and the signals the agent ignores or handles
  // (SIGPIPE, SIGHUP, SIGTERM) back to their defaults, so a plugin dies of a broken pipe as usual.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so that the deadline kills all of it
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv_p[0], &actions, &attr, argv_p.data(), env_p.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    error = req.argv[0] + ": " + errno_text(rc);
    return -1;
  }
  return pid;
}

/// True once the child has exited. WNOWAIT leaves it a zombie, which keeps its pid reserved as
/// the process group id: killing the group later cannot hit an unrelated process.
bool has_exited(pid_t pid) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    if (errno != EINTR) return true;  // ECHILD: nothing left to wait for
  return info.si_pid == pid;
}

}  // namespace

ProcessResult run_process(const ProcessRequest& req) {
  ProcessResult result;
  const auto start = Clock::now();
  if (req.argv.empty() || req.argv[0].empty()) {
    result.error = "empty command";
    return result;
  }

  Pipe out, err;
  if (::pipe2(out.fd, O_CLOEXEC) != 0 || ::pipe2(err.fd, O_CLOEXEC) != 0) {
    result.error = "pipe: " + errno_text(errno);
    return result;
  }
  const pid_t pid = spawn(req, out, err, result.error);
  if (pid < 0) {
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  }
  out.close_end(1);
  err.close_end(1);
  // Non-blocking on our side only: the flag lives in the shared file description, so setting it
  // before the spawn would hand the child a non-blocking stdout.
  for (int fd : {out.fd[0], err.fd[0]}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  // Readable once the child has exited (Linux 5.3): poll wakes at its exit, not at the next tick.
  struct PidFd {
    int fd;
    ~PidFd() {
      if (fd >= 0) ::close(fd);
    }
  } pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};

  Stream streams[2] = {{out.fd[0], &result.out, req.max_output},
                       {err.fd[0], &result.err, req.max_output}};
  const auto deadline = start + req.timeout;
  bool exited = false;
  std::optional<Clock::time_point> exited_at, term_at, kill_at;

  for (;;) {
    if (!exited && has_exited(pid)) {
      exited = true;
      exited_at = Clock::now();
    }
    const bool pipes_open = streams[0].open() || streams[1].open();
    if (exited && !pipes_open) break;

    const auto now = Clock::now();
    // The deadline, or a descendant still holding the pipes after the child is gone: end the
    // group politely first.
    const auto end_at = exited ? std::min(deadline, *exited_at + req.kill_grace) : deadline;
    if (!term_at && now >= end_at) {
      result.timed_out = !exited;
      ::kill(-pid, SIGTERM);
      term_at = now;
    }
    if (term_at && !kill_at && now >= *term_at + req.kill_grace) {
      ::kill(-pid, SIGKILL);
      kill_at = now;
    }
    // A process stuck in the kernel (D state) ignores even SIGKILL; do not wait on it forever.
    if (kill_at && now >= *kill_at + req.kill_grace) break;

    // Wake up for the next step above, and at least every 20ms to notice the child's exit (a
    // closed pipe does not tell us: a grandchild may hold it).
    auto next = now + milliseconds(20);
    if (!term_at) next = std::min(next, end_at);
    pollfd fds[3];
    nfds_t n = 0;
    for (const Stream& s : streams)
      if (s.open()) fds[n++] = {s.fd, POLLIN, 0};
    if (!exited && pidfd.fd >= 0) fds[n++] = {pidfd.fd, POLLIN, 0};
    const auto wait = std::chrono::ceil<milliseconds>(std::max(next - now, Clock::duration{}));
    const int ready = ::poll(fds, n, static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) break;
    for (Stream& s : streams)
      if (s.open()) s.drain();  // non-blocking: a stream with nothing to read returns at once
  }

  // Whatever is left of the group (a daemonised grandchild that closed its output) goes too;
  // the child, a zombie by now or stuck, still holds the group id.
  ::kill(-pid, SIGKILL);
  int status = 0;
  pid_t waited;
  // A child stuck in the kernel despite SIGKILL is left behind rather than this pool thread.
  const int flags = exited ? 0 : WNOHANG;
  while ((waited = ::waitpid(pid, &status, flags)) < 0 && errno == EINTR) {
  }
  if (waited == 0) {
    result.error = req.argv[0] + ": still there after SIGKILL (stuck in the kernel?)";
  } else if (waited < 0) {
    result.error = "waitpid: " + errno_text(errno);
  } else if (WIFEXITED(status) && !result.timed_out) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  result.truncated = streams[0].truncated || streams[1].truncated;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

asio::awaitable<ProcessResult> run_process_on_pool(
    ProbeContext& ctx, ProcessRequest request, std::weak_ptr<BlockingCall<ProcessResult>>& last) {
  ProcessResult failed;
  const std::string program = request.argv.empty() ? std::string() : request.argv[0];
  if (auto previous = last.lock(); previous && previous->running()) {
    failed.error = program + ": an earlier run has still not returned";
    co_return failed;
  }
  if (!ctx.blocking) {
    failed.error = "no blocking pool to run " + program + " on";
    co_return failed;
  }
  // SIGTERM at timeout - 2 grace, SIGKILL at timeout - grace, give up waiting at the timeout.
  const auto grace = std::clamp(ctx.timeout / 20, milliseconds(20), milliseconds(250));
  request.timeout = std::max(ctx.timeout - 2 * grace, milliseconds(1));
  request.kill_grace = grace;
  auto run = [request] { return run_process(request); };
  // A little past ctx.timeout for the reaping itself; run_process gives up waiting on its own.
  const auto deadline = Clock::now() + ctx.timeout + grace;
  std::optional<ProcessResult> result = co_await run_blocking(ctx, deadline, run, last);
  if (!result) {
    failed.error = program + ": no answer within " + format_duration(ctx.timeout) +
                   " (the blocking pool is busy, or the child is stuck in the kernel)";
    co_return failed;
  }
  co_return std::move(*result);
}

std::string first_output_line(std::string_view text) {
  constexpr std::size_t kMax = 1024;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string line;
    for (const char ch : text.substr(0, eol)) {
      const auto c = static_cast<unsigned char>(ch);
      if (line.size() >= kMax && ((c & 0xC0) != 0x80 || line.size() >= kMax + 3)) break;
      line += (c < 0x20 || c == 0x7f) ? ' ' : ch;
    }
    const std::size_t from = line.find_first_not_of(' ');
    if (from != std::string::npos) return line.substr(from, line.find_last_not_of(' ') + 1 - from);
    if (eol == std::string_view::npos) break;
    text.remove_prefix(eol + 1);
  }
  return {};
}

std::string describe_end(const ProcessResult& r) {
  if (r.timed_out) return "timed out (process group killed)";
  if (!r.error.empty()) return "could not start: " + r.error;
  if (r.signal != 0) {
    const char* name = ::sigabbrev_np(r.signal);
    return "killed by signal " + std::to_string(r.signal) +
           (name ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "exit code " + std::to_string(r.exit_code);
}

}  // namespace dozor::probes
