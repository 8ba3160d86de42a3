#include "dozor/agent/scheduler.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "running_scheduler.h"

namespace dozor::agent {
namespace {

namespace asio = boost::asio;

// A probe that fails in a way it did not foresee: run_probe turns the exception into a result.
struct ThrowingProbe final : probes::Probe {
  asio::awaitable<protocol::Result> run(probes::ProbeContext&) override {
    throw std::runtime_error("device answered with 3 bytes");
    co_return protocol::Result{};
  }
};

TEST(RunProbe, AnExceptionIsAnUnknownResultNamingTheType) {
  probes::ProbeSpec spec;
  spec.name = "meter-1";
  spec.type = "modbus";
  spec.timeout = std::chrono::seconds(1);
  spec.labels = {{"room", "boiler"}};
  spec.probe = std::make_shared<ThrowingProbe>();
  asio::io_context io;
  asio::thread_pool blocking(1);
  auto done = asio::co_spawn(io, run_probe(spec, io.get_executor(), blocking), asio::use_future);
  io.run();
  const protocol::Result r = done.get();
  EXPECT_EQ(r.status, protocol::Status::unknown);
  EXPECT_EQ(r.summary, "modbus probe failed: device answered with 3 bytes");
  EXPECT_EQ(r.probe, "meter-1");
  EXPECT_EQ(r.type, "modbus");
  EXPECT_EQ(r.labels.at("room"), "boiler");
  blocking.join();
}

using protocol::Status;
using Clock = std::chrono::steady_clock;

// A probe whose runs answer with the statuses a test scripts, then `rest` for ever; it can
// also report a change, as an event-driven probe does.
struct ScriptedProbe final : probes::Probe {
  std::mutex m;
  std::deque<Status> script;
  Status rest = Status::ok;
  std::vector<probes::Cause> causes;
  probes::Changed changed;

  asio::awaitable<protocol::Result> run(probes::ProbeContext& ctx) override {
    Status s = rest;
    {
      std::lock_guard lock(m);
      causes.push_back(ctx.cause);
      if (!script.empty()) {
        s = script.front();
        script.pop_front();
      }
    }
    co_return probes::make_result(s, std::string(protocol::to_string(s)));
  }
  void watch(probes::Changed c) override { changed = std::move(c); }
  std::size_t runs() {
    std::lock_guard lock(m);
    return causes.size();
  }
};

// The scripted probe under the real Scheduler, on a thread of its own.
class Running : public agent_testing::RunningScheduler {
 public:
  Running(std::shared_ptr<ScriptedProbe> probe, std::chrono::milliseconds interval,
          bool confirm = true)
      : RunningScheduler(spec(std::move(probe), interval, confirm)) {}
  /// Calls the probe's `changed` on the scheduler's thread, as a watch does.
  void change(ScriptedProbe& p) {
    on_thread([&](Scheduler&) { p.changed(); });
  }

 private:
  static probes::ProbeSpec spec(std::shared_ptr<ScriptedProbe> probe,
                                std::chrono::milliseconds interval, bool confirm) {
    probes::ProbeSpec s;
    s.name = "scripted";
    s.type = "scripted";
    s.interval = interval;
    s.timeout = std::chrono::seconds(1);
    s.confirm = confirm;
    s.probe = std::move(probe);
    return s;
  }
};

TEST(Scheduler, AWorseResultIsCheckedTwiceASecondApartAndTheLastCheckGoesOutAtOnce) {
  auto probe = std::make_shared<ScriptedProbe>();
  probe->script = {Status::ok, Status::critical, Status::critical, Status::critical};
  // An interval this short would run again within the confirmation: the re-checks come first.
  Running running(probe, std::chrono::milliseconds(300));
  const auto got = running.wait(2, std::chrono::seconds(5));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].result.status, Status::ok);
  EXPECT_EQ(got[1].result.status, Status::critical);
  const double took = std::chrono::duration<double>(got[1].at - got[0].at).count();
  // The first critical run comes one interval after the ok one, then two re-checks 1 s apart.
  EXPECT_GE(took, 2.2);
  EXPECT_LT(took, 3.0);
  std::lock_guard lock(probe->m);
  ASSERT_GE(probe->causes.size(), 4u);
  EXPECT_EQ(probe->causes[2], probes::Cause::recheck);
  EXPECT_EQ(probe->causes[3], probes::Cause::recheck);
}

