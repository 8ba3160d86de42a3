#include "modbus/link.h"

#include <fcntl.h>
#include <modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "modbus/frame.h"

namespace dozor::probes::modbus {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::optional<int> to_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

int poll_ms(Clock::time_point deadline) {
  auto left = duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

// Reads and drops bytes on `fd` until it has been quiet for `quiet`, or `deadline`.
void drain_fd(int fd, milliseconds quiet, Clock::time_point deadline) {
  if (fd < 0) return;
  std::uint8_t buf[512];
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return;
    const auto wait = std::min<Clock::duration>(quiet, deadline - now);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(duration_cast<milliseconds>(wait).count())) <= 0) return;
    if (::read(fd, buf, sizeof buf) <= 0) return;
  }
}

Reply from_errno(int err) {
  if (err == ETIMEDOUT) return {Reply::Status::timeout, 0, "timed out"};
  if (err > MODBUS_ENOBASE && err <= EMBXGTAR) {
    const int code = err - MODBUS_ENOBASE;
    return {Reply::Status::exception, code, std::string(exception_name(code))};
  }
  if (err == EMBBADCRC || err == EMBBADDATA || err == EMBBADEXC || err == EMBUNKEXC ||
      err == EMBMDATA || err == EMBBADSLAVE)
    return {Reply::Status::bad_response, 0, modbus_strerror(err)};
  return {Reply::Status::link_down, 0, modbus_strerror(err)};
}

void set_timeout(modbus_t* ctx, milliseconds t,
                 int (*set)(modbus_t*, std::uint32_t, std::uint32_t)) {
  const auto ms = std::max<long long>(t.count(), 1);
  set(ctx, static_cast<std::uint32_t>(ms / 1000), static_cast<std::uint32_t>(ms % 1000) * 1000);
}

/// Modbus TCP and RTU through libmodbus: one context per link (it is not thread-safe).
class LibmodbusTransport final : public Transport {
 public:
  explicit LibmodbusTransport(const LinkSpec& s) : tcp_(s.kind == LinkSpec::Kind::tcp) {
    ctx_ = tcp_ ? modbus_new_tcp_pi(s.host.c_str(), std::to_string(s.port).c_str())
                : modbus_new_rtu(s.device.c_str(), s.baud, s.parity, s.data_bits, s.stop_bits);
    if (ctx_) modbus_set_error_recovery(ctx_, MODBUS_ERROR_RECOVERY_NONE);
  }
  ~LibmodbusTransport() override {
    if (ctx_) {
      modbus_close(ctx_);
      modbus_free(ctx_);
    }
  }

  bool connect(milliseconds timeout, std::string* error) override {
    if (!ctx_) {
      *error = "cannot create a libmodbus context";
      return false;
    }
    set_timeout(ctx_, timeout, &modbus_set_response_timeout);
    if (modbus_connect(ctx_) != 0) {
      *error = modbus_strerror(errno);
      modbus_close(ctx_);
      return false;
    }
    return true;
  }
  void close() override {
    if (ctx_) modbus_close(ctx_);
  }

  Reply read(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
             milliseconds timeout) override {
    modbus_set_slave(ctx_, x.unit);
    set_timeout(ctx_, timeout, &modbus_set_response_timeout);
    // Between the bytes of one answer: a USB converter may hold bytes for a few milliseconds.
    set_timeout(ctx_, tcp_ ? timeout : std::min(timeout, milliseconds(50)),
                &modbus_set_byte_timeout);
    const auto deadline = Clock::now() + timeout;
    tid_ = tid_ < 0xffff ? tid_ + 1 : 0;  // what libmodbus puts in this request's MBAP header
    int rc = -1;
    switch (x.reg) {
      case RegisterType::coil:
        rc = modbus_read_bits(ctx_, x.address, x.count, bits);
        break;
      case RegisterType::discrete:
        rc = modbus_read_input_bits(ctx_, x.address, x.count, bits);
        break;
      case RegisterType::holding:
        rc = modbus_read_registers(ctx_, x.address, x.count, regs);
        break;
      case RegisterType::input:
        rc = modbus_read_input_registers(ctx_, x.address, x.count, regs);
        break;
    }
    if (rc == x.count) return {};
    if (rc >= 0) return {Reply::Status::bad_response, 0, "short answer"};
    const int err = errno;
    // A late answer to an earlier, timed-out request arrived first: libmodbus read exactly
    // that frame and rejected its transaction id. Ours may still follow.
    if (tcp_ && err == EMBBADDATA) return read_after_stale(x, regs, bits, deadline);
    return from_errno(err);
  }

