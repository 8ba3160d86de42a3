#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "host/procfs.h"
#include "probe_runner.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Captured from a 4-core Debian 12 server (trimmed: the parsers skip the lines they do not use).
constexpr const char* kStat =
    "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n"
    "cpu0 1393280 32966 447853 6114808 2327 0 23406 0 26700 0\n"
    "cpu1 1335766 31390 448447 6147916 2332 0 1240 0 26214 0\n"
    "cpu2 1251960 34203 420347 6260600 2327 0 281 0 28016 0\n"
    "cpu3 1248880 34206 419563 6285304 2293 0 91 0 24452 0\n"
    "intr 1462898 0 9 0 0 0 0 0 0 0 0 0 0\n"
    "ctxt 1990473\n"
    "btime 1062191376\n"
    "processes 2915\n"
    "procs_running 1\n"
    "procs_blocked 0\n";

constexpr const char* kMeminfo =
    "MemTotal:       16307176 kB\n"
    "MemFree:         1180596 kB\n"
    "MemAvailable:    4076794 kB\n"
    "Buffers:          263320 kB\n"
    "Cached:          3062440 kB\n"
    "SwapTotal:       2097148 kB\n"
    "SwapFree:        1572861 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

TEST(HostParsers, ProcStat) {
  const auto cpu = host::parse_proc_stat(kStat);
  ASSERT_TRUE(cpu);
  EXPECT_EQ(cpu->cores, 4);
  // user..steal; guest and guest_nice are already counted in user and nice.
  EXPECT_EQ(cpu->total, 10132153u + 290696 + 3084719 + 46828483 + 16683 + 0 + 25195 + 0);
  EXPECT_EQ(cpu->idle, 46828483u + 16683);
  // A kernel older than 2.6.11 has only four fields.
  const auto old = host::parse_proc_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->total, 10u);
  EXPECT_EQ(old->idle, 4u);
  EXPECT_FALSE(host::parse_proc_stat("cpu 1 2 3\n"));
  EXPECT_FALSE(host::parse_proc_stat("cpu 1 2 x 4\n"));
  EXPECT_FALSE(host::parse_proc_stat("intr 1 2\n"));
  EXPECT_FALSE(host::parse_proc_stat(""));
}

TEST(HostParsers, Meminfo) {
  const auto m = host::parse_meminfo(kMeminfo);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->mem_total, 16307176ull * 1024);
  ASSERT_TRUE(m->mem_available);
  EXPECT_EQ(*m->mem_available, 4076794ull * 1024);
  EXPECT_EQ(m->swap_total, 2097148ull * 1024);
  EXPECT_EQ(m->swap_free, 1572861ull * 1024);
  const auto old = host::parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\n");
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->mem_available);
  EXPECT_FALSE(host::parse_meminfo("MemFree: 10 kB\n"));
  EXPECT_FALSE(host::parse_meminfo("MemTotal: lots kB\n"));
  // Overflowing kB values are dropped, not wrapped.
  EXPECT_FALSE(host::parse_meminfo("MemTotal: 18446744073709551615 kB\n"));
}

TEST(HostParsers, LoadavgAndUptime) {
  const auto l = host::parse_loadavg("0.52 0.61 0.70 1/234 5678\n");
  ASSERT_TRUE(l);
  EXPECT_DOUBLE_EQ(l->one, 0.52);
  EXPECT_DOUBLE_EQ(l->five, 0.61);
  EXPECT_DOUBLE_EQ(l->fifteen, 0.70);
  EXPECT_FALSE(host::parse_loadavg("0.52 0.61\n"));
  EXPECT_FALSE(host::parse_loadavg("0.52 -1 0.70 1/2 3\n"));
  EXPECT_FALSE(host::parse_loadavg("nan 0.61 0.70 1/2 3\n"));
  EXPECT_EQ(host::parse_uptime("350735.47 234388.90\n"), 350735.47);
  EXPECT_EQ(host::parse_uptime("12.5\n"), 12.5);
  EXPECT_FALSE(host::parse_uptime("up\n"));
  EXPECT_FALSE(host::parse_uptime(""));
}

