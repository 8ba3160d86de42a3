// The request planner: limits, forbidden ranges, hole filling by the cost model, and optimality
// against brute force over every grouping of small random maps.

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "modbus/plan.h"

namespace dozor::probes::modbus {
namespace {

const CostModel k9600 = CostModel::serial(9600, 10, 0.005);

PointSpan holding(int address, int count = 1) {
  return {RegisterType::holding, static_cast<std::uint16_t>(address), count};
}

TEST(ModbusPlan, SerialCostModelFollowsTheLineFormula) {
  // 8N1 at 9600: 10 bits a character; 13 characters of frames, two 3.5-character gaps, 5 ms.
  const double c = 10.0 / 9600;
  EXPECT_NEAR(k9600.request_seconds, 13 * c + 7 * c + 0.005, 1e-12);
  EXPECT_NEAR(k9600.register_seconds, 2 * c, 1e-12);
  EXPECT_NEAR(rtu_frame_gap_seconds(9600, 11), 3.5 * 11 / 9600, 1e-12);
  EXPECT_EQ(rtu_frame_gap_seconds(38400, 10), 0.00175);
}

TEST(ModbusPlan, ContiguousPointsTakeOneRequest) {
  std::vector<PointSpan> s;
  for (int a = 0; a < 60; a += 2) s.push_back(holding(a, 2));
  auto plan = plan_requests(s, {}, {}, k9600);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].address, 0);
  EXPECT_EQ(plan.requests[0].count, 60);
  EXPECT_EQ(plan.lower_bound, 1);
  EXPECT_EQ(plan.one_per_point, 30);
}

TEST(ModbusPlan, FillsSmallHolesButNotLargeOnes) {
  // At 9600 baud a request costs about as much as 12 registers: a hole of 8 is read through,
  // one of 30 is not.
  auto small = plan_requests(std::vector{holding(0, 2), holding(10, 2)}, {}, {}, k9600);
  EXPECT_EQ(small.requests.size(), 1u);
  auto large = plan_requests(std::vector{holding(0, 2), holding(32, 2)}, {}, {}, k9600);
  EXPECT_EQ(large.requests.size(), 2u);
  EXPECT_EQ(large.lower_bound, 1);
  // Over TCP the round trip dominates: read through up to the limit.
  auto tcp =
      plan_requests(std::vector{holding(0, 2), holding(100, 2)}, {}, {}, CostModel::tcp(0.001));
  EXPECT_EQ(tcp.requests.size(), 1u);
}

TEST(ModbusPlan, NeverCoversForbiddenAddressesOrExceedsLimits) {
  const Forbidden f[] = {{RegisterType::holding, 5, 5}};
  auto plan = plan_requests(std::vector{holding(0, 2), holding(8, 2)}, f, {}, k9600);
  ASSERT_EQ(plan.requests.size(), 2u);
  EXPECT_EQ(plan.lower_bound, 2);
  // Forbidden in another register type does not matter.
  const Forbidden g[] = {{RegisterType::input, 5, 5}};
  EXPECT_EQ(plan_requests(std::vector{holding(0, 2), holding(8, 2)}, g, {}, k9600).requests.size(),
            1u);
  RequestLimits lim;
  lim.max_registers = 4;
  auto limited = plan_requests(std::vector{holding(0, 2), holding(2, 2), holding(4, 2)}, {}, lim,
                               CostModel::tcp(0.001));
  ASSERT_EQ(limited.requests.size(), 2u);
  for (const auto& r : limited.requests) EXPECT_LE(r.count, 4);
}

TEST(ModbusPlan, BitsAndRegistersGoInSeparateRequests) {
  std::vector<PointSpan> s{{RegisterType::coil, 0, 1},
                           {RegisterType::coil, 1999, 1},
                           {RegisterType::discrete, 3, 1},
                           holding(0),
                           {RegisterType::input, 0, 2}};
  auto plan = plan_requests(s, {}, {}, CostModel::tcp(0.001));
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan.requests.size(), 4u);
  EXPECT_EQ(plan.requests[0].reg, RegisterType::coil);
  EXPECT_EQ(plan.requests[0].count, 2000);
}

TEST(ModbusPlan, OverlappingPointsShareARequest) {
  auto plan =
      plan_requests(std::vector{holding(10, 2), holding(11, 1), holding(10, 4)}, {}, {}, k9600);
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].count, 4);
  EXPECT_EQ(plan.requests[0].points, (std::vector<int>{0, 1, 2}));
}

