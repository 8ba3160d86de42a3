#include "dozor/agent/spool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "dozor/protocol/codec.h"

namespace dozor::agent {
namespace {

namespace fs = std::filesystem;

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

protocol::Result result(const std::string& probe, double ts = now()) {
  protocol::Result r;
  r.probe = probe;
  r.type = "tcp";
  r.ts = ts;
  r.status = protocol::Status::ok;
  r.summary = "connected in 0.001 s";
  r.metrics = {{"connect_seconds", 0.001, "s"}};
  return r;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dozor-spool-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_.path = (dir_ / "spool.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  SpoolConfig config_;
};

TEST_F(SpoolTest, SeqStartsAtOneKeepsOrderAndSurvivesRestart) {
  std::string id;
  {
    Spool s(config_);
    id = s.id();
    EXPECT_EQ(s.push(result("a")), 1u);
    EXPECT_EQ(s.push(result("b")), 2u);
    EXPECT_EQ(s.push(result("a")), 3u);
    auto batch = s.oldest(2, 1 << 20);
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(batch[0].seq, 1u);
    auto decoded = protocol::decode_result(batch[1].json);
    ASSERT_TRUE(decoded) << decoded.error.to_string();
    EXPECT_EQ(decoded.value->probe, "b");
    EXPECT_EQ(decoded.value->seq, 2u);
  }
  Spool s(config_);
  EXPECT_EQ(s.id(), id);
  EXPECT_EQ(s.count(), 3u);
  EXPECT_EQ(s.oldest_seq(), 1u);
  EXPECT_EQ(s.push(result("c")), 4u);
}

TEST_F(SpoolTest, AckRemovesOnlyWhatItCoversAndSeqNeverRepeats) {
  {
    Spool s(config_);
    for (int i = 0; i < 5; ++i) s.push(result("p"));
    s.ack(3);
    EXPECT_EQ(s.count(), 2u);
    EXPECT_EQ(s.oldest_seq(), 4u);
    EXPECT_EQ(s.oldest(10, 1 << 20).front().seq, 4u);
    s.ack(2);  // stale
    EXPECT_EQ(s.count(), 2u);
    s.ack(100);  // beyond what exists: everything, nothing more
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(s.oldest_seq(), 6u);
  }
  Spool s(config_);  // empty after a full ack, yet the count goes on
  EXPECT_EQ(s.oldest_seq(), 6u);
  EXPECT_EQ(s.push(result("p")), 6u);
}

TEST_F(SpoolTest, SizeBoundDropsTheOldestAndCountsThemAcrossRestart) {
  config_.max_size = 64 << 10;
  std::uint64_t last = 0;
  {
    Spool s(config_);
    for (int i = 0; i < 2000; ++i) last = s.push(result("p"));
    EXPECT_LE(s.bytes(), config_.max_size);
    EXPECT_GT(s.dropped(), 0u);
    EXPECT_EQ(s.count() + s.dropped(), 2000u);
    EXPECT_EQ(s.oldest_seq(), s.dropped() + 1);  // the oldest went first
  }
  Spool s(config_);
  EXPECT_EQ(s.count() + s.dropped(), 2000u);
  EXPECT_EQ(s.last_seq(), last);
  const auto dropped = s.dropped();
  s.dropped_reported(dropped - 1);
  EXPECT_EQ(s.dropped(), 1u);
}

TEST_F(SpoolTest, AgeBoundDropsOldResults) {
  config_.max_age = std::chrono::hours(1);
  Spool s(config_);
  s.push(result("old", now() - 7200));  // the first push checks the age bound at once
  EXPECT_EQ(s.dropped(), 1u);
  s.push(result("old", now() - 3700));
  s.push(result("new"));
  EXPECT_EQ(s.expire(now()), 1u);
  EXPECT_EQ(s.count(), 1u);
  EXPECT_EQ(s.dropped(), 2u);
  EXPECT_EQ(s.oldest_seq(), 3u);
}

TEST_F(SpoolTest, NewestPerProbeIsWhatABacklogMustNotHoldBack) {
  Spool s(config_);
  for (int i = 0; i < 10; ++i) s.push(result(i % 2 ? "odd" : "even"));
  auto fresh = s.newest_per_probe(3);
  ASSERT_EQ(fresh.size(), 2u);
  std::set<std::uint64_t> seqs{fresh[0].seq, fresh[1].seq};
  EXPECT_EQ(seqs, (std::set<std::uint64_t>{9, 10}));
  EXPECT_TRUE(s.newest_per_probe(10).empty());
  s.ack(9);
  EXPECT_EQ(s.newest_per_probe(0).size(), 1u);
}

TEST_F(SpoolTest, RejectDropsOneResultAndKeepsTheOthers) {
  {
    Spool s(config_);
    for (int i = 0; i < 5; ++i) s.push(result(i == 4 ? "fresh" : "p"));
    const auto bytes = s.bytes();
    s.reject(2);  // in the middle
    EXPECT_EQ(s.count(), 4u);
    EXPECT_EQ(s.dropped(), 1u);
    EXPECT_LT(s.bytes(), bytes);
    EXPECT_EQ(s.oldest_seq(), 1u);
    s.reject(1);  // the oldest: what a report calls its oldest moves past it
    EXPECT_EQ(s.oldest_seq(), 3u);
    s.reject(5);  // the newest, also the newest of its probe
    EXPECT_TRUE(s.newest_per_probe(0).empty() || s.newest_per_probe(0).front().seq != 5u);
    s.reject(42);  // not held: nothing happens
    EXPECT_EQ(s.dropped(), 3u);
    std::vector<std::uint64_t> seqs;
    for (const auto& e : s.oldest(10, 1 << 20)) seqs.push_back(e.seq);
    EXPECT_EQ(seqs, (std::vector<std::uint64_t>{3, 4}));
  }
  Spool s(config_);  // after a restart: the count holds, and seq 5 is never handed out again
  EXPECT_EQ(s.dropped(), 3u);
  EXPECT_EQ(s.count(), 2u);
  EXPECT_EQ(s.push(result("p")), 6u);
}

// A process killed at any moment loses nothing push() returned for.
TEST_F(SpoolTest, SigkillLosesNothingThatWasPushed) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    Spool s(config_);
    for (;;) {
      std::uint64_t seq = s.push(result("p"));
      if (write(fds[1], &seq, sizeof seq) != sizeof seq) _exit(1);
    }
  }
  close(fds[1]);
  std::uint64_t seq = 0, last = 0;
  while (last < 3000 && read(fds[0], &seq, sizeof seq) == sizeof seq) last = seq;
  kill(child, SIGKILL);
  while (read(fds[0], &seq, sizeof seq) == sizeof seq) last = seq;  // what it told before dying
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  Spool s(config_);
  EXPECT_GE(s.last_seq(), last);
  EXPECT_EQ(s.count(), s.last_seq());  // no holes: 1..last_seq all there
  auto all = s.oldest(1'000'000, 1ull << 40);
  ASSERT_EQ(all.size(), s.count());
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i].seq, i + 1);
  const auto before = s.last_seq();
  EXPECT_EQ(s.push(result("p")), before + 1);
}

}  // namespace
}  // namespace dozor::agent