TEST(HostProbe, RealProcIsPlausible) {
  std::vector<ConfigError> errors;
  // Thresholds out of reach, so that the status does not depend on this machine's load.
  const auto spec = build(
      "{ name: h, type: host, cpu_warning: 100, cpu_critical: 100, load_warning: 1000, "
      "load_critical: 1000, memory_warning: 100, memory_critical: 100, swap_warning: 100, "
      "swap_critical: 100 }",
      errors);
  ASSERT_TRUE(spec && errors.empty());
  Result r = run(*spec).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_FALSE(metric(r, "cpu_percent")) << "the first run has nothing to compare with";
  const auto memory = metric(r, "memory_used_percent");
  ASSERT_TRUE(memory) << to_text(r);
  EXPECT_GT(*memory, 0.0);
  EXPECT_LT(*memory, 100.0);
  if (const auto swap = metric(r, "swap_used_percent")) {
    EXPECT_GE(*swap, 0.0);
    EXPECT_LE(*swap, 100.0);
  } else {
    EXPECT_TRUE(contains(r.summary, "no swap")) << r.summary;
  }
  ASSERT_TRUE(metric(r, "uptime_seconds"));
  EXPECT_GT(*metric(r, "uptime_seconds"), 0.0);
  ASSERT_TRUE(metric(r, "cores"));
  EXPECT_EQ(*metric(r, "cores"), static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN)));
  ASSERT_TRUE(metric(r, "load5") && metric(r, "load5_per_core"));
  EXPECT_GE(*metric(r, "load5"), 0.0);
  EXPECT_DOUBLE_EQ(*metric(r, "load5_per_core"), *metric(r, "load5") / *metric(r, "cores"));

  // Burn some CPU so that the counters move between the runs.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  volatile unsigned spin = 0;
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  r = run(*spec).result;
  const auto cpu = metric(r, "cpu_percent");
  ASSERT_TRUE(cpu) << to_text(r);
  EXPECT_GT(*cpu, 0.0);
  EXPECT_LE(*cpu, 100.0);
  EXPECT_TRUE(r.summary.starts_with("cpu ")) << r.summary;
}

TEST(HostProbe, ThresholdsOnRealProc) {
  // Some memory is always in use and the load is never negative: a threshold of 0 forces the
  // verdict. The other thresholds are out of reach of this machine's own load.
  const std::string quiet = "{ name: h, type: host, swap_warning: 100, swap_critical: 100, ";
  Result r = run(quiet + "load_critical: 1000, memory_warning: 0, memory_critical: 100 }").result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  r = run(quiet + "load_critical: 1000, memory_warning: 0, memory_critical: 0 }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  r = run(quiet + "memory_critical: 100, load_warning: 0, load_critical: 1000 }").result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
}

/// A folder laid out like /proc with captured files. The real /proc gives numbers a test cannot
/// predict; this one gives exact percentages (and a reboot) through the proc_root option.
class FakeProc {
 public:
  FakeProc() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dozor-host-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  ~FakeProc() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(root_ / name) << text;
  }
  std::string root() const { return root_.string(); }

 private:
  std::filesystem::path root_;
};

