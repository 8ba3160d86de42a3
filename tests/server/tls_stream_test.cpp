// TlsStream against a real TLS client (Asio's ssl::stream over OpenSSL) on 127.0.0.1.
#include "tls_stream.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <csignal>
#include <string>

#include "dozor/protocol/tls_profile.h"
#include "test_cert.h"

namespace dozor::server {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using asio::redirect_error;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

class TlsStreamTest : public ::testing::Test {
 protected:
  TlsStreamTest() : server_tls_(ssl::context::tls_server), client_tls_(ssl::context::tls_client) {
    std::signal(SIGPIPE, SIG_IGN);  // as Server::start does
    const auto cert = test_tls::make_cert(1);
    protocol::apply_tls_profile(server_tls_.native_handle());
    server_tls_.use_certificate_chain(asio::buffer(cert.cert_pem));
    server_tls_.use_private_key(asio::buffer(cert.key_pem), ssl::context::pem);
    protocol::apply_tls_profile(client_tls_.native_handle());
    client_tls_.set_verify_mode(ssl::verify_none);
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
  }

  // Runs `server` on the accepted connection and `client` on a TLS client connected to it,
  // until both are done (or 20 s have passed: a hang fails the test rather than the suite).
  template <class Server, class Client>
  void run(Server server, Client client, int send_buffer = 0) {
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          tcp::socket accepted = co_await acceptor_.async_accept(use_awaitable);
          if (send_buffer) accepted.set_option(asio::socket_base::send_buffer_size(send_buffer));
          TlsStream stream(std::move(accepted), server_tls_.native_handle());
          co_await server(stream);
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          ssl::stream<tcp::socket> stream(io_, client_tls_);
          co_await stream.next_layer().async_connect(acceptor_.local_endpoint(), use_awaitable);
          co_await client(stream);
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    io_.run_for(20s);
    ASSERT_TRUE(io_.stopped()) << "the exchange did not end";
  }

  static asio::awaitable<void> handshake(ssl::stream<tcp::socket>& s) {
    co_await s.async_handshake(ssl::stream_base::client, use_awaitable);
  }

  asio::io_context io_;
  ssl::context server_tls_, client_tls_;
  tcp::acceptor acceptor_{io_};
};

std::string pattern(std::size_t n, char seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 251);
  return s;
}

TEST_F(TlsStreamTest, CarriesAMegabyteEachWayPastAFullSendBuffer) {
  const std::string up = pattern(1 << 20, 'a'), down = pattern(1 << 20, 'z');
  std::string got_up(up.size(), '\0'), got_down(down.size(), '\0');
  error_code server_ec, client_ec;
  run(
      [&](TlsStream& s) -> asio::awaitable<void> {
        co_await s.async_handshake(redirect_error(use_awaitable, server_ec));
        co_await asio::async_read(s, asio::buffer(got_up),
                                  redirect_error(use_awaitable, server_ec));
        // Two buffers, as Beast hands a header and a body; the client reads late and the
        // socket's send buffer is small, so it fills and the stream waits for writability.
        const std::array<asio::const_buffer, 2> parts{
            asio::buffer(down.data(), 100), asio::buffer(down.data() + 100, down.size() - 100)};
        co_await asio::async_write(s, parts, redirect_error(use_awaitable, server_ec));
      },
      [&](ssl::stream<tcp::socket>& c) -> asio::awaitable<void> {
        co_await handshake(c);
        co_await asio::async_write(c, asio::buffer(up), use_awaitable);
        asio::steady_timer late(io_, 200ms);
        co_await late.async_wait(use_awaitable);
        co_await asio::async_read(c, asio::buffer(got_down),
                                  redirect_error(use_awaitable, client_ec));
      },
      8192);
  EXPECT_FALSE(server_ec) << server_ec.message();
  EXPECT_FALSE(client_ec) << client_ec.message();
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);
}

TEST_F(TlsStreamTest, ADeadlineEndsAWaitingReadWithTimeoutAndClosesTheConnection) {
  error_code server_ec, client_ec;
  std::chrono::steady_clock::duration waited{};
  run(
      [&](TlsStream& s) -> asio::awaitable<void> {
        co_await s.async_handshake(use_awaitable);
        const auto start = std::chrono::steady_clock::now();
        s.expires_after(150ms);
        char byte;
        co_await s.async_read_some(asio::buffer(&byte, 1),
                                   redirect_error(use_awaitable, server_ec));
        waited = std::chrono::steady_clock::now() - start;
      },
      [&](ssl::stream<tcp::socket>& c) -> asio::awaitable<void> {
        co_await handshake(c);
        char byte;
        co_await c.async_read_some(asio::buffer(&byte, 1),
                                   redirect_error(use_awaitable, client_ec));
      });
  EXPECT_EQ(server_ec, boost::beast::error::timeout) << server_ec.message();
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 5s);
  EXPECT_TRUE(client_ec) << "the client's read should end when the server closes";
}