  void drain(milliseconds quiet, Clock::time_point deadline) override {
    // TCP answers carry the transaction id, so what is late is recognised; drop what is there.
    drain_fd(modbus_get_socket(ctx_), tcp_ ? milliseconds(0) : quiet, deadline);
    modbus_flush(ctx_);
  }

 private:
  Reply read_after_stale(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
                         Clock::time_point deadline) {
    std::uint8_t rsp[MODBUS_TCP_MAX_ADU_LENGTH];
    for (int stale = 0; stale < 8 && Clock::now() < deadline; ++stale) {
      set_timeout(ctx_, duration_cast<milliseconds>(deadline - Clock::now()),
                  &modbus_set_response_timeout);
      const int n = modbus_receive_confirmation(ctx_, rsp);
      if (n < 0) return from_errno(errno);
      if (n < 9 || ((rsp[0] << 8) | rsp[1]) != tid_) continue;  // another stale answer
      return parse_tcp_reply(rsp, static_cast<std::size_t>(n), x, regs, bits);
    }
    return {Reply::Status::timeout, 0, "timed out"};
  }

  bool tcp_;
  modbus_t* ctx_ = nullptr;
  int tid_ = 0;
};

/// RTU frames (address, PDU, CRC-16) over a TCP socket, as serial-to-Ethernet gateways in
/// transparent mode speak them; libmodbus has no such mode.
class RtuOverTcpTransport final : public Transport {
 public:
  explicit RtuOverTcpTransport(const LinkSpec& s) : host_(s.host), port_(s.port) {}
  ~RtuOverTcpTransport() override { close(); }

  bool connect(milliseconds timeout, std::string* error) override {
    close();
    const auto deadline = Clock::now() + timeout;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &res);
        rc != 0) {
      *error = std::string("cannot resolve ") + host_ + ": " + gai_strerror(rc);
      return false;
    }
    *error = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, poll_ms(deadline)) == 1 ? 0 : -1;
        int soerr = rc == 0 ? 0 : ETIMEDOUT;
        socklen_t len = sizeof soerr;
        if (rc == 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        errno = soerr;
        rc = soerr == 0 ? 0 : -1;
      }
      if (rc == 0) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd_ = fd;
        break;
      }
      *error = std::strerror(errno);
      ::close(fd);
    }
    ::freeaddrinfo(res);
    return fd_ >= 0;
  }
  void close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  Reply read(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
             milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    const int fc = function_of(x.reg);
    std::uint8_t req[8] = {static_cast<std::uint8_t>(x.unit),
                           static_cast<std::uint8_t>(fc),
                           static_cast<std::uint8_t>(x.address >> 8),
                           static_cast<std::uint8_t>(x.address & 0xff),
                           static_cast<std::uint8_t>(x.count >> 8),
                           static_cast<std::uint8_t>(x.count & 0xff),
                           0,
                           0};
    const std::uint16_t crc = crc16({req, 6});
    req[6] = static_cast<std::uint8_t>(crc & 0xff);
    req[7] = static_cast<std::uint8_t>(crc >> 8);
    for (std::size_t sent = 0; sent < sizeof req;) {
      ssize_t n = ::send(fd_, req + sent, sizeof req - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, poll_ms(deadline)) == 1) continue;
        return {Reply::Status::timeout, 0, "timed out sending"};
      }
      return {Reply::Status::link_down, 0, std::string("send: ") + std::strerror(errno)};
    }

    std::uint8_t rsp[512];
    std::size_t have = 0, want = 5;  // the shortest frame: an exception
    while (have < want) {
      pollfd p{fd_, POLLIN, 0};
      const int pr = ::poll(&p, 1, poll_ms(deadline));
      if (pr == 0) return {Reply::Status::timeout, 0, "timed out"};
      if (pr < 0) return {Reply::Status::link_down, 0, std::strerror(errno)};
      ssize_t n = ::recv(fd_, rsp + have, want - have, 0);
      if (n == 0) return {Reply::Status::link_down, 0, "connection closed by the gateway"};
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return {Reply::Status::link_down, 0, std::strerror(errno)};
      }
      have += static_cast<std::size_t>(n);
      want = rtu_reply_size(rsp, have);
    }
    return parse_rtu_reply(rsp, want, x, regs, bits);
  }

  void drain(milliseconds quiet, Clock::time_point deadline) override {
    drain_fd(fd_, quiet, deadline);
  }

 private:
  std::string host_;
  int port_;
  int fd_ = -1;
};

