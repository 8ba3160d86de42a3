#include "dozor/agent/outbox.h"

#include <gtest/gtest.h>

namespace dozor::agent {
namespace {

protocol::Result result(const std::string& probe) {
  protocol::Result r;
  r.probe = probe;
  return r;
}

TEST(Outbox, NumbersFromOneAndKeepsOrderUntilAcked) {
  Outbox box;
  EXPECT_EQ(box.push(result("a")), 1u);
  EXPECT_EQ(box.push(result("b")), 2u);
  EXPECT_EQ(box.push(result("c")), 3u);
  auto batch = box.peek(2);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].seq, 1u);
  EXPECT_EQ(batch[1].probe, "b");
  box.ack(2);
  ASSERT_EQ(box.size(), 1u);
  EXPECT_EQ(box.peek(10)[0].seq, 3u);
  box.ack(1);  // a stale ack changes nothing
  EXPECT_EQ(box.size(), 1u);
}

TEST(Outbox, WhenFullDropsTheOldestAndCountsThem) {
  Outbox box(3);
  for (int i = 0; i < 5; ++i) box.push(result("p"));
  EXPECT_EQ(box.size(), 3u);
  EXPECT_EQ(box.peek(1)[0].seq, 3u);
  EXPECT_EQ(box.take_dropped(), 2u);
  EXPECT_EQ(box.take_dropped(), 0u);
  box.restore_dropped(2);  // that report did not get through
  EXPECT_EQ(box.take_dropped(), 2u);
}

}  // namespace
}  // namespace dozor::agent
