// The service report: how long it takes to make, and how much history the store keeps for it.
//
//   BM_SiteMonth   site_report for one site-month of 20 probes with 10,000 state changes, made
//                  through Health::ingest with the Desk's default rules (so its tickets, ~2,500
//                  of them with their events, are there too), over a real SQLite store.
//   BM_Fleet       fleet_report over 200 sites of 10 probes, each with 200 state changes and
//                  10 tickets that month (history written straight into the store's tables,
//                  as Health and the Desk write them).
// After the runs it prints the store's size per site-month of that history, and the size of a
// year of it for 200 sites (the bound the reports' history has to stay under).
//
//   build/tests/bench/report_bench --benchmark_repetitions=5
//   DOZOR_BENCH_POSTGRES=postgresql://dozor@127.0.0.1:5432 build/tests/bench/report_bench
//     the same on PostgreSQL, in databases dozor_bench_site and dozor_bench_fleet made afresh
//     there (the password from PGPASSWORD or ~/.pgpass)
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "dozor/collector/desk.h"
#include "dozor/collector/report.h"
#include "dozor/collector/store.h"

namespace {

using namespace dozor::collector;
using dozor::protocol::Status;
namespace fs = std::filesystem;

constexpr double kMonth = 1793484000;  // 2026-10-31T22:00:00Z: November in Kyiv starts
constexpr double kMonthLength = 30 * 86400.0;

std::string store_url(const fs::path& dir, const std::string& name) {
  const char* postgres = std::getenv("DOZOR_BENCH_POSTGRES");
  if (!postgres) return "sqlite:" + (dir / "collector.db").string();
  const std::string server = postgres, database = "dozor_bench_" + name;
  auto admin = sql::open({server + "/postgres", ""});
  admin->exec("DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
  admin->exec("CREATE DATABASE " + database);
  return server + "/" + database;
}

struct World {
  fs::path dir;
  DeskConfig config;
  Metrics metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<Health> health;
  std::unique_ptr<Desk> desk;

  explicit World(const std::string& name) {
    dir = fs::temp_directory_path() / ("dozor-report-bench-" + name + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::string error;
    auto windows = parse_service_hours("daily 08:00-22:00", error);
    config.calendars.emplace("office",
                             *ServiceCalendar::weekly("Europe/Kyiv", *windows, {}, error));
    config.default_calendar = "office";
    store = std::make_unique<Store>(store_url(dir, name));
    health = std::make_unique<Health>(metrics, store.get(), kMonth - 86400);
    desk = std::make_unique<Desk>(config, metrics, store->db());
    health->set_desk(desk.get());
  }
  ~World() {
    desk.reset();
    health.reset();
    store.reset();
    fs::remove_all(dir);
  }
  std::uintmax_t bytes() {
    auto& db = store->db();
    if (db.engine() == "postgres") {  // less what an empty database takes (7.5 MiB)
      sql::Statement size(db,
                          "SELECT pg_database_size(current_database()) - "
                          "pg_database_size('template1')");
      return size.step() ? static_cast<std::uintmax_t>(size.integer(0)) : 0;
    }
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return fs::file_size(dir / "collector.db");
  }
};

World& site_month() {
  static World w("site");
  static bool built = false;
  if (built) return w;
  built = true;
  std::uint64_t seq = 0;
  // 20 probes, each changing state 500 times in the month: ~every 86 minutes.
  for (int round = 0; round < 500; ++round) {
    dozor::protocol::Report rep;
    const double now = kMonth + (round + 0.5) * kMonthLength / 500;
    rep.agent = {"0.1.0", "erp", "acme", kMonth - 3600, 40 * 86400.0, "spool"};
    for (int p = 0; p < 20; ++p) {
      dozor::protocol::Result r;
      r.seq = ++seq;
      r.probe = "probe-" + std::to_string(p);
      r.type = "http";
      r.ts = now + p;
      r.status = (round + p) % 2 ? Status::critical : Status::ok;
      r.summary = "reading";
      rep.results.push_back(r);
    }
    w.health->ingest("a1", rep, now + 20);
    w.health->tick(now + 100);
  }
  return w;
}

World& fleet() {
  static World w("fleet");
  static bool built = false;
  if (built) return w;
  built = true;
  auto& db = w.store->db();
  dozor::collector::sql::Transaction tx(db);
  dozor::collector::sql::Statement ticket(
      db,
      "INSERT INTO tickets (id, key, class, priority, status, summary, "
      "site, agent, probe, rule, opened_at, raised_at, acknowledged_at, "
      "resolved_at, closed_at, deadline) VALUES "
      "(?,?,'emergency',2,'closed','down',?,?,?,'probe-critical',?,?,?,?,?,?)");
  dozor::collector::sql::Statement event(
      db, "INSERT INTO ticket_events (id, ticket, at, event, text) VALUES (?,?,?,?,'')");
  std::int64_t id = 0, event_id = 0;
  for (int s = 0; s < 200; ++s) {
    const std::string site = "site-" + std::to_string(s), agent = "agent-" + std::to_string(s);
    for (int c = 0; c < 200; ++c) {
      const double at = kMonth + (c + 0.5) * kMonthLength / 200;
      w.store->state_change({site, agent, "probe-" + std::to_string(c % 10), at, c % 2 ? 0 : 2});
    }
    for (int t = 0; t < 10; ++t) {
      const double opened = kMonth + (t + 0.5) * kMonthLength / 10;
      const std::string probe = "probe-" + std::to_string(t);
      ticket.bind(1, ++id)
          .bind(2, std::string_view(site + "/" + agent + "/" + probe + "/probe-critical"))
          .bind(3, std::string_view(site))
          .bind(4, std::string_view(agent))
          .bind(5, std::string_view(probe))
          .bind(6, opened)
          .bind(7, opened)
          .bind(8, opened + 300)
          .bind(9, opened + 1800)
          .bind(10, opened + 5400)
          .bind(11, opened + 900)
          .run();
      for (auto [name, dt] :
           {std::pair{"opened", 0}, {"acknowledged", 300}, {"resolved", 1800}, {"closed", 5400}})
        event.bind(1, ++event_id)
            .bind(2, id)
            .bind(3, opened + dt)
            .bind(4, std::string_view(name))
            .run();
    }
  }
  tx.commit();
  return w;
}

ReportRequest november(const std::string& site) {
  return {site, kMonth, kMonth + kMonthLength, 600, {}};
}

void BM_SiteMonth(benchmark::State& state) {
  World& w = site_month();
  const double now = kMonth + kMonthLength + 86400;
  std::size_t incidents = 0;
  for (auto _ : state) {
    auto report = site_report(w.store->db(), w.desk->calendar_of("acme"), november("acme"), now);
    incidents = report["incidents"].size();
    benchmark::DoNotOptimize(report);
  }
  state.counters["incidents"] = static_cast<double>(incidents);
}
BENCHMARK(BM_SiteMonth)->Unit(benchmark::kMillisecond);

void BM_Fleet(benchmark::State& state) {
  World& w = fleet();
  const double now = kMonth + kMonthLength + 86400;
  for (auto _ : state) {
    auto report = fleet_report(
        w.store->db(),
        [&](const std::string& s) -> const ServiceCalendar& { return w.desk->calendar_of(s); },
        november(""), now);
    benchmark::DoNotOptimize(report);
  }
}
BENCHMARK(BM_Fleet)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // The history's size: the fleet's month (200 state changes and 10 tickets a site) and the
  // heavy site-month (10,000 state changes) measured on their stores.
  const double fleet_site_month = static_cast<double>(fleet().bytes()) / 200;
  const double heavy_site_month = static_cast<double>(site_month().bytes());
  std::printf(
      "store per site-month: %.1f KiB (200 state changes, 10 tickets); %.1f MiB (10,000 "
      "state changes, %zu tickets)\n",
      fleet_site_month / 1024, heavy_site_month / 1048576,
      site_month().desk->tickets({{}, "acme", 100000}).size());
  std::printf("a year for 200 sites: %.0f MiB at the fleet's rate\n",
              fleet_site_month * 200 * 12 / 1048576);
  return 0;
}
