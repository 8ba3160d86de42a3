#include "dozor/collector/desk.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "dozor/collector/store.h"
#include "dozor/protocol/units.h"
#include "test_store.h"

namespace dozor::collector {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using protocol::Status;

// 2026-11-23 (a Monday) 12:00 UTC = 14:00 in Kyiv.
constexpr double kNoon = 1795435200;

// A collector's health and desk over a real store: a SQLite file, and a database on a real
// PostgreSQL.
class DeskTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    where_ = std::make_unique<testing::TestStore>(GetParam());
    NotifierConfig hook, mail;
    hook.name = "hook";
    hook.type = "webhook";
    mail.name = "mail";
    mail.type = "smtp";
    mail.events = {"opened"};
    config.notifiers = {hook, mail};
  }
  void TearDown() override {
    desk.reset();
    health.reset();
    store.reset();
    where_.reset();
  }

  // (Re)starts the collector's state from the store, as a restart does.
  void start(double now = kNoon) {
    desk.reset();
    health.reset();
    store.reset();
    metrics = std::make_unique<Metrics>();
    store = std::make_unique<Store>(where_->options());
    health = std::make_unique<Health>(*metrics, store.get(), now);
    desk = std::make_unique<Desk>(config, *metrics, store->db());
    health->set_desk(desk.get());
  }

  void send(const std::string& agent, const std::string& probe, Status status, double now,
            std::vector<protocol::Metric> metrics_ = {}, const std::string& site = "acme",
            const std::string& type = "tcp") {
    protocol::Report rep;
    rep.agent = {"0.1.0", agent + ".lan", site, kNoon - 3600, heartbeat, "spool-" + agent};
    protocol::Result r;
    r.seq = ++seq_[agent];
    r.probe = probe;
    r.type = type;
    r.ts = now;
    r.status = status;
    r.summary = std::string(protocol::to_string(status)) + " reading";
    r.metrics = std::move(metrics_);
    rep.results.push_back(r);
    health->ingest(agent, rep, now);
  }

  std::vector<Ticket> active(const std::string& site = "") { return tickets("active", site); }
  std::vector<Ticket> tickets(const std::string& status, const std::string& site = "") {
    Desk::Query q;
    q.statuses = {status};
    q.site = site;
    return desk->tickets(q);
  }
  std::vector<Ticket> all() { return desk->tickets({}); }
  std::vector<std::string> event_names(std::uint64_t id) {
    std::vector<std::string> out;
    for (const auto& e : desk->events(id)) out.push_back(e["event"]);
    return out;
  }
  std::size_t outbox(const std::string& notifier) {
    return desk->due(notifier, 1e12, 100000).size();
  }

  DeskConfig config;
  double heartbeat = 3600;  // agents stay up unless a test wants them silent
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<Health> health;
  std::unique_ptr<Desk> desk;

 private:
  std::unique_ptr<testing::TestStore> where_;
  std::map<std::string, std::uint64_t> seq_;
};

TEST_P(DeskTest, CriticalOpensOneEmergencyThatResolvesAndReopens) {
  start();
  send("a1", "erp-port", Status::critical, kNoon);
  auto open = active();
  ASSERT_EQ(open.size(), 1u);
  const Ticket t = open[0];
  EXPECT_EQ(t.ticket_class, "emergency");
  EXPECT_EQ(t.priority, 2);
  EXPECT_EQ(t.key, "acme/a1/erp-port/probe-critical");
  EXPECT_EQ(t.summary, "a1 erp-port critical: critical reading");
  EXPECT_NE(t.details.find("agent a1 (a1.lan)"), std::string::npos) << t.details;
  EXPECT_DOUBLE_EQ(t.deadline, kNoon + 15 * 60);  // 24x7, emergency 15m

  for (int i = 1; i <= 5; ++i) send("a1", "erp-port", Status::critical, kNoon + i);
  EXPECT_EQ(all().size(), 1u);

  // A recovery must hold for recover_for (1m) before the ticket resolves.
  send("a1", "erp-port", Status::ok, kNoon + 10);
  health->tick(kNoon + 30);
  EXPECT_EQ(desk->ticket(t.id)->status, "open");
  health->tick(kNoon + 71);
  EXPECT_EQ(desk->ticket(t.id)->status, "resolved");

  // Failing again soon after reopens the same ticket.
  send("a1", "erp-port", Status::critical, kNoon + 100);
  ASSERT_EQ(all().size(), 1u);
  auto again = *desk->ticket(t.id);
  EXPECT_EQ(again.status, "open");
  EXPECT_EQ(again.occurrences, 2);
  EXPECT_EQ(event_names(t.id), (std::vector<std::string>{"opened", "resolved", "reopened"}));
  // Every event went to the webhook; only `opened` to the mail notifier.
  EXPECT_EQ(outbox("hook"), 3u);
  EXPECT_EQ(outbox("mail"), 1u);

  // Long resolved: it closes, and the next failure is a new ticket.
  send("a1", "erp-port", Status::ok, kNoon + 200);
  health->tick(kNoon + 300);
  health->tick(kNoon + 300 + 3600);
  EXPECT_EQ(desk->ticket(t.id)->status, "closed");
  send("a1", "erp-port", Status::critical, kNoon + 4000);
  EXPECT_EQ(all().size(), 2u);
  EXPECT_NE(metrics->scrape().find("dozor_ticket_events_total{event=\"reopened\"} 1"),
            std::string::npos);
}

