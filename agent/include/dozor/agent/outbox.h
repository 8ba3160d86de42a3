#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "dozor/protocol/report.h"

namespace dozor::agent {

/// Results waiting for the collector's ack, in seq order. Kept in memory and bounded: when full
/// the oldest result goes first and is counted, so the next report can say how many were lost.
/// A process restart loses what was not yet acked. Not thread-safe: used on the I/O thread.
class Outbox {
 public:
  explicit Outbox(std::size_t capacity = 100'000) : capacity_(capacity) {}

  /// Assigns the next seq (from 1) and queues the result; returns the seq.
  std::uint64_t push(protocol::Result r);
  /// Up to `max` of the oldest results not yet acked.
  std::vector<protocol::Result> peek(std::size_t max) const;
  /// The collector stored everything up to `seq`.
  void ack(std::uint64_t seq);
  /// Results dropped since the last call (reported in the next report's `dropped`).
  std::uint64_t take_dropped();
  /// Puts back a count taken by take_dropped() when that report did not get through.
  void restore_dropped(std::uint64_t n) { dropped_ += n; }

  std::size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }
  std::uint64_t last_seq() const { return next_seq_ - 1; }

 private:
  std::size_t capacity_;
  std::deque<protocol::Result> queue_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t dropped_ = 0;
};

}  // namespace dozor::agent
