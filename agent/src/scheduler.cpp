#include "dozor/agent/scheduler.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <optional>
#include <random>

namespace dozor::agent {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::Status;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Whether `now` is worse than what was sent before (nothing sent yet counts as ok).
bool worse(Status now, std::optional<Status> before) {
  const Status b = before.value_or(Status::ok);
  return now != b && protocol::worst(now, b) == now;
}

}  // namespace

asio::awaitable<protocol::Result> run_probe(const probes::ProbeSpec& spec, asio::any_io_executor io,
                                            asio::thread_pool& blocking, probes::Cause cause) {
  probes::ProbeContext ctx{io, &blocking, spec.timeout, cause};
  const double ts = unix_now();
  const auto start = Clock::now();
  protocol::Result r;
  try {
    r = co_await spec.probe->run(ctx);
  } catch (const std::exception& e) {
    // A probe's own failures are results; an exception is what none of them foresaw.
    r = probes::make_result(protocol::Status::unknown, spec.type + " probe failed: " + e.what());
  }
  r.duration = probes::seconds_between(start, Clock::now());
  r.ts = ts;
  r.probe = spec.name;
  r.type = spec.type;
  for (const auto& [k, v] : spec.labels) r.labels.emplace(k, v);
  // JSON has no NaN or infinity: a metric that is not a number is not sent.
  std::erase_if(r.metrics, [](const protocol::Metric& m) { return !std::isfinite(m.value); });
  co_return r;
}

struct Scheduler::Slot {
  Slot(asio::io_context& io, probes::ProbeSpec s) : spec(std::move(s)), timer(io) {}
  probes::ProbeSpec spec;
  asio::steady_timer timer;
  bool changed = false;              // the probe saw a change that has not had its run yet
  bool idle = false;                 // sleeping until the next run: a change may cut it short
  std::optional<Status> sent;        // of the last result handed to the sink
  Clock::time_point last_event{};    // start of the last run for a change
  Clock::time_point last_confirm{};  // end of the last confirm sequence
};

Scheduler::Scheduler(asio::io_context& io, asio::thread_pool& blocking, Sink sink)
    : io_(io), blocking_(blocking), sink_(std::move(sink)) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start(std::vector<probes::ProbeSpec> specs) {
  stop();
  for (auto& s : specs) {
    auto slot = std::make_shared<Slot>(io_, std::move(s));
    slots_.push_back(slot);
    slot->spec.probe->watch([weak = std::weak_ptr<Slot>(slot)] {
      const auto slot = weak.lock();
      if (!slot) return;
      slot->changed = true;
      if (slot->idle) slot->timer.cancel();
    });
    asio::co_spawn(io_, loop(slot, generation_), asio::detached);
  }
}

void Scheduler::stop() {
  ++generation_;
  for (auto& slot : slots_) {
    slot->spec.probe->unwatch();
    slot->timer.cancel();
  }
  slots_.clear();
}

asio::awaitable<void> Scheduler::loop(std::shared_ptr<Slot> slot, std::uint64_t generation) {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  // Spread first runs over up to a second (or the interval, if shorter).
  const auto interval = slot->spec.interval;
  const auto spread = std::min<std::chrono::milliseconds>(interval, std::chrono::seconds(1));
  auto next = Clock::now() + std::chrono::milliseconds(
                                 std::uniform_int_distribution<long>(0, spread.count())(rng));
  while (generation == generation_) {
    auto due = next;
    if (slot->changed) due = std::min(due, std::max(Clock::now(), slot->last_event + kEventGap));
    slot->timer.expires_at(due);
    slot->idle = true;
    boost::system::error_code ec;
    co_await slot->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    slot->idle = false;
    if (generation != generation_) break;
    const auto now = Clock::now();
    if (now >= next) {
      co_await run_at_interval(*slot, generation);
      next += interval;
      if (next < Clock::now()) next = Clock::now() + interval;  // overran: skip, no bursts
    } else if (slot->changed && now >= slot->last_event + kEventGap) {
      co_await run_for_change(*slot, generation);
    }
  }
}

asio::awaitable<void> Scheduler::run_for_change(Slot& slot, std::uint64_t generation) {
  slot.changed = false;
  slot.last_event = Clock::now();
  protocol::Result r =
      co_await run_probe(slot.spec, io_.get_executor(), blocking_, probes::Cause::event);
  if (generation == generation_ && r.status != slot.sent) send(slot, std::move(r));
}

asio::awaitable<void> Scheduler::run_at_interval(Slot& slot, std::uint64_t generation) {
  slot.changed = false;  // this run sees the change too
  const auto start = Clock::now();
  protocol::Result r = co_await run_probe(slot.spec, io_.get_executor(), blocking_);
  if (generation != generation_) co_return;
  if (slot.spec.confirm && slot.spec.probe->confirmable() && worse(r.status, slot.sent) &&
      start - slot.last_confirm >= slot.spec.interval) {
    r = co_await confirmed(slot, std::move(r), generation);
    if (generation != generation_) co_return;
    slot.last_confirm = Clock::now();
  }
  send(slot, std::move(r));
}

void Scheduler::send(Slot& slot, protocol::Result r) {
  slot.sent = r.status;
  sink_(std::move(r));
}

asio::awaitable<protocol::Result> Scheduler::confirmed(Slot& slot, protocol::Result first,
                                                       std::uint64_t generation) {
  const std::optional<Status> before = slot.sent;
  protocol::Result r = std::move(first);
  for (int i = 0; i < kRechecks && worse(r.status, before); ++i) {
    slot.timer.expires_after(kRecheckGap);
    boost::system::error_code ec;
    co_await slot.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (generation != generation_) break;
    r = co_await run_probe(slot.spec, io_.get_executor(), blocking_, probes::Cause::recheck);
    if (generation != generation_) break;
  }
  co_return r;
}

}  // namespace dozor::agent