TEST_P(DeskTest, AForgetTheStoreRefusesChangesNothing) {
  start();
  send("a1", "erp-port", Status::critical, kNoon);
  const Ticket t = active().at(0);
  // The ticket's write fails (as on a full disk), after the desk has let go of the incident.
  auto& db = store->db();
  if (db.engine() == "sqlite") {
    for (const char* op : {"INSERT", "UPDATE"})
      db.exec(std::string("CREATE TEMP TRIGGER full_") + op + " BEFORE " + op +
              " ON tickets BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
  } else {
    db.exec(
        "CREATE FUNCTION full_disk() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
        "'could not extend file: No space left on device'; END $$ LANGUAGE plpgsql;"
        "CREATE TRIGGER full_disk BEFORE INSERT OR UPDATE ON tickets FOR EACH ROW EXECUTE "
        "FUNCTION full_disk()");
  }
  EXPECT_ANY_THROW(health->forget("a1", kNoon + 1));
  db.exec(db.engine() == "sqlite" ? "DROP TRIGGER full_INSERT; DROP TRIGGER full_UPDATE"
                                  : "DROP TRIGGER full_disk ON tickets");
  // The agent and its incident are still there: its recovery resolves the ticket.
  ASSERT_TRUE(health->agent("a1", kNoon + 2));
  send("a1", "erp-port", Status::ok, kNoon + 2);
  health->tick(kNoon + 63);
  EXPECT_EQ(desk->ticket(t.id)->status, "resolved");
}

// The store gone altogether, as a database that went down: the write fails, and so does the reload
// of what memory had run ahead with. Nothing acts on that memory: when the store answers again
// the desk loads before it acts, and the incident is still the one ticket.
TEST_P(DeskTest, AStoreGoneForWritesAndReadsLosesNothingWhenItComesBack) {
  start();
  send("a1", "erp-port", Status::critical, kNoon);
  const Ticket t = active().at(0);
  auto& db = store->db();
  db.exec(
      "ALTER TABLE tickets RENAME TO tickets_away; ALTER TABLE incidents RENAME TO "
      "incidents_away");
  EXPECT_ANY_THROW(health->forget("a1", kNoon + 1));
  // The forget's changes were put back in memory rather than the store read again: a tick with
  // nothing to write needs no store.
  EXPECT_NO_THROW(health->tick(kNoon + 2));
  db.exec(
      "ALTER TABLE tickets_away RENAME TO tickets; ALTER TABLE incidents_away RENAME TO "
      "incidents");
  send("a1", "erp-port", Status::ok, kNoon + 3);
  health->tick(kNoon + 64);
  EXPECT_EQ(desk->ticket(t.id)->status, "resolved");
  EXPECT_EQ(all().size(), 1u);
}

// A collector on its own store, whose every `fail_every`-th transaction the store refuses at the
// last moment (the desk's fence throws, as a database gone or a lease lost would make it).
struct Refusing {
  Refusing(const std::string& engine, const std::string& name, const DeskConfig& config,
           int fail_every)
      : where(engine, name),
        store(where.options()),
        health(metrics, &store, kNoon),
        desk(config, metrics, store.db()) {
    health.set_desk(&desk);
    desk.set_fence([this, fail_every] {
      if (fail_every && ++fenced % fail_every == 0) throw sql::Error("refused by the test");
    });
  }
  // Until it is stored, as an agent sends a report again and the next tick runs the timers again.
  template <class F>
  void retry(F f) {
    for (int i = 0;; ++i) try {
        f();
        return;
      } catch (const sql::Error&) {
        ++refused;
        ASSERT_LT(i, 3);
        memory_is_the_store();
      }
  }
  // What the desk holds is what a desk reading the store holds.
  void memory_is_the_store() {
    Metrics other;
    Desk fresh(desk.config(), other, store.db());
    auto shown = [](Desk& d) {
      std::vector<json> out;
      for (const auto& [t, countdown] : d.active(kNoon)) out.push_back(to_json(t));
      return out;
    };
    EXPECT_EQ(shown(desk), shown(fresh));
  }
  void send(const std::string& agent, const std::string& probe, Status status, double now) {
    protocol::Report rep;
    rep.agent = {"0.1.0", agent + ".lan",  agent == "b1" ? "beta" : "acme", kNoon - 3600,
                 10,      "spool-" + agent};
    protocol::Result r;
    r.seq = ++seq[agent];
    r.probe = probe;
    r.type = "tcp";
    r.ts = now;
    r.status = status;
    r.summary = std::string(protocol::to_string(status)) + " reading";
    rep.results.push_back(r);
    retry([&] { health.ingest(agent, rep, now); });
  }
  // Every ticket with its events, the notifications queued and the events counted on /metrics.
  json outcome() {
    json out = json::array();
    for (const auto& t : desk.tickets({})) {
      json events = json::array();
      for (const auto& e : desk.events(t.id)) events.push_back(e["event"]);
      out.push_back({to_json(t), events});
    }
    std::string counted;
    std::istringstream lines(metrics.scrape());
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("dozor_ticket_events_total{", 0) == 0) counted += line + "\n";
    return {out, desk.due("hook", 1e12, 100000).size(), counted};
  }

  testing::TestStore where;
  Metrics metrics;
  Store store;
  Health health;
  Desk desk;
  std::map<std::string, std::uint64_t> seq;
  int fenced = 0, refused = 0;
};

