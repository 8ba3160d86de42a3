// Draining the outbox: one coroutine per notifier, in order, with backoff.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cmath>
#include <random>
#include <set>

#include "dozor/protocol/units.h"
#include "notifiers.h"

namespace dozor::collector {

// ---- a ticket as the notifiers read it ----------------------------------------------------------

namespace notify {

std::string field(const nlohmann::json& ticket, const char* key) {
  const auto it = ticket.find(key);
  if (it == ticket.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_float()) {
    const double v = it->get<double>();
    if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  }
  return it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string details(const nlohmann::json& ticket) {
  const auto it = ticket.find("details");
  if (it == ticket.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  return it->dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::string> rfc3339_field(const nlohmann::json& ticket, const char* key) {
  const auto it = ticket.find(key);
  if (it == ticket.end()) return std::nullopt;
  if (it->is_number()) return format_timestamp(it->get<double>());
  if (it->is_string() && !it->get<std::string>().empty()) return it->get<std::string>();
  return std::nullopt;
}

}  // namespace notify

// ---- notifiers
// -----------------------------------------------------------------------------------

bool NotifierConfig::wants(std::string_view event) const {
  return events.empty() || std::find(events.begin(), events.end(), event) != events.end();
}

boost::asio::awaitable<void> Notifier::resend(const std::vector<nlohmann::json>&) { co_return; }

std::unique_ptr<Notifier> make_notifier(const NotifierConfig& config) {
  if (config.type == "webhook") return notify::make_webhook(config);
  if (config.type == "alertmanager") return notify::make_alertmanager(config);
  if (config.type == "smtp") return notify::make_smtp(config);
  throw std::runtime_error("unknown notifier type '" + config.type + "'");
}

// ---- the dispatcher
// ------------------------------------------------------------------------------

namespace {

namespace asio = boost::asio;
using asio::redirect_error;
using asio::use_awaitable;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr std::size_t kBatch = 100;

milliseconds from_seconds(double s) {
  return milliseconds(static_cast<long long>(std::ceil(std::max(0.0, s) * 1000)));
}

// What an exception says, also one that is no std::exception.
std::string what(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return *x.what() ? x.what() : "failed";
  } catch (...) {
    return "failed (unknown error)";
  }
}

}  // namespace

struct Dispatcher::State : std::enable_shared_from_this<Dispatcher::State> {
  // One notifier and where its coroutine stands.
  struct Lane {
    Lane(asio::io_context& io, std::unique_ptr<Notifier> n) : notifier(std::move(n)), timer(io) {}
    std::unique_ptr<Notifier> notifier;
    asio::steady_timer timer;  // the sleep between rounds; wake() and stop() cut it short
    bool woken = false;
    double blocked_until = 0;  // unix seconds: the oldest row waits for its retry until then
    Steady::time_point next_resend{};
    int failures_in_row = 0;
    std::set<std::uint64_t> unrecorded;  // delivered, not yet recorded in the outbox
    bool outbox_failing = false;
  };

  State(asio::io_context& io, OutboxQueue& q, Metrics& m, Clock c, milliseconds poll)
      : io(io),
        queue(q),
        metrics(m),
        clock(std::move(c)),
        poll(poll),
        rng(std::random_device{}()) {}

  asio::io_context& io;
  OutboxQueue& queue;
  Metrics& metrics;
  Clock clock;
  milliseconds poll;
  std::vector<std::unique_ptr<Lane>> lanes;
  std::minstd_rand rng;
  bool started = false;
  bool stopping = false;

  asio::awaitable<void> run(Lane& lane) {
    auto self = shared_from_this();
    const std::string& name = lane.notifier->config().name;
    while (!stopping) {
      lane.woken = false;
      bool round_failed = false;
      try {
        if (clock() >= lane.blocked_until) co_await drain(lane);
        if (lane.notifier->resends() && Steady::now() >= lane.next_resend &&
            clock() >= lane.blocked_until && !stopping)
          co_await resend(lane);
      } catch (const std::exception& e) {
        // The outbox itself failed (the store): its rows are safe; look again at the next poll.
        // Said once, not at every poll while the store stays broken.
        if (!lane.outbox_failing)
          spdlog::error("notifier {}: outbox: {}; retrying every poll", name, e.what());
        lane.outbox_failing = true;
        round_failed = true;
      }
      if (!round_failed && lane.outbox_failing) {
        spdlog::info("notifier {}: outbox readable again", name);
        lane.outbox_failing = false;
      }
      if (stopping) break;
      if (lane.woken && !round_failed && clock() >= lane.blocked_until) continue;
      co_await sleep(lane);
    }
  }

  asio::awaitable<void> sleep(Lane& lane) {
    milliseconds wait = poll;
    const double now = clock();
    // While blocked, the resend waits too: the receiver is failing.
    if (lane.blocked_until > now)
      wait = std::min(wait, from_seconds(lane.blocked_until - now));
    else if (lane.notifier->resends())
      wait = std::min(wait, std::chrono::ceil<milliseconds>(std::max(
                                Steady::duration::zero(), lane.next_resend - Steady::now())));
    lane.timer.expires_after(wait);
    boost::system::error_code ec;
    co_await lane.timer.async_wait(redirect_error(use_awaitable, ec));
  }

  // Delivers the due rows oldest first; stops at the first failure, so that nothing overtakes it.
  asio::awaitable<void> drain(Lane& lane) {
    const NotifierConfig& c = lane.notifier->config();
    for (;;) {
      const auto rows = queue.due(c.name, clock(), kBatch);
      for (const auto& n : rows) {
        if (stopping) co_return;
        if (lane.unrecorded.count(n.id)) {
          // Delivered before, but the outbox could not record it: record it, never re-send.
          queue.delivered(c.name, n.id);
          lane.unrecorded.erase(n.id);
          continue;
        }
        if (!c.wants(n.event)) {
          queue.delivered(c.name, n.id);
          continue;
        }
        std::exception_ptr error;
        try {
          co_await lane.notifier->deliver(n);
        } catch (...) {
          error = std::current_exception();
        }
        if (error) {
          failed(lane, n, what(error));
          co_return;
        }
        try {
          queue.delivered(c.name, n.id);
        } catch (...) {
          lane.unrecorded.insert(n.id);  // the store failed; the receiver has it already
          throw;
        }
        if (lane.failures_in_row > 0)
          spdlog::info("notifier {}: delivering again after {} failed attempts", c.name,
                       lane.failures_in_row);
        lane.failures_in_row = 0;
      }
      if (rows.size() < kBatch) co_return;
    }
  }

  void failed(Lane& lane, const Notification& n, const std::string& error) {
    const NotifierConfig& c = lane.notifier->config();
    const milliseconds delay = backoff(c, n.attempts + 1);
    const double retry_at = clock() + std::chrono::duration<double>(delay).count();
    metrics.notifications_failed.Add({{"notifier", c.name}}).Increment();
    ++lane.failures_in_row;
    lane.blocked_until = retry_at;
    queue.failed(c.name, n.id, retry_at, error);
    spdlog::warn("notifier {}: {} of ticket {} (event {}, attempt {}) failed, retrying in {}: {}",
                 c.name, n.event, notify::field(n.ticket, "id"), n.id, n.attempts + 1,
                 format_duration(delay), error);
  }

  // retry_base doubling per attempt up to retry_max, +-20% so that the retries of several
  // collectors (or notifiers behind one proxy) spread out.
  milliseconds backoff(const NotifierConfig& c, int attempt) {
    const double base = static_cast<double>(c.retry_base.count());
    const double capped = std::min(static_cast<double>(c.retry_max.count()),
                                   base * std::pow(2.0, std::clamp(attempt - 1, 0, 30)));
    const double jitter = std::uniform_real_distribution<double>(0.8, 1.2)(rng);
    return milliseconds(static_cast<long long>(capped * jitter));
  }

  asio::awaitable<void> resend(Lane& lane) {
    const NotifierConfig& c = lane.notifier->config();
    lane.next_resend = Steady::now() + c.resend;
    const auto active = queue.active_tickets();
    std::exception_ptr error;
    try {
      co_await lane.notifier->resend(active);
    } catch (...) {
      error = std::current_exception();
    }
    if (!error) co_return;
    metrics.notifications_failed.Add({{"notifier", c.name}}).Increment();
    spdlog::warn("notifier {}: re-sending {} active tickets failed, next try in {}: {}", c.name,
                 active.size(), format_duration(c.resend), what(error));
  }
};

Dispatcher::Dispatcher(boost::asio::io_context& io, OutboxQueue& queue, Metrics& metrics,
                       std::vector<std::unique_ptr<Notifier>> notifiers, Clock clock,
                       std::chrono::milliseconds poll)
    : state_(std::make_shared<State>(io, queue, metrics, std::move(clock), poll)) {
  if (!state_->clock) {
    state_->clock = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  for (auto& n : notifiers) {
    // Present from the start, so that a scrape shows the notifier before its first failure.
    metrics.notifications_failed.Add({{"notifier", n->config().name}});
    state_->lanes.push_back(std::make_unique<State::Lane>(io, std::move(n)));
  }
}

Dispatcher::~Dispatcher() { stop(); }

void Dispatcher::start() {
  if (state_->started || state_->stopping) return;
  state_->started = true;
  for (auto& lane : state_->lanes) asio::co_spawn(state_->io, state_->run(*lane), asio::detached);
}

void Dispatcher::wake() {
  // Posted: the Desk queues rows on whichever thread handles a report.
  asio::post(state_->io, [s = state_] {
    for (auto& lane : s->lanes) {
      lane->woken = true;
      lane->timer.cancel();
    }
  });
}

void Dispatcher::stop() {
  state_->stopping = true;
  for (auto& lane : state_->lanes) lane->timer.cancel();
}

}  // namespace dozor::collector
