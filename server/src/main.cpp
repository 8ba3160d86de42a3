// dozor-collector: receives agent reports over mutual TLS, keeps the health of every site and
// serves it to Prometheus and the support team.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <csignal>
#include <iostream>

#include "dozor/collector/clock.h"
#include "dozor/collector/desk.h"
#include "dozor/collector/notify.h"
#include "dozor/collector/store.h"
#include "dozor/protocol/version.h"
#include "dozor/server/server.h"

namespace {

using namespace dozor;

// Every timer of the collector (liveness, holds, silences, escalations, notifier backoff) and
// every timestamp it writes: the wall clock, steered so that a step of it does not jump them.
double unix_now() {
  static collector::SteadyWallClock clock;
  return clock.now();
}

std::optional<server::ServerConfig> load(const std::string& path) {
  std::vector<ConfigError> errors;
  auto config = server::load_server_config(path, errors);
  for (const auto& e : errors) std::cerr << "config error: " << e.to_string() << "\n";
  return config;
}

// Every connection is a descriptor: the soft limit (often 1024 outside systemd) would end
// accepting long before limits.max_connections. Raised to the hard limit, as Go does at start;
// the unit sets LimitNOFILE.
void raise_descriptor_limit(const server::ServerConfig& c) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  const auto needed = c.max_connections + c.pending_total + c.http_connections + 64;
  if (lim.rlim_cur < needed)
    spdlog::warn("open files limit {} is below what the limits: allow ({}); raise LimitNOFILE",
                 lim.rlim_cur, needed);
}

// Several collectors on one store: only the leader delivers notifications, so that each goes out
// once (a leader killed between a delivery and its record sends that one again when the next
// takes over; receivers see the same notification id).
class LeaderOutbox : public collector::OutboxQueue {
 public:
  LeaderOutbox(collector::Desk& desk, collector::Health& health) : desk_(desk), health_(health) {}
  std::vector<collector::Notification> due(const std::string& notifier, double now,
                                           std::size_t limit) override {
    if (!health_.leading()) return {};
    return desk_.due(notifier, now, limit);
  }
  void delivered(const std::string& notifier, std::uint64_t id) override {
    desk_.delivered(notifier, id);
  }
  void failed(const std::string& notifier, std::uint64_t id, double retry_at,
              const std::string& error) override {
    desk_.failed(notifier, id, retry_at, error);
  }
  std::vector<nlohmann::json> active_tickets() override {
    if (!health_.leading()) return {};
    return desk_.active_tickets();
  }