TEST_P(DeskTest, ATransactionTheStoreRefusesLeavesMemoryAsTheStoreHasItAndLosesNothing) {
  config.reopen_within = 5min;
  Refusing control(GetParam(), "control_", config, 0), refusing(GetParam(), "", config, 3);
  // The same days at the sites for both: failures, recoveries, a site-wide outage, an agent
  // falling silent, tickets acknowledged and closed by hand, escalations, reopenings.
  for (Refusing* run : {&control, &refusing}) {
    std::mt19937 random(7);
    double now = kNoon;
    for (int step = 0; step < 80; ++step) {
      now += 20;
      for (const std::string agent : {"a1", "a2", "a3", "b1"}) {
        if (agent == "a3" && step >= 40 && step < 60) continue;  // silent for a while
        for (const std::string probe : {"erp-port", "web", "db"}) {
          const auto roll = random() % 100;
          const Status s = step % 25 < 3 ? Status::critical  // the whole site at once
                           : roll < 15   ? Status::critical
                           : roll < 20   ? Status::warning
                                         : Status::ok;
          run->send(agent, probe, s, now);
        }
      }
      run->retry([&] { run->health.tick(now); });
      auto open = run->desk.active(now);
      if (step % 7 == 3 && !open.empty())
        run->retry([&] { run->desk.acknowledge(open.front().first.id, "ira", "", now); });
      if (step % 11 == 5 && !open.empty())
        run->retry([&] { run->desk.close(open.back().first.id, "ira", "done", now); });
    }
  }
  EXPECT_EQ(control.refused, 0);
  EXPECT_GT(refusing.refused, 100);
  refusing.memory_is_the_store();
  const json expected = control.outcome();
  EXPECT_GT(expected[0].size(), 10u);
  EXPECT_EQ(refusing.outcome(), expected);
}

TEST_P(DeskTest, WarningHeldForTenMinutesOpensATask) {
  start();
  send("a1", "disk-root", Status::warning, kNoon);
  health->tick(kNoon + 300);
  EXPECT_TRUE(active().empty());
  send("a1", "disk-root", Status::warning, kNoon + 400);
  health->tick(kNoon + 601);
  auto open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].ticket_class, "task");
  EXPECT_EQ(open[0].priority, 3);
  EXPECT_DOUBLE_EQ(open[0].deadline, kNoon + 601 + 8 * 3600);
  // A warning that clears before its time opens nothing.
  send("a1", "web", Status::warning, kNoon);
  send("a1", "web", Status::ok, kNoon + 500);
  health->tick(kNoon + 700);
  EXPECT_EQ(active().size(), 1u);
}

TEST_P(DeskTest, FlappingMakesOneTicketThatWaitsForACalmWindow) {
  config.rules = default_rules();
  config.rules[0].recover = 0ms;
  start();
  double t = kNoon;
  for (int i = 0; i < 10; ++i) {
    send("a1", "web", Status::critical, t += 5);
    health->tick(t);
    send("a1", "web", Status::ok, t += 5);
    health->tick(t);
  }
  auto tickets = all();
  ASSERT_EQ(tickets.size(), 1u);
  EXPECT_TRUE(tickets[0].flapping);
  // Flapping: resolved only after the whole flap window (10m) without failure.
  EXPECT_EQ(tickets[0].status, "open");
  EXPECT_LE(tickets[0].occurrences, 3);  // reopened at most until it was seen to flap
  health->tick(t + 300);
  EXPECT_EQ(desk->ticket(tickets[0].id)->status, "open");
  health->tick(t + 601);
  EXPECT_EQ(desk->ticket(tickets[0].id)->status, "resolved");
}

TEST_P(DeskTest, RestartKeepsExactlyOneTicketPerIncident) {
  start();
  send("a1", "erp-port", Status::critical, kNoon);
  send("a1", "web", Status::warning, kNoon);
  const auto id = active().at(0).id;
  start(kNoon + 5);  // the collector restarts
  send("a1", "erp-port", Status::critical, kNoon + 10);
  health->tick(kNoon + 11);
  ASSERT_EQ(all().size(), 1u);
  EXPECT_EQ(all()[0].id, id);
  // The warning's hold went on across the restart.
  health->tick(kNoon + 601);
  EXPECT_EQ(active().size(), 2u);
  // And recovery still resolves the ticket opened before the restart.
  send("a1", "erp-port", Status::ok, kNoon + 700);
  health->tick(kNoon + 761);
  EXPECT_EQ(desk->ticket(id)->status, "resolved");
  // The store itself refuses a second active ticket for a key.
  EXPECT_THROW(store->db().exec("INSERT INTO tickets(id, key, status) VALUES "
                                "(999, 'acme/a1/erp-port/probe-critical', 'open')"),
               sql::Error);
}

