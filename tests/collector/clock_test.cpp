#include "dozor/collector/clock.h"

#include <gtest/gtest.h>

namespace dozor::collector {
namespace {

TEST(SteadyWallClock, FollowsTheWallClockWhileItDoesNotStep) {
  SteadyWallClock c;
  EXPECT_DOUBLE_EQ(c.now(1'800'000'000, 100), 1'800'000'000);
  EXPECT_DOUBLE_EQ(c.now(1'800'000'010, 110), 1'800'000'010);
}

TEST(SteadyWallClock, AStepIsAbsorbedSlowly) {
  SteadyWallClock c;
  c.now(1'800'000'000, 100);
  // The wall clock jumps 20 s ahead (an NTP step, a VM resumed) while 1 s passes.
  EXPECT_NEAR(c.now(1'800'000'021, 101), 1'800'000'001.01, 1e-6);
  // 10 s later the collector's time has moved on by 10.1 s, not by 30.
  EXPECT_NEAR(c.now(1'800'000'031, 111), 1'800'000'011.11, 1e-6);
  // About half an hour later it is the wall clock again.
  EXPECT_DOUBLE_EQ(c.now(1'800'002'021, 2101), 1'800'002'021);
  // Backwards the same: it never runs back.
  const double before = c.now(1'800'002'022, 2102);
  EXPECT_GT(c.now(1'800'001'923, 2103), before);
}

TEST(SteadyWallClock, ABigStepIsTakenAtOnce) {
  SteadyWallClock c;
  c.now(1'000'000'000, 100);  // a clock that was wrong at boot
  EXPECT_DOUBLE_EQ(c.now(1'800'000'000, 101), 1'800'000'000);
}

}  // namespace
}  // namespace dozor::collector
