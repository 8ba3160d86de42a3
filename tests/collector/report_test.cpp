#include "dozor/collector/report.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "dozor/collector/desk.h"
#include "dozor/collector/store.h"
#include "dozor/protocol/units.h"
#include "test_store.h"

namespace dozor::collector {
namespace {

using nlohmann::json;
using protocol::Status;
namespace fs = std::filesystem;

double at(const char* rfc3339) { return *parse_timestamp(rfc3339); }

// October 2026 at a client in Kyiv served daily 08:00-22:00 local time, replayed through the
// collector's real health, desk and SQLite store with the clock passed in. The expected figures
// are worked out by hand in the comments. Kyiv is UTC+3 until 2026-10-25 04:00 local (01:00Z),
// then UTC+2: the night of the 24th has an hour more.
// Both engines: a SQLite file, and a database on a real PostgreSQL.
class ReportTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    where_ = std::make_unique<testing::TestStore>(GetParam());
    std::string error;
    auto windows = parse_service_hours("daily 08:00-22:00", error);
    config.calendars.emplace("office",
                             *ServiceCalendar::weekly("Europe/Kyiv", *windows, {}, error));
    config.default_calendar = "office";
    store = std::make_unique<Store>(where_->options());
    health = std::make_unique<Health>(metrics, store.get(), at("2026-09-30T00:00:00Z"));
    desk = std::make_unique<Desk>(config, metrics, store->db());
    health->set_desk(desk.get());
  }
  void TearDown() override {
    desk.reset();
    health.reset();
    store.reset();
    where_.reset();
  }

  void send(Status status, double now) {
    protocol::Report rep;
    rep.agent = {"0.1.0", "erp.lan", "acme", now - 3600, heartbeat, "spool"};
    protocol::Result r;
    r.seq = ++seq_;
    r.probe = "erp";
    r.type = "http";
    r.ts = now;
    r.status = status;
    r.summary = std::string(protocol::to_string(status));
    rep.results.push_back(r);
    health->ingest("a1", rep, now);
  }
  // An outage from `down` to `up`; ticks every 30 s until a minute after (recover_for: 1m),
  // and once more past reopen_within (1h), when the resolved ticket closes.
  void outage(const char* down, const char* up) {
    send(Status::critical, at(down));
    send(Status::ok, at(up));
    for (double t = at(up); t <= at(up) + 60; t += 30) health->tick(t);
    health->tick(at(up) + 3700);
  }
  std::uint64_t last_ticket() { return desk->tickets({{}, "acme", 1}).at(0).id; }
  void ack(const char* when) {
    ASSERT_EQ(desk->acknowledge(last_ticket(), "oksana", "on it", at(when)), Desk::Change::done);
  }

  DeskConfig config;
  Metrics metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<Health> health;
  std::unique_ptr<Desk> desk;
  std::uint64_t seq_ = 0;
  double heartbeat = 40 * 86400.0;  // the agent never falls silent unless a test wants it to
  std::unique_ptr<testing::TestStore> where_;
};

