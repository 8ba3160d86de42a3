#include "dozor/collector/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dozor/collector/desk.h"
#include "dozor/collector/schema.h"
#include "test_store.h"

namespace dozor::collector {
namespace {

namespace fs = std::filesystem;

protocol::Report report(std::vector<std::uint64_t> seqs, const std::string& probe = "erp-port") {
  protocol::Report rep;
  rep.agent = {"0.1.0", "host", "acme-kyiv", 1000, 5, "spool-1"};
  for (auto seq : seqs) {
    protocol::Result r;
    r.seq = seq;
    r.ts = 100.0 + static_cast<double>(seq);
    r.probe = probe;
    r.type = "tcp";
    r.status = protocol::Status::critical;
    r.summary = "connect to 127.0.0.1:1541: Connection refused";
    r.metrics = {{"connect_seconds", 0.5, "s"}};
    rep.results.push_back(r);
  }
  return rep;
}

// Every test on both engines: a SQLite file, and a database on a real PostgreSQL.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  testing::TestStore where_{GetParam()};
  const sql::Options& path_ = where_.options();
};

TEST_P(StoreTest, StateAndSeqBookkeepingSurviveARestart) {
  {
    Store store(path_);
    Metrics m;
    Health h(m, &store, 1000);
    h.ingest("agent-01", report({1, 2, 3, 7}), 1010);
    h.ingest("agent-01", report({1}, "root-disk"), 1011);  // a retry: counted once
  }
  Store store(path_);
  Metrics m;
  Health h(m, &store, 1012);
  auto a = h.agent("agent-01", 1012);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->site, "acme-kyiv");
  EXPECT_EQ(a->spool_id, "spool-1");
  EXPECT_EQ(a->watermark, 3u);
  EXPECT_EQ(a->above, (std::set<std::uint64_t>{7}));
  EXPECT_EQ(a->results, 4u);
  EXPECT_EQ(a->last_seq, 7u);
  const auto& p = a->probes.at("erp-port");
  EXPECT_EQ(p.status, protocol::Status::critical);
  EXPECT_EQ(p.seq, 7u);
  ASSERT_EQ(p.metrics.size(), 1u);
  EXPECT_EQ(p.metrics[0].name, "connect_seconds");
  EXPECT_TRUE(a->up);  // within one window of the restart
  EXPECT_NE(m.scrape().find("dozor_probe_status{agent=\"agent-01\",probe=\"erp-port\""),
            std::string::npos);

  // After the restart, 7 is still known: a replay counts nothing twice.
  auto out = h.ingest("agent-01", report({4, 5, 6, 7}), 1013);
  EXPECT_EQ(out.accepted, 3u);
  EXPECT_EQ(out.duplicates, 1u);
  EXPECT_EQ(out.acked_seq, 7u);
}

TEST_P(StoreTest, CertificatesAndRevocationsSurviveARestartAndAForget) {
  {
    Store store(path_);
    store.save_certificate("a1", "0A1B", 1900000000, 1000);
    store.save_certificate("a1", "0C2D", 1900000500, 2000);  // renewed: the last one counts
    store.forget("a1", {});  // a forgotten agent can still be revoked
    store.revoke({"0C2D", "a1", "duty-officer", "laptop stolen", 3000});
  }
  Store store(path_);
  EXPECT_EQ(store.certificate_serial("a1"), "0C2D");
  EXPECT_FALSE(store.certificate_serial("a2"));
  const auto r = store.revocations();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ((std::vector<std::string>{r[0].serial, r[0].agent, r[0].by, r[0].comment}),
            (std::vector<std::string>{"0C2D", "a1", "duty-officer", "laptop stolen"}));
  EXPECT_DOUBLE_EQ(r[0].revoked_at, 3000);
}

