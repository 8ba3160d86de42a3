#include "dozor/agent/spool.h"

#include <algorithm>
#include <random>

#include "dozor/protocol/codec.h"

namespace dozor::agent {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS results (
  seq   INTEGER PRIMARY KEY,
  ts    REAL NOT NULL,
  probe TEXT NOT NULL,
  body  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
)sql";

std::string random_id() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Spool::Spool(SpoolConfig config)
    : config_(std::move(config)),
      db_(config_.path, "NORMAL"),
      // SQLite's default page cache of 2 MiB per connection would be the agent's largest heap
      // user; the spool appends and reads in seq order, which 512 KiB serves as well.
      insert_((db_.exec("PRAGMA cache_size=-512"), db_.exec(kSchema), db_.handle()),
              "INSERT INTO results(seq, ts, probe, body) VALUES (?, ?, ?, ?)"),
      select_oldest_(db_.handle(),
                     "SELECT seq, body FROM results WHERE seq >= ? ORDER BY seq LIMIT ?"),
      select_one_(db_.handle(), "SELECT body FROM results WHERE seq = ?"),
      sizes_(db_.handle(), "SELECT seq, length(body) FROM results ORDER BY seq LIMIT ?"),
      delete_through_(db_.handle(), "DELETE FROM results WHERE seq <= ?"),
      set_meta_(db_.handle(), "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)") {
  load();
}

void Spool::load() {
  sqlite::Transaction tx(db_);
  {
    sqlite::Statement q(db_.handle(), "SELECT value FROM meta WHERE key = 'id'");
    if (q.step()) {
      id_ = q.text(0);
    } else {
      id_ = random_id();
      sqlite::Statement(db_.handle(), "INSERT INTO meta(key, value) VALUES ('id', ?)")
          .bind(1, std::string_view(id_))
          .run();
    }
  }
  std::uint64_t floor = 0;     // highest seq ever removed in order
  std::uint64_t rejected = 0;  // highest seq ever refused on its own
  {
    sqlite::Statement q(
        db_.handle(), "SELECT key, value FROM meta WHERE key IN ('floor', 'dropped', 'rejected')");
    while (q.step()) {
      const auto v = static_cast<std::uint64_t>(q.integer(1));
      (q.text(0) == "floor" ? floor : q.text(0) == "dropped" ? dropped_ : rejected) = v;
    }
  }
  sqlite::Statement stats(db_.handle(),
                          "SELECT COUNT(*), MIN(seq), MAX(seq), TOTAL(length(body)) FROM results");
  stats.step();
  count_ = static_cast<std::uint64_t>(stats.integer(0));
  const auto max_seq = static_cast<std::uint64_t>(stats.integer(2));
  next_seq_ = std::max({max_seq, floor, rejected}) + 1;
  first_seq_ = count_ ? static_cast<std::uint64_t>(stats.integer(1)) : next_seq_;
  bytes_ = static_cast<std::uint64_t>(stats.real(3)) + count_ * cost(0);
  tx.commit();
}

void Spool::set_meta(const char* key, std::int64_t value) {
  set_meta_.bind(1, std::string_view(key)).bind(2, value).run();
}

std::uint64_t Spool::push(protocol::Result r) {
  r.seq = next_seq_;
  const std::string json = protocol::encode(r);
  const std::uint64_t need = cost(json.size());
  sqlite::Transaction tx(db_);
  insert_.bind(1, static_cast<std::int64_t>(r.seq))
      .bind(2, r.ts)
      .bind(3, std::string_view(r.probe))
      .bind(4, std::string_view(json))
      .run();
  const auto before = std::make_tuple(count_, bytes_, first_seq_, dropped_);
  if (++count_ == 1) first_seq_ = r.seq;
  bytes_ += need;
  try {
    if (bytes_ > config_.max_size) {
      // Full: find the oldest results whose room makes this one fit, and drop them.
      std::uint64_t freed = 0, upto = 0;
      sizes_.bind(1, std::int64_t{256});
      while (bytes_ - freed > config_.max_size && sizes_.step()) {
        upto = static_cast<std::uint64_t>(sizes_.integer(0));
        freed += cost(static_cast<std::size_t>(sizes_.integer(1)));
      }
      sizes_.reset();
      if (upto) remove_through(upto, true);
    }
    tx.commit();
  } catch (...) {
    std::tie(count_, bytes_, first_seq_, dropped_) = before;
    throw;
  }
  ++next_seq_;
  newest_[r.probe] = r.seq;
  if (const double now = unix_now(); now >= next_expiry_) {
    next_expiry_ = now + 60;  // the age bound is checked once a minute
    expire(now);
  }
  return r.seq;
}

void Spool::remove_through(std::uint64_t upto, bool dropped) {
  if (!count_ || upto < first_seq_) return;
  // Count what goes, for the byte bound and the dropped count.
  sqlite::Statement q(db_.handle(),
                      "SELECT COUNT(*), TOTAL(length(body)) FROM results WHERE seq <= ?");
  q.bind(1, static_cast<std::int64_t>(upto));
  q.step();
  const auto n = static_cast<std::uint64_t>(q.integer(0));
  const auto body_bytes = static_cast<std::uint64_t>(q.real(1));
  delete_through_.bind(1, static_cast<std::int64_t>(upto)).run();
  set_meta("floor", static_cast<std::int64_t>(upto));
  if (dropped && n) {
    dropped_ += n;
    set_meta("dropped", static_cast<std::int64_t>(dropped_));
  }
  count_ -= n;
  bytes_ -= std::min(bytes_, body_bytes + n * cost(0));
  first_seq_ = upto + 1;
  if (count_) {
    sqlite::Statement first(db_.handle(), "SELECT MIN(seq) FROM results");
    first.step();
    first_seq_ = static_cast<std::uint64_t>(first.integer(0));
  }
}

std::vector<Spool::Entry> Spool::oldest(std::size_t max, std::size_t max_bytes) {
  std::vector<Entry> out;
  std::size_t total = 0;
  select_oldest_.bind(1, static_cast<std::int64_t>(first_seq_))
      .bind(2, static_cast<std::int64_t>(max));
  while (select_oldest_.step()) {
    out.push_back({static_cast<std::uint64_t>(select_oldest_.integer(0)), select_oldest_.text(1)});
    total += out.back().json.size();
    if (total >= max_bytes) break;
  }
  select_oldest_.reset();
  return out;
}

std::vector<Spool::Entry> Spool::newest_per_probe(std::uint64_t after) {
  std::vector<Entry> out;
  for (const auto& [probe, seq] : newest_) {
    if (seq <= after) continue;
    select_one_.bind(1, static_cast<std::int64_t>(seq));
    if (select_one_.step()) out.push_back({seq, select_one_.text(0)});
    select_one_.reset();
  }
  return out;
}

void Spool::ack(std::uint64_t seq) { remove(seq, false); }

void Spool::reject(std::uint64_t seq) {
  sqlite::Statement row(db_.handle(), "SELECT length(body) FROM results WHERE seq = ?");
  row.bind(1, static_cast<std::int64_t>(seq));
  if (!row.step()) return;
  const auto body_bytes = static_cast<std::size_t>(row.integer(0));
  sqlite::Transaction tx(db_);
  sqlite::Statement(db_.handle(), "DELETE FROM results WHERE seq = ?")
      .bind(1, static_cast<std::int64_t>(seq))
      .run();
  set_meta("dropped", static_cast<std::int64_t>(dropped_ + 1));
  // The newest seq must not be handed out again after a restart.
  if (seq == last_seq()) set_meta("rejected", static_cast<std::int64_t>(seq));
  tx.commit();
  ++dropped_;
  --count_;
  bytes_ -= std::min(bytes_, cost(body_bytes));
  if (count_ && seq == first_seq_) {
    sqlite::Statement first(db_.handle(), "SELECT MIN(seq) FROM results");
    first.step();
    first_seq_ = static_cast<std::uint64_t>(first.integer(0));
  } else if (!count_) {
    first_seq_ = next_seq_;
  }
  std::erase_if(newest_, [seq](const auto& kv) { return kv.second == seq; });
}

void Spool::remove(std::uint64_t seq, bool dropped) {
  seq = std::min(seq, last_seq());
  if (seq < first_seq_ || !count_) return;
  sqlite::Transaction tx(db_);
  remove_through(seq, dropped);
  tx.commit();
  std::erase_if(newest_, [seq](const auto& kv) { return kv.second <= seq; });
}

std::uint64_t Spool::expire(double now_unix) {
  if (!count_) return 0;
  sqlite::Statement q(db_.handle(), "SELECT MAX(seq) FROM results WHERE ts < ?");
  q.bind(1, now_unix - std::chrono::duration<double>(config_.max_age).count());
  if (!q.step() || q.is_null(0)) return 0;
  const auto before = dropped_;
  remove(static_cast<std::uint64_t>(q.integer(0)), true);
  return dropped_ - before;
}

void Spool::dropped_reported(std::uint64_t n) {
  if (!n) return;
  dropped_ -= std::min(dropped_, n);
  set_meta("dropped", static_cast<std::int64_t>(dropped_));
}

}  // namespace dozor::agent
