#pragma once

// Real Modbus peers for the tests, on threads of their own: libmodbus's server API over TCP
// (on a socket we bind to port 0), over a socat pty pair (RTU), and RTU frames over TCP.

#include <arpa/inet.h>
#include <fcntl.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dozor::probes::modbus::testing {

/// Registers of one unit: 1000 of each kind from address 0.
struct UnitMap {
  UnitMap() : m(modbus_mapping_new(1000, 1000, 1000, 1000)) {}
  ~UnitMap() { modbus_mapping_free(m); }
  UnitMap(const UnitMap&) = delete;
  UnitMap& operator=(const UnitMap&) = delete;
  modbus_mapping_t* m;
};

/// A Modbus server: libmodbus's modbus_receive/modbus_reply, one thread, several units.
/// framing: tcp (MBAP) or rtu (address + CRC) over a TCP socket; or rtu on a serial device.
class ModbusServer {
 public:
  enum class Framing { tcp, rtu_over_tcp, rtu_serial };

  explicit ModbusServer(Framing f, int port = 0, std::string device = {})
      : framing_(f), device_(std::move(device)) {
    for (int u : {1, 2}) units_[u] = std::make_unique<UnitMap>();
    start(port);
  }
  ~ModbusServer() { stop(); }

  int port() const { return port_; }
  /// Another unit that answers (units 1 and 2 always do). Call before traffic starts.
  void add_unit(int u) { units_[u] = std::make_unique<UnitMap>(); }
  modbus_mapping_t* unit(int u) { return units_.at(u)->m; }
  /// Requests seen (answered or not), all units.
  int requests() const { return requests_; }
  int connections() const { return connections_; }
  /// The next request to `unit` is answered only after `delay`.
  void delay_next(int unit, std::chrono::milliseconds delay) {
    std::lock_guard l(mu_);
    delay_[unit] = delay;
  }

  void start(int port) {
    stop_ = false;
    if (framing_ == Framing::rtu_serial) {
      thread_ = std::thread([this] { serve_serial(); });
      return;
    }
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 8) != 0)
      throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve_sockets(); });
  }

  /// Closes the listener and every connection, as a gateway that goes away.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }

 private:
  modbus_t* new_ctx() {
    modbus_t* ctx = framing_ == Framing::tcp ? modbus_new_tcp("127.0.0.1", 0)
                    : framing_ == Framing::rtu_over_tcp
                        ? modbus_new_rtu("/dev/null", 9600, 'N', 8, 1)
                        : modbus_new_rtu(device_.c_str(), 9600, 'N', 8, 1);
    modbus_set_indication_timeout(ctx, 1, 0);
    if (getenv("MB_DEBUG")) modbus_set_debug(ctx, 1);
    return ctx;
  }

  // After a request for another unit, libmodbus's RTU server takes the next frame for that unit's
  // answer and drops it. No unit answers here, so start over with a fresh context on the same fd.
  modbus_t* renew(modbus_t* old, int fd) {
    if (framing_ == Framing::tcp) return old;
    modbus_free(old);
    modbus_t* ctx = new_ctx();
    modbus_set_slave(ctx, 1);
    modbus_set_socket(ctx, fd);
    return ctx;
  }

  // One indication on `ctx`: count it, drop it for an absent unit, answer it (maybe late).
  void serve_one(modbus_t* ctx, std::uint8_t* query, int n) {
    const int hl = modbus_get_header_length(ctx);
    const int unit = query[hl - 1];
    ++requests_;
    auto it = units_.find(unit);
    if (it == units_.end()) return;  // nobody at that address
    std::chrono::milliseconds delay{0};
    {
      std::lock_guard l(mu_);
      if (auto d = delay_.find(unit); d != delay_.end()) {
        delay = d->second;
        delay_.erase(d);
      }
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);  // the peer is slow on purpose
    modbus_set_slave(ctx, unit);
    modbus_reply(ctx, query, n, it->second->m);
  }

  void serve_sockets() {
    struct Conn {
      int fd;
      modbus_t* ctx;
    };
    std::vector<Conn> conns;
    std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!stop_) {
      std::vector<pollfd> p{{listen_fd_, POLLIN, 0}};
      for (auto& c : conns) p.push_back({c.fd, POLLIN, 0});
      if (::poll(p.data(), p.size(), 20) <= 0) continue;
      if (p[0].revents & POLLIN) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          modbus_t* ctx = new_ctx();
          modbus_set_slave(ctx, 1);
          modbus_set_socket(ctx, fd);
          conns.push_back({fd, ctx});
          ++connections_;
        }
      }
      for (std::size_t i = 1; i < p.size(); ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Conn& c = conns[i - 1];
        const int n = modbus_receive(c.ctx, query);
        if (n > 0) {
          serve_one(c.ctx, query, n);
        } else if (n == 0) {
          ++requests_;
          c.ctx = renew(c.ctx, c.fd);
        } else if (errno != EMBBADCRC && errno != ETIMEDOUT) {
          ::close(c.fd);
          modbus_free(c.ctx);
          c.fd = -1;
        }
      }
      std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
    }
    for (auto& c : conns) {
      ::close(c.fd);
      modbus_free(c.ctx);
    }
  }

  void serve_serial() {
    modbus_t* ctx = new_ctx();
    modbus_set_slave(ctx, 1);
    if (modbus_connect(ctx) != 0) {
      modbus_free(ctx);
      return;
    }
    std::uint8_t query[MODBUS_RTU_MAX_ADU_LENGTH];
    while (!stop_) {
      pollfd p{modbus_get_socket(ctx), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int n = modbus_receive(ctx, query);  // 0: for another unit
      if (n > 0) serve_one(ctx, query, n);
      if (n == 0) {
        ++requests_;
        ctx = renew(ctx, modbus_get_socket(ctx));
      }
    }
    modbus_close(ctx);
    modbus_free(ctx);
  }

  Framing framing_;
  std::string device_;
  std::map<int, std::unique_ptr<UnitMap>> units_;
  std::mutex mu_;
  std::map<int, std::chrono::milliseconds> delay_;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<bool> stop_{false};
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

/// `socat -d -d pty,raw,echo=0 pty,raw,echo=0`: two ptys joined like the ends of a serial line.
class PtyPair {
 public:
  PtyPair() {
    int err[2];
    if (::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(err[1], 2);
      ::execlp("socat", "socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0", nullptr);
      ::_exit(127);
    }
    ::close(err[1]);
    err_ = err[0];
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (text.find("starting data transfer loop") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{err_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(err_, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    for (std::size_t at = 0; (at = text.find("PTY is ", at)) != std::string::npos;) {
      at += 7;
      paths_.push_back(text.substr(at, text.find('\n', at) - at));
    }
    if (paths_.size() < 2) throw std::runtime_error("socat gave no pty pair: " + text);
  }
  ~PtyPair() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    ::close(err_);
  }
  const std::string& a() const { return paths_[0]; }
  const std::string& b() const { return paths_[1]; }

 private:
  pid_t pid_ = -1;
  int err_ = -1;
  std::vector<std::string> paths_;
};

}  // namespace dozor::probes::modbus::testing
