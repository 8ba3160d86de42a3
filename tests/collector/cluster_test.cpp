// Several collectors on one real PostgreSQL store (the test cluster of test_store.h): an agent
// moving between them, the leader's desk working what the followers took, and the desk lease.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "dozor/collector/desk.h"
#include "dozor/collector/health.h"
#include "dozor/collector/lease.h"
#include "dozor/collector/store.h"
#include "test_store.h"

namespace dozor::collector {
namespace {

using namespace std::chrono_literals;
using protocol::Status;

protocol::Report report(std::uint64_t first, std::uint64_t last, Status status = Status::ok) {
  protocol::Report rep;
  rep.agent = {"0.1.0", "host", "acme-kyiv", 1000, 5, "spool-1"};
  for (auto seq = first; seq <= last; ++seq) {
    protocol::Result r;
    r.seq = seq;
    r.ts = 1000 + static_cast<double>(seq);
    r.probe = "erp-port";
    r.type = "tcp";
    r.status = status;
    rep.results.push_back(r);
  }
  return rep;
}

// One collector: its store connection, health and desk.
struct Collector {
  explicit Collector(const sql::Options& where, bool leads)
      : store(where), health(metrics, &store, 1000), desk(DeskConfig{}, metrics, store.db()) {
    health.set_desk(&desk);
    health.share_store(true);
    health.lead(leads, 1000);
  }
  Metrics metrics;
  Store store;
  Health health;
  Desk desk;
};

class ClusterTest : public ::testing::Test {
 protected:
  testing::TestStore where{"postgres"};
};

TEST_F(ClusterTest, AnAgentMovingBetweenCollectorsLosesAndDoublesNothing) {
  Collector one(where.options(), true), two(where.options(), false);
  auto out = one.health.ingest("agent-01", report(1, 3), 1004);
  EXPECT_EQ(out.accepted, 3u);
  // Its connection cut, the agent sends again what it had no ack for, and more, to the other.
  out = two.health.ingest("agent-01", report(2, 5), 1006);
  EXPECT_EQ(out.accepted, 2u);
  EXPECT_EQ(out.duplicates, 2u);
  EXPECT_EQ(out.acked_seq, 5u);
  // And back: the first collector's memory of it is stale, the store's row version says so.
  out = one.health.ingest("agent-01", report(5, 6), 1007);
  EXPECT_EQ(out.accepted, 1u);
  EXPECT_EQ(out.duplicates, 1u);
  EXPECT_EQ(out.acked_seq, 6u);
  const auto a = one.health.agent("agent-01", 1007);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->results, 6u);  // each seq once, whoever took it
  EXPECT_EQ(a->last_seq, 6u);
  Store fresh(where.options());
  EXPECT_EQ(fresh.load("agent-01")->results, 6u);
}

TEST_F(ClusterTest, ACertificateRevokedThroughAnotherCollectorIsRefusedAtTheNextReport) {
  Collector one(where.options(), true), two(where.options(), false);
  two.health.ingest("agent-01", report(1, 1), 1002, "0A1B");
  one.store.revoke({"0A1B", "agent-01", "duty", "stolen", 1003});
  one.health.forget("agent-01", 1003);
  EXPECT_THROW(two.health.ingest("agent-01", report(2, 2), 1004, "0A1B"), AgentRevoked);
  EXPECT_FALSE(Store(where.options()).load("agent-01"));                       // stays forgotten
  EXPECT_NO_THROW(two.health.ingest("agent-01", report(1, 1), 1005, "0C2D"));  // enrolled anew
}

TEST_F(ClusterTest, TheLeadersDeskWorksWhatAFollowerTookExactlyOnce) {
  Collector leader(where.options(), true), follower(where.options(), false);
  follower.health.ingest("agent-01", report(1, 2, Status::critical), 1003);
  EXPECT_TRUE(follower.desk.active(1003).empty());
  EXPECT_TRUE(leader.desk.active(1003).empty());
  // A follower shows no per-agent series: the leader's /metrics has the fleet.
  EXPECT_EQ(follower.metrics.scrape().find("dozor_probe_status{"), std::string::npos);

  EXPECT_EQ(leader.health.replay(1003), 1u);
  const auto active = leader.desk.active(1003);
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].first.agent, "agent-01");
  EXPECT_EQ(leader.health.agent("agent-01", 1003)->results, 2u);
  EXPECT_NE(leader.metrics.scrape().find("dozor_probe_status{agent=\"agent-01\""),
            std::string::npos);
  EXPECT_EQ(leader.health.replay(1003), 0u);  // taken once
  // The same incident reported again through the leader itself: still the one ticket.
  leader.health.ingest("agent-01", report(3, 3, Status::critical), 1004);
  EXPECT_EQ(leader.desk.active(1004).size(), 1u);
}