 private:
  collector::Desk& desk_;
  collector::Health& health_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dozor-collector: receives agent reports over mutual TLS, keeps the health of every site,\n"
      "serves /metrics for Prometheus and the /api/v1 HTTP API."};
  std::string config_path = "/etc/dozor/collector.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "collector configuration (YAML)")
      ->capture_default_str();
  app.add_flag("--check-config", check_only, "validate the configuration and exit (0 ok, 2 bad)");
  app.set_version_flag("--version", std::string("dozor-collector ") + kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  // stderr without colour: journald stamps time and unit itself.
  auto logger = spdlog::stderr_logger_mt("dozor-collector");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);

  auto config = load(config_path);
  if (!config) return 2;
  try {
    server::check_enrollment(*config);
  } catch (const std::exception& e) {
    std::cerr << "config error: " << config_path << ": enroll: " << e.what() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << config_path << ": configuration OK\n";
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  raise_descriptor_limit(*config);

  boost::asio::io_context io(1);
  collector::Metrics metrics;
  std::unique_ptr<collector::Store> store;
  std::unique_ptr<collector::Health> health;
  std::unique_ptr<collector::Desk> desk;
  std::unique_ptr<collector::Lease>
      lease;  // with a PostgreSQL store: several collectors may share it
  try {
    store = std::make_unique<collector::Store>(config->store);
    health = std::make_unique<collector::Health>(metrics, store.get(), unix_now());
    desk = std::make_unique<collector::Desk>(config->desk, metrics, store->db());
    health->set_desk(desk.get());
    health->set_limits(config->agent_limits);
    if (store->db().engine() == "postgres")
      lease = std::make_unique<collector::Lease>(config->store, config->node);
  } catch (const std::exception& e) {
    spdlog::error("cannot open the store {}: {}", collector::sql::redacted(config->store.url),
                  e.what());
    return 1;
  }
  std::unique_ptr<server::Server> front;
  try {
    front = std::make_unique<server::Server>(io, *config, *health, desk.get(), metrics, &unix_now,
                                             store.get());
    if (lease) front->set_lease(lease.get());
    front->start();
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return 1;
  }
  // Notifiers drain the outbox on the same thread, so they share the store without locks.
  auto make_notifiers = [](const collector::DeskConfig& d) {
    std::vector<std::unique_ptr<collector::Notifier>> notifiers;
    for (const auto& n : d.notifiers) notifiers.push_back(collector::make_notifier(n));
    return notifiers;
  };
  LeaderOutbox outbox(*desk, *health);
  auto start_dispatcher = [&](std::vector<std::unique_ptr<collector::Notifier>> notifiers) {
    auto dispatcher = std::make_unique<collector::Dispatcher>(io, outbox, metrics,
                                                              std::move(notifiers), &unix_now);
    desk->on_queued([d = dispatcher.get()] { d->wake(); });
    dispatcher->start();
    return dispatcher;
  };
  auto dispatcher = start_dispatcher(make_notifiers(config->desk));
  spdlog::info("rules: {}; notifiers: {}; api writes {}", config->desk.rules.size(),
               config->desk.notifiers.size(), config->api_token.empty() ? "off" : "on");

  spdlog::info("dozor-collector {} listening for agents on {} (mutual TLS), HTTP on {}; store {}",
               kVersion, config->agents.to_string(), config->http.to_string(),
               collector::sql::redacted(config->store.url));
  if (lease)
    spdlog::info("cluster: node {}; {}", lease->node(),
                 lease->term()
                     ? "runs the desk"
                     : "takes reports; the desk runs on " +
                           (lease->holder().empty() ? std::string("nobody yet") : lease->holder()));

  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          spdlog::info("SIGHUP: reloading {}", config_path);
          std::optional<server::ServerConfig> fresh;
          try {
            fresh = load(config_path);
          } catch (const std::exception& e) {
            spdlog::error("reading {}: {}", config_path, e.what());
          }
          if (fresh) {
            try {
              // What can fail is built first (TLS material, notifiers), then the desk, which
              // writes the store; only then is anything else swapped: a failure changes nothing.
              server::make_agent_tls(*fresh);  // only to see that it can be built
              auto notifiers = make_notifiers(fresh->desk);
              if (health->leading())
                desk->reconfigure(fresh->desk, unix_now());
              else
                desk->replace_config(fresh->desk);
              front->reload(*fresh);
              spdlog::set_level(spdlog::level::from_str(fresh->log_level));
              health->set_limits(fresh->agent_limits);
              dispatcher->stop();
              dispatcher = start_dispatcher(std::move(notifiers));
              if (fresh->agents.to_string() != config->agents.to_string() ||
                  fresh->http.to_string() != config->http.to_string())
                spdlog::warn("listen addresses change only on restart");
              spdlog::info(
                  "reloaded: TLS material, API token, limits, log level, rules, calendars, "
                  "notifiers");
            } catch (const std::exception& e) {
              spdlog::error("reload failed, keeping the running configuration: {}", e.what());
            }
          } else {
            spdlog::error("reload failed, keeping the running configuration");
          }
          signals.async_wait(on_signal);
          return;
        }
        spdlog::info("{}: finishing requests in flight, then exiting",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        dispatcher->stop();
        front->stop(std::chrono::seconds(5));
      };
  signals.async_wait(on_signal);
  io.run();
  try {
    if (health->leading()) desk->save_learned();
  } catch (const std::exception& e) {
    spdlog::warn("store: trends and flap histories not saved at the stop: {}", e.what());
  }
  spdlog::info("stopped");
  return 0;
}
