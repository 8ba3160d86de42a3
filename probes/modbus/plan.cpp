#include "modbus/plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dozor::probes::modbus {
namespace {

// Points that overlap must travel in one request; a block is their union.
struct Block {
  int first = 0;
  int end = 0;  // exclusive
  std::vector<int> points;
};

// Costs in integer picoseconds, compared together with the request count, so that ties are exact
// and the planner prefers fewer requests among plans of equal cost.
struct Cost {
  std::int64_t ps = 0;
  int requests = 0;
  bool operator<(const Cost& o) const { return ps != o.ps ? ps < o.ps : requests < o.requests; }
};

std::int64_t to_ps(double seconds) { return std::llround(seconds * 1e12); }

// Cheapest split of `blocks` (sorted, disjoint) into requests; appends them to `out`.
void plan_blocks(RegisterType reg, const std::vector<Block>& blocks,
                 const std::vector<bool>& gap_forbidden, int max_count, std::int64_t request_ps,
                 std::int64_t unit_ps, std::vector<PlannedRequest>* out, int* requests) {
  const std::size_t n = blocks.size();
  std::vector<Cost> best(n + 1);
  std::vector<std::size_t> from(n + 1, 0);
  for (std::size_t j = 0; j < n; ++j) {
    Cost b{std::numeric_limits<std::int64_t>::max(), 0};
    std::size_t bi = j;
    for (std::size_t i = j + 1; i-- > 0;) {
      if (i < j && gap_forbidden[i]) break;
      const int span = blocks[j].end - blocks[i].first;
      if (span > max_count) break;
      Cost c{best[i].ps + request_ps + unit_ps * span, best[i].requests + 1};
      if (c < b) {
        b = c;
        bi = i;
      }
    }
    best[j + 1] = b;
    from[j + 1] = bi;
  }
  *requests += best[n].requests;
  if (!out) return;
  std::vector<PlannedRequest> reversed;
  for (std::size_t j = n; j > 0;) {
    const std::size_t i = from[j];
    PlannedRequest r;
    r.reg = reg;
    r.address = static_cast<std::uint16_t>(blocks[i].first);
    r.count = blocks[j - 1].end - blocks[i].first;
    for (std::size_t k = i; k < j; ++k)
      r.points.insert(r.points.end(), blocks[k].points.begin(), blocks[k].points.end());
    std::sort(r.points.begin(), r.points.end());
    reversed.push_back(std::move(r));
    j = i;
  }
  out->insert(out->end(), reversed.rbegin(), reversed.rend());
}

}  // namespace

double rtu_frame_gap_seconds(int baud, int bits_per_char) {
  if (baud > 19200) return 0.00175;
  return 3.5 * bits_per_char / static_cast<double>(baud);
}

CostModel CostModel::serial(int baud, int bits_per_char, double turnaround_seconds) {
  const double char_s = bits_per_char / static_cast<double>(baud);
  CostModel m;
  m.request_seconds =
      13 * char_s + 2 * rtu_frame_gap_seconds(baud, bits_per_char) + turnaround_seconds;
  m.register_seconds = 2 * char_s;
  m.bit_seconds = char_s / 8;
  return m;
}

CostModel CostModel::tcp(double round_trip_seconds, double bits_per_second) {
  CostModel m;
  m.request_seconds = round_trip_seconds + (12 + 9) * 8 / bits_per_second;
  m.register_seconds = 16 / bits_per_second;
  m.bit_seconds = 1 / bits_per_second;
  return m;
}

std::vector<PointSpan> spans_of(std::span<const Point> points) {
  std::vector<PointSpan> out;
  out.reserve(points.size());
  for (const auto& p : points) out.push_back({p.reg, p.address, p.count()});
  return out;
}

double plan_cost(std::span<const PlannedRequest> requests, const CostModel& cost) {
  double s = 0;
  for (const auto& r : requests)
    s += cost.request_seconds +
         r.count * (is_bit_type(r.reg) ? cost.bit_seconds : cost.register_seconds);
  return s;
}

RegisterPlan plan_requests(std::span<const PointSpan> spans, std::span<const Forbidden> forbidden,
                           const RequestLimits& limits, const CostModel& cost) {
  RegisterPlan plan;
  plan.one_per_point = static_cast<int>(spans.size());
  for (RegisterType reg :
       {RegisterType::coil, RegisterType::discrete, RegisterType::holding, RegisterType::input}) {
    std::vector<int> idx;
    for (int i = 0; i < static_cast<int>(spans.size()); ++i)
      if (spans[i].reg == reg) idx.push_back(i);
    if (idx.empty()) continue;
    std::sort(idx.begin(), idx.end(), [&](int a, int b) {
      return spans[a].address != spans[b].address ? spans[a].address < spans[b].address : a < b;
    });
    const bool bits = is_bit_type(reg);
    const int max_count = bits ? limits.max_bits : limits.max_registers;
    std::vector<Block> blocks;
    for (int i : idx) {
      const int first = spans[i].address, end = first + std::max(spans[i].count, 1);
      if (!blocks.empty() && first < blocks.back().end) {
        blocks.back().end = std::max(blocks.back().end, end);
        blocks.back().points.push_back(i);
      } else {
        blocks.push_back({first, end, {i}});
      }
    }
    for (const auto& b : blocks)
      if (b.end - b.first > max_count) {
        plan.error = std::string(to_string(reg)) + " " + std::to_string(b.first) + "-" +
                     std::to_string(b.end - 1) + " (" + std::to_string(b.end - b.first) +
                     (bits ? " bits" : " registers") + ") does not fit in one request of at most " +
                     std::to_string(max_count);
        return plan;
      }
    std::vector<bool> gap_forbidden(blocks.size(), false);
    for (std::size_t k = 0; k + 1 < blocks.size(); ++k)
      for (const auto& f : forbidden)
        if (f.reg == reg && f.first < blocks[k + 1].first && f.last >= blocks[k].end)
          gap_forbidden[k] = true;
    const double unit_s = bits ? cost.bit_seconds : cost.register_seconds;
    int planned = 0;
    plan_blocks(reg, blocks, gap_forbidden, max_count, to_ps(cost.request_seconds), to_ps(unit_s),
                &plan.requests, &planned);
    int fewest = 0;
    plan_blocks(reg, blocks, gap_forbidden, max_count, 1, 0, nullptr, &fewest);
    plan.lower_bound += fewest;
  }
  plan.cost_seconds = plan_cost(plan.requests, cost);
  return plan;
}

}  // namespace dozor::probes::modbus
