#include "host/host.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <system_error>
#include <vector>

#include "dozor/protocol/units.h"
#include "host/procfs.h"
#include "src/human_units.h"

namespace dozor::probes::host {
namespace {

constexpr OptionSpec kOptions[] = {
    {"cpu_warning", OptionKind::number, "90", false,
     "CPU used since the previous run, percent of all cores, at or above which to warn"},
    {"cpu_critical", OptionKind::number, "98", false, "CPU used, percent of all cores, critical"},
    {"load_warning", OptionKind::number, "2", false,
     "5-minute load average per core at or above which to warn"},
    {"load_critical", OptionKind::number, "4", false, "5-minute load average per core, critical"},
    {"memory_warning", OptionKind::number, "90", false,
     "memory used (MemTotal - MemAvailable), percent, at or above which to warn"},
    {"memory_critical", OptionKind::number, "95", false, "memory used, percent, critical"},
    {"swap_warning", OptionKind::number, "50", false,
     "swap used, percent, at or above which to warn"},
    {"swap_critical", OptionKind::number, "80", false, "swap used, percent, critical"},
    {"proc_root", OptionKind::string, "/proc", false,
     "where procfs is mounted; a container with the host's /proc mounted elsewhere sets it"},
};

struct Config {
  std::string proc_root;
  double cpu_warning = 90, cpu_critical = 98;
  double load_warning = 2, load_critical = 4;
  double memory_warning = 90, memory_critical = 95;
  double swap_warning = 50, swap_critical = 80;
};

/// The four files, as read on the blocking pool.
struct Texts {
  std::string stat, meminfo, loadavg, uptime;
  std::string error;  // "cannot read /proc/meminfo: ..." when one failed
};

Texts read_texts(const std::string& root) {
  Texts t;
  for (auto [name, out] : {std::pair{"stat", &t.stat}, std::pair{"meminfo", &t.meminfo},
                           std::pair{"loadavg", &t.loadavg}, std::pair{"uptime", &t.uptime}}) {
    const std::string path = root + "/" + name;
    std::ifstream file(path);
    if (!file) {
      t.error = "cannot read " + path + ": " + std::generic_category().message(errno);
      break;
    }
    out->assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  return t;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// "12d 4h", "5h 3m", "7m": enough to see a recent reboot.
std::string uptime_text(double seconds) {
  const auto s = static_cast<long long>(seconds);
  const long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
  if (d > 0) return std::to_string(d) + "d " + std::to_string(h) + "h";
  if (h > 0) return std::to_string(h) + "h " + std::to_string(m) + "m";
  return std::to_string(m) + "m";
}

class HostProbe final : public Probe {
 public:
  explicit HostProbe(Config c) : c_(std::move(c)) {}

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    if (auto last = last_.lock(); last && last->running())
      co_return make_result(Status::unknown,
                            "reading " + c_.proc_root + " still hanging since an earlier run");
    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to read /proc on");
    auto read = [root = c_.proc_root] { return read_texts(root); };
    const std::optional<Texts> texts =
        co_await run_blocking(ctx, std::chrono::steady_clock::now() + ctx.timeout, read, last_);
    if (!texts)
      co_return make_result(Status::unknown, "reading " + c_.proc_root + " timed out after " +
                                                 format_duration(ctx.timeout));
    if (!texts->error.empty()) co_return make_result(Status::unknown, texts->error);
    co_return evaluate(*texts);
  }

 private:
  Result evaluate(const Texts& t) {
    const auto cpu = parse_proc_stat(t.stat);
    const auto mem = parse_meminfo(t.meminfo);
    const auto load = parse_loadavg(t.loadavg);
    const auto up = parse_uptime(t.uptime);
    const std::string& root = c_.proc_root;
    if (!cpu) return make_result(Status::unknown, "cannot parse " + root + "/stat");
    if (!mem || !mem->mem_available || mem->mem_total == 0)
      return make_result(Status::unknown,
                         "cannot parse " + root + "/meminfo (MemTotal and MemAvailable)");
    if (!load) return make_result(Status::unknown, "cannot parse " + root + "/loadavg");
    if (!up) return make_result(Status::unknown, "cannot parse " + root + "/uptime");

    Result r;
    Status s = Status::ok;
    std::vector<std::string> parts;

    // CPU: the share of non-idle time since the previous run, so the first run has none. A
    // counter that went backwards (a reboot between runs) starts over.
    if (prev_cpu_ && cpu->total > prev_cpu_->total && cpu->idle >= prev_cpu_->idle) {
      const double total = static_cast<double>(cpu->total - prev_cpu_->total);
      const double idle = static_cast<double>(cpu->idle - prev_cpu_->idle);
      const double used = std::clamp(100.0 * (total - idle) / total, 0.0, 100.0);
      r.metrics.push_back({"cpu_percent", used, "%"});
      s = protocol::worst(s, threshold_status(used, c_.cpu_warning, c_.cpu_critical));
      parts.push_back("cpu " + fixed(used, 1) + "%");
    }
    prev_cpu_ = cpu;

    const int cores = std::max(cpu->cores, 1);
    const double per_core = load->five / cores;
    r.metrics.push_back({"load1", load->one, ""});
    r.metrics.push_back({"load5", load->five, ""});
    r.metrics.push_back({"load15", load->fifteen, ""});
    r.metrics.push_back({"load5_per_core", per_core, ""});
    r.metrics.push_back({"cores", static_cast<double>(cores), ""});
    s = protocol::worst(s, threshold_status(per_core, c_.load_warning, c_.load_critical));
    parts.push_back("load " + fixed(load->one, 2) + " " + fixed(load->five, 2) + " " +
                    fixed(load->fifteen, 2) + " (" + fixed(per_core, 2) + "/core, " +
                    std::to_string(cores) + (cores == 1 ? " core)" : " cores)"));

    const double total = static_cast<double>(mem->mem_total);
    const double available = std::min(static_cast<double>(*mem->mem_available), total);
    const double mem_used = 100.0 * (total - available) / total;
    r.metrics.push_back({"memory_used_percent", mem_used, "%"});
    r.metrics.push_back({"memory_total_bytes", total, "bytes"});
    s = protocol::worst(s, threshold_status(mem_used, c_.memory_warning, c_.memory_critical));
    parts.push_back("memory " + fixed(mem_used, 1) + "% used of " + human_bytes(total));

    if (mem->swap_total > 0) {
      const double swap_total = static_cast<double>(mem->swap_total);
      const double swap_free = std::min(static_cast<double>(mem->swap_free), swap_total);
      const double swap_used = 100.0 * (swap_total - swap_free) / swap_total;
      r.metrics.push_back({"swap_used_percent", swap_used, "%"});
      s = protocol::worst(s, threshold_status(swap_used, c_.swap_warning, c_.swap_critical));
      parts.push_back("swap " + fixed(swap_used, 1) + "% used");
    } else {
      parts.push_back("no swap");
    }

    r.metrics.push_back({"uptime_seconds", *up, "s"});
    parts.push_back("up " + uptime_text(*up));

    std::string summary;
    for (const auto& p : parts) summary += (summary.empty() ? "" : ", ") + p;
    r.status = s;
    r.summary = std::move(summary);
    return r;
  }

  Config c_;
  std::optional<CpuTimes> prev_cpu_;
  // The previous run's reads while the pool still holds them; weak, so that the probe keeps no
  // timer alive beyond its io_context.
  std::weak_ptr<BlockingCall<Texts>> last_;
};

double non_negative(const Options& o, std::string_view key, double most) {
  const double v = o.number(key);
  if (v < 0 || v > most)
    o.error(key, most == 100 ? "expected a percentage, 0-100" : "must not be negative");
  return v;
}

std::unique_ptr<Probe> make(const Options& o) {
  constexpr double kAny = std::numeric_limits<double>::max();
  Config c;
  c.proc_root = o.string("proc_root");
  if (c.proc_root.empty()) o.error("proc_root", "must not be empty");
  c.cpu_warning = non_negative(o, "cpu_warning", 100);
  c.cpu_critical = non_negative(o, "cpu_critical", 100);
  c.load_warning = non_negative(o, "load_warning", kAny);
  c.load_critical = non_negative(o, "load_critical", kAny);
  c.memory_warning = non_negative(o, "memory_warning", 100);
  c.memory_critical = non_negative(o, "memory_critical", 100);
  c.swap_warning = non_negative(o, "swap_warning", 100);
  c.swap_critical = non_negative(o, "swap_critical", 100);
  return std::make_unique<HostProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"host", "CPU, load, memory, swap and uptime of this machine", kOptions, &make};
}

}  // namespace dozor::probes::host