TEST_P(DeskTest, SilentAgentOpensOneEmergencyListingItsProbes) {
  heartbeat = 5;
  start();
  send("a1", "erp-port", Status::ok, kNoon);
  send("a1", "web", Status::ok, kNoon);
  health->tick(kNoon + 14);  // 3 heartbeats of 5 s: still up
  EXPECT_TRUE(active().empty());
  health->tick(kNoon + 15.3);
  auto open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].rule, "agent-silent");
  EXPECT_EQ(open[0].priority, 1);
  EXPECT_EQ(open[0].probes, (std::vector<std::string>{"a1/erp-port", "a1/web"}));
  // Its backlog arriving with an old failure joins the silent ticket rather than a new one.
  send("a1", "web", Status::critical, kNoon + 40);
  ASSERT_EQ(all().size(), 1u);
  send("a1", "web", Status::ok, kNoon + 41);
  send("a1", "erp-port", Status::ok, kNoon + 100);
  health->tick(kNoon + 102);
  EXPECT_EQ(all()[0].status, "resolved");
}

TEST_P(DeskTest, SiteOutageIsOneTicketForTheSite) {
  start();
  for (const char* p : {"erp", "db", "web", "backup", "share"}) send("a1", p, Status::ok, kNoon);
  send("a2", "meter", Status::ok, kNoon);
  send("a1", "erp", Status::critical, kNoon + 1);
  send("a1", "db", Status::critical, kNoon + 2);
  EXPECT_EQ(active().size(), 2u);  // two of six: no outage yet
  send("a1", "web", Status::critical, kNoon + 3);
  send("a1", "backup", Status::critical, kNoon + 4);
  auto open = active();
  ASSERT_EQ(open.size(), 1u) << open[0].summary;
  const Ticket site = open[0];
  EXPECT_EQ(site.rule, "site-outage");
  EXPECT_EQ(site.priority, 1);
  EXPECT_EQ(site.probes, (std::vector<std::string>{"a1/backup", "a1/db", "a1/erp", "a1/web"}));
  // The three opened moments before (3 of 6 is not more than half) were folded into it.
  auto closed = tickets("closed");
  ASSERT_EQ(closed.size(), 3u);
  EXPECT_EQ(desk->events(closed[0].id).back()["text"],
            "merged into site-wide ticket #" + std::to_string(site.id));
  // Recovering probe by probe: the ticket resolves when the last one is back.
  for (const char* p : {"erp", "db", "web"}) send("a1", p, Status::ok, kNoon + 10);
  health->tick(kNoon + 80);
  EXPECT_EQ(desk->ticket(site.id)->status, "open");
  EXPECT_EQ(desk->ticket(site.id)->probes, std::vector<std::string>{"a1/backup"});
  send("a1", "backup", Status::ok, kNoon + 90);
  health->tick(kNoon + 151);
  EXPECT_EQ(desk->ticket(site.id)->status, "resolved");
  // The same outage again within reopen_within: the site's ticket reopens.
  for (const char* p : {"erp", "db", "web", "backup"}) send("a1", p, Status::critical, kNoon + 200);
  open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].id, site.id);
  EXPECT_EQ(open[0].occurrences, 2);
  EXPECT_EQ(open[0].probes, (std::vector<std::string>{"a1/backup", "a1/db", "a1/erp", "a1/web"}));
}

// Six agents, each the only one of its site, that report at `at` + i * `apart` (i from 0).
class MassSilenceTest : public DeskTest {
 protected:
  void SetUp() override {
    DeskTest::SetUp();
    heartbeat = 5;  // silent 15 s after its last report
  }
  static std::string agent(int i) { return "a" + std::to_string(i); }
  void report(int i, double now, Status status = Status::ok) {
    send(agent(i), "web", status, now, {}, "site-" + std::to_string(i));
  }
  void report_all(double at, double apart = 0) {
    for (int i = 1; i <= 6; ++i) report(i, at + (i - 1) * apart);
  }
  void tick_until(double from, double to) {
    for (double t = from; t <= to; t += 0.25) health->tick(t);
  }
  std::vector<std::string> rules_of(const std::vector<Ticket>& ts) {
    std::vector<std::string> out;
    for (const auto& t : ts) out.push_back(t.rule);
    return out;
  }
};

