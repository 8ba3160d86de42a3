#include "file/file.h"

#include <glob.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <system_error>
#include <vector>

#include "dozor/protocol/units.h"
#include "src/human_units.h"
#include "src/path_watch.h"

namespace dozor::probes::file {
namespace {

constexpr OptionSpec kOptions[] = {
    {"path", OptionKind::string, "", true, "a file, or a glob(3) pattern such as /backup/erp-*.dt"},
    {"exists", OptionKind::string, "true", false,
     "true: no match is critical; false: a match is critical (a lock or error marker); any: "
     "either is fine (a queue folder)"},
    {"max_age", OptionKind::duration, "", false,
     "the newest match older than this is critical (a backup that did not run)"},
    {"age_warning", OptionKind::duration, "", false, "the newest match older than this warns"},
    {"min_size", OptionKind::size, "", false,
     "the newest match smaller than this is critical (a truncated backup)"},
    {"max_size", OptionKind::size, "", false, "the newest match larger than this is critical"},
    {"count_warning", OptionKind::integer, "", false,
     "more matches than this warn (an exchange folder nobody consumes)"},
    {"count_critical", OptionKind::integer, "", false, "more matches than this are critical"},
    {"oldest_max_age", OptionKind::duration, "", false,
     "the oldest match older than this is critical (a file stuck in a queue)"},
    {"watch", OptionKind::boolean, "false", false,
     "look again as soon as an entry of the folder changes (inotify), not only at the interval"},
};

using std::chrono::milliseconds;

// What `exists` asks of the pattern.
enum class Presence { required, forbidden, any };

struct Config {
  std::string path;
  Presence exists = Presence::required;
  std::optional<milliseconds> max_age, age_warning, oldest_max_age;
  std::optional<std::uint64_t> min_size, max_size;
  std::optional<std::int64_t> count_warning, count_critical;
  bool watch = false;
};

struct Match {
  std::string path;
  std::uint64_t bytes = 0;
  double mtime = 0;  // unix seconds
};

/// What glob and stat found. Regular files only (symlinks followed): a directory matching the
/// pattern is not a backup.
struct Listing {
  std::vector<Match> files;
  std::string error;  // a folder glob could not read, or glob's own failure
  double now = 0;     // unix seconds, taken after the stats
};

// glob(3)'s error callback has no user pointer; each pool thread keeps its own.
thread_local std::string* t_glob_error = nullptr;

int note_glob_error(const char* path, int error) {
  if (t_glob_error && t_glob_error->empty())
    *t_glob_error = std::string(path) + ": " + std::system_category().message(error);
  return 0;  // go on with the other folders
}

Listing list_matches(const std::string& pattern) {
  Listing out;
  t_glob_error = &out.error;
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, &note_glob_error, &g);
  t_glob_error = nullptr;
  if (rc == GLOB_NOSPACE && out.error.empty()) out.error = "glob ran out of memory";
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      struct stat st {};
      // A file removed between glob and stat is simply no longer there.
      if (::stat(g.gl_pathv[i], &st) != 0 || !S_ISREG(st.st_mode)) continue;
      out.files.push_back({g.gl_pathv[i], static_cast<std::uint64_t>(st.st_size),
                           static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1e9});
    }
  }
  ::globfree(&g);
  out.now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return out;
}

/// An age for a summary, its two largest units: "3d 2h", "5h 12m", "4m 10s", "12s".
std::string human_age(double seconds) {
  if (seconds < 0) seconds = 0;
  const auto s = static_cast<long long>(seconds);
  const long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
  char buf[64];
  if (d > 0)
    std::snprintf(buf, sizeof buf, "%lldd %lldh", d, h);
  else if (h > 0)
    std::snprintf(buf, sizeof buf, "%lldh %lldm", h, m);
  else if (m > 0)
    std::snprintf(buf, sizeof buf, "%lldm %llds", m, sec);
  else
    std::snprintf(buf, sizeof buf, "%llds", sec);
  return buf;
}

double seconds_of(milliseconds d) { return std::chrono::duration<double>(d).count(); }

class FileProbe final : public Probe {
 public:
  explicit FileProbe(Config c)
      : c_(std::move(c)), followed_(c_.watch, c_.path, Entries::matching) {}