TEST_F(ClusterTest, AReplayTakesOffMetricsOnlyTheSeriesAnAgentNoLongerHas) {
  Collector leader(where.options(), true), follower(where.options(), false);
  auto first = report(1, 1);
  first.results[0].metrics = {{"connect_seconds", 0.1, "s"}, {"retries", 2, ""}};
  follower.health.ingest("agent-01", first, 1002);
  EXPECT_EQ(leader.health.replay(1002), 1u);
  auto second = report(2, 2);
  second.results[0].metrics = {{"connect_seconds", 0.2, "s"}};
  follower.health.ingest("agent-01", second, 1003);
  EXPECT_EQ(leader.health.replay(1003), 1u);
  const auto text = leader.metrics.scrape();
  EXPECT_NE(text.find("metric=\"connect_seconds\",probe=\"erp-port\",site=\"acme-kyiv\"} 0.2"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("metric=\"retries\""), std::string::npos) << text;
  EXPECT_NE(text.find("dozor_probe_status{agent=\"agent-01\""), std::string::npos);
}

TEST_F(ClusterTest, AFollowerTakingTheLeadReadsTheFleetFromTheStore) {
  Collector leader(where.options(), true), follower(where.options(), false);
  leader.health.ingest("agent-01", report(1, 2, Status::critical), 1003);
  ASSERT_EQ(leader.desk.active(1003).size(), 1u);
  follower.desk.reload();
  follower.health.lead(true, 1004);
  ASSERT_TRUE(follower.health.agent("agent-01", 1004));
  EXPECT_EQ(follower.desk.active(1004).size(), 1u);
  // Reported up before, it gets one window from the takeover rather than being called silent.
  EXPECT_TRUE(follower.health.agent("agent-01", 1004 + 14)->up);
}

TEST_F(ClusterTest, AfterTheDatabaseWasAwayNoAgentIsSilentForReportsNobodyCouldStore) {
  Collector leader(where.options(), true), follower(where.options(), false),
      other(where.options(), false);
  // Both agents reported until the database went away at 1010 (heartbeat 5 s: up for 15 s).
  leader.health.ingest("agent-01", report(1, 1), 1010);
  leader.health.ingest("agent-02", report(1, 1), 1010);
  // It is back at 1040; agent-01's backoff ended first and its report is stored, agent-02 is
  // still backing off when the follower, which answered its reports 503 meanwhile, takes the
  // lead.
  leader.health.ingest("agent-01", report(2, 2), 1040);
  follower.health.heard_from("agent-02", 1039);
  follower.desk.reload();
  follower.health.lead(true, 1041);
  EXPECT_TRUE(follower.health.agent("agent-02", 1041)->up);
  EXPECT_TRUE(follower.health.agent("agent-02", 1041 + 40)->up);  // a window and the backoff
  EXPECT_FALSE(follower.health.agent("agent-02", 1041 + 46)->up);
  // A collector that saw no store fail (the leader was killed): agent-02's silence is its own.
  other.desk.reload();
  other.health.lead(true, 1041);
  EXPECT_FALSE(other.health.agent("agent-02", 1041)->up);
  EXPECT_TRUE(other.health.agent("agent-01", 1041 + 14)->up);
}

bool eventually(const std::function<bool()>& f) {
  for (auto until = std::chrono::steady_clock::now() + 3s; std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(20ms))
    if (f()) return true;
  return f();
}

TEST_F(ClusterTest, OneLeaseHolderAFollowerTakesOverAndAStaleTermIsFenced) {
  Store store(where.options());  // migrates: the lease row
  const Lease::Timing quick{600ms, 100ms};
  auto one = std::make_unique<Lease>(where.options(), "c1", quick);
  auto two = std::make_unique<Lease>(where.options(), "c2", quick);
  const auto first = one->term();
  EXPECT_GT(first, 0u);
  EXPECT_EQ(two->term(), 0u);
  EXPECT_EQ(two->holder(), "c1");

  auto commit_fenced = [&](const Lease& lease, std::uint64_t term) {
    sql::Transaction tx(store.db());
    store.state_change({"acme-kyiv", "a", "p", 1, 0});
    lease.fence(store.db(), term);
    tx.commit();
  };
  EXPECT_NO_THROW(commit_fenced(*one, first));
  EXPECT_THROW(commit_fenced(*two, first), sql::Error);  // the term, but not its holder
  EXPECT_THROW(commit_fenced(*two, 0), sql::Error);

  // While c1 stood still past its lease, another collector took it: c1 stops leading at its
  // next look, and what it still tries to store under its old term is refused.
  store.db().exec(
      "UPDATE dozor_leader SET holder = 'c9 0', term = term + 1, "
      "expires_at = extract(epoch FROM clock_timestamp()) + 60");
  ASSERT_TRUE(eventually([&] { return one->term() == 0 && two->holder() == "c9"; }));
  EXPECT_THROW(commit_fenced(*one, first), sql::Error);
  EXPECT_EQ(two->term(), 0u);

  // c9 dies: its lease expires, and exactly one of the others takes the next term.
  store.db().exec("UPDATE dozor_leader SET expires_at = 0");
  ASSERT_TRUE(eventually([&] { return one->term() + two->term() == first + 2; }));
  EXPECT_TRUE(one->term() == 0 || two->term() == 0);
  auto& leader = one->term() ? one : two;
  auto& other = one->term() ? two : one;
  EXPECT_NO_THROW(commit_fenced(*leader, leader->term()));

  // A clean stop hands the lease over at once, not after it expires.
  const auto stopped = std::chrono::steady_clock::now();
  leader.reset();
  ASSERT_TRUE(eventually([&] { return other->term() == first + 3; }));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, 1s);
}

}  // namespace
}  // namespace dozor::collector
