#pragma once

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

namespace dozor::server {

/// A token bucket per key (an agent, a source address): `rate` requests per `period` seconds,
/// bursts of as many. With `max_keys`, a new key past the bound first drops the keys whose
/// bucket has refilled (they hold nothing), and is refused when none has.
class RateLimit {
 public:
  RateLimit(double rate, double period, std::size_t max_keys = 0)
      : rate_(rate), period_(period), max_keys_(max_keys) {}

  void set_rate(double rate) { rate_ = rate; }

  bool take(const std::string& key, double now) {
    if (max_keys_ > 0 && buckets_.size() >= max_keys_ && !buckets_.count(key)) {
      std::erase_if(buckets_, [&](const auto& kv) { return refilled(kv.second, now) >= rate_; });
      if (buckets_.size() >= max_keys_) return false;  // a flood from everywhere
    }
    auto [it, fresh] = buckets_.try_emplace(key, Bucket{rate_, now});
    Bucket& b = it->second;
    b.tokens = refilled(b, now);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  void erase(const std::string& key) { buckets_.erase(key); }
  /// Drops the keys `gone(key)` names (agents forgotten meanwhile).
  template <class Gone>
  void erase_if(Gone gone) {
    std::erase_if(buckets_, [&](const auto& kv) { return gone(kv.first); });
  }

 private:
  struct Bucket {
    double tokens, at;
  };
  double refilled(const Bucket& b, double now) const {
    return std::min(rate_, b.tokens + (now - b.at) * rate_ / period_);
  }

  double rate_, period_;
  std::size_t max_keys_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace dozor::server
