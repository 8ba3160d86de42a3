#include "log/log.h"

#include <algorithm>
#include <filesystem>

#include "dozor/protocol/units.h"
#include "log/follower.h"
#include "src/path_watch.h"

namespace dozor::probes::log {
namespace {

using Clock = std::chrono::steady_clock;

constexpr OptionSpec kOptions[] = {
    {"path", OptionKind::string, "", true, "the log file, e.g. /var/log/1c/rphost.log"},
    {"pattern", OptionKind::string, "", true,
     "regular expression (ECMAScript) a line must contain to count, e.g. ERROR|FATAL"},
    {"warning", OptionKind::number, "1", false, "matching lines per run at or above which to warn"},
    {"critical", OptionKind::number, "", false,
     "matching lines per run at or above which it is critical"},
    {"state", OptionKind::string, "", false,
     "file keeping the read position across restarts; default /var/lib/dozor/log-<name>.offset"},
    {"from_start", OptionKind::boolean, "false", false,
     "on the very first run, count what the file already holds instead of starting at its end"},
    {"max_read", OptionKind::size, "16MiB", false,
     "read at most this much per run; the rest is read by the next runs"},
    {"watch", OptionKind::boolean, "true", false,
     "read new lines as they are written (inotify); a matching line is a result at once"},
};

struct Config {
  std::string path;
  std::string pattern_text;
  std::optional<double> warning, critical;
  bool watch = true;
  FollowerConfig follow;
};

class LogProbe final : public Probe {
 public:
  explicit LogProbe(Config c)
      : c_(std::move(c)),
        follower_(std::make_shared<LogFollower>(c_.follow)),
        followed_(c_.watch, c_.path, Entries::named) {}

  void watch(Changed changed) override { followed_.watch(std::move(changed)); }
  void unwatch() override { followed_.unwatch(); }
  // A second run reads nothing new: it cannot confirm what the first one read.
  bool confirmable() const override { return false; }

  // A run for a change reads what was written and says how this interval's tally stands; the
  // interval's run still reports (and starts) the tally, so counts per interval stay as they were.
  asio::awaitable<Result> run(ProbeContext& ctx) override {
    followed_.arm(ctx.io);
    // A read still stuck from an earlier run (a hung mount) owns the follower.
    if (auto last = last_.lock(); last && last->running())
      co_return make_result(Status::unknown,
                            "reading " + c_.path + " still hanging since an earlier run");
    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to read on");
    const auto start = Clock::now();
    // The follower stops by itself at a line boundary a little before the deadline; the rest
    // of the file waits for the next run.
    auto read = [follower = follower_, stop = start + ctx.timeout * 4 / 5] {
      follower->advance(stop);
      return true;
    };
    const auto done = co_await run_blocking(ctx, start + ctx.timeout, read, last_);
    if (!done)
      co_return make_result(Status::unknown, "reading " + c_.path + " did not finish within " +
                                                 format_duration(ctx.timeout) +
                                                 "; the next run reports what it reads");
    co_return evaluate(ctx.cause == Cause::event ? follower_->peek() : follower_->take());
  }

 private:
  Result evaluate(const Reading& rd) const {
    Result r;
    r.metrics.push_back({"matches", static_cast<double>(rd.matches), ""});
    r.metrics.push_back({"lines", static_cast<double>(rd.lines), ""});
    r.metrics.push_back({"read_bytes", static_cast<double>(rd.bytes), "bytes"});
    Status s = threshold_status(static_cast<double>(rd.matches), c_.warning, c_.critical);
    std::string summary;
    std::string problem = !rd.problem.empty() ? rd.problem
                          : rd.missing        ? c_.path + " does not exist"
                                              : "";
    if (!problem.empty()) s = Status::critical;
    if (!problem.empty() && rd.lines == 0) {
      summary = std::move(problem);
    } else {
      // Lines of a rotated file may have been read before the new one turned out missing.
      if (!problem.empty()) summary = problem + "; ";
      const std::string lines =
          std::to_string(rd.lines) + (rd.lines == 1 ? " new line" : " new lines");
      if (rd.matches == 0)
        summary += "no match for '" + c_.pattern_text + "' in " + lines + " of " + c_.path;
      else
        summary += std::to_string(rd.matches) + " of " + lines + " of " + c_.path + " match '" +
                   c_.pattern_text + "', last: " + rd.last_match;
    }
    for (const auto& e : rd.events) summary += "; " + e;
    if (!followed_.error().empty())
      summary += "; read at the interval only (" + followed_.error() + ")";
    if (!rd.state_problem.empty()) {
      s = protocol::worst(s, Status::warning);
      summary += "; " + rd.state_problem;
    }
    r.status = s;
    r.summary = std::move(summary);
    return r;
  }

  Config c_;
  std::shared_ptr<LogFollower> follower_;  // shared with a read still on the pool
  std::weak_ptr<BlockingCall<bool>> last_;
  FollowedPath followed_;
};

std::unique_ptr<Probe> make(const Options& o) {
  namespace fs = std::filesystem;
  Config c;
  c.path = o.string("path");
  if (c.path.empty()) o.error("path", "must not be empty");
  c.pattern_text = o.string("pattern");
  try {
    c.follow.pattern = std::make_shared<const std::regex>(c.pattern_text, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    o.error("pattern", std::string("invalid regular expression: ") + e.what());
  }
  if (o.has("warning")) c.warning = o.number("warning");
  if (o.has("critical")) c.critical = o.number("critical");
  c.watch = o.boolean("watch");
  c.follow.path = c.path;
  c.follow.from_start = o.boolean("from_start");
  c.follow.max_read = o.size("max_read");
  if (c.follow.max_read < 4096) o.error("max_read", "must be at least 4KiB");

  // Beside the agent's spool by default; a name with '/' must not lead elsewhere.
  std::string name = o.string("name");
  std::replace(name.begin(), name.end(), '/', '_');
  c.follow.state_path =
      o.has("state") ? o.string("state") : "/var/lib/dozor/log-" + name + ".offset";
  const fs::path state(c.follow.state_path);
  if (!state.is_absolute())
    o.error("state", "must be an absolute path (the agent's working folder is not fixed)");
  else if (!fs::is_directory(state.parent_path()))
    o.error("state", "folder " + state.parent_path().string() + " does not exist");
  return std::make_unique<LogProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"log", "new lines of a log file matching a pattern, followed like tail -F", kOptions,
          &make};
}

}  // namespace dozor::probes::log
