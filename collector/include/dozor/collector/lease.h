#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dozor/collector/sql.h"

namespace dozor::collector {

/// Which of several collectors on one PostgreSQL store runs the desk: tickets, their timers
/// (silent agents, escalations, silences that end) and notifications. Any collector takes any
/// agent's reports (Health::share_store); only the holder of this lease turns them into tickets.
///
/// The lease is a row (dozor_leader) that its holder renews every `renew`. Not renewed for `ttl`
/// (the holder killed, hung, or cut off from the database), the next follower to try takes it
/// with the next term. Expiry is by the database's clock, so collectors' clocks do not matter.
/// The holder counts itself leader only until `ttl - renew` after it sent its last successful
/// renewal, so it stops before anyone else can start; and every desk transaction passes
/// fence(), which fails it in the database when the term is no longer this collector's, so a
/// collector that stood still past its lease cannot store what a second desk decided.
///
/// Its own connection and thread: a slow report never delays a renewal.
class Lease {
 public:
  struct Timing {
    std::chrono::milliseconds ttl{5'000};
    std::chrono::milliseconds renew{1'000};
  };
  /// `node`: this collector's name as others see it (collector.yaml `node`). Takes the first
  /// look before it returns, so that a lone collector leads from its start.
  Lease(sql::Options store, std::string node, Timing timing);
  explicit Lease(sql::Options store, std::string node)
      : Lease(std::move(store), std::move(node), Timing{}) {}
  /// Gives the lease up, so that a follower takes it at its next try rather than after `ttl`.
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  /// The term while this collector leads; 0 while it does not.
  std::uint64_t term() const;
  /// The node that held the lease at the last look ("" none), and this one's.
  std::string holder() const;
  const std::string& node() const { return node_; }
  /// Inside a transaction on `db` (the store's): fails it unless `term` is still this
  /// collector's (the database function dozor_fence). Throws sql::Error at once for term 0.
  void fence(sql::Database& db, std::uint64_t term) const;

 private:
  void run();
  void look();  // one renewal or takeover try

  sql::Options store_;
  std::string node_, holder_id_;  // holder_id_: node_ and a nonce, unique to this process
  Timing timing_;
  std::unique_ptr<sql::Database> db_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::uint64_t term_ = 0;
  std::chrono::steady_clock::time_point valid_until_{};
  std::string holder_;
  bool failing_ = false;  // the last look failed: logged once until one works again
  std::thread thread_;
};

}  // namespace dozor::collector