TEST_P(StoreTest, ATokenIsUsedAtMostItsUsesAndNeverAfterItExpiredOrWasRevoked) {
  Store store(path_);
  Store::EnrollToken t;
  t.id = "abc";
  t.hash = "hash-abc";
  t.agent = "erp-01";
  t.site = "acme-kyiv";
  t.created_at = 1000;
  t.expires_at = 2800;
  t.uses = 2;
  store.add_token(t);
  auto issued = [](const char* serial, double at) {
    return Store::Issued{serial, "erp-01", "acme-kyiv", "enroll abc", "127.0.0.1", at, at + 86400};
  };
  EXPECT_TRUE(store.record_issued(issued("01", 1100), "abc"));
  EXPECT_TRUE(store.record_issued(issued("02", 1200), "abc"));
  EXPECT_FALSE(store.record_issued(issued("03", 1300), "abc"));  // both uses gone
  EXPECT_EQ(store.token_by_hash("hash-abc")->used, 2);
  EXPECT_EQ(store.issued("erp-01").size(), 2u);  // the refused one left nothing

  t.id = "def";
  t.hash = "hash-def";
  t.uses = 5;
  store.add_token(t);
  EXPECT_FALSE(store.record_issued(issued("04", 2800), "def"));  // expired
  EXPECT_EQ(store.revoke_tokens_of("erp-01", 1500), 2u);
  EXPECT_FALSE(store.revoke_token("def", 1600));  // revoked already
  EXPECT_FALSE(store.record_issued(issued("05", 1700), "def"));
  EXPECT_EQ(store.tokens().size(), 2u);
}

TEST_P(StoreTest, LiveSerialsAreThePresentedAndTheUnexpiredIssuedLessTheRevoked) {
  Store store(path_);
  store.save_certificate("erp-01", "0A", 5000, 1000);
  for (auto [serial, not_after] : {std::pair{"0B", 900.0}, {"0C", 5000.0}, {"0D", 6000.0}})
    store.record_issued({serial, "erp-01", "s", "renew", "", 0, not_after});
  store.record_issued({"0E", "erp-02", "s", "renew", "", 0, 6000});
  store.revoke({"0D", "erp-01", "", "", 1000});
  auto live = store.live_serials("erp-01", 1000);
  std::sort(live.begin(), live.end());
  EXPECT_EQ(live, (std::vector<std::string>{"0A", "0C"}));
}

TEST_P(StoreTest, AnAgentAlreadySilentStaysDownAfterARestart) {
  {
    Store store(path_);
    Metrics m;
    Health h(m, &store, 0);
    h.ingest("silent", report({1}), 1000);
    h.ingest("busy", report({1}), 2000);
  }
  Store store(path_);
  Metrics m;
  Health h(m, &store, 2005);
  EXPECT_TRUE(h.agent("busy", 2005)->up);
  EXPECT_FALSE(h.agent("silent", 2005)->up);
  EXPECT_FALSE(h.agent("busy", 2021)->up);  // grace is one window, not forever
}

int schema_version(sql::Database& db) {
  sql::Statement q(db, db.engine() == "sqlite" ? "PRAGMA user_version"
                                               : "SELECT max(version) FROM dozor_schema");
  return q.step() ? static_cast<int>(q.integer(0)) : -1;
}

TEST_P(StoreTest, TheSchemaIsVersionedAndANewerOneIsRefused) {
  { Store store(path_); }
  EXPECT_EQ(schema_version(*where_.connect()), latest_schema_version());
  { Store again(path_); }  // nothing to do the second time
  const int newer = latest_schema_version() + 7;
  {
    auto db = where_.connect();
    if (db->engine() == "sqlite")
      db->exec("PRAGMA user_version = " + std::to_string(newer));
    else
      db->exec("INSERT INTO dozor_schema VALUES (" + std::to_string(newer) + ", now())");
  }
  try {
    Store refused(path_);
    FAIL() << "a store of a newer schema was opened";
  } catch (const SchemaError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version " + std::to_string(newer) + ", newer"),
              std::string::npos)
        << e.what();
  }
}