TEST_P(MassSilenceTest, MostAgentsFallingSilentAreOneTicketAboutTheCollector) {
  start();
  report_all(kNoon, 2);  // silent from kNoon + 15 to kNoon + 25, 2 s apart
  tick_until(kNoon + 14, kNoon + 30);
  auto open = active();
  ASSERT_EQ(open.size(), 1u) << ::testing::PrintToString(rules_of(open));
  const Ticket mass = open[0];
  EXPECT_EQ(mass.key, "*/*/*/collector-unreachable");
  EXPECT_EQ(mass.rule, "collector-unreachable");
  EXPECT_EQ((std::vector<std::string>{mass.ticket_class, mass.site, mass.agent, mass.probe}),
            (std::vector<std::string>{"emergency", "*", "*", "*"}));
  EXPECT_EQ(mass.priority, 1);
  EXPECT_EQ(mass.summary,
            "5 of 6 agents fell silent within 1m: the collector's network or the collector itself");
  EXPECT_NE(mass.details.find("a3 silent: no report since"), std::string::npos) << mass.details;
  EXPECT_EQ(mass.probes,
            (std::vector<std::string>{"a1/*", "a2/*", "a3/*", "a4/*", "a5/*", "a6/*"}));
  EXPECT_EQ(event_names(mass.id).front(), "opened");
  // The four opened before the fifth agent made it most of them were folded into it.
  auto closed = tickets("closed");
  ASSERT_EQ(closed.size(), 4u);
  for (const auto& t : closed) {
    EXPECT_EQ(t.rule, "agent-silent");
    EXPECT_EQ(desk->events(t.id).back()["text"],
              "merged into collector-unreachable ticket #" + std::to_string(mass.id));
  }

  // A silent agent's backlog with a failure joins the collector's ticket, not its site's.
  report(1, kNoon + 40, Status::critical);
  EXPECT_EQ(active().size(), 1u);
  EXPECT_NE(std::find(desk->ticket(mass.id)->probes.begin(), desk->ticket(mass.id)->probes.end(),
                      "a1/web"),
            desk->ticket(mass.id)->probes.end());
  report(1, kNoon + 41);

  // Resolved when the last agent reports again (and a1's probe held its recovery).
  report_all(kNoon + 100);
  health->tick(kNoon + 100.5);
  EXPECT_EQ(desk->ticket(mass.id)->status, "open");  // a1/web: recover_for 1m from kNoon + 41
  health->tick(kNoon + 102);
  EXPECT_EQ(desk->ticket(mass.id)->status, "resolved");
  EXPECT_TRUE(active().empty());

  // Cut off again within reopen_within, all in the same tick this time: the same ticket reopens,
  // and no agent opens its own first.
  tick_until(kNoon + 114, kNoon + 117);
  open = active();
  ASSERT_EQ(open.size(), 1u) << ::testing::PrintToString(rules_of(open));
  EXPECT_EQ(open[0].id, mass.id);
  EXPECT_EQ(open[0].occurrences, 2);
  EXPECT_EQ(open[0].probes.size(), 6u);
  EXPECT_EQ(tickets("closed").size(), 4u);
  EXPECT_EQ(all().size(), 5u);
}

TEST_P(MassSilenceTest, FewAgentsFallingSilentGetTheirOwnTickets) {
  config.mass_silence_share = 0.1;  // only mass_silence_agents (5) holds it back
  start();
  report_all(kNoon);
  report(2, kNoon + 10);  // a1 stops after kNoon, a2 after kNoon + 10, the others go on
  for (double t = kNoon + 5; t <= kNoon + 30; t += 5) {
    for (int i = 3; i <= 6; ++i) report(i, t);
    tick_until(t, t + 4.75);
    if (t == kNoon + 15) {
      auto open = active();
      ASSERT_EQ(open.size(), 1u);
      EXPECT_EQ((std::vector<std::string>{open[0].rule, open[0].agent}),
                (std::vector<std::string>{"agent-silent", "a1"}));
    }
  }
  EXPECT_EQ(rules_of(active()), (std::vector<std::string>{"agent-silent", "agent-silent"}));
  EXPECT_EQ(all().size(), 2u);
}

TEST_P(MassSilenceTest, MoreThanTheShareOfTheAgentsKnown) {
  config.mass_silence_agents = 2;
  start();
  report_all(kNoon);
  report(4, kNoon + 10);  // a1 to a3 stop after kNoon, a4 after kNoon + 10
  for (double t = kNoon + 5; t <= kNoon + 30; t += 5) {
    for (int i = 5; i <= 6; ++i) report(i, t);
    tick_until(t, t + 4.75);
    if (t == kNoon + 15) {  // 3 of 6 is not more than half
      EXPECT_EQ(rules_of(active()), std::vector<std::string>(3, "agent-silent"));
    }
  }
  // 4 of 6 within a minute: one ticket, the three folded into it.
  auto open = active();
  ASSERT_EQ(rules_of(open), std::vector<std::string>{"collector-unreachable"});
  EXPECT_EQ(open[0].summary.substr(0, 7), "4 of 6 ");
  EXPECT_EQ(open[0].probes, (std::vector<std::string>{"a1/*", "a2/*", "a3/*", "a4/*"}));
  EXPECT_EQ(tickets("closed").size(), 3u);
}

TEST_P(MassSilenceTest, AgentsFallingSilentFarApartGetTheirOwnTickets) {
  start();
  report_all(kNoon, 30);  // silent 30 s apart: at most 3 within a minute of each other
  tick_until(kNoon + 14, kNoon + 170);
  EXPECT_EQ(rules_of(active()), std::vector<std::string>(6, "agent-silent"));
  EXPECT_TRUE(tickets("closed").empty());
}

TEST_P(MassSilenceTest, AnAgentFallingSilentLongAfterTheCutOffGetsItsOwnTicket) {
  start();
  report_all(kNoon);  // a1 to a5 stop after kNoon; a6 goes on for five minutes
  for (double t = kNoon + 5; t <= kNoon + 300; t += 5) {
    report(6, t);
    tick_until(t, t + 4.75);
  }
  ASSERT_EQ(rules_of(active()), std::vector<std::string>{"collector-unreachable"});
  tick_until(kNoon + 305, kNoon + 330);  // a6 silent from kNoon + 315: a failure of its own
  auto open = active();
  ASSERT_EQ(open.size(), 2u) << ::testing::PrintToString(rules_of(open));
  EXPECT_EQ(open[0].rule == "agent-silent" ? open[0].agent : open[1].agent, "a6");
  EXPECT_EQ(desk->ticket(open[0].rule == "agent-silent" ? open[1].id : open[0].id)->probes.size(),
            5u);
}

