#include "disk/disk.h"

#include <sys/statvfs.h>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdio>
#include <system_error>

#include "dozor/protocol/units.h"
#include "src/human_units.h"

namespace dozor::probes::disk {
namespace {

using boost::asio::redirect_error;
using boost::asio::use_awaitable;

constexpr OptionSpec kOptions[] = {
    {"path", OptionKind::string, "", true,
     "a path on the filesystem to check, e.g. / or /var/lib/1c"},
    {"warning", OptionKind::number, "85", false, "space used, percent, at or above which to warn"},
    {"critical", OptionKind::number, "95", false,
     "space used, percent, at or above which it is critical"},
    {"inodes_warning", OptionKind::number, "90", false,
     "inodes used, percent, at or above which to warn"},
    {"inodes_critical", OptionKind::number, "97", false, "inodes used, percent, critical"},
};

struct Config {
  std::string path;
  double warning = 85, critical = 95;
  double inodes_warning = 90, inodes_critical = 97;
};

struct Reading {
  int error = 0;  // errno of statvfs, 0 when it succeeded
  struct statvfs fs {};
};

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", v);
  return buf;
}

class DiskProbe final : public Probe {
 public:
  explicit DiskProbe(Config c) : c_(std::move(c)) {}

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    // A statvfs still stuck from an earlier run holds a pool thread; do not take another one.
    if (auto last = last_.lock(); last && last->running())
      co_return make_result(Status::critical,
                            "statvfs of " + c_.path + " still hanging since an earlier run");

    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to run statvfs on");
    // statvfs blocks on a hung mount, so it runs on the pool.
    auto stat = [path = c_.path] {
      Reading r;
      if (::statvfs(path.c_str(), &r.fs) != 0) r.error = errno;
      return r;
    };
    const std::optional<Reading> reading =
        co_await run_blocking(ctx, std::chrono::steady_clock::now() + ctx.timeout, stat, last_);
    if (!reading)
      co_return make_result(Status::critical, "statvfs of " + c_.path + " timed out after " +
                                                  format_duration(ctx.timeout) + " (hung mount?)");
    const Reading& rd = *reading;
    if (rd.error != 0)
      co_return make_result(Status::critical, "cannot stat " + c_.path + ": " +
                                                  std::system_category().message(rd.error));
    co_return evaluate(rd.fs);
  }

 private:
  Result evaluate(const struct statvfs& fs) const {
    const double block = static_cast<double>(fs.f_frsize ? fs.f_frsize : fs.f_bsize);
    const double total = static_cast<double>(fs.f_blocks) * block;
    const double avail = static_cast<double>(fs.f_bavail) * block;
    const double used = static_cast<double>(fs.f_blocks - fs.f_bfree) * block;
    // As df: space reserved for root counts neither as used nor as available.
    const double used_pct = used + avail > 0 ? 100.0 * used / (used + avail) : 0.0;

    Result r;
    r.metrics.push_back({"used_percent", used_pct, "%"});
    r.metrics.push_back({"free_bytes", avail, "bytes"});
    r.metrics.push_back({"total_bytes", total, "bytes"});
    Status s = threshold_status(used_pct, c_.warning, c_.critical);
    std::string summary =
        c_.path + " " + percent(used_pct) + " used, " + human_bytes(avail) + " free";

    // Some filesystems (btrfs, vfat) have no fixed inode table and report 0.
    if (fs.f_files > 0) {
      const double inodes_used_pct =
          100.0 * static_cast<double>(fs.f_files - fs.f_ffree) / static_cast<double>(fs.f_files);
      r.metrics.push_back({"inodes_used_percent", inodes_used_pct, "%"});
      r.metrics.push_back({"inodes_free", static_cast<double>(fs.f_ffree), ""});
      const Status is = threshold_status(inodes_used_pct, c_.inodes_warning, c_.inodes_critical);
      if (is != Status::ok) summary += ", inodes " + percent(inodes_used_pct) + " used";
      s = protocol::worst(s, is);
    }
    r.status = s;
    r.summary = std::move(summary);
    return r;
  }

  Config c_;
  // The previous run's statvfs while the pool still holds it; a weak_ptr so that the probe keeps
  // no timer alive beyond its io_context.
  std::weak_ptr<BlockingCall<Reading>> last_;
};

double percent_option(const Options& o, std::string_view key) {
  const double v = o.number(key);
  if (v < 0 || v > 100) o.error(key, "expected a percentage, 0-100");
  return v;
}

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.path = o.string("path");
  if (c.path.empty()) o.error("path", "must not be empty");
  c.warning = percent_option(o, "warning");
  c.critical = percent_option(o, "critical");
  c.inodes_warning = percent_option(o, "inodes_warning");
  c.inodes_critical = percent_option(o, "inodes_critical");
  return std::make_unique<DiskProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"disk", "space and inodes used on a filesystem", kOptions, &make};
}

}  // namespace dozor::probes::disk
