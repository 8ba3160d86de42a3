#include "dozor/collector/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

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

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("dozor-store-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    fs::remove(path_);
  }
  void TearDown() override {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix);
  }
  std::string path_;
};

TEST_F(StoreTest, StateAndSeqBookkeepingSurviveARestart) {
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

TEST_F(StoreTest, CertificatesAndRevocationsSurviveARestartAndAForget) {
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

TEST_F(StoreTest, AnAgentAlreadySilentStaysDownAfterARestart) {
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

}  // namespace
}  // namespace dozor::collector
