#include "process/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <regex>
#include <system_error>
#include <vector>

#include "dozor/protocol/units.h"
#include "process/procstat.h"
#include "src/human_units.h"
#include "src/regex_window.h"

namespace dozor::probes::process {
namespace {

constexpr OptionSpec kOptions[] = {
    {"comm", OptionKind::string, "", false,
     "process name as ps -e shows it (/proc/PID/comm, at most 15 characters), exact or a glob "
     "such as rphost*"},
    {"cmdline", OptionKind::string, "", false,
     "regular expression (ECMAScript) searched in the command line, arguments joined by spaces"},
    {"user", OptionKind::string, "", false, "only processes running as this user (name or UID)"},
    {"min", OptionKind::integer, "1", false, "fewer matching processes than this is critical"},
    {"max", OptionKind::integer, "", false, "more matching processes than this is critical"},
    {"rss_warning", OptionKind::size, "", false, "total resident memory at or above which to warn"},
    {"rss_critical", OptionKind::size, "", false, "total resident memory, critical"},
    {"cpu_warning", OptionKind::number, "", false,
     "total CPU, percent of one core, at or above which to warn"},
    {"cpu_critical", OptionKind::number, "", false, "total CPU, percent of one core, critical"},
    {"watch", OptionKind::boolean, "true", false,
     "hold each matching process by a pidfd: its exit is a result at once"},
};

// The command line is read up to this size: what tells processes apart comes first, and a
// huge one (a Java class path) is not worth reading whole every run. It is searched in windows
// (src/regex_window.h), which keeps std::regex's recursion off the stack's limit.
constexpr std::size_t kCmdlineLimit = 32 * 1024;

struct Config {
  std::string comm;
  std::string cmdline_text;
  std::shared_ptr<const std::regex> cmdline;  // shared with a scan still on the pool
  std::optional<uid_t> uid;
  std::string user;
  std::int64_t min = 1;
  std::optional<std::int64_t> max;
  std::optional<double> rss_warning, rss_critical;
  std::optional<double> cpu_warning, cpu_critical;
  bool watch = true;
};

/// One matching process as the scan saw it.
struct Sample {
  int pid = 0;
  std::uint64_t starttime = 0;
  std::uint64_t cpu_ticks = 0;  // utime + stime
  double rss_bytes = 0;
  std::int64_t threads = 0;
};

struct Scan {
  int error = 0;            // errno of opening the /proc directory
  double boot_seconds = 0;  // CLOCK_BOOTTIME at the scan, the clock of starttime
  std::vector<Sample> matches;
};

// Reads up to `limit` bytes of a /proc file; empty when it cannot be opened or read (the process
// exited meanwhile: ENOENT, ESRCH).
std::string read_proc_file(const std::string& path, std::size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

double boot_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Runs on the blocking pool. A process that exits between the listing and the reads is skipped.
Scan scan(const Config& c) {
  Scan out;
  static const double kPageSize = static_cast<double>(::sysconf(_SC_PAGESIZE));
  DIR* dir = ::opendir("/proc");
  if (!dir) {
    out.error = errno;
    return out;
  }
  out.boot_seconds = boot_seconds();
  const int self = ::getpid();
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self) continue;
    const std::string base = "/proc/" + std::string(entry->d_name);
    const auto st = parse_proc_stat(read_proc_file(base + "/stat", 4096));
    // A zombie has exited, whatever its parent has not reaped yet.
    if (!st || st->state == 'Z' || st->state == 'X') continue;
    if (!c.comm.empty() && ::fnmatch(c.comm.c_str(), st->comm.c_str(), 0) != 0) continue;
    if (c.uid) {
      const auto euid = parse_status_euid(read_proc_file(base + "/status", 16 * 1024));
      if (!euid || *euid != *c.uid) continue;
    }
    if (c.cmdline) {
      const std::string line =
          cmdline_text(read_proc_file(base + "/cmdline", kCmdlineLimit), kCmdlineLimit);
      if (!search_in_windows(line, *c.cmdline)) continue;
    }
    out.matches.push_back({static_cast<int>(pid), st->starttime, st->utime + st->stime,
                           static_cast<double>(st->rss_pages) * kPageSize, st->threads});
  }
  ::closedir(dir);
  return out;
}

std::string fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

class ProcessProbe final : public Probe {
 public:
  explicit ProcessProbe(Config c) : c_(std::move(c)) {
    if (!c_.comm.empty()) filter_ += "comm=" + c_.comm;
    if (c_.cmdline)
      filter_ += std::string(filter_.empty() ? "" : " ") + "cmdline=/" + c_.cmdline_text + "/";
    if (c_.uid) filter_ += " user=" + c_.user;
  }

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    if (auto last = last_.lock(); last && last->running())
      co_return make_result(Status::unknown, "reading /proc still hanging since an earlier run");
    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to read /proc on");
    // Hundreds of processes, several files each: blocking reads, so on the pool.
    auto read = [c = c_] { return scan(c); };
    const std::optional<Scan> result =
        co_await run_blocking(ctx, std::chrono::steady_clock::now() + ctx.timeout, read, last_);
    if (!result)
      co_return make_result(Status::unknown,
                            "reading /proc timed out after " + format_duration(ctx.timeout));
    if (result->error != 0)
      co_return make_result(Status::unknown,
                            "cannot read /proc: " + std::system_category().message(result->error));
    hold(*result, ctx.io);
    Result r = evaluate(*result);
    if (!hold_error_.empty())
      r.summary += "; exits seen at the interval only (" + hold_error_ + ")";
    co_return r;
  }