std::unique_ptr<Transport> make_transport(const LinkSpec& s) {
  if (s.kind == LinkSpec::Kind::rtu_tcp) return std::make_unique<RtuOverTcpTransport>(s);
  return std::make_unique<LibmodbusTransport>(s);
}

}  // namespace

std::string_view exception_name(int code) {
  switch (code) {
    case 0x01:
      return "illegal function";
    case 0x02:
      return "illegal data address";
    case 0x03:
      return "illegal data value";
    case 0x04:
      return "server device failure";
    case 0x05:
      return "acknowledge";
    case 0x06:
      return "server device busy";
    case 0x08:
      return "memory parity error";
    case 0x0A:
      return "gateway path unavailable";
    case 0x0B:
      return "gateway target device failed to respond";
  }
  return "unknown exception";
}

std::uint16_t crc16(std::span<const std::uint8_t> bytes) {
  std::uint16_t crc = 0xffff;
  for (auto b : bytes) {
    crc ^= b;
    for (int i = 0; i < 8; ++i) crc = (crc & 1) ? (crc >> 1) ^ 0xa001 : crc >> 1;
  }
  return crc;
}

std::string LinkSpec::key() const {
  switch (kind) {
    case Kind::tcp:
      return "tcp://" + host + ":" + std::to_string(port);
    case Kind::rtu_tcp:
      return "rtu+tcp://" + host + ":" + std::to_string(port);
    case Kind::rtu:
      return "rtu://" + device;
  }
  return {};
}

std::string LinkSpec::url() const {
  if (kind == Kind::tcp) return key();
  return key() + "?baud=" + std::to_string(baud) + "&parity=" + std::string(1, parity) +
         "&data=" + std::to_string(data_bits) + "&stop=" + std::to_string(stop_bits);
}

std::chrono::microseconds LinkSpec::frame_gap() const {
  if (!serial()) return std::chrono::microseconds(0);
  if (baud > 19200) return std::chrono::microseconds(1750);
  // 3.5 characters, rounded up.
  return std::chrono::microseconds((35'000'000LL * bits_per_char() + 10LL * baud - 1) /
                                   (10LL * baud));
}

std::optional<LinkSpec> parse_link(std::string_view url, std::string* error) {
  LinkSpec s;
  std::string_view rest;
  if (url.starts_with("tcp://")) {
    s.kind = LinkSpec::Kind::tcp;
    rest = url.substr(6);
  } else if (url.starts_with("rtu+tcp://")) {
    s.kind = LinkSpec::Kind::rtu_tcp;
    rest = url.substr(10);
  } else if (url.starts_with("rtu://")) {
    s.kind = LinkSpec::Kind::rtu;
    rest = url.substr(6);
  } else {
    *error = "expected tcp://host:port, rtu:///dev/ttyX?baud=9600 or rtu+tcp://host:port, got '" +
             std::string(url) + "'";
    return std::nullopt;
  }
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (s.kind == LinkSpec::Kind::rtu) {
    if (!rest.starts_with("/") || rest.size() < 2) {
      *error = "expected a device path such as rtu:///dev/ttyUSB0";
      return std::nullopt;
    }
    s.device = std::string(rest);
  } else {
    if (!query.empty() && s.kind == LinkSpec::Kind::tcp) {
      *error = "tcp:// takes no parameters";
      return std::nullopt;
    }
    auto colon = rest.rfind(':');
    std::string_view host = colon == std::string_view::npos ? rest : rest.substr(0, colon);
    if (host.starts_with("[") && host.ends_with("]")) host = host.substr(1, host.size() - 2);
    if (host.empty() || host.find('/') != std::string_view::npos) {
      *error = "expected host:port";
      return std::nullopt;
    }
    s.host = std::string(host);
    if (colon != std::string_view::npos) {
      auto port = to_int(rest.substr(colon + 1));
      if (!port || *port < 1 || *port > 65535) {
        *error = "expected a port 1-65535";
        return std::nullopt;
      }
      s.port = *port;
    }
  }
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = kv.find('=');
    std::string_view k = kv.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
    auto n = to_int(v);
    if (k == "baud" && n && *n >= 300 && *n <= 4'000'000) {
      s.baud = *n;
    } else if (k == "parity" && (v == "N" || v == "E" || v == "O")) {
      s.parity = v[0];
    } else if (k == "data" && n && *n >= 5 && *n <= 8) {
      s.data_bits = *n;
    } else if (k == "stop" && n && (*n == 1 || *n == 2)) {
      s.stop_bits = *n;
    } else {
      *error = "bad link parameter '" + std::string(kv) +
               "'; expected baud=300-4000000, parity=N|E|O, data=5-8, stop=1|2";
      return std::nullopt;
    }
  }
  return s;
}

