#include "board.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "dozor/collector/store.h"

namespace dozor::server {
namespace {

using nlohmann::json;
using protocol::Status;
namespace fs = std::filesystem;

constexpr double kNoon = 1795435200;  // 2026-11-23 12:00 UTC, a Monday

// The board over a real health and desk on a SQLite store in a temporary folder.
class BoardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dozor-board-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store = std::make_unique<collector::Store>((dir_ / "collector.db").string());
    health = std::make_unique<collector::Health>(metrics, store.get(), kNoon);
    desk = std::make_unique<collector::Desk>(collector::DeskConfig{}, metrics, store->db());
    health->set_desk(desk.get());
    board = std::make_unique<Board>(*health, desk.get());
  }
  void TearDown() override {
    board.reset();
    desk.reset();
    health.reset();
    store.reset();
    fs::remove_all(dir_);
  }

  void send(const std::string& agent, const std::string& probe, Status status, double now,
            double value = 1, const std::string& site = "acme") {
    protocol::Report rep;
    rep.agent = {"0.1.0", agent + ".lan", site, kNoon - 3600, 5, "spool-" + agent};
    protocol::Result r;
    r.seq = ++seq_[agent];
    r.probe = probe;
    r.type = "tcp";
    r.ts = now;
    r.status = status;
    r.summary = std::string(protocol::to_string(status));
    r.metrics = {{"connect_seconds", value, "s", {}}};
    rep.results.push_back(r);
    health->ingest(agent, rep, now);
  }

  json snapshot(const std::string& site = "") {
    return json::parse(board->snapshot(site, {{"writes", true}}));
  }
  // The changes after `since` for a board of `site`, parsed; null when none.
  json changes(std::uint64_t since, const std::string& site = "") {
    auto text = board->changes_after(since, site);
    EXPECT_TRUE(text.has_value());
    return text && !text->empty() ? json::parse(*text) : json();
  }

  collector::Metrics metrics;
  std::unique_ptr<collector::Store> store;
  std::unique_ptr<collector::Health> health;
  std::unique_ptr<collector::Desk> desk;
  std::unique_ptr<Board> board;
  std::map<std::string, std::uint64_t> seq_;
  fs::path dir_;
};

TEST_F(BoardTest, SnapshotHasTilesTicketsAndTheWatchedSitesProbes) {
  send("a1", "erp", Status::ok, kNoon);
  send("b1", "erp", Status::critical, kNoon, 1, "beta");
  board->update(kNoon);
  health->tick(kNoon + 0.25);
  board->update(kNoon + 0.25);

  const json all = snapshot();
  EXPECT_TRUE(all["writes"]);
  EXPECT_EQ(all["site"], "");
  const json& e = all["entities"];
  EXPECT_EQ(e["site:acme"]["state"], "ok");
  EXPECT_EQ(e["site:beta"]["state"], "critical");
  EXPECT_EQ(e["site:beta"]["tickets"], 1);
  EXPECT_EQ(e["site:beta"]["emergencies"], 1);
  EXPECT_FALSE(e.contains("probe:a1/erp")) << "a site's probes only for its page";
  ASSERT_EQ(desk->active(kNoon).size(), 1u);
  const auto id = desk->active(kNoon)[0].first.id;
  const json& t = e["ticket:" + std::to_string(id)];
  EXPECT_EQ(t["class"], "emergency");
  EXPECT_TRUE(t["has_deadline"]);
  EXPECT_TRUE(t["counting"]);  // 24x7
  // Emergency: 15 minutes to react, 24x7; as of the moment the clock was read.
  EXPECT_NEAR(t["clock"]["left"].get<double>() + t["clock"]["at"].get<double>(), kNoon + 15 * 60,
              0.01);

  board->watch("beta");
  const json beta = snapshot("beta")["entities"];
  EXPECT_EQ(beta["probe:b1/erp"]["status"], "critical");
  EXPECT_EQ(beta["probe:b1/erp"]["metrics"][0]["unit"], "s");
  EXPECT_EQ(beta["agent:b1"]["up"], true);
  EXPECT_FALSE(beta.contains("probe:a1/erp")) << "another site's probes";
  board->unwatch("beta");
  EXPECT_FALSE(snapshot("beta")["entities"].contains("probe:b1/erp")) << "kept while watched";
}

