#include "dozor/agent/outbox.h"

namespace dozor::agent {

std::uint64_t Outbox::push(protocol::Result r) {
  r.seq = next_seq_++;
  if (queue_.size() >= capacity_) {
    queue_.pop_front();
    ++dropped_;
  }
  queue_.push_back(std::move(r));
  return queue_.back().seq;
}

std::vector<protocol::Result> Outbox::peek(std::size_t max) const {
  std::vector<protocol::Result> out;
  const std::size_t n = std::min(max, queue_.size());
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(queue_[i]);
  return out;
}

void Outbox::ack(std::uint64_t seq) {
  while (!queue_.empty() && queue_.front().seq <= seq) queue_.pop_front();
}

std::uint64_t Outbox::take_dropped() {
  auto n = dropped_;
  dropped_ = 0;
  return n;
}

}  // namespace dozor::agent