TEST_P(ReportTest, AMonthInServiceHoursAndAroundTheClock) {
  send(Status::ok, at("2026-09-30T20:00:00Z"));  // known to be fine before the month begins

  // 1. Oct 5, 10:00-10:30 local, in service hours; acknowledged after 5 min: kept.
  send(Status::critical, at("2026-10-05T07:00:00Z"));
  ack("2026-10-05T07:05:00Z");
  outage("2026-10-05T07:00:00Z", "2026-10-05T07:30:00Z");
  // 2. Oct 10, 23:00 - Oct 11, 01:00 local, at night: over before the 08:15 deadline, unseen.
  outage("2026-10-10T20:00:00Z", "2026-10-10T22:00:00Z");
  // 3. Oct 15, 21:50 local: 10 min of service left that day, so due at 08:05 on the 16th;
  //    acknowledged at 08:20 (missed by 15 min; 30 min of service time to react), up at 08:30.
  send(Status::critical, at("2026-10-15T18:50:00Z"));
  ack("2026-10-16T05:20:00Z");
  outage("2026-10-15T18:50:00Z", "2026-10-16T05:30:00Z");
  // 4. Across the change of time: Oct 24, 21:00 EEST - Oct 25, 09:00 EET is 13 hours, 2 of
  //    them in service hours; acknowledged after 10 min.
  send(Status::critical, at("2026-10-24T18:00:00Z"));
  ack("2026-10-24T18:10:00Z");
  outage("2026-10-24T18:00:00Z", "2026-10-25T07:00:00Z");
  // 5. Planned work Oct 20, 12:00-14:00 local: the hour down within it is not an outage.
  Silence work;
  work.site = "acme";
  work.starts_at = at("2026-10-20T09:00:00Z");
  work.ends_at = at("2026-10-20T11:00:00Z");
  work.comment = "ERP update";
  desk->add_silence(work, at("2026-10-19T12:00:00Z"));
  outage("2026-10-20T09:30:00Z", "2026-10-20T10:30:00Z");
  // 6. Oct 28 from 15:00 EET: flapping, 4 minutes down in all; resolved and reopened once.
  send(Status::critical, at("2026-10-28T13:00:00Z"));
  send(Status::ok, at("2026-10-28T13:01:00Z"));
  send(Status::critical, at("2026-10-28T13:02:00Z"));
  ack("2026-10-28T13:02:30Z");
  send(Status::ok, at("2026-10-28T13:03:00Z"));
  health->tick(at("2026-10-28T13:04:10Z"));            // resolved: ok for over a minute
  send(Status::critical, at("2026-10-28T13:05:00Z"));  // reopened
  send(Status::ok, at("2026-10-28T13:06:00Z"));
  send(Status::critical, at("2026-10-28T13:07:00Z"));
  send(Status::ok, at("2026-10-28T13:08:00Z"));
  for (double t = at("2026-10-28T13:08:00Z"); t < at("2026-10-28T15:00:00Z"); t += 30)
    health->tick(t);
  health->tick(at("2026-10-28T16:00:00Z"));
  send(Status::ok, at("2026-11-01T12:00:00Z"));

  std::string error;
  auto month = month_in_zone("2026-10", "Europe/Kyiv", error);
  ASSERT_TRUE(month) << error;
  EXPECT_EQ(month->first, at("2026-09-30T21:00:00Z"));
  EXPECT_EQ(month->second, at("2026-10-31T22:00:00Z"));
  ReportRequest request{"acme", month->first, month->second, 600, {}};
  const double now = at("2026-11-02T09:00:00Z");
  const json report = site_report(store->db(), desk->calendar_of("acme"), request, now);

  // 31 days and the hour the clocks went back: 2,682,000 s; service hours 31 x 14 h.
  // Down around the clock: 1800 + 7200 + 38400 + 46800 + 240 = 94,440 s; in service hours:
  // 1800 + 0 + (600 + 1800) + (3600 + 3600) + 240 = 11,640 s; planned work 7200 s of both.
  const json& all = report["site"]["around_the_clock"];
  EXPECT_EQ(all["down"], 94440);
  EXPECT_EQ(all["silenced"], 7200);
  EXPECT_EQ(all["ok"], 2682000 - 94440 - 7200);
  EXPECT_EQ(all["degraded"], 0);
  EXPECT_EQ(all["no_data"], 0);
  const json& service = report["site"]["service_hours"];
  EXPECT_EQ(service["down"], 11640);
  EXPECT_EQ(service["silenced"], 7200);
  EXPECT_EQ(service["ok"], 31 * 14 * 3600 - 11640 - 7200);
  EXPECT_DOUBLE_EQ(service["availability"].get<double>(),
                   (1562400.0 - 11640 - 7200) / (1562400.0 - 7200));
  ASSERT_EQ(report["probes"].size(), 1u);
  EXPECT_EQ(report["probes"][0]["service_hours"], service);
  ASSERT_EQ(report["silences"].size(), 1u);
  EXPECT_EQ(report["silences"][0]["comment"], "ERP update");

  const json& inc = report["incidents"];
  ASSERT_EQ(inc.size(), 5u) << inc.dump(2);  // the silenced hour opened none
  auto check = [&](std::size_t i, const char* verdict, json react, double restore, bool unseen) {
    SCOPED_TRACE(inc[i].dump());
    EXPECT_EQ(inc[i]["deadline"], verdict);
    EXPECT_EQ(inc[i].value("react_service_seconds", json()), react);
    EXPECT_EQ(inc[i]["restore_seconds"], restore);
    EXPECT_EQ(inc[i]["unnoticed"], unseen);
    EXPECT_EQ(inc[i]["detect_seconds"], 0);
    EXPECT_EQ(inc[i]["resolved_by"], "itself");
  };
  check(0, "kept", 300, 1800, false);
  check(1, "not_needed", json(), 7200, true);
  check(2, "missed", 1800, 38400, false);
  EXPECT_EQ(inc[2]["missed_by_service_seconds"], 900);
  EXPECT_EQ(inc[2]["deadline_at"], "2026-10-16T05:05:00.000Z");
  check(3, "kept", 600, 46800, false);
  check(4, "kept", 150, 480, true);  // from 15:00 until it stayed up at 15:08
  EXPECT_EQ(inc[4]["reopened"], 1);
  EXPECT_EQ(inc[4]["flapping"], true);

  const json& totals = report["totals"];
  EXPECT_EQ(totals["incidents"], 5);
  EXPECT_EQ(totals["by_class"]["emergency/P2"], 5);
  EXPECT_EQ(totals["deadlines_kept"], 3);
  EXPECT_EQ(totals["deadlines_missed"], 1);
  EXPECT_DOUBLE_EQ(totals["deadlines_kept_share"].get<double>(), 0.75);
  EXPECT_EQ(totals["react_median_service_seconds"], 450);  // 150 300 | 600 1800
  EXPECT_EQ(totals["react_worst_service_seconds"], 1800);
  EXPECT_EQ(totals["restore_median_seconds"], 7200);
  EXPECT_EQ(totals["restore_worst_seconds"], 46800);
  EXPECT_EQ(totals["unnoticed"], 2);

  // A past month reads the same when asked again later.
  EXPECT_EQ(
      site_report(store->db(), desk->calendar_of("acme"), request, at("2026-12-01T09:00:00Z")),
      report);
  const std::string csv = incidents_csv(report);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 6);
  EXPECT_EQ(csv.substr(0, 19), "id,class,priority,a");
}

