#include "dozor/collector/lease.h"

#include <spdlog/spdlog.h>

#include <random>

namespace dozor::collector {
namespace {

std::string nonce() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

// The holder column is "node nonce": the node is what people read.
std::string node_of(const std::string& holder) { return holder.substr(0, holder.rfind(' ')); }

}  // namespace

Lease::Lease(sql::Options store, std::string node, Timing timing)
    : store_(std::move(store)),
      node_(std::move(node)),
      holder_id_(node_ + " " + nonce()),
      timing_(timing) {
  look();
  thread_ = std::thread([this] { run(); });
}

Lease::~Lease() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (!db_ || term() == 0) return;
  try {
    sql::Statement(*db_,
                   "UPDATE dozor_leader SET expires_at = 0 WHERE name = 'desk' AND holder = ?")
        .bind(1, std::string_view(holder_id_))
        .run();
    spdlog::info("cluster: {} gave up the desk lease", node_);
  } catch (const std::exception& e) {
    spdlog::warn("cluster: giving up the desk lease: {}; a follower takes it when it expires",
                 e.what());
  }
}

std::uint64_t Lease::term() const {
  std::lock_guard lock(mu_);
  return std::chrono::steady_clock::now() < valid_until_ ? term_ : 0;
}

std::string Lease::holder() const {
  std::lock_guard lock(mu_);
  return holder_;
}

void Lease::fence(sql::Database& db, std::uint64_t term) const {
  if (term == 0) throw sql::Error("collector " + node_ + " does not hold the desk lease");
  sql::Statement(db, "SELECT dozor_fence(?, ?)")
      .bind(1, std::string_view(holder_id_))
      .bind(2, static_cast<std::int64_t>(term))
      .run();
}

void Lease::look() {
  const auto sent = std::chrono::steady_clock::now();
  try {
    if (!db_) db_ = sql::open(store_);
    // The holder renews; anyone takes a lease that expired, with the next term.
    sql::Statement take(
        *db_,
        "UPDATE dozor_leader SET term = CASE WHEN holder = ?1 THEN term ELSE term + 1 END, "
        "holder = ?1, expires_at = extract(epoch FROM clock_timestamp()) + ?2 "
        "WHERE name = 'desk' AND (holder = ?1 OR expires_at < extract(epoch FROM "
        "clock_timestamp())) RETURNING term");
    take.bind(1, std::string_view(holder_id_))
        .bind(2, std::chrono::duration<double>(timing_.ttl).count());
    std::uint64_t term = 0;
    std::string holder;
    if (take.step()) {
      term = static_cast<std::uint64_t>(take.integer(0));
      holder = node_;
    } else {
      sql::Statement who(*db_,
                         "SELECT holder FROM dozor_leader WHERE name = 'desk' AND expires_at >= "
                         "extract(epoch FROM clock_timestamp())");
      if (who.step()) holder = node_of(who.text(0));
    }
    std::lock_guard lock(mu_);
    if (term != term_ && term != 0)
      spdlog::info("cluster: {} runs the desk (term {})", node_, term);
    else if (term == 0 && term_ != 0)
      spdlog::warn("cluster: {} lost the desk lease to {}", node_,
                   holder.empty() ? "nobody yet" : holder);
    if (term != 0)
      valid_until_ = sent + timing_.ttl - timing_.renew;
    else
      valid_until_ = {};
    term_ = term;
    holder_ = holder;
    if (failing_) spdlog::info("cluster: the lease is read again");
    failing_ = false;
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    if (!failing_)
      spdlog::error("cluster: the desk lease cannot be renewed: {}; {}", e.what(),
                    term_ ? "the desk stops when it runs out" : "trying again");
    failing_ = true;
  }
}

void Lease::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, timing_.renew, [this] { return stop_; });
    if (stop_) return;
    lock.unlock();
    look();
    lock.lock();
  }
}

}  // namespace dozor::collector