  void watch(Changed changed) override { followed_.watch(std::move(changed)); }
  void unwatch() override { followed_.unwatch(); }

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    followed_.arm(ctx.io);
    // A glob still stuck from an earlier run holds a pool thread; do not take another one.
    if (auto last = last_.lock(); last && last->running())
      co_return make_result(Status::critical,
                            "listing " + c_.path + " still hanging since an earlier run");
    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to run glob on");
    // glob and stat block on a hung network mount, so they run on the pool.
    auto list = [pattern = c_.path] { return list_matches(pattern); };
    const std::optional<Listing> listing =
        co_await run_blocking(ctx, std::chrono::steady_clock::now() + ctx.timeout, list, last_);
    if (!listing)
      co_return make_result(Status::critical, "listing " + c_.path + " timed out after " +
                                                  format_duration(ctx.timeout) + " (hung mount?)");
    Result r = evaluate(*listing);
    if (!followed_.error().empty())
      r.summary += "; seen at the interval only (" + followed_.error() + ")";
    co_return r;
  }

 private:
  Result evaluate(const Listing& l) const {
    Result r;
    const std::size_t n = l.files.size();
    r.metrics.push_back({"files", static_cast<double>(n), ""});
    if (n == 0) {
      r.status = c_.exists == Presence::required ? Status::critical : Status::ok;
      r.summary = "no file matches " + c_.path;
      if (!l.error.empty()) r.summary += " (" + l.error + ")";
      return r;
    }
    const Match* newest = &l.files[0];
    const Match* oldest = &l.files[0];
    double total = 0;
    for (const auto& m : l.files) {
      if (m.mtime > newest->mtime) newest = &m;
      if (m.mtime < oldest->mtime) oldest = &m;
      total += static_cast<double>(m.bytes);
    }
    const double newest_age = std::max(0.0, l.now - newest->mtime);
    const double oldest_age = std::max(0.0, l.now - oldest->mtime);
    r.metrics.push_back({"newest_age_seconds", newest_age, "s"});
    r.metrics.push_back({"newest_bytes", static_cast<double>(newest->bytes), "bytes"});
    r.metrics.push_back({"oldest_age_seconds", oldest_age, "s"});
    r.metrics.push_back({"total_bytes", total, "bytes"});

    std::string summary = newest->path + " " + human_bytes(static_cast<double>(newest->bytes)) +
                          ", " + human_age(newest_age) + " old";
    if (n > 1)
      summary += "; " + std::to_string(n) + " files, " + human_bytes(total) + ", oldest " +
                 human_age(oldest_age) + " old";
    Status s = Status::ok;
    auto verdict = [&](Status st, const std::string& why) {
      s = protocol::worst(s, st);
      summary += "; " + why;
    };
    if (c_.exists == Presence::forbidden)
      verdict(Status::critical, std::to_string(n) + (n == 1 ? " file matches " : " files match ") +
                                    c_.path + ", expected none");
    if (c_.max_age && newest_age > seconds_of(*c_.max_age))
      verdict(Status::critical, "older than " + format_duration(*c_.max_age) + " (max_age)");
    else if (c_.age_warning && newest_age > seconds_of(*c_.age_warning))
      verdict(Status::warning, "older than " + format_duration(*c_.age_warning) + " (age_warning)");
    if (c_.min_size && newest->bytes < *c_.min_size)
      verdict(Status::critical,
              "smaller than " + human_bytes(static_cast<double>(*c_.min_size)) + " (min_size)");
    if (c_.max_size && newest->bytes > *c_.max_size)
      verdict(Status::critical,
              "larger than " + human_bytes(static_cast<double>(*c_.max_size)) + " (max_size)");
    const auto count = static_cast<std::int64_t>(n);
    if (c_.count_critical && count > *c_.count_critical)
      verdict(Status::critical,
              "more than " + std::to_string(*c_.count_critical) + " files (count_critical)");
    else if (c_.count_warning && count > *c_.count_warning)
      verdict(Status::warning,
              "more than " + std::to_string(*c_.count_warning) + " files (count_warning)");
    if (c_.oldest_max_age && oldest_age > seconds_of(*c_.oldest_max_age))
      verdict(Status::critical, "oldest " + oldest->path + " older than " +
                                    format_duration(*c_.oldest_max_age) + " (oldest_max_age)");
    r.status = s;
    r.summary = std::move(summary);
    return r;
  }

  Config c_;
  // The previous run's glob while the pool still holds it; a weak_ptr so that the probe keeps
  // no timer alive beyond its io_context.
  std::weak_ptr<BlockingCall<Listing>> last_;
  FollowedPath followed_;
};

std::optional<milliseconds> duration_option(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  const milliseconds d = o.duration(key);
  if (d <= milliseconds(0)) o.error(key, "must be positive");
  return d;
}

std::optional<std::int64_t> count_option(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  const std::int64_t v = o.integer(key);
  if (v < 0) o.error(key, "must not be negative");
  return v;
}

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.path = o.string("path");
  if (c.path.empty()) o.error("path", "must not be empty");
  if (const std::string e = o.string("exists"); e == "true")
    c.exists = Presence::required;
  else if (e == "false")
    c.exists = Presence::forbidden;
  else if (e == "any")
    c.exists = Presence::any;
  else
    o.error("exists", "expected true, false or any, got '" + e + "'");
  c.max_age = duration_option(o, "max_age");
  c.age_warning = duration_option(o, "age_warning");
  c.oldest_max_age = duration_option(o, "oldest_max_age");
  if (o.has("min_size")) c.min_size = o.size("min_size");
  if (o.has("max_size")) c.max_size = o.size("max_size");
  if (c.min_size && c.max_size && *c.min_size > *c.max_size)
    o.error("max_size", "must not be below min_size");
  c.count_warning = count_option(o, "count_warning");
  c.count_critical = count_option(o, "count_critical");
  if (c.max_age && c.age_warning && *c.age_warning >= *c.max_age)
    o.error("age_warning", "must be shorter than max_age");
  c.watch = o.boolean("watch");
  // inotify watches one folder: the pattern's folders must be named, not matched.
  if (const auto slash = c.path.rfind('/');
      c.watch && slash != std::string::npos && c.path.find_first_of("*?[") < slash)
    o.error("watch", "needs a path whose folders have no wildcards (only the file name may)");
  return std::make_unique<FileProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"file", "files matching a path or glob: existence, age, size and count", kOptions, &make};
}

}  // namespace dozor::probes::file