  void watch(Changed changed) override {
    if (c_.watch) changed_ = std::make_shared<Changed>(std::move(changed));
  }
  void unwatch() override {
    changed_.reset();
    held_.clear();
  }

 private:
  using Descriptor = asio::posix::stream_descriptor;

  static bool same_process(const Sample& m) {
    const auto st =
        parse_proc_stat(read_proc_file("/proc/" + std::to_string(m.pid) + "/stat", 4096));
    return st && st->starttime == m.starttime && st->state != 'Z' && st->state != 'X';
  }

  // Holds each matching process by a pidfd (Linux 5.3), which turns readable when it exits:
  // the scheduler runs the probe then, and the scan finds what is left and any replacement.
  void hold(const Scan& now, const asio::any_io_executor& io) {
    if (!changed_) return;
    std::map<int, std::pair<std::uint64_t, std::shared_ptr<Descriptor>>> held;
    hold_error_.clear();
    for (const auto& m : now.matches) {
      if (auto it = held_.find(m.pid); it != held_.end() && it->second.first == m.starttime) {
        held.insert(held_.extract(it));
        continue;
      }
      const int fd = static_cast<int>(::syscall(SYS_pidfd_open, m.pid, 0));
      if (fd < 0 && errno != ESRCH) {
        hold_error_ = "pidfd_open: " + std::system_category().message(errno);
        continue;
      }
      if (fd < 0 || !same_process(m)) {  // exited since the scan, or its PID reused: look again
        if (fd >= 0) ::close(fd);
        asio::post(io, [weak = std::weak_ptr<Changed>(changed_)] {
          if (auto c = weak.lock()) (*c)();
        });
        continue;
      }
      auto d = std::make_shared<Descriptor>(io, fd);
      // Not kept alive by its own wait: dropping it from held_ closes it (operation_aborted).
      d->async_wait(Descriptor::wait_read,
                    [weak = std::weak_ptr<Changed>(changed_)](const boost::system::error_code& ec) {
                      if (auto c = weak.lock(); c && !ec) (*c)();
                    });
      held.emplace(m.pid, std::make_pair(m.starttime, std::move(d)));
    }
    held_ = std::move(held);  // what is no longer matched closes here
  }

  Result evaluate(const Scan& now) {
    const auto count = static_cast<std::int64_t>(now.matches.size());
    double rss = 0;
    std::int64_t threads = 0;
    for (const auto& m : now.matches) {
      rss += m.rss_bytes;
      threads += m.threads;
    }
    const std::optional<double> cpu = cpu_percent(now);

    Result r;
    r.metrics.push_back({"processes", static_cast<double>(count), ""});
    r.metrics.push_back({"rss_bytes", rss, "bytes"});
    if (cpu) r.metrics.push_back({"cpu_percent", *cpu, "%"});
    r.metrics.push_back({"threads", static_cast<double>(threads), ""});

    if (count == 0) {
      r.status = c_.min > 0 ? Status::critical : Status::ok;
      r.summary = "no process matches " + filter_;
      return r;
    }
    Status s = Status::ok;
    std::string summary =
        std::to_string(count) + (count == 1 ? " process matches " : " processes match ") + filter_;
    if (count < c_.min) {
      s = Status::critical;
      summary += ", expected at least " + std::to_string(c_.min);
    }
    if (c_.max && count > *c_.max) {
      s = Status::critical;
      summary += ", expected at most " + std::to_string(*c_.max);
    }
    summary += ", rss " + human_bytes(rss);
    s = protocol::worst(s, threshold_status(rss, c_.rss_warning, c_.rss_critical));
    if (cpu) {
      summary += ", cpu " + fixed1(*cpu) + "%";
      s = protocol::worst(s, threshold_status(*cpu, c_.cpu_warning, c_.cpu_critical));
    }
    summary += ", " + std::to_string(threads) + " threads";
    r.status = s;
    r.summary = std::move(summary);
    return r;
  }

