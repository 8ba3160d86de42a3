#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "children.h"
#include "probe_runner.h"
#include "process/procstat.h"

extern char** environ;

namespace dozor::probes {
namespace {

using namespace probe_testing;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string regex_escape_dots(std::string s) {
  for (std::size_t at = 0; (at = s.find('.', at)) != std::string::npos; at += 2) s.insert(at, "\\");
  return s;
}

TEST(ProcStatParser, CommWithSpacesAndParentheses) {
  const auto st = process::parse_proc_stat(
      "4242 (a) (b c)) S 1 4242 4242 0 -1 4194560 500 0 0 0 17 4 0 0 20 0 3 0 12345 "
      "10000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->comm, "a) (b c)");
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->utime, 17u);
  EXPECT_EQ(st->stime, 4u);
  EXPECT_EQ(st->threads, 3);
  EXPECT_EQ(st->starttime, 12345u);
  EXPECT_EQ(st->rss_pages, 250);
  EXPECT_FALSE(process::parse_proc_stat("4242 (sleep) S 1 2 3"));
  EXPECT_FALSE(process::parse_proc_stat("4242 sleep S 1"));
  EXPECT_FALSE(process::parse_proc_stat(""));
  EXPECT_FALSE(process::parse_proc_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 4 0 0 20 0 3 0 1 1 1 1\n"));
}

TEST(ProcStatParser, StatusUidAndCmdline) {
  EXPECT_EQ(process::parse_status_euid("Name:\tsleep\nUid:\t1000\t1001\t1000\t1000\nGid:\t0"),
            1001u);
  EXPECT_FALSE(process::parse_status_euid("Name:\tsleep\nGid:\t0\t0\t0\t0\n"));
  EXPECT_FALSE(process::parse_status_euid("Uid:\t1000\n"));
  EXPECT_EQ(process::cmdline_text(std::string("sleep\0"
                                              "60\0",
                                              9),
                                  100),
            "sleep 60");
  EXPECT_EQ(process::cmdline_text(std::string("sleep\0"
                                              "60\0",
                                              9),
                                  7),
            "sleep 6");
}

TEST(ProcessProbe, CountsItsOwnSleeps) {
  Children children;
  const std::string seconds = distinctive_seconds();
  for (int i = 0; i < 3; ++i) children.spawn({"sleep", seconds});
  const std::string pattern = "^sleep " + regex_escape_dots(seconds) + "$";
  const Result r =
      run("{ name: p, type: process, comm: sleep, cmdline: '" + pattern + "' }").result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(metric(r, "processes"), 3.0) << to_text(r);
  EXPECT_EQ(metric(r, "threads"), 3.0) << to_text(r);
  ASSERT_TRUE(metric(r, "rss_bytes"));
  EXPECT_GT(*metric(r, "rss_bytes"), 0.0);
  EXPECT_FALSE(metric(r, "cpu_percent")) << "the first run has nothing to compare with";
  EXPECT_TRUE(r.summary.starts_with("3 processes match comm=sleep cmdline=/" + pattern + "/, rss "))
      << r.summary;
  EXPECT_TRUE(r.summary.ends_with("iB, 3 threads")) << r.summary;
}

TEST(ProcessProbe, CommGlobAndUser) {
  Children children;
  const std::string seconds = distinctive_seconds();
  children.spawn({"sleep", seconds});
  const std::string cmdline = "cmdline: '" + regex_escape_dots(seconds) + "$'";
  Result r = run("{ name: p, type: process, comm: 'sl*p', " + cmdline +
                 ", user: " + std::to_string(::getuid()) + " }")
                 .result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(metric(r, "processes"), 1.0) << to_text(r);
  // Nobody else runs our sleep.
  r = run("{ name: p, type: process, " + cmdline + ", user: " + std::to_string(::getuid() + 1) +
          " }")
          .result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(metric(r, "processes"), 0.0) << to_text(r);
  r = run("{ name: p, type: process, comm: 'sleepy*', " + cmdline + " }").result;
  EXPECT_EQ(metric(r, "processes"), 0.0) << to_text(r);
}

TEST(ProcessProbe, NoneRunningIsCritical) {
  Result r = run("{ name: p, type: process, comm: 1cv8-dozortest }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "no process matches comm=1cv8-dozortest");
  EXPECT_EQ(metric(r, "processes"), 0.0);
  // Expecting none (a forbidden process) is fine.
  r = run("{ name: p, type: process, comm: 1cv8-dozortest, min: 0, max: 0 }").result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
}

TEST(ProcessProbe, MinAndMax) {
  Children children;
  const std::string seconds = distinctive_seconds();
  children.spawn({"sleep", seconds});
  children.spawn({"sleep", seconds});
  const std::string base =
      "{ name: p, type: process, cmdline: '^sleep " + regex_escape_dots(seconds) + "$'";
  Result r = run(base + ", min: 3 }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, "2 processes match cmdline=/")) << r.summary;
  EXPECT_TRUE(contains(r.summary, ", expected at least 3, rss ")) << r.summary;
  r = run(base + ", max: 1 }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(contains(r.summary, ", expected at most 1, rss ")) << r.summary;
  r = run(base + ", min: 2, max: 2 }").result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  // Any process uses some memory: a 1-byte threshold forces the verdict.
  r = run(base + ", rss_warning: 1B }").result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  r = run(base + ", rss_warning: 1B, rss_critical: 1B }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
}

TEST(ProcessProbe, LongCommandLinesAreSearchedUpToTheirBound) {
  // A shell that stops itself keeps its command line: sh -c <script> <x...x> <tag>. The tag
  // after 20000 bytes is found; after 40000 it is past what the probe reads.
  Children children;
  const std::string near_tag = "dozor-long-" + distinctive_seconds();
  const std::string far_tag = "dozor-long-" + distinctive_seconds();
  children.spawn({"sh", "-c", "kill -STOP $$", std::string(20000, 'x'), near_tag});
  children.spawn({"sh", "-c", "kill -STOP $$", std::string(40000, 'x'), far_tag});
  Result r =
      run("{ name: p, type: process, cmdline: 'xx " + regex_escape_dots(near_tag) + "$' }").result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(metric(r, "processes"), 1.0) << to_text(r);
  // Beyond the first 32 KiB nothing is read.
  r = run("{ name: p, type: process, cmdline: '" + regex_escape_dots(far_tag) + "', min: 0 }")
          .result;
  EXPECT_EQ(metric(r, "processes"), 0.0) << to_text(r);
}

TEST(ProcessProbe, ZombiesAreNotCounted) {
  // A copy of `true` under a name of our own, so that its comm is ours alone; it exits at once
  // and stays a zombie until reaped.
  const std::string name = "dz-zombie-" + std::to_string(::getpid() % 100000);
  const auto path = std::filesystem::temp_directory_path() / name;
  std::filesystem::copy_file("/bin/true", path, std::filesystem::copy_options::overwrite_existing);
  char* argv[] = {const_cast<char*>(name.c_str()), nullptr};
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv, environ), 0);
  siginfo_t info{};
  // WNOWAIT: wait for the exit but leave the zombie in place.
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  const auto st = process::parse_proc_stat(
      std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()));
  EXPECT_TRUE(st && st->state == 'Z' && st->comm == name);
  const Result r = run("{ name: p, type: process, comm: " + name + ", min: 0 }").result;
  EXPECT_EQ(metric(r, "processes"), 0.0) << to_text(r);
  ::waitpid(pid, nullptr, 0);
  std::filesystem::remove(path);
}

TEST(ProcessProbe, ProcessesExitingDuringTheScanAreSkipped) {
  // A thread keeps starting and reaping short-lived processes, so that some PIDs listed in /proc
  // are gone when the probe opens their files. Every run must still count our two sleeps.
  Children children;
  const std::string seconds = distinctive_seconds();
  children.spawn({"sleep", seconds});
  children.spawn({"sleep", seconds});
  std::atomic<bool> stop{false};
  std::atomic<int> churned{0};
  std::thread churn([&] {
    char arg0[] = "true";
    char* argv[] = {arg0, nullptr};
    while (!stop) {
      pid_t pid = 0;
      if (::posix_spawnp(&pid, "true", nullptr, nullptr, argv, environ) == 0) {
        ::waitpid(pid, nullptr, 0);
        ++churned;
      }
    }
  });
  std::vector<ConfigError> errors;
  const auto spec =
      build("{ name: p, type: process, cmdline: '^sleep " + regex_escape_dots(seconds) +
                "$', user: " + std::to_string(::getuid()) + " }",
            errors);
  ASSERT_TRUE(spec && errors.empty());
  for (int i = 0; i < 20; ++i) {
    const Result r = run(*spec).result;
    EXPECT_EQ(r.status, Status::ok) << to_text(r);
    EXPECT_EQ(metric(r, "processes"), 2.0) << to_text(r);
  }
  stop = true;
  churn.join();
  EXPECT_GT(churned.load(), 0);
}

TEST(ProcessProbe, CpuOfABusyChild) {
  Children children;
  const std::string tag = "dozor-busy-" + distinctive_seconds();
  // $0 of the shell is the tag, so the command line is "sh -c while :; do :; done <tag>".
  const pid_t busy = children.spawn({"sh", "-c", "while :; do :; done", tag});
  std::vector<ConfigError> errors;
  const auto spec = build("{ name: p, type: process, comm: sh, cmdline: '" +
                              regex_escape_dots(tag) + "$', cpu_warning: 10, cpu_critical: 101 }",
                          errors);
  ASSERT_TRUE(spec && errors.empty());
  // The scheduler's own account of the child's CPU time, read apart from /proc: on a machine
  // busy with other work the child may get less than a core, and the probe must say how much.
  clockid_t clock = 0;
  ASSERT_EQ(::clock_getcpuclockid(busy, &clock), 0);
  const auto cpu_seconds = [clock] {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  const auto wall_start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds();
  Result r = run(*spec).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_FALSE(metric(r, "cpu_percent")) << to_text(r);
  // The measuring window: CPU is counted between two runs.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  r = run(*spec).result;
  const double reference = 100.0 * (cpu_seconds() - cpu_start) /
                           seconds_between(wall_start, std::chrono::steady_clock::now());
  const auto cpu = metric(r, "cpu_percent");
  ASSERT_TRUE(cpu) << to_text(r);
  // The two windows differ by the runs' own few milliseconds; a load that comes and goes makes
  // the child's share differ a little between them.
  EXPECT_NEAR(*cpu, reference, 20.0) << to_text(r);
  if (reference > 60) {
    EXPECT_GT(*cpu, 50.0) << to_text(r);
  }
  EXPECT_LE(*cpu, 110.0) << to_text(r);
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_TRUE(contains(r.summary, ", cpu ")) << r.summary;
}

TEST(ProcessProbe, ConfigErrors) {
  auto errors = config_errors("{ name: p, type: process }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].comm: give comm or cmdline")) << errors[0];
  errors = config_errors("{ name: p, type: process, comm: ragent-with-a-long-name }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "at most 15 characters")) << errors[0];
  errors = config_errors("{ name: p, type: process, cmdline: '(' }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].cmdline: invalid regular expression")) << errors[0];
  errors = config_errors("{ name: p, type: process, comm: x, user: no-such-user-dozor }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].user: no such user 'no-such-user-dozor'"))
      << errors[0];
  errors = config_errors("{ name: p, type: process, comm: x, min: 3, max: 2 }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(contains(errors[0], "probes[0].max: must not be less than min")) << errors[0];
}

}  // namespace
}  // namespace dozor::probes