TEST_P(MassSilenceTest, SilenceOfTheCollectorsTicketHoldsEveryTicket) {
  start();
  Silence s;
  s.rule = "collector-unreachable";
  s.ends_at = kNoon + 60;
  s.comment = "uplink moves to the new provider";
  desk->add_silence(s, kNoon);
  report_all(kNoon);
  tick_until(kNoon + 14, kNoon + 59);
  EXPECT_TRUE(all().empty());
  // Still cut off when the planned work ended: now the one ticket opens.
  health->tick(kNoon + 60);
  EXPECT_EQ(rules_of(active()), std::vector<std::string>{"collector-unreachable"});
  EXPECT_EQ(all().size(), 1u);
}

TEST_P(DeskTest, ACertificateExpiringWithinAWeekOpensATaskUntilRenewed) {
  start();
  send("a1", "erp-port", Status::ok, kNoon);
  health->connected("a1", kNoon + 8 * 86400);  // 8 days left: nothing yet
  desk->own_certificate(kNoon + 400 * 86400);
  health->tick(kNoon + 1);
  EXPECT_TRUE(all().empty());
  send("a1", "erp-port", Status::ok, kNoon + 86400);  // reporting all along
  health->tick(kNoon + 86400 + 1);                    // 7 days left: its renewal is failing
  auto open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(
      (std::vector<std::string>{open[0].rule, open[0].ticket_class, open[0].agent, open[0].probe}),
      (std::vector<std::string>{"certificate-expiring", "task", "a1", "certificate"}));
  EXPECT_EQ(open[0].priority, 3);
  EXPECT_NE(open[0].summary.find("a1's certificate expires"), std::string::npos) << open[0].summary;
  // Renewed (the agent reconnects with a new certificate): resolved.
  health->connected("a1", kNoon + 31 * 86400);
  health->tick(kNoon + 86400 + 2);
  EXPECT_EQ(desk->ticket(open[0].id)->status, "resolved");
  // The collector's own certificate is watched the same way.
  desk->own_certificate(kNoon + 86400 + 3 * 86400);
  health->tick(kNoon + 86400 + 3);
  open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].agent, "collector");
  EXPECT_NE(open[0].summary.find("the collector's own certificate expires"), std::string::npos);
}

TEST_P(DeskTest, ForecastOpensATaskBeforeTheDiskIsFull) {
  config.rules = default_rules();
  config.rules[3].window = 1h;
  start();
  // 0.5 %/min from 60 %: full in 80 minutes, well within the 72 h horizon.
  double now = kNoon;
  for (int i = 0; i <= 30; ++i) {
    now = kNoon + i * 60;
    send("a1", "disk-root", Status::ok, now, {{"used_percent", 60 + 0.5 * i, "%"}}, "acme", "disk");
    if (!active().empty()) break;
  }
  auto open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(now, kNoon + 30 * 60);  // not before half the window was seen
  EXPECT_EQ(open[0].ticket_class, "task");
  EXPECT_EQ(open[0].probe, "disk-root/used_percent");
  EXPECT_EQ(open[0].summary, "a1 disk-root used_percent reaches 100% in 50m");
  // 75 % at 12:30, at 0.5 %/min: 100 % at 13:20.
  EXPECT_NE(open[0].details.find("at 2026-11-23T13:20:00.000Z"), std::string::npos)
      << open[0].details;
  // A flat disk forecasts nothing.
  for (int i = 0; i <= 40; ++i)
    send("a2", "disk-root", Status::ok, kNoon + i * 60, {{"used_percent", 60, "%"}}, "acme",
         "disk");
  EXPECT_EQ(active().size(), 1u);
}

// What incidents learn over time is saved (every 5 minutes, a few a tick) and read back: after a
// crash halfway, the trend and the meter's unchanged value go on as if nothing had happened,
// instead of starting over for another half window.
TEST_P(DeskTest, TrendsAndValuesAgesSurviveACrash) {
  config.rules = default_rules();
  config.rules[3].window = 1h;
  Rule stale;
  stale.name = "meter-stale";
  stale.kind = RuleKind::stale;
  stale.match.metric = "energy_kwh";
  stale.hold = 30min;
  stale.ticket_class = "task";
  config.rules.push_back(stale);
  start();
  auto minute = [&](int i) {
    const double now = kNoon + i * 60;
    send("a1", "disk-root", Status::ok, now, {{"used_percent", 60 + 0.5 * i, "%"}}, "acme", "disk");
    send("a1", "meter", Status::ok, now, {{"energy_kwh", 1234.5, "kWh"}}, "acme", "modbus");
    return now;
  };
  for (int i = 0; i <= 15; ++i) minute(i);
  health->tick(kNoon + 15 * 60 + 1);  // saves what was learned
  start(kNoon + 15 * 60 + 2);         // no clean stop: a crash
  int opened_at = -1;
  for (int i = 16; i <= 45 && opened_at < 0; ++i) {
    minute(i);
    if (active().size() == 2) opened_at = i;
  }
  EXPECT_EQ(opened_at, 30);  // both at minute 30, as without the crash
  std::set<std::string> rules;
  for (const auto& t : active()) rules.insert(t.rule);
  EXPECT_EQ(rules, (std::set<std::string>{"disk-full-forecast", "meter-stale"}));
}