  // CPU used by the matching processes since the previous run, percent of one core; nullopt on
  // the first run. A PID counts only with the same starttime (PIDs are reused); a process started
  // since the previous run counts all its time.
  std::optional<double> cpu_percent(const Scan& now) {
    static const double kTicks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    std::optional<double> out;
    const double elapsed = now.boot_seconds - prev_boot_seconds_;
    if (prev_boot_seconds_ > 0 && elapsed > 0) {
      double ticks = 0;
      const double since = prev_boot_seconds_ * kTicks;
      for (const auto& m : now.matches) {
        const auto it = prev_.find(m.pid);
        if (it != prev_.end() && it->second.first == m.starttime &&
            m.cpu_ticks >= it->second.second)
          ticks += static_cast<double>(m.cpu_ticks - it->second.second);
        else if (static_cast<double>(m.starttime) >= since)
          ticks += static_cast<double>(m.cpu_ticks);
      }
      out = 100.0 * ticks / kTicks / elapsed;
    }
    prev_.clear();
    for (const auto& m : now.matches) prev_[m.pid] = {m.starttime, m.cpu_ticks};
    prev_boot_seconds_ = now.boot_seconds;
    return out;
  }

  Config c_;
  std::string filter_;  // "comm=rphost user=usr1cv8", for summaries
  std::map<int, std::pair<std::uint64_t, std::uint64_t>> prev_;  // pid -> starttime, cpu ticks
  double prev_boot_seconds_ = 0;
  // The previous run's scan while the pool still holds it; weak, so that the probe keeps no
  // timer alive beyond its io_context.
  std::weak_ptr<BlockingCall<Scan>> last_;
  std::shared_ptr<Changed> changed_;  // handlers hold it weakly: nothing calls back after unwatch
  std::map<int, std::pair<std::uint64_t, std::shared_ptr<Descriptor>>> held_;  // pid -> starttime
  std::string hold_error_;  // why exits are seen at the interval only
};

std::optional<double> size_option(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  return static_cast<double>(o.size(key));
}

std::optional<double> number_option(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  return o.number(key);
}

std::optional<uid_t> find_user(const std::string& user) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(user.c_str(), &end, 10);
  if (!user.empty() && *end == '\0') return static_cast<uid_t>(n);
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16 * 1024);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return std::nullopt;
  return found->pw_uid;
}

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.comm = o.string("comm");
  c.cmdline_text = o.string("cmdline");
  if (c.comm.empty() && c.cmdline_text.empty())
    o.error("comm", "give comm or cmdline (or both) to select processes");
  if (c.comm.size() > 15 && c.comm.find_first_of("*?[") == std::string::npos)
    o.error("comm",
            "process names are at most 15 characters in /proc/PID/comm; match longer "
            "ones with cmdline");
  if (!c.cmdline_text.empty()) {
    try {
      c.cmdline = std::make_shared<const std::regex>(c.cmdline_text, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      o.error("cmdline", std::string("invalid regular expression: ") + e.what());
    }
  }
  c.user = o.string("user");
  if (!c.user.empty()) {
    c.uid = find_user(c.user);
    if (!c.uid) o.error("user", "no such user '" + c.user + "'");
  }
  c.min = o.integer("min");
  if (c.min < 0) o.error("min", "must not be negative");
  if (o.has("max")) {
    c.max = o.integer("max");
    if (*c.max < c.min) o.error("max", "must not be less than min");
  }
  c.rss_warning = size_option(o, "rss_warning");
  c.rss_critical = size_option(o, "rss_critical");
  c.cpu_warning = number_option(o, "cpu_warning");
  c.cpu_critical = number_option(o, "cpu_critical");
  c.watch = o.boolean("watch");
  for (const auto key : {"cpu_warning", "cpu_critical"})
    if (o.has(key) && o.number(key) < 0) o.error(key, "must not be negative");
  return std::make_unique<ProcessProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"process", "count, memory and CPU of processes matching a name, command line or user",
          kOptions, &make};
}

}  // namespace dozor::probes::process
