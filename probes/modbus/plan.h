#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "modbus/point.h"

namespace dozor::probes::modbus {

/// What one request costs on a link: a fixed part (frames' headers and CRC, the silent gaps, the
/// device's turnaround) plus the payload's wire time per register or per bit.
struct CostModel {
  double request_seconds = 0.001;
  double register_seconds = 16 / 100e6;
  double bit_seconds = 1 / 100e6;

  /// RTU at `baud` with `bits_per_char` (1 start + data + parity + stop): a read request is 8
  /// characters, its answer 5 + the data; a 3.5-character gap (1.75 ms above 19200 baud) before
  /// each frame; `turnaround_seconds` for the device to answer.
  static CostModel serial(int baud, int bits_per_char, double turnaround_seconds);
  /// Modbus TCP: the round trip dominates; 12 + 9 bytes of frames and the data at
  /// `bits_per_second`.
  static CostModel tcp(double round_trip_seconds, double bits_per_second = 100e6);
};

/// Inter-frame gap of RTU at a baud rate: 3.5 characters, 1.75 ms above 19200 baud.
double rtu_frame_gap_seconds(int baud, int bits_per_char);

/// Largest read per request: 125 registers and 2000 bits by the protocol, lower for some devices.
struct RequestLimits {
  int max_registers = 125;
  int max_bits = 2000;
};

/// Where a point sits, for the planner: register type, first address and how many it occupies.
struct PointSpan {
  RegisterType reg = RegisterType::holding;
  std::uint16_t address = 0;
  int count = 1;
};

/// One read request: function by register type, a contiguous address range, and the points it
/// carries (indices into the planned spans).
struct PlannedRequest {
  RegisterType reg = RegisterType::holding;
  std::uint16_t address = 0;
  int count = 0;
  std::vector<int> points;
};

/// The requests of one device per cycle: the cheapest under the cost model, computed once per
/// config by dynamic programming over the sorted points of each register type.
struct RegisterPlan {
  std::vector<PlannedRequest> requests;
  double cost_seconds = 0;  // under the model
  int lower_bound = 0;      // fewest requests the limits and forbidden ranges allow
  int one_per_point = 0;    // what a naive poller sends
  std::string error;        // non-empty when the points cannot be read under the limits
  bool ok() const { return error.empty(); }
};

/// Plans reads for `spans`. Points that overlap share a request; a request never covers a
/// forbidden address and never exceeds the limits.
RegisterPlan plan_requests(std::span<const PointSpan> spans, std::span<const Forbidden> forbidden,
                           const RequestLimits& limits, const CostModel& cost);

std::vector<PointSpan> spans_of(std::span<const Point> points);

/// Seconds a plan costs under a model (the sum over requests).
double plan_cost(std::span<const PlannedRequest> requests, const CostModel& cost);

}  // namespace dozor::probes::modbus