Link::Link(LinkSpec spec) : Link(spec, make_transport(spec)) {}
Link::Link(LinkSpec spec, std::unique_ptr<Transport> transport)
    : spec_(std::move(spec)), transport_(std::move(transport)) {}
Link::~Link() = default;

std::uint64_t Link::requests_sent() const {
  std::lock_guard lock(mu_);
  return requests_;
}

Reply Link::read(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
                 Clock::time_point deadline) {
  std::unique_lock lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline))
    return {Reply::Status::timeout, 0, "link busy with other devices until the deadline", false};
  return read_locked(x, regs, bits, deadline);
}

bool Link::ensure_connected(Clock::time_point deadline, std::string* error) {
  if (connected_) return true;
  const auto now = Clock::now();
  if (now < next_connect_) {
    *error = "reconnecting in " +
             std::to_string(duration_cast<milliseconds>(next_connect_ - now).count()) + " ms";
    return false;
  }
  const auto left = duration_cast<milliseconds>(deadline - now);
  if (left <= milliseconds(0)) {
    *error = "no time left to connect";
    return false;
  }
  if (transport_->connect(left, error)) {
    connected_ = true;
    used_ = false;
    reconnect_backoff_ = milliseconds(0);
    last_end_ = Clock::now();
    return true;
  }
  reconnect_backoff_ =
      std::min(std::max(reconnect_backoff_ * 2, milliseconds(100)), kMaxReconnectBackoff);
  next_connect_ = Clock::now() + reconnect_backoff_;
  *error = "connect: " + *error;
  return false;
}

Reply Link::read_locked(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
                        Clock::time_point deadline) {
  for (int attempt = 0;; ++attempt) {
    std::string error;
    if (!ensure_connected(deadline, &error))
      return {Reply::Status::link_down, 0, error, attempt > 0};
    // The bus needs its silence, and some devices want more between their requests.
    auto ready = last_end_ + spec_.frame_gap();
    if (x.device_last) ready = std::max(ready, *x.device_last + x.min_gap);
    if (ready > deadline)
      return {Reply::Status::timeout, 0, "no time left for the frame gap", false};
    std::this_thread::sleep_until(ready);
    const auto left = duration_cast<milliseconds>(deadline - Clock::now());
    if (left <= milliseconds(0)) return {Reply::Status::timeout, 0, "no time left", false};
    const bool was_used = used_;
    ++requests_;
    Reply r = transport_->read(x, regs, bits, std::min(x.timeout, left));
    last_end_ = Clock::now();
    if (x.device_last) *x.device_last = last_end_;
    switch (r.status) {
      case Reply::Status::ok:
      case Reply::Status::exception:
        used_ = true;
        return r;
      case Reply::Status::timeout:
      case Reply::Status::bad_response: {
        // Whatever is still on its way belongs to this request, never to the next.
        const auto quiet = milliseconds(20) + 2 * duration_cast<milliseconds>(spec_.frame_gap());
        transport_->drain(quiet, std::min(deadline, Clock::now() + x.timeout));
        last_end_ = Clock::now();
        return r;
      }
      case Reply::Status::link_down:
        transport_->close();
        connected_ = false;
        // A connection that worked before may just be stale (the gateway restarted): one fresh
        // connection and one more try, without waiting for the backoff.
        if (attempt == 0 && was_used && Clock::now() < deadline) continue;
        reconnect_backoff_ =
            std::min(std::max(reconnect_backoff_ * 2, milliseconds(100)), kMaxReconnectBackoff);
        next_connect_ = Clock::now() + reconnect_backoff_;
        return r;
    }
  }
}

std::shared_ptr<Link> acquire_link(const LinkSpec& spec, std::string* error) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<Link>> links;
  std::lock_guard lock(mu);
  auto& slot = links[spec.key()];
  if (auto link = slot.lock()) {
    if (link->spec().url() != spec.url()) {
      *error = spec.key() + " is already open as " + link->spec().url();
      return nullptr;
    }
    return link;
  }
  auto link = std::make_shared<Link>(spec);
  slot = link;
  return link;
}

}  // namespace dozor::probes::modbus