TEST(Scheduler, OneFailedCheckAmongGoodOnesSendsNothingWorse) {
  auto probe = std::make_shared<ScriptedProbe>();
  probe->script = {Status::ok, Status::critical, Status::ok};
  Running running(probe, std::chrono::milliseconds(400));
  const auto got = running.wait(4, std::chrono::milliseconds(2500));
  ASSERT_GE(got.size(), 3u);
  for (const auto& a : got) EXPECT_EQ(a.result.status, Status::ok) << a.result.summary;
}

TEST(Scheduler, WithoutConfirmAWorseResultGoesOutAsItIs) {
  auto probe = std::make_shared<ScriptedProbe>();
  probe->script = {Status::ok, Status::critical};
  Running running(probe, std::chrono::milliseconds(300), /*confirm=*/false);
  const auto got = running.wait(2, std::chrono::seconds(2));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].result.status, Status::critical);
  EXPECT_LT(std::chrono::duration<double>(got[1].at - got[0].at).count(), 0.8);
}

TEST(Scheduler, AFlappingProbeGetsOneConfirmationAnInterval) {
  auto probe = std::make_shared<ScriptedProbe>();
  // ok, then critical (confirm: ok again), then critical at once: the second worsening within
  // the same interval goes out without more re-checks.
  probe->script = {Status::ok, Status::critical, Status::ok, Status::critical};
  Running running(probe, std::chrono::milliseconds(1500));
  const auto got = running.wait(3, std::chrono::seconds(6));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].result.status, Status::ok);
  EXPECT_EQ(got[2].result.status, Status::critical);
  std::lock_guard lock(probe->m);
  EXPECT_EQ(probe->causes.size(), 4u);  // no re-check after the fourth run
}

TEST(Scheduler, AChangeRunsTheProbeAtOnceAndItsResultGoesOutWhenTheStatusChanged) {
  auto probe = std::make_shared<ScriptedProbe>();
  probe->script = {Status::ok, Status::ok, Status::critical};
  Running running(probe, std::chrono::seconds(60));
  ASSERT_EQ(running.wait(1, std::chrono::seconds(3)).size(), 1u);
  running.change(*probe);  // same status: nothing to send
  for (int i = 0; i < 100 && probe->runs() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the gap between changes
  const auto before = Clock::now();
  running.change(*probe);  // critical: sent at once, unconfirmed
  const auto got = running.wait(2, std::chrono::seconds(2));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].result.status, Status::critical);
  EXPECT_LT(std::chrono::duration<double>(got[1].at - before).count(), 0.5);
  std::lock_guard lock(probe->m);
  ASSERT_EQ(probe->causes.size(), 3u);
  EXPECT_EQ(probe->causes[1], probes::Cause::event);
  EXPECT_EQ(probe->causes[2], probes::Cause::event);
}

TEST(Scheduler, ChangesComingFastAreRunAtMostEveryEventGap) {
  auto probe = std::make_shared<ScriptedProbe>();
  Running running(probe, std::chrono::seconds(60));
  ASSERT_EQ(running.wait(1, std::chrono::seconds(3)).size(), 1u);
  const auto start = Clock::now();
  while (Clock::now() - start < std::chrono::seconds(1)) {
    running.change(*probe);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // About 1 s / 100 ms; the 500 changes did not each cost a run.
  EXPECT_LE(probe->runs(), 1u + 12u);
  EXPECT_GE(probe->runs(), 1u + 5u);
}

}  // namespace
}  // namespace dozor::agent