TEST_F(BoardTest, OnlyWhatChangedIsSentAndTheCountdownIsNotAChange) {
  send("a1", "erp", Status::ok, kNoon);
  board->update(kNoon);
  const auto start = board->seq();

  // A report that changes nothing a tile shows (new value, same status): nothing for the queue.
  send("a1", "erp", Status::ok, kNoon + 5, 2);
  EXPECT_FALSE(board->update(kNoon + 5));
  EXPECT_EQ(board->seq(), start);

  // A board watching the site gets the probe's new value, and only that.
  board->watch("acme");
  send("a1", "erp", Status::ok, kNoon + 10, 3);
  EXPECT_TRUE(board->update(kNoon + 10));
  json d = changes(start, "acme");
  EXPECT_EQ(d["set"]["probe:a1/erp"]["metrics"][0]["value"], 3);
  EXPECT_TRUE(d["set"].contains("agent:a1"));
  EXPECT_EQ(d["set"].size(), 2u);
  EXPECT_TRUE(changes(start, "").is_null()) << "the queue's board gets none of it";

  // Critical: the tile and the new ticket, for every board.
  send("a1", "erp", Status::critical, kNoon + 15);
  health->tick(kNoon + 15);
  const auto before = board->seq();
  EXPECT_TRUE(board->update(kNoon + 15));
  d = changes(before, "");
  EXPECT_EQ(d["set"]["site:acme"]["state"], "critical");
  EXPECT_EQ(d["set"]["site:acme"]["since"], kNoon + 15);
  EXPECT_EQ(d["set"].size(), 2u) << d.dump();

  // Seconds pass: the countdown moves, but that is the boards' to count.
  const auto quiet = board->seq();
  for (double t = 16; t < 20; t += 1) board->update(kNoon + t);
  EXPECT_EQ(board->seq(), quiet);

  // Acknowledged: that ticket is sent again; resolved, it goes.
  const auto id = desk->active(kNoon)[0].first.id;
  ASSERT_EQ(desk->acknowledge(id, "oksana", "on it", kNoon + 20), collector::Desk::Change::done);
  board->update(kNoon + 20);
  d = changes(quiet, "");
  EXPECT_EQ(d["set"]["ticket:" + std::to_string(id)]["status"], "acknowledged");
  EXPECT_EQ(d["set"]["ticket:" + std::to_string(id)]["acknowledged_by"], "oksana");
  const auto acked = board->seq();
  send("a1", "erp", Status::ok, kNoon + 21);
  health->tick(kNoon + 21);
  send("a1", "erp", Status::ok, kNoon + 85);
  health->tick(kNoon + 85);  // past recover_for
  board->update(kNoon + 85);
  d = changes(acked, "");
  EXPECT_EQ(d["del"], json::array({"ticket:" + std::to_string(id)})) << d.dump();
  EXPECT_EQ(d["set"]["site:acme"]["state"], "ok");
  EXPECT_EQ(d["set"]["site:acme"]["tickets"], 0);
}

TEST_F(BoardTest, ChangesMergeToTheLatestAndABoardTooFarBehindGetsASnapshot) {
  board->watch("acme");
  send("a1", "erp", Status::ok, kNoon);
  board->update(kNoon);
  const auto start = board->seq();
  for (int i = 1; i <= 3; ++i) {
    send("a1", "erp", Status::ok, kNoon + i, i * 10);
    board->update(kNoon + i);
  }
  json d = changes(start, "acme");
  EXPECT_EQ(d["seq"], board->seq());
  EXPECT_EQ(d["set"]["probe:a1/erp"]["metrics"][0]["value"], 30) << "only the latest of each";

  for (std::size_t i = 0; i < Board::kKeptChanges + 1; ++i) {
    send("a1", "erp", Status::ok, kNoon + 10 + i, static_cast<double>(i));
    board->update(kNoon + 10 + i);
  }
  EXPECT_FALSE(board->changes_after(start, "acme").has_value());
  EXPECT_TRUE(board->changes_after(board->seq() - 1, "acme").has_value());
}

TEST_F(BoardTest, AForgottenAgentLeavesItsSite) {
  send("a1", "erp", Status::ok, kNoon);
  send("a2", "erp", Status::ok, kNoon);
  board->watch("acme");
  board->update(kNoon);
  EXPECT_EQ(snapshot()["entities"]["site:acme"]["agents"], 2);
  const auto before = board->seq();
  ASSERT_TRUE(health->forget("a2", kNoon + 1));
  board->update(kNoon + 1);
  json d = changes(before, "acme");
  EXPECT_EQ(d["set"]["site:acme"]["agents"], 1);
  EXPECT_TRUE(std::find(d["del"].begin(), d["del"].end(), "probe:a2/erp") != d["del"].end());
  ASSERT_TRUE(health->forget("a1", kNoon + 2));
  board->update(kNoon + 2);
  EXPECT_FALSE(snapshot()["entities"].contains("site:acme")) << "no agent, no ticket: no tile";
}

TEST_F(BoardTest, ASilentAgentTurnsItsTileDown) {
  send("a1", "erp", Status::ok, kNoon);
  board->update(kNoon);
  health->tick(kNoon + 16);  // 3 heartbeats of 5 s
  board->update(kNoon + 16);
  const json tile = snapshot()["entities"]["site:acme"];
  EXPECT_EQ(tile["state"], "down");
  EXPECT_EQ(tile["agents_up"], 0);
}

}  // namespace
}  // namespace dozor::server
