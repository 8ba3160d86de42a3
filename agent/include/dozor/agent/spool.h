#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dozor/protocol/report.h"
#include "dozor/protocol/sqlite.h"

namespace dozor::agent {

struct SpoolConfig {
  std::string path;                                   // SQLite file
  std::uint64_t max_size = 256ull << 20;              // bytes of results kept
  std::chrono::milliseconds max_age{7 * 86'400'000};  // older results are dropped
};

/// Results waiting for the collector's ack, in a SQLite file (WAL): every result is committed
/// before it is sent, and leaves only when the collector's ack covers its seq. The seq (from 1,
/// +1 per result) survives restarts. Bounded by size and age: past a bound the oldest results
/// go first, and are counted until a report has told the collector. A killed process loses
/// nothing that push() returned for. Not thread-safe: used on the agent's I/O thread.
class Spool {
 public:
  /// A result as stored: its seq and its wire JSON.
  struct Entry {
    std::uint64_t seq;
    std::string json;
  };

  /// Opens or creates the spool; throws sqlite::Error when the file cannot be used.
  explicit Spool(SpoolConfig config);

  /// Assigns the next seq, commits the result, applies the bounds; returns the seq.
  std::uint64_t push(protocol::Result r);
  /// The oldest results (seq order), at most `max` of them or about `max_bytes` of JSON.
  std::vector<Entry> oldest(std::size_t max, std::size_t max_bytes);
  /// The newest result of each probe among those with seq > `after`: what a backlog must not
  /// hold back.
  std::vector<Entry> newest_per_probe(std::uint64_t after);
  /// The collector stored everything up to `seq`.
  void ack(std::uint64_t seq);
  /// Gives up on the one result `seq`, which the collector refused as invalid: counted as
  /// dropped. The results around it stay.
  void reject(std::uint64_t seq);
  /// Drops results older than max_age; returns how many.
  std::uint64_t expire(double now_unix);

  /// Results dropped by the bounds and not yet reported.
  std::uint64_t dropped() const { return dropped_; }
  /// A report that said `n` dropped results was accepted.
  void dropped_reported(std::uint64_t n);

  std::uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  std::uint64_t bytes() const { return bytes_; }
  /// The lowest seq still held, or the next to be assigned when none is.
  std::uint64_t oldest_seq() const { return count_ ? first_seq_ : next_seq_; }
  std::uint64_t last_seq() const { return next_seq_ - 1; }
  /// Random name given at creation; a new spool file starts counting at 1 again.
  const std::string& id() const { return id_; }

 private:
  void remove(std::uint64_t seq, bool dropped);
  // Deletes every result with seq <= `upto`, adding them to dropped_ when `dropped`.
  void remove_through(std::uint64_t upto, bool dropped);
  void set_meta(const char* key, std::int64_t value);
  void load();
  static std::uint64_t cost(std::size_t json_size) { return json_size + 48; }  // row overhead

  SpoolConfig config_;
  sqlite::Database db_;
  sqlite::Statement insert_, select_oldest_, select_one_, sizes_, delete_through_, set_meta_;
  std::string id_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t first_seq_ = 1;
  std::uint64_t count_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t dropped_ = 0;
  double next_expiry_ = 0;
  std::map<std::string, std::uint64_t> newest_;  // probe -> newest seq pushed, not yet acked
};

}  // namespace dozor::agent
