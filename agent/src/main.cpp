// dozor-agent: probes a client site's software and equipment and reports to the collector.
#include <malloc.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "dozor/agent/config.h"
#include "dozor/agent/enroll.h"
#include "dozor/agent/scheduler.h"
#include "dozor/agent/spool.h"
#include "dozor/agent/uplink.h"
#include "dozor/protocol/codec.h"
#include "dozor/protocol/version.h"

namespace {

using namespace dozor;
namespace asio = boost::asio;

std::optional<agent::AgentConfig> load(const std::string& path, bool need_files = true) {
  std::vector<ConfigError> errors;
  auto config = agent::load_agent_config(path, errors, need_files);
  for (const auto& e : errors) std::cerr << "config error: " << e.to_string() << "\n";
  return config;
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string format_value(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);  // byte counts read better whole
  else
    std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void print_table(const std::vector<protocol::Result>& results) {
  std::size_t wname = 5, wtype = 4;
  for (const auto& r : results) {
    wname = std::max(wname, r.probe.size());
    wtype = std::max(wtype, r.type.size());
  }
  std::printf("%-*s  %-*s  %-8s  %8s  %s\n", int(wname), "PROBE", int(wtype), "TYPE", "STATUS",
              "TIME", "SUMMARY");
  for (const auto& r : results) {
    std::printf("%-*s  %-*s  %-8s  %7.3fs  %s\n", int(wname), r.probe.c_str(), int(wtype),
                r.type.c_str(), std::string(protocol::to_string(r.status)).c_str(), r.duration,
                r.summary.c_str());
    std::string metrics;
    for (const auto& m : r.metrics) {
      metrics +=
          (metrics.empty() ? "" : "  ") + protocol::series_name(m) + "=" + format_value(m.value);
      if (!m.unit.empty()) metrics += " " + m.unit;
    }
    if (!metrics.empty()) std::printf("%-*s  %s\n", int(wname + wtype + 2), "", metrics.c_str());
  }
}

// --once: every probe once, concurrently, printed in config order; like `telegraf --test`.
int run_once(const agent::AgentConfig& config, const std::string& format) {
  asio::io_context io(1);
  asio::thread_pool blocking(2);
  std::vector<protocol::Result> results(config.probes.size());
  for (std::size_t i = 0; i < config.probes.size(); ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          results[i] = co_await agent::run_probe(config.probes[i], io.get_executor(), blocking);
        },
        asio::detached);
  }
  io.run();
  blocking.join();
  if (format == "json")
    std::cout << protocol::encode_results(results, true) << "\n";
  else
    print_table(results);
  int could_not_run = 0;
  for (const auto& r : results) could_not_run += r.status == protocol::Status::unknown;
  return could_not_run == 0 ? 0 : 1;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena for all threads: the blocking pool's few threads would each keep an arena
  // (~100 KiB resident) for little gain in an agent that is idle most of the time.
  ::mallopt(M_ARENA_MAX, 1);
  CLI::App app{
      "dozor-agent: probes a client site's business software and equipment and reports the\n"
      "results to the dozor collector over mutual TLS."};
  std::string config_path = "/etc/dozor/agent.yaml";
  bool once = false, check_only = false, plan = false;
  std::string format = "table";
  app.add_option("-c,--config", config_path, "agent configuration (YAML)")->capture_default_str();
  app.add_flag("--once", once,
               "run every probe once, print the results and exit (0: every probe ran)");
  app.add_flag("--plan", plan, "with --once: also print how each probe will go about its check");
  app.add_option("--format", format, "output of --once")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_flag("--check-config", check_only, "validate the configuration and exit (0 ok, 2 bad)");
  app.set_version_flag("--version", std::string("dozor-agent ") + kVersion);
  app.fallthrough();  // dozor-agent enroll --config FILE ...
  agent::EnrollOptions enroll;
  auto* enroll_cmd = app.add_subcommand(
      "enroll",
      "get this machine's certificate with a one-time token (dozorctl enroll create): a key is\n"
      "made here and never leaves it; key, certificate and CA are written where the config's\n"
      "collector.key, .cert and .ca point");
  enroll_cmd->add_option("--collector", enroll.collector,
                         "the collector's agent port, https://host:port (default: collector.url)");
  enroll_cmd->add_option("--token", enroll.token, "the token")->required();
  enroll_cmd->add_option("--ca-sha256", enroll.ca_sha256,
                         "the collector CA's SHA-256 fingerprint, checked besides the token's pin");
  enroll_cmd->add_option("--agent", enroll.agent,
                         "the agent id to ask for (default: the one the token names)");
  enroll_cmd->add_flag("--force", enroll.force, "replace this machine's certificate and key");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  auto logger = spdlog::stderr_logger_mt("dozor-agent");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);

  // A first try on a laptop needs no spool folder and no certificates; enrolling makes them.
  auto config = load(config_path, !once && !enroll_cmd->parsed());
  if (!config) return 2;
  if (enroll_cmd->parsed()) return agent::enroll(*config, enroll);
  if (check_only) {
    std::cout << config_path << ": configuration OK, " << config->probes.size() << " probes\n";
    return 0;
  }
  if (once && plan) {
    for (const auto& p : config->probes) {
      const auto text = p.probe->plan();
      if (!text.empty()) std::cout << p.name << " (" << p.type << "):\n" << text << "\n";
    }
  }
  if (once) return run_once(*config, format);
  if (auto level = spdlog::level::from_str(config->log_level); level != spdlog::level::off)
    spdlog::set_level(level);

  asio::io_context io(1);
  asio::thread_pool blocking(2);
  std::unique_ptr<agent::Spool> spool;
  try {
    spool = std::make_unique<agent::Spool>(config->spool);
  } catch (const std::exception& e) {
    spdlog::error("cannot open the spool: {}", e.what());
    return 1;
  }
  if (!spool->empty())
    spdlog::info("spool {}: {} results waiting (seq {}-{})", config->spool.path, spool->count(),
                 spool->oldest_seq(), spool->last_seq());
  protocol::AgentInfo info{kVersion,
                           hostname(),
                           config->site,
                           unix_now(),
                           std::chrono::duration<double>(config->heartbeat).count(),
                           spool->id()};
  std::unique_ptr<agent::Uplink> uplink;
  try {
    uplink = std::make_unique<agent::Uplink>(io, config->collector, info, *spool);
  } catch (const std::exception& e) {
    spdlog::error("cannot load TLS material: {}", e.what());
    return 1;
  }
  std::uint64_t unspooled = 0;
  agent::Scheduler scheduler(io, blocking, [&](protocol::Result r) {
    try {
      spool->push(std::move(r));
      uplink->notify();
    } catch (const std::exception& e) {
      // A full disk or a broken file: the result is lost, and the log says so once per 100.
      if (unspooled++ % 100 == 0) spdlog::error("spool: result lost: {}", e.what());
    }
  });
  scheduler.start(config->probes);
  uplink->start();
  spdlog::info("dozor-agent {} for site {}: {} probes, reporting to {}", kVersion, config->site,
               config->probes.size(), config->collector.url);

  // glibc keeps freed heap pages resident while anything above them is in use, and a probe
  // round frees many (TLS handshakes, plugin output, parsed replies): once a minute they go
  // back to the kernel.
  asio::steady_timer trim(io);
  std::function<void()> trim_heap = [&] {
    trim.expires_after(std::chrono::minutes(1));
    trim.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      ::malloc_trim(0);
      trim_heap();
    });
  };
  trim_heap();

  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          spdlog::info("SIGHUP: reloading {}", config_path);
          if (auto fresh = load(config_path)) {
            try {
              if (fresh->spool.path != config->spool.path ||
                  fresh->spool.max_size != config->spool.max_size ||
                  fresh->spool.max_age != config->spool.max_age)
                spdlog::warn("spool settings change only on restart");
              uplink->reconfigure(fresh->collector, fresh->heartbeat);
              scheduler.start(fresh->probes);
              config = std::move(fresh);
              spdlog::info("reloaded: {} probes", config->probes.size());
            } catch (const std::exception& e) {
              spdlog::error("reload failed, keeping the running configuration: {}", e.what());
            }
          } else {
            spdlog::error("reload failed, keeping the running configuration");
          }
          signals.async_wait(on_signal);
          return;
        }
        spdlog::info("{}: sending what is queued (up to 5 s), then exiting",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        scheduler.stop();
        uplink->drain(std::chrono::seconds(5), [&] {
          if (!spool->empty())
            spdlog::info("{} results stay in the spool for the next start", spool->count());
          uplink->stop();
          io.stop();
        });
      };
  signals.async_wait(on_signal);
  io.run();
  blocking.join();
  spdlog::info("stopped");
  return 0;
}