TEST_P(DeskTest, StaleMeterValue) {
  Rule stale;
  stale.name = "meter-stale";
  stale.kind = RuleKind::stale;
  stale.match.type = "modbus";
  stale.match.metric = "energy_kwh";
  stale.hold = 30min;
  stale.ticket_class = "task";
  config.rules.push_back(stale);
  start();
  for (int i = 0; i <= 31; ++i)
    send("a1", "meter", Status::ok, kNoon + i * 60, {{"energy_kwh", 1234.5, "kWh"}}, "acme",
         "modbus");
  auto open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].rule, "meter-stale");
  EXPECT_EQ(open[0].summary, "a1 meter energy_kwh unchanged at 1234.5kWh for 30m");
}

TEST_P(DeskTest, SilenceHoldsNewTicketsUntilItEnds) {
  start();
  Silence s;
  s.site = "acme";
  s.probe = "erp*";
  s.ends_at = kNoon + 600;
  s.comment = "ERP update";
  const auto sil = desk->add_silence(s, kNoon);
  send("a1", "erp-port", Status::critical, kNoon + 10);
  send("a1", "web", Status::critical, kNoon + 10);
  auto open = active();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].probe, "web");
  health->tick(kNoon + 599);
  EXPECT_EQ(active().size(), 1u);
  health->tick(kNoon + 600);
  EXPECT_EQ(active().size(), 2u);  // still failing when the planned work ended
  EXPECT_FALSE(desk->remove_silence(sil.id, kNoon + 601));  // already over
}

TEST_P(DeskTest, UnacknowledgedEscalatesAndAcknowledgedDoesNot) {
  start();
  send("a1", "erp-port", Status::critical, kNoon);
  send("a1", "web", Status::critical, kNoon);
  auto open = active();
  ASSERT_EQ(open.size(), 2u);
  EXPECT_EQ(desk->acknowledge(open[1].id, "olena", "on it", kNoon + 120), Desk::Change::done);
  health->tick(kNoon + 15 * 60);
  EXPECT_EQ(desk->ticket(open[0].id)->escalations, 1);
  EXPECT_DOUBLE_EQ(desk->ticket(open[0].id)->deadline, kNoon + 30 * 60);
  EXPECT_EQ(desk->ticket(open[1].id)->escalations, 0);
  EXPECT_EQ(desk->ticket(open[1].id)->acknowledged_by, "olena");
  health->tick(kNoon + 30 * 60);
  EXPECT_EQ(desk->ticket(open[0].id)->escalations, 2);
  const auto text = metrics->scrape();
  EXPECT_NE(text.find("dozor_ticket_reaction_seconds_sum 120"), std::string::npos) << text;
  EXPECT_NE(text.find("dozor_tickets_open{class=\"emergency\",priority=\"P2\",site=\"acme\"} 2"),
            std::string::npos);
  // The unacknowledged one missed its deadline; the acknowledged one did not.
  EXPECT_NE(text.find("dozor_tickets_overdue{class=\"emergency\",priority=\"P2\",site=\"acme\"} 1"),
            std::string::npos)
      << text;
  // Close by hand while it still fails: no new ticket until it clears and fails again.
  EXPECT_EQ(desk->close(open[0].id, "olena", "known", kNoon + 1900), Desk::Change::done);
  send("a1", "web", Status::critical, kNoon + 1901);
  send("a1", "erp-port", Status::critical, kNoon + 1901);
  health->tick(kNoon + 1902);
  EXPECT_EQ(active().size(), 1u);
  EXPECT_EQ(desk->acknowledge(open[0].id, "", "", kNoon + 1903), Desk::Change::conflict);
  EXPECT_EQ(desk->acknowledge(4242, "", "", kNoon + 1903), Desk::Change::not_found);
}

TEST_P(DeskTest, DeadlineCountsOnlyServiceTime) {
  std::vector<ConfigError> errors;
  YAML::Node root = YAML::Load(R"(
calendars:
  office: {zone: Europe/Kyiv, hours: daily 08:00-22:00}
service:
  calendar: 24x7
  sites: {acme: office}
  targets: {emergency: 15m, emergency/P1: 5m}
)");
  config = parse_desk_config(root, "collector.yaml", errors);
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  start();
  // 23:00 in Kyiv (21:00 UTC): the clock starts at 08:00 local, so the deadline is 08:15 local.
  send("a1", "erp", Status::critical, kNoon + 9 * 3600);
  EXPECT_EQ(format_timestamp(active().at(0).deadline), "2026-11-24T06:15:00.000Z");
  // Another site is served around the clock.
  send("b1", "erp", Status::critical, kNoon + 9 * 3600, {}, "beta");
  EXPECT_EQ(format_timestamp(active("beta").at(0).deadline), "2026-11-23T21:15:00.000Z");
}

TEST_P(DeskTest, OutboxRowsLeaveOnlyWhenDelivered) {
  start();
  send("a1", "erp", Status::critical, kNoon);
  auto rows = desk->due("hook", kNoon, 10);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].event, "opened");
  EXPECT_EQ(rows[0].ticket["key"], "acme/a1/erp/probe-critical");
  desk->failed("hook", rows[0].id, kNoon + 30, "connection refused");
  EXPECT_TRUE(desk->due("hook", kNoon + 29, 10).empty());
  start(kNoon + 1);  // survives a restart
  rows = desk->due("hook", kNoon + 30, 10);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].attempts, 1);
  desk->delivered("hook", rows[0].id);
  EXPECT_TRUE(desk->due("hook", kNoon + 100, 10).empty());
}

