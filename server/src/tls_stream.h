#pragma once

// The agent port's TLS connection: OpenSSL reads and writes the socket's own descriptor, and
// Asio only says when the socket is ready. asio::ssl::stream keeps, for every connection busy or
// idle, two 17 KiB buffers of its engine and a BIO pair of two more (about 68 KiB); here an idle
// connection is its SSL object and session, as OpenSSL frees its record buffers while nothing is
// in flight (SSL_MODE_RELEASE_BUFFERS, set by the TLS profile). It meets Beast's AsyncStream
// requirements, for one operation at a time (an HTTP/1.1 connection: read a request, write the
// answer), with a deadline like beast::tcp_stream's. The process must ignore SIGPIPE (OpenSSL
// writes with write(2), not send(2) with MSG_NOSIGNAL).
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <vector>

namespace dozor::server {

class TlsStream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using clock = std::chrono::steady_clock;

  /// Takes `socket` as the server side of a TLS connection under `ctx` (its verify mode, its
  /// certificates); nothing is sent until async_handshake.
  TlsStream(boost::asio::ip::tcp::socket socket, SSL_CTX* ctx)
      : core_(std::make_shared<Core>(std::move(socket), ctx)) {}

  executor_type get_executor() { return core_->socket.get_executor(); }
  SSL* native_handle() { return core_->ssl.get(); }

  /// Operations started or waiting past `at` end with beast::error::timeout, and the connection
  /// is closed (as beast::tcp_stream does).
  void expires_at(clock::time_point at) { core_->deadline = at; }
  void expires_after(clock::duration d) { expires_at(clock::now() + d); }
  /// Ends the operation in progress with operation_aborted.
  void cancel() {
    boost::system::error_code ignored;
    core_->socket.cancel(ignored);
  }
  /// Closes the connection at once (a revoked agent's): the operation in progress, or the next
  /// one, ends with operation_aborted.
  void close() {
    core_->closed = true;
    boost::system::error_code ignored;
    core_->socket.close(ignored);
  }

  template <class Token>
  auto async_handshake(Token&& token) {
    return run([](SSL* ssl, std::size_t&) { return SSL_do_handshake(ssl); }, token);
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    boost::asio::mutable_buffer into;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && into.size() == 0; ++it)
      into = *it;
    return run(
        [into](SSL* ssl, std::size_t& n) {
          return into.size() == 0 ? 1 : SSL_read_ex(ssl, into.data(), into.size(), &n);
        },
        token);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    // A reply's header and body go out as one record, not one record each: copied into one
    // buffer when they come in several (replies here are small; a long one is written a
    // record at a time).
    auto begin = boost::asio::buffer_sequence_begin(buffers);
    auto end = boost::asio::buffer_sequence_end(buffers);
    auto data = std::make_shared<std::vector<unsigned char>>();
    boost::asio::const_buffer from = begin != end ? *begin : boost::asio::const_buffer();
    if (begin != end && std::next(begin) != end) {
      data->resize(std::min<std::size_t>(boost::asio::buffer_size(buffers), kRecord));
      boost::asio::buffer_copy(boost::asio::buffer(*data), buffers);
      from = boost::asio::buffer(*data);
    }
    return run(
        [from, data](SSL* ssl, std::size_t& n) {
          return from.size() == 0 ? 1 : SSL_write_ex(ssl, from.data(), from.size(), &n);
        },
        token);
  }

  /// Sends close_notify; does not wait for the peer's.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return run(
        [](SSL* ssl, std::size_t&) {
          const int r = SSL_shutdown(ssl);
          return r >= 0 ? 1 : r;
        },
        token);
  }

 private:
  static constexpr std::size_t kRecord = 16 * 1024;

  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  struct Core {
    Core(boost::asio::ip::tcp::socket s, SSL_CTX* ctx)
        : socket(std::move(s)), timer(socket.get_executor()), ssl(SSL_new(ctx)) {
      if (!ssl) throw std::bad_alloc();
      socket.native_non_blocking(true);  // OpenSSL reads and writes the descriptor itself
      SSL_set_fd(ssl.get(), socket.native_handle());
      SSL_set_accept_state(ssl.get());
      SSL_set_mode(ssl.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    boost::asio::ip::tcp::socket socket;
    boost::asio::steady_timer timer;
    std::unique_ptr<SSL, SslFree> ssl;
    clock::time_point deadline = clock::time_point::max();
    unsigned wait = 0;  // which wait the timer is for: a late expiry of an earlier one is ignored
    bool timed_out = false;
    bool closed = false;  // close(): OpenSSL must not touch the descriptor number again
  };

  // One SSL call retried until it needs no more I/O: `call(ssl, n)` returns 1 when done (n
  // bytes), else what the SSL function returned.
  template <class Call>
  struct Op {
    std::shared_ptr<Core> core;
    Call call;
    enum { start, run, waiting } state = start;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      Core& c = *core;
      if (state == start) {
        // Never complete inside the initiating call (the Asio rule Beast's operations rely on).
        state = run;
        return boost::asio::post(c.socket.get_executor(), std::move(self));
      }
      if (state == waiting) {
        state = run;
        ++c.wait;
        c.timer.cancel();
        if (!c.timed_out && ec) return self.complete(ec, 0);
      }
      if (c.closed) return self.complete(boost::asio::error::operation_aborted, 0);
      if (c.timed_out || clock::now() >= c.deadline) return timeout(self);
      ERR_clear_error();
      std::size_t n = 0;
      const int r = call(c.ssl.get(), n);
      if (r == 1) return self.complete({}, n);
      const int saved_errno = errno;
      const int err = SSL_get_error(c.ssl.get(), r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        state = waiting;
        if (c.deadline != clock::time_point::max()) {
          c.timer.expires_at(c.deadline);
          c.timer.async_wait([weak = std::weak_ptr<Core>(core), wait = c.wait](auto e) {
            auto alive = weak.lock();
            if (e || !alive || alive->wait != wait) return;
            alive->timed_out = true;
            boost::system::error_code ignored;
            alive->socket.cancel(ignored);
          });
        }
        return c.socket.async_wait(err == SSL_ERROR_WANT_READ
                                       ? boost::asio::ip::tcp::socket::wait_read
                                       : boost::asio::ip::tcp::socket::wait_write,
                                   std::move(self));
      }
      self.complete(error(err, saved_errno), 0);
    }

    template <class Self>
    void timeout(Self& self) {
      core->timed_out = true;
      boost::system::error_code ignored;
      core->socket.close(ignored);
      self.complete(boost::beast::error::timeout, 0);
    }
  };

  // The error_code of a failed SSL call, as asio::ssl::stream reports it: eof for the peer's
  // close_notify, stream_truncated for a close without one.
  static boost::system::error_code error(int err, int saved_errno) {
    namespace asio = boost::asio;
    if (err == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
    const unsigned long e = ERR_peek_last_error();
    if (err == SSL_ERROR_SYSCALL && e == 0)
      return saved_errno == 0
                 ? boost::system::error_code(asio::ssl::error::stream_truncated)
                 : boost::system::error_code(saved_errno, boost::system::system_category());
    if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      return asio::ssl::error::stream_truncated;
    if (e == 0) return asio::ssl::error::unexpected_result;
    return {static_cast<int>(e), asio::error::get_ssl_category()};
  }

  template <class Call, class Token>
  auto run(Call call, Token& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<Call>{core_, std::move(call)}, token, core_->socket);
  }

  std::shared_ptr<Core> core_;
};

}  // namespace dozor::server
