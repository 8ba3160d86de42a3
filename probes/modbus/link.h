#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "modbus/point.h"

namespace dozor::probes::modbus {

using Clock = std::chrono::steady_clock;

/// Where a link goes: `tcp://host:port`, `rtu:///dev/ttyUSB0?baud=9600&parity=N&data=8&stop=1`
/// or `rtu+tcp://host:port` (RTU frames through a TCP gateway; `baud` etc. describe the serial
/// side behind it, for the frame gap and the cost model).
struct LinkSpec {
  enum class Kind { tcp, rtu, rtu_tcp };
  Kind kind = Kind::tcp;
  std::string host;
  int port = 502;
  std::string device;
  int baud = 9600;
  char parity = 'N';
  int data_bits = 8;
  int stop_bits = 1;

  /// The endpoint: one connection per key, shared by every device behind it.
  std::string key() const;
  /// The link as a URL with every parameter spelled out.
  std::string url() const;
  bool serial() const { return kind != Kind::tcp; }
  /// 1 start + data + parity + stop bits: what one character costs on the wire.
  int bits_per_char() const { return 1 + data_bits + (parity == 'N' ? 0 : 1) + stop_bits; }
  /// Silence the RTU spec demands between frames; zero for Modbus TCP.
  std::chrono::microseconds frame_gap() const;
};

/// Parses a link URL; nullopt and a message naming the bad part when it does not fit.
std::optional<LinkSpec> parse_link(std::string_view url, std::string* error);

/// Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first.
std::uint16_t crc16(std::span<const std::uint8_t> bytes);

/// One read as the link sends it.
struct Exchange {
  int unit = 1;
  RegisterType reg = RegisterType::holding;
  std::uint16_t address = 0;
  int count = 1;
  std::chrono::milliseconds timeout{500};    // for this request's answer
  std::chrono::microseconds min_gap{0};      // the device's own quiet time between requests
  Clock::time_point* device_last = nullptr;  // end of the device's last exchange; updated
};

struct Reply {
  enum class Status { ok, timeout, exception, bad_response, link_down };
  Status status = Status::ok;
  int exception = 0;  // Modbus exception code when status is exception
  std::string message;
  bool sent = true;  // false when the request never left (link down, no time left)
};

std::string_view exception_name(int code);

/// The way bytes reach the devices of one link (libmodbus TCP or RTU, or our RTU over TCP).
/// Not thread-safe; the Link serialises every call.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual bool connect(std::chrono::milliseconds timeout, std::string* error) = 0;
  virtual void close() = 0;
  /// Sends one read and waits up to `timeout` for its answer; `regs` or `bits` get `count` values.
  virtual Reply read(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
                     std::chrono::milliseconds timeout) = 0;
  /// Discards whatever arrives until the line has been quiet for `quiet`, at most until
  /// `deadline`: a late answer must not be taken for the next one.
  virtual void drain(std::chrono::milliseconds quiet, Clock::time_point deadline) = 0;
};

/// One persistent connection to a bus or gateway, shared by all devices on it. Thread-safe:
/// exactly one request is in flight at a time, and the RTU frame gap is kept between any two.
/// Its calls block; run them on the blocking pool.
class Link {
 public:
  explicit Link(LinkSpec spec);
  Link(LinkSpec spec, std::unique_ptr<Transport> transport);
  ~Link();
  const LinkSpec& spec() const { return spec_; }

  /// Reads for one device. Waits for the link and the gaps no later than `deadline`; connects
  /// (with capped backoff after failures) when the link is down.
  Reply read(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
             Clock::time_point deadline);

  /// Requests sent since the link was made (every attempt, answered or not).
  std::uint64_t requests_sent() const;

 private:
  Reply read_locked(const Exchange& x, std::uint16_t* regs, std::uint8_t* bits,
                    Clock::time_point deadline);
  bool ensure_connected(Clock::time_point deadline, std::string* error);

  const LinkSpec spec_;
  mutable std::timed_mutex mu_;
  std::unique_ptr<Transport> transport_;
  bool connected_ = false;
  bool used_ = false;  // the connection has answered once: a failure now may be a stale socket
  Clock::time_point last_end_{};
  Clock::time_point next_connect_{};
  std::chrono::milliseconds reconnect_backoff_{0};
  std::uint64_t requests_ = 0;
};

/// The link for `spec`, opened once per endpoint and shared while any probe holds it. nullptr
/// and a message when the endpoint is already open with different settings.
std::shared_ptr<Link> acquire_link(const LinkSpec& spec, std::string* error);

/// Longest pause between reconnect attempts of a link whose gateway went away.
inline constexpr std::chrono::milliseconds kMaxReconnectBackoff{1000};

}  // namespace dozor::probes::modbus
