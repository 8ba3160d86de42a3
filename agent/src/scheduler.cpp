#include "dozor/agent/scheduler.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <random>

namespace dozor::agent {
namespace {

using Clock = std::chrono::steady_clock;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

asio::awaitable<protocol::Result> run_probe(const probes::ProbeSpec& spec, asio::any_io_executor io,
                                            asio::thread_pool& blocking) {
  probes::ProbeContext ctx{io, &blocking, spec.timeout};
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

Scheduler::Scheduler(asio::io_context& io, asio::thread_pool& blocking, Sink sink)
    : io_(io), blocking_(blocking), sink_(std::move(sink)) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start(std::vector<probes::ProbeSpec> specs) {
  stop();
  for (auto& s : specs) {
    auto timer = std::make_shared<asio::steady_timer>(io_);
    timers_.push_back(timer);
    asio::co_spawn(io_, loop(std::make_shared<probes::ProbeSpec>(std::move(s)), timer, generation_),
                   asio::detached);
  }
}

void Scheduler::stop() {
  ++generation_;
  for (auto& t : timers_) t->cancel();
  timers_.clear();
}

asio::awaitable<void> Scheduler::loop(std::shared_ptr<probes::ProbeSpec> spec,
                                      std::shared_ptr<asio::steady_timer> timer,
                                      std::uint64_t generation) {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  // Spread first runs over up to a second (or the interval, if shorter).
  const auto spread = std::min<std::chrono::milliseconds>(spec->interval, std::chrono::seconds(1));
  auto next = Clock::now() + std::chrono::milliseconds(
                                 std::uniform_int_distribution<long>(0, spread.count())(rng));
  while (generation == generation_) {
    timer->expires_at(next);
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (generation != generation_) break;
    protocol::Result r = co_await run_probe(*spec, io_.get_executor(), blocking_);
    if (generation != generation_) break;
    sink_(std::move(r));
    next += spec->interval;
    const auto now = Clock::now();
    if (next < now) next = now + spec->interval;  // a run overran: skip, do not catch up in bursts
  }
}

}  // namespace dozor::agent