TEST_P(ReportTest, ASilentAgentIsDownFromItsSilenceUntilItReportsAgain) {
  heartbeat = 60;  // silent 3 minutes after its last report
  send(Status::ok, at("2026-10-05T06:00:00Z"));
  for (double t = at("2026-10-05T06:00:00Z"); t < at("2026-10-05T08:00:00Z"); t += 60)
    health->tick(t);
  send(Status::ok, at("2026-10-05T08:00:00Z"));  // back after 2 hours
  health->tick(at("2026-10-05T08:00:30Z"));
  ReportRequest request{"acme", at("2026-10-05T00:00:00Z"), at("2026-10-06T00:00:00Z"), 600, {}};
  const json r =
      site_report(store->db(), desk->calendar_of("acme"), request, at("2026-10-07T00:00:00Z"));
  // Down from 06:03 (three heartbeats) until 08:00 UTC, 09:03-11:00 in Kyiv: all in hours.
  EXPECT_EQ(r["site"]["around_the_clock"]["down"], 7020);
  EXPECT_EQ(r["site"]["service_hours"]["down"], 7020);
  EXPECT_EQ(r["site"]["around_the_clock"]["no_data"], 6 * 3600);  // before its first report
  ASSERT_EQ(r["incidents"].size(), 1u);
  EXPECT_EQ(r["incidents"][0]["rule"], "agent-silent");
  EXPECT_EQ(r["incidents"][0]["started_at"], "2026-10-05T06:03:00.000Z");
  EXPECT_EQ(r["incidents"][0]["restore_seconds"], 7020);
}

TEST_P(ReportTest, TheFleetViewRanksTheWorstSiteFirst) {
  send(Status::ok, at("2026-10-01T06:00:00Z"));
  outage("2026-10-05T07:00:00Z", "2026-10-05T07:30:00Z");
  std::string error;
  auto month = month_in_zone("2026-10", "Europe/Kyiv", error);
  ReportRequest request{"", month->first, month->second, 600, {}};
  const json fleet = fleet_report(
      store->db(),
      [&](const std::string& site) -> const ServiceCalendar& { return desk->calendar_of(site); },
      request, at("2026-11-02T00:00:00Z"));
  ASSERT_EQ(fleet["sites"].size(), 1u);
  EXPECT_EQ(fleet["sites"][0]["site"], "acme");
  EXPECT_EQ(fleet["sites"][0]["incidents"], 1);
  EXPECT_EQ(fleet["sites"][0]["down_service_seconds"], 1800);
  EXPECT_EQ(fleet["probes_failing_most"][0]["probe"], "a1/erp");
}