// Each migration on a store written at the version before it: what was there stays, and the
// store works at the new version. Version 2 → 3 gives PostgreSQL's state changes their order.
TEST_P(StoreTest, EachMigrationKeepsTheRowsOfTheVersionBefore) {
  for (int from = 1; from < latest_schema_version(); ++from) {
    SCOPED_TRACE("from version " + std::to_string(from));
    const testing::TestStore fresh(GetParam());
    {
      auto db = fresh.connect();
      migrate(*db, from);
      EXPECT_EQ(schema_version(*db), from);
      db->exec(
          "INSERT INTO agents VALUES ('a1', 'acme-kyiv', 'h', '0.1.0', 1, 5, 1, 2, 's', 7, 7, 7, "
          "0);"
          "INSERT INTO tickets (id, key, class, priority, status, summary, site, agent, probe, "
          "rule, opened_at, raised_at, updated_at, escalations, occurrences, flapping) VALUES "
          "(41, 'acme-kyiv/a1/erp/probe-critical', 'emergency', 1, 'open', 'erp down', "
          "'acme-kyiv', 'a1', 'erp', 'probe-critical', 10, 10, 10, 0, 1, 0)");
      if (from >= 2) db->exec("INSERT INTO state_changes VALUES ('acme-kyiv', 'a1', 'erp', 3, 2)");
    }
    Store store(fresh.options());
    EXPECT_EQ(schema_version(store.db()), latest_schema_version());
    const auto agents = store.load();
    ASSERT_EQ(agents.size(), 1u);
    EXPECT_EQ(agents[0].watermark, 7u);
    Metrics metrics;
    Desk desk(DeskConfig{}, metrics, store.db());
    const auto ticket = desk.ticket(41);
    ASSERT_TRUE(ticket);
    EXPECT_EQ(ticket->status, "open");
    EXPECT_EQ(ticket->summary, "erp down");
    // Two changes in the same second: read back in the order written.
    store.state_change({"acme-kyiv", "a1", "erp", 3, 0});
    sql::Statement q(
        store.db(), "SELECT status FROM state_changes WHERE site = 'acme-kyiv' ORDER BY ts, rowid");
    std::vector<std::int64_t> order;
    while (q.step()) order.push_back(q.integer(0));
    EXPECT_EQ(order,
              from >= 2 ? (std::vector<std::int64_t>{2, 0}) : (std::vector<std::int64_t>{0}));
  }
}

// The SQLite store of the release before schema versions, as its collector made it (its tables
// were created by Store and Desk with IF NOT EXISTS; testdata/store-unversioned.sql is a dump of
// one): upgraded in place, its tickets intact.
TEST(StoreUpgradeTest, AnUnversionedSqliteStoreKeepsItsTicketsAndGainsTheHistory) {
  const testing::TestStore where("sqlite");
  {
    auto db = where.connect();
    std::ifstream dump(DOZOR_SOURCE_DIR "/tests/collector/testdata/store-unversioned.sql");
    std::stringstream sql;
    sql << dump.rdbuf();
    ASSERT_FALSE(sql.str().empty());
    db->exec(sql.str());
    EXPECT_EQ(schema_version(*db), 0);
  }
  Store store(where.options());
  EXPECT_EQ(schema_version(store.db()), latest_schema_version());
  ASSERT_EQ(store.load().size(), 1u);
  Metrics metrics;
  Desk desk(DeskConfig{}, metrics, store.db());
  const auto active = desk.tickets({{"active"}, "", 10});
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].summary, "erp-port: connect to 10.0.0.5:1541: Connection refused");
  EXPECT_EQ(desk.events(active[0].id).size(), 1u);
  store.state_change({"acme-kyiv", "agent-01", "erp-port", 3, 2});
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, ::testing::Values("sqlite", "postgres"),
                         testing::engine_name);

}  // namespace
}  // namespace dozor::collector
