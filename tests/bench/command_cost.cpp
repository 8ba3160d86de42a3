// What one run of the command probe costs, against running the same plugin from a shell the way
// a Telegraf exec input or a Zabbix UserParameter does (popen: /bin/sh -c '<command line>', its
// stdout read to the end), and against spawning the plugin directly (no shell: the floor).
//
//   command_cost [RUNS [PLUGIN ARG...]]      (default: 200 runs of check_dummy 0 ok)
//
// The probe is built from YAML as the agent's config builds it and runs as the agent's scheduler
// runs it: a coroutine on an io_context, the child on a 2-thread blocking pool. The three ways
// take turns in rounds of 10 runs each (the order rotating), so that the noise of a shared
// machine falls on all of them alike. Per way: wall time per run (median, p90) and CPU per run,
// this process (all threads) plus its reaped children (the shell and the plugin).
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dozor/probes/registry.h"

extern char** environ;

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

std::string shell_quoted(const std::string& arg) {
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// CPU seconds used so far by this process (every thread) and by its children it has waited for.
double cpu_now() {
  auto seconds = [](const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  return seconds(self) + seconds(children);
}

struct Way {
  const char* name;
  std::vector<double> wall;  // seconds, one per run
  double cpu = 0;            // seconds, all runs
  int failed = 0;            // runs whose plugin did not answer as it should
};

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  std::vector<std::string> plugin;
  for (int i = 2; i < argc; ++i) plugin.emplace_back(argv[i]);
  if (plugin.empty()) plugin = {"/usr/lib/nagios/plugins/check_dummy", "0", "ok"};
  if (runs < 10) {
    std::fprintf(stderr, "usage: command_cost [RUNS (at least 10) [PLUGIN ARG...]]\n");
    return 2;
  }

  // The probe, from the YAML a user would write.
  YAML::Node node;
  node["name"] = "plugin";
  node["type"] = "command";
  for (const auto& a : plugin) node["command"].push_back(a);
  std::vector<dozor::ConfigError> errors;
  auto spec = dozor::probes::read_probe(node, "command_cost.yaml", "probes[0]", errors);
  for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
  if (!spec) return 2;
  asio::io_context io(1);
  asio::thread_pool blocking(2);
  dozor::probes::ProbeContext ctx{io.get_executor(), &blocking, spec->timeout};

  std::string line;
  for (const auto& a : plugin) line += (line.empty() ? "" : " ") + shell_quoted(a);
  std::vector<char*> plugin_argv;
  for (auto& a : plugin) plugin_argv.push_back(a.data());
  plugin_argv.push_back(nullptr);

  // Each returns true when the plugin ran and said something.
  auto run_probe = [&] {
    auto done = asio::co_spawn(io, spec->probe->run(ctx), asio::use_future);
    io.restart();
    io.run();
    const auto r = done.get();
    return r.status != dozor::protocol::Status::unknown && !r.summary.empty();
  };
  auto run_shell = [&] {
    FILE* f = ::popen(line.c_str(), "r");
    if (!f) return false;
    char buf[8192];
    std::size_t got = 0, n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) got += n;
    const int status = ::pclose(f);
    return got > 0 && WIFEXITED(status) && WEXITSTATUS(status) <= 3;
  };
  auto run_direct = [&] {
    int fd[2];
    if (::pipe2(fd, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fd[1], STDOUT_FILENO);
    pid_t pid = -1;
    const int rc =
        ::posix_spawn(&pid, plugin_argv[0], &actions, nullptr, plugin_argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fd[1]);
    std::size_t got = 0;
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd[0], buf, sizeof buf)) > 0) got += static_cast<std::size_t>(n);
    ::close(fd[0]);
    int status = 0;
    if (rc != 0 || ::waitpid(pid, &status, 0) != pid) return false;
    return got > 0 && WIFEXITED(status) && WEXITSTATUS(status) <= 3;
  };

  Way ways[3] = {{"probe", {}, 0, 0}, {"shell", {}, 0, 0}, {"direct", {}, 0, 0}};
  auto run_one = [&](int way) {
    switch (way) {
      case 0:
        return run_probe();
      case 1:
        return run_shell();
      default:
        return run_direct();
    }
  };
  for (int way = 0; way < 3; ++way) run_one(way);  // warm-up: page cache, the pool's threads

  constexpr int kRound = 10;
  for (int round = 0; round * kRound < runs; ++round) {
    for (int k = 0; k < 3; ++k) {
      const int way = (round + k) % 3;
      const int count = std::min(kRound, runs - round * kRound);
      const double cpu_before = cpu_now();
      for (int i = 0; i < count; ++i) {
        const auto start = Clock::now();
        const bool ok = run_one(way);
        ways[way].wall.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        if (!ok) ++ways[way].failed;
      }
      ways[way].cpu += cpu_now() - cpu_before;
    }
  }

  std::printf("command_cost: %d runs each of %s\n", runs, line.c_str());
  std::printf("%-7s %14s %14s %14s %8s\n", "way", "wall median", "wall p90", "cpu per run",
              "failed");
  for (const Way& w : ways)
    std::printf("%-7s %11.3f ms %11.3f ms %11.3f ms %8d\n", w.name, 1e3 * quantile(w.wall, 0.5),
                1e3 * quantile(w.wall, 0.9), 1e3 * w.cpu / static_cast<double>(w.wall.size()),
                w.failed);
  const double probe_wall = quantile(ways[0].wall, 0.5), shell_wall = quantile(ways[1].wall, 0.5);
  const double probe_cpu = ways[0].cpu, shell_cpu = ways[1].cpu;
  std::printf("probe / shell: wall %.2fx, cpu %.2fx\n", probe_wall / shell_wall,
              probe_cpu / shell_cpu);
  return ways[0].failed + ways[1].failed + ways[2].failed == 0 ? 0 : 1;
}