TEST(HostProbe, ExactNumbersFromCapturedFiles) {
  FakeProc proc;
  proc.write("stat",
             "cpu 500 0 200 800 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
             "cpu2 1 1 1 1\ncpu3 1 1 1 1\n");
  proc.write("meminfo", kMeminfo);
  proc.write("loadavg", "6.00 4.00 2.00 3/456 7890\n");
  proc.write("uptime", "300.50 1000.00\n");
  std::vector<ConfigError> errors;
  const auto spec = build("{ name: h, type: host, proc_root: " + proc.root() + " }", errors);
  ASSERT_TRUE(spec && errors.empty());

  Result r = run(*spec).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  // (16307176 - 4076794) / 16307176 kB used, (2097148 - 1572861) / 2097148 kB of swap.
  EXPECT_NEAR(*metric(r, "memory_used_percent"), 75.0, 0.001);
  EXPECT_NEAR(*metric(r, "swap_used_percent"), 25.0, 0.001);
  EXPECT_EQ(*metric(r, "load1"), 6.0);
  EXPECT_EQ(*metric(r, "load5_per_core"), 1.0);
  EXPECT_EQ(*metric(r, "cores"), 4.0);
  EXPECT_EQ(*metric(r, "uptime_seconds"), 300.5);
  EXPECT_EQ(r.summary,
            "load 6.00 4.00 2.00 (1.00/core, 4 cores), memory 75.0% used of 15.6 GiB, "
            "swap 25.0% used, up 5m");

  // 1000 ticks later, 100 of them idle: 90% busy, at the default warning.
  proc.write("stat",
             "cpu 1300 0 300 900 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
             "cpu2 1 1 1 1\ncpu3 1 1 1 1\n");
  r = run(*spec).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  ASSERT_TRUE(metric(r, "cpu_percent"));
  EXPECT_DOUBLE_EQ(*metric(r, "cpu_percent"), 90.0);
  EXPECT_TRUE(r.summary.starts_with("cpu 90.0%, load 6.00 4.00 2.00 (1.00/core, 4 cores)"))
      << r.summary;

  // Counters that went backwards (a reboot between runs) give no CPU reading, not a wrap.
  proc.write("stat", "cpu 10 0 10 80 0 0 0 0 0 0\ncpu0 1 1 1 1\n");
  proc.write("uptime", "42.00 80.00\n");
  r = run(*spec).result;
  EXPECT_FALSE(metric(r, "cpu_percent")) << to_text(r);
  EXPECT_TRUE(r.summary.ends_with("up 0m")) << r.summary;
}

TEST(HostProbe, NoSwapAndThresholds) {
  FakeProc proc;
  proc.write("stat", "cpu 1 0 1 8 0 0 0 0 0 0\ncpu0 1 0 1 8\n");
  proc.write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 20 kB\nSwapTotal: 0 kB\n");
  proc.write("loadavg", "0.10 0.20 0.30 1/2 3\n");
  proc.write("uptime", "90061.0 1.0\n");
  const Result r = run("{ name: h, type: host, proc_root: " + proc.root() + " }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_FALSE(metric(r, "swap_used_percent"));
  EXPECT_EQ(r.summary,
            "load 0.10 0.20 0.30 (0.20/core, 1 core), memory 98.0% used of 1000.0 KiB, no swap, "
            "up 1d 1h");
}

TEST(HostProbe, UnreadableOrMalformedProcIsUnknown) {
  Result r = run("{ name: h, type: host, proc_root: /nonexistent/proc }").result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "cannot read /nonexistent/proc/stat: No such file or directory");

  FakeProc proc;
  proc.write("stat", kStat);
  proc.write("meminfo", "MemTotal: 1000 kB\n");  // a kernel before 3.14: no MemAvailable
  proc.write("loadavg", "0.10 0.20 0.30 1/2 3\n");
  proc.write("uptime", "1.0 1.0\n");
  r = run("{ name: h, type: host, proc_root: " + proc.root() + " }").result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "cannot parse " + proc.root() + "/meminfo (MemTotal and MemAvailable)");
}

TEST(HostProbe, ConfigErrors) {
  auto errors = config_errors("{ name: h, type: host, memory_warning: 120 }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].memory_warning: expected a percentage, 0-100"))
      << errors[0];
  errors = config_errors("{ name: h, type: host, load_critical: -1 }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].load_critical: must not be negative")) << errors[0];
}

}  // namespace
}  // namespace dozor::probes
