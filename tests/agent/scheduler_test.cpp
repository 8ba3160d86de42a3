#include "dozor/agent/scheduler.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <stdexcept>

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

}  // namespace
}  // namespace dozor::agent