// Every way to split points into groups (set partitions), each group one request.
struct Brute {
  double cost = std::numeric_limits<double>::infinity();
  int fewest = std::numeric_limits<int>::max();
};

Brute brute_force(const std::vector<PointSpan>& s, const std::vector<Forbidden>& forbidden,
                  const RequestLimits& lim, const CostModel& cost) {
  Brute best;
  std::vector<int> group(s.size(), 0);
  std::function<void(std::size_t, int)> rec = [&](std::size_t i, int groups) {
    if (i == s.size()) {
      double total = 0;
      for (int g = 0; g < groups; ++g) {
        int lo = 1 << 20, hi = -1;
        RegisterType reg{};
        bool first = true;
        for (std::size_t k = 0; k < s.size(); ++k) {
          if (group[k] != g) continue;
          if (!first && s[k].reg != reg) return;
          reg = s[k].reg;
          first = false;
          lo = std::min(lo, int{s[k].address});
          hi = std::max(hi, s[k].address + s[k].count);
        }
        const int max = is_bit_type(reg) ? lim.max_bits : lim.max_registers;
        if (hi - lo > max) return;
        for (const auto& f : forbidden)
          if (f.reg == reg && f.first < hi && f.last >= lo) return;
        total += cost.request_seconds +
                 (hi - lo) * (is_bit_type(reg) ? cost.bit_seconds : cost.register_seconds);
      }
      best.cost = std::min(best.cost, total);
      best.fewest = std::min(best.fewest, groups);
      return;
    }
    for (int g = 0; g <= groups; ++g) {
      group[i] = g;
      rec(i + 1, std::max(groups, g + 1));
    }
  };
  rec(0, 0);
  return best;
}

TEST(ModbusPlan, OptimalAgainstBruteForceOnRandomMaps) {
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    const int n = 1 + static_cast<int>(rng() % 7);
    std::vector<PointSpan> s;
    std::vector<bool> used(80, false);
    while (static_cast<int>(s.size()) < n) {
      const auto reg = rng() % 4 == 0 ? RegisterType::coil : RegisterType::holding;
      const int count = reg == RegisterType::coil ? 1 : 1 + static_cast<int>(rng() % 4);
      const int address = static_cast<int>(rng() % 60);
      bool free = true;
      for (int a = address; a < address + count; ++a)
        free = free && !used[a + (reg == RegisterType::coil ? 0 : 0)];
      if (!free && reg == RegisterType::holding) continue;
      if (reg == RegisterType::holding)
        for (int a = address; a < address + count; ++a) used[a] = true;
      bool dup = false;
      for (const auto& p : s) dup = dup || (p.reg == reg && p.address == address);
      if (dup) continue;
      s.push_back({reg, static_cast<std::uint16_t>(address), count});
    }
    std::vector<Forbidden> forbidden;
    for (int k = 0; k < 3; ++k) {
      const int a = static_cast<int>(rng() % 64);
      bool hits = false;
      for (const auto& p : s) hits = hits || (a >= p.address && a < p.address + p.count);
      if (!hits)
        forbidden.push_back(
            {RegisterType::holding, static_cast<std::uint16_t>(a), static_cast<std::uint16_t>(a)});
    }
    RequestLimits lim;
    lim.max_registers = 6 + static_cast<int>(rng() % 40);
    lim.max_bits = 8 + static_cast<int>(rng() % 40);
    const CostModel cost = (round % 2) ? k9600 : CostModel::serial(115200, 11, 0.002);
    auto plan = plan_requests(s, forbidden, lim, cost);
    ASSERT_TRUE(plan.ok()) << plan.error;
    auto best = brute_force(s, forbidden, lim, cost);
    EXPECT_NEAR(plan.cost_seconds, best.cost, 1e-9) << "round " << round;
    EXPECT_EQ(plan.lower_bound, best.fewest) << "round " << round;
    // Every point is carried once, inside its request, and no request covers a forbidden address.
    std::vector<int> carried(s.size(), 0);
    for (const auto& r : plan.requests) {
      for (int i : r.points) {
        ++carried[i];
        EXPECT_GE(s[i].address, r.address);
        EXPECT_LE(s[i].address + s[i].count, r.address + r.count);
      }
      for (const auto& f : forbidden)
        EXPECT_FALSE(f.reg == r.reg && f.first < r.address + r.count && f.last >= r.address);
    }
    for (int c : carried) EXPECT_EQ(c, 1);
  }
}

}  // namespace
}  // namespace dozor::probes::modbus