TEST_F(TlsStreamTest, ADeadlineEndsAStalledHandshake) {
  error_code server_ec;
  run(
      [&](TlsStream& s) -> asio::awaitable<void> {
        s.expires_after(100ms);
        co_await s.async_handshake(redirect_error(use_awaitable, server_ec));
      },
      [&](ssl::stream<tcp::socket>& c) -> asio::awaitable<void> {
        // Connected, but no ClientHello: wait until the server gives up.
        char byte;
        error_code ec;
        co_await c.next_layer().async_read_some(asio::buffer(&byte, 1),
                                                redirect_error(use_awaitable, ec));
      });
  EXPECT_EQ(server_ec, boost::beast::error::timeout) << server_ec.message();
}

TEST_F(TlsStreamTest, CancelEndsAWaitingReadWithOperationAborted) {
  error_code server_ec;
  run(
      [&](TlsStream& s) -> asio::awaitable<void> {
        co_await s.async_handshake(use_awaitable);
        asio::steady_timer later(io_, 50ms);
        later.async_wait([&](error_code) { s.cancel(); });
        char byte;
        co_await s.async_read_some(asio::buffer(&byte, 1),
                                   redirect_error(use_awaitable, server_ec));
      },
      [&](ssl::stream<tcp::socket>& c) -> asio::awaitable<void> {
        co_await handshake(c);
        asio::steady_timer hold(io_, 300ms);
        co_await hold.async_wait(use_awaitable);
      });
  EXPECT_EQ(server_ec, asio::error::operation_aborted) << server_ec.message();
}

TEST_F(TlsStreamTest, ClosingWithCloseNotifyIsEofAndWithoutItTruncated) {
  for (const bool notify : {true, false}) {
    error_code server_ec;
    io_.restart();
    run(
        [&](TlsStream& s) -> asio::awaitable<void> {
          co_await s.async_handshake(use_awaitable);
          char byte;
          co_await s.async_read_some(asio::buffer(&byte, 1),
                                     redirect_error(use_awaitable, server_ec));
        },
        [&](ssl::stream<tcp::socket>& c) -> asio::awaitable<void> {
          co_await handshake(c);
          error_code ec;
          if (notify)  // sends close_notify; the server reads eof and closes
            co_await c.async_shutdown(redirect_error(use_awaitable, ec));
          else
            c.next_layer().close(ec);
        });
    if (notify)
      EXPECT_EQ(server_ec, asio::error::eof) << server_ec.message();
    else
      EXPECT_EQ(server_ec, ssl::error::stream_truncated) << server_ec.message();
  }
}

TEST_F(TlsStreamTest, APlainTcpCheckIsTruncatedNotAHandshakeError) {
  error_code server_ec;
  run(
      [&](TlsStream& s) -> asio::awaitable<void> {
        co_await s.async_handshake(redirect_error(use_awaitable, server_ec));
      },
      [&](ssl::stream<tcp::socket>& c) -> asio::awaitable<void> {
        c.next_layer().close();  // a load balancer's connect-and-close
        co_return;
      });
  EXPECT_EQ(server_ec, ssl::error::stream_truncated) << server_ec.message();
}

TEST_F(TlsStreamTest, ACertificateTheServerRefusesIsAnSslErrorNamingIt) {
  // The server asks for a client certificate the client does not have.
  server_tls_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  error_code server_ec;
  run(
      [&](TlsStream& s) -> asio::awaitable<void> {
        co_await s.async_handshake(redirect_error(use_awaitable, server_ec));
      },
      [&](ssl::stream<tcp::socket>& c) -> asio::awaitable<void> {
        error_code ec;
        co_await c.async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
        char byte;
        co_await c.async_read_some(asio::buffer(&byte, 1), redirect_error(use_awaitable, ec));
      });
  EXPECT_EQ(server_ec.category(), asio::error::get_ssl_category()) << server_ec.message();
  EXPECT_NE(server_ec.message().find("certificate"), std::string::npos) << server_ec.message();
}

}  // namespace
}  // namespace dozor::server