TEST(MonthInZone, RefusesWhatIsNotAMonth) {
  std::string error;
  EXPECT_FALSE(month_in_zone("2026-13", "UTC", error));
  EXPECT_FALSE(month_in_zone("2026/11", "UTC", error));
  EXPECT_FALSE(month_in_zone("2026-11", "Mars/Olympus", error));
  EXPECT_EQ(error, "unknown time zone Mars/Olympus");
}

// History bounds: a year of 200 sites, each month 200 state changes and 10 tickets with their
// events (a busy fleet: a failure every 3 days per probe), stays under 64 MiB (SQLite; 128 MiB on
// PostgreSQL), and what is older than `report.keep` goes.
TEST_P(ReportTest, AYearOfHistoryFor200SitesStaysBounded) {
  const double start = at("2026-01-01T00:00:00Z"), month = 30 * 86400.0;
  auto& db = store->db();
  {
    sql::Transaction tx(db);
    sql::Statement ticket(db,
                          "INSERT INTO tickets (id, key, class, priority, status, summary, site, "
                          "agent, probe, rule, opened_at, closed_at) VALUES "
                          "(?,?,'emergency',2,'closed','erp down: HTTP 503',?,?,?,"
                          "'probe-critical',?,?)");
    sql::Statement event(
        db, "INSERT INTO ticket_events (id, ticket, at, event, text) VALUES (?,?,?,?,?)");
    std::int64_t id = 0, event_id = 0;
    for (int m = 0; m < 12; ++m)
      for (int s = 0; s < 200; ++s) {
        const std::string site = "site-" + std::to_string(s), agent = "agent-" + std::to_string(s);
        for (int c = 0; c < 200; ++c)
          store->state_change({site, agent, "probe-" + std::to_string(c % 10),
                               start + m * month + c * month / 200, c % 2 ? 0 : 2});
        for (int t = 0; t < 10; ++t) {
          const double opened = start + m * month + t * month / 10;
          ticket.bind(1, ++id)
              .bind(2, std::string_view(site + "/" + agent + "/probe-" + std::to_string(t)))
              .bind(3, std::string_view(site))
              .bind(4, std::string_view(agent))
              .bind(5, std::string_view("probe-" + std::to_string(t)))
              .bind(6, opened)
              .bind(7, opened + 5400)
              .run();
          for (const char* name : {"opened", "acknowledged", "resolved", "closed"})
            event.bind(1, ++event_id)
                .bind(2, id)
                .bind(3, opened)
                .bind(4, std::string_view(name))
                .bind(5, std::string_view("erp down: HTTP 503"))
                .run();
        }
      }
    tx.commit();
  }
  std::uint64_t bytes = 0;
  if (GetParam() == "sqlite") {
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    bytes = fs::file_size(where_->path());
  } else {
    sql::Statement size(db, "SELECT pg_database_size(current_database())");
    ASSERT_TRUE(size.step());
    bytes = static_cast<std::uint64_t>(size.integer(0));
  }
  // PostgreSQL keeps a 24-byte header and a 4-byte pointer a row, and an empty database is 7.5 MiB.
  EXPECT_LT(bytes, (GetParam() == "sqlite" ? 64u : 128u) << 20) << bytes;
  std::printf("a year of history for 200 sites on %s: %.1f MiB\n", GetParam().c_str(),
              static_cast<double>(bytes) / 1048576.0);

  // 400 days after the first month ended, that month goes, and only it.
  const double later = start + month + 400 * 86400.0;
  EXPECT_EQ(store->prune_history(later - 400 * 86400.0), 200u * 200);
  desk->prune(later - 400 * 86400.0);
  sql::Statement left(db, "SELECT COUNT(*) FROM tickets");
  ASSERT_TRUE(left.step());
  EXPECT_EQ(left.integer(0), 11 * 200 * 10);
}

INSTANTIATE_TEST_SUITE_P(Engines, ReportTest, ::testing::Values("sqlite", "postgres"),
                         testing::engine_name);

}  // namespace
}  // namespace dozor::collector