TEST(DeskConfig, ErrorsNameFileLineAndKey) {
  std::vector<ConfigError> errors;
  YAML::Node root = YAML::Load(R"(rules:
  - name: probe-critical
    priority: P7
  - name: meters
    kind: stale
    match: {model: x}
service:
  calendar: office
tickets:
  outage_share: 2
)");
  parse_desk_config(root, "collector.yaml", errors);
  std::vector<std::string> text;
  for (const auto& e : errors) text.push_back(e.to_string());
  ASSERT_EQ(text.size(), 5u) << ::testing::PrintToString(text);
  EXPECT_EQ(text[0], "collector.yaml:3: rules[0].priority: expected P1, P2, P3 or P4");
  EXPECT_EQ(text[1],
            "collector.yaml:6: rules[1].match: unknown field 'model'; known: site, agent, probe, "
            "type, metric");
  EXPECT_NE(text[2].find("rules[1].for: a stale rule needs `for`"), std::string::npos);
  EXPECT_NE(text[3].find(":8: service.calendar: no calendar named 'office'"), std::string::npos);
  EXPECT_NE(text[4].find(":10: tickets.outage_share"), std::string::npos);
}

TEST(DeskConfig, MassSilenceKeys) {
  std::vector<ConfigError> errors;
  auto c = parse_desk_config(YAML::Load("tickets: {mass_silence_agents: 20, mass_silence_share: "
                                        "0.8, mass_silence_window: 30s}"),
                             "collector.yaml", errors);
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  EXPECT_EQ(c.mass_silence_agents, 20);
  EXPECT_DOUBLE_EQ(c.mass_silence_share, 0.8);
  EXPECT_EQ(c.mass_silence_window, 30s);
  c = parse_desk_config(YAML::Load("{}"), "collector.yaml", errors);
  EXPECT_EQ(c.mass_silence_agents, 5);
  EXPECT_DOUBLE_EQ(c.mass_silence_share, 0.5);
  EXPECT_EQ(c.mass_silence_window, 1min);

  parse_desk_config(YAML::Load(R"(tickets:
  mass_silence_agents: 1
  mass_silence_share: 1.5
  mass_silence_window: soon
)"),
                    "collector.yaml", errors);
  std::vector<std::string> text;
  for (const auto& e : errors) text.push_back(e.to_string());
  ASSERT_EQ(text.size(), 3u) << ::testing::PrintToString(text);
  EXPECT_EQ(text[0],
            "collector.yaml:4: tickets.mass_silence_window: expected a duration such as 500ms, "
            "10s, 5m, 2h, got 'soon'");
  EXPECT_EQ(text[1], "collector.yaml:2: tickets.mass_silence_agents: must be at least 2");
  EXPECT_EQ(text[2],
            "collector.yaml:3: tickets.mass_silence_share: expected a share from 0 to below 1, "
            "e.g. 0.5");
}

TEST(DeskConfig, UserRulesOverrideAndExtendTheDefaults) {
  std::vector<ConfigError> errors;
  YAML::Node root = YAML::Load(R"(rules:
  - {name: probe-warning, enabled: false}
  - {name: probe-critical, for: 30s, match: {site: "acme*"}}
  - {name: erp-down, when: [critical, unknown], match: {type: bas}, class: emergency, priority: P1}
)");
  auto c = parse_desk_config(root, "collector.yaml", errors);
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  std::vector<std::string> names;
  for (const auto& r : c.rules) names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{"probe-critical", "agent-silent", "disk-full-forecast",
                                             "certificate-expiring", "erp-down"}));
  EXPECT_EQ(c.rules[0].hold, 30s);
  EXPECT_EQ(c.rules[0].match.site, "acme*");
  EXPECT_EQ(c.rules[0].ticket_class, "emergency");  // kept from the default
  EXPECT_EQ(c.rules[4].when, (std::vector<Status>{Status::critical, Status::unknown}));
}

TEST(Trend, LeastSquaresAndTimeToThreshold) {
  Trend t;
  for (int i = 0; i < 10; ++i) t.add(1000 + i * 10, 50 + i * 0.5 + (i % 2 ? 0.1 : -0.1), 3600);
  auto fit = t.fit();
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->slope, 0.05, 0.005);
  auto eta = time_to_threshold(*fit, 100, false);
  ASSERT_TRUE(eta);
  EXPECT_NEAR(*eta, (100 - 54.5) / 0.05, 60);
  EXPECT_FALSE(time_to_threshold(*fit, 10, true));    // rising away from a floor
  EXPECT_EQ(*time_to_threshold(*fit, 40, false), 0);  // already past
  // Memory stays bounded however fast the readings come.
  for (int i = 0; i < 100000; ++i) t.add(2000 + i * 0.01, 1, 3600);
  EXPECT_LE(t.size(), Trend::kMaxPoints + 1);
}

INSTANTIATE_TEST_SUITE_P(Engines, DeskTest, ::testing::Values("sqlite", "postgres"),
                         testing::engine_name);
INSTANTIATE_TEST_SUITE_P(Engines, MassSilenceTest, ::testing::Values("sqlite", "postgres"),
                         testing::engine_name);

}  // namespace
}  // namespace dozor::collector
