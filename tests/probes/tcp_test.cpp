#include <gtest/gtest.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <memory>

#include "probe_runner.h"

namespace dozor::probes {
namespace {

using asio::ip::tcp;
using namespace probe_testing;

/// A TCP peer on 127.0.0.1:<ephemeral>: accepts, then greets, echoes one line, or stays silent.
class TcpPeer {
 public:
  enum class Mode { silent, banner, echo_line };

  explicit TcpPeer(Mode mode, std::string banner = "")
      : mode_(mode), banner_(std::move(banner)), acceptor_(peer_.ioc()) {
    // Bound and listening before the constructor returns, so the probe never races the listener.
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    asio::co_spawn(peer_.ioc(), serve(), asio::detached);
  }
  ~TcpPeer() { peer_.stop(); }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::awaitable<void> serve() {
    for (;;) {
      boost::system::error_code ec;
      auto socket = std::make_shared<tcp::socket>(
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec)));
      if (ec) co_return;
      held_.push_back(socket);  // silent mode keeps connections open until the test ends
      if (mode_ == Mode::banner) {
        co_await asio::async_write(*socket, asio::buffer(banner_),
                                   asio::redirect_error(asio::use_awaitable, ec));
        socket->close(ec);
      } else if (mode_ == Mode::echo_line) {
        asio::streambuf line;
        co_await asio::async_read_until(*socket, line, '\n',
                                        asio::redirect_error(asio::use_awaitable, ec));
        if (!ec)
          co_await asio::async_write(*socket, line.data(),
                                     asio::redirect_error(asio::use_awaitable, ec));
        socket->close(ec);
      }
    }
  }

  Mode mode_;
  std::string banner_;
  PeerThread peer_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<tcp::socket>> held_;  // touched only on the peer's thread
};

std::string probe_yaml(unsigned short port, const std::string& extra = "") {
  return "{ name: t, type: tcp, host: 127.0.0.1, port: " + std::to_string(port) +
         ", interval: 10s, timeout: 2s" + extra + " }";
}

TEST(TcpProbe, ConnectsToListener) {
  TcpPeer peer(TcpPeer::Mode::silent);
  auto timed = run(probe_yaml(peer.port()));
  const auto& r = timed.result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_NE(r.summary.find("127.0.0.1:" + std::to_string(peer.port()) + " connected in"),
            std::string::npos)
      << r.summary;
  auto connect = metric(r, "connect_seconds");
  ASSERT_TRUE(connect);
  EXPECT_GE(*connect, 0.0);
  EXPECT_LT(*connect, 2.0);
}

TEST(TcpProbe, MatchesBanner) {
  TcpPeer peer(TcpPeer::Mode::banner, "220 erp ready\r\n");
  auto r = run(probe_yaml(peer.port(), ", expect: '220 erp'")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_NE(r.summary.find("reply matched"), std::string::npos) << r.summary;
}

TEST(TcpProbe, SendsAndExpectsEcho) {
  TcpPeer peer(TcpPeer::Mode::echo_line);
  auto r = run(probe_yaml(peer.port(), ", send: \"PING dozor\\n\", expect: 'PING dozor'")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
}

TEST(TcpProbe, ReplyMismatchIsCritical) {
  TcpPeer peer(TcpPeer::Mode::banner, "500 go away\r\n");
  auto r = run(probe_yaml(peer.port(), ", expect: '220'")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("expected '220'"), std::string::npos) << r.summary;
  EXPECT_NE(r.summary.find("'500 go away'"), std::string::npos) << r.summary;
  EXPECT_TRUE(metric(r, "connect_seconds"));
}

TEST(TcpProbe, RefusedPortIsCritical) {
  unsigned short port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  auto r = run(probe_yaml(port)).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("connect to 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.summary;
  EXPECT_NE(r.summary.find("refused"), std::string::npos) << r.summary;
}

TEST(TcpProbe, SilentPeerTimesOutWithinTimeout) {
  TcpPeer peer(TcpPeer::Mode::silent);
  auto timed = run("{ name: t, type: tcp, host: 127.0.0.1, port: " + std::to_string(peer.port()) +
                   ", timeout: 300ms, expect: hello }");
  EXPECT_EQ(timed.result.status, Status::critical) << to_text(timed.result);
  EXPECT_NE(timed.result.summary.find("timed out"), std::string::npos) << timed.result.summary;
  EXPECT_GE(timed.seconds, 0.25);
  EXPECT_LT(timed.seconds, 0.3 + 2.0);
}

TEST(TcpProbe, ConnectTimeThresholds) {
  TcpPeer peer(TcpPeer::Mode::silent);
  EXPECT_EQ(run(probe_yaml(peer.port(), ", warning: 0")).result.status, Status::warning);
  EXPECT_EQ(run(probe_yaml(peer.port(), ", warning: 0, critical: 0")).result.status,
            Status::critical);
  EXPECT_EQ(run(probe_yaml(peer.port(), ", warning: 1s, critical: 2s")).result.status, Status::ok);
}

TEST(TcpProbe, RejectsBadConfig) {
  auto errors = config_errors("{ name: t, type: tcp, host: '', port: 0 }");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find("probes[0].port: expected 1-65535"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("probes[0].host: must not be empty"), std::string::npos) << errors[1];
}

}  // namespace
}  // namespace dozor::probes
