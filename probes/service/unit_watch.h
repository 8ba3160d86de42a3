#pragma once

#include <systemd/sd-bus.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <optional>
#include <string>

#include "dozor/probes/probe.h"

namespace dozor::probes::service {

/// Follows one systemd unit's state through its D-Bus `PropertiesChanged` signals: the
/// system (or user) bus, or systemd's own socket where no bus daemon runs (as systemctl does).
/// The signals only say that something changed; the probe then reads the state with systemctl,
/// so a spurious signal costs one run and a lost one waits for the interval.
class UnitWatch : public std::enable_shared_from_this<UnitWatch> {
 public:
  /// Connects, subscribes and adds the match. Blocking (a bus round trip): call it on the pool.
  /// nullptr with `error` set when systemd cannot be reached.
  static std::shared_ptr<UnitWatch> connect(bool user_bus, const std::string& unit,
                                            std::chrono::milliseconds timeout, std::string& error);
  ~UnitWatch();
  UnitWatch(const UnitWatch&) = delete;
  UnitWatch& operator=(const UnitWatch&) = delete;

  /// Reads the connection on `io`: `changed` for each signal, and once when the connection ends
  /// (systemd re-executed, the bus restarted).
  void start(const asio::any_io_executor& io, Changed changed);
  bool alive() const { return alive_; }
  void stop();

 private:
  explicit UnitWatch(sd_bus* bus) : bus_(bus) {}
  static int on_signal(sd_bus_message* m, void* self, sd_bus_error* error);
  void read();
  void process();

  sd_bus* bus_;
  std::optional<asio::posix::stream_descriptor> fd_;  // sd-bus's own descriptor, not closed here
  Changed changed_;
  bool alive_ = true;
  bool signalled_ = false;
};

/// The unit's D-Bus object path: "/org/freedesktop/systemd1/unit/postgresql_2eservice".
std::string unit_object_path(const std::string& unit);

}  // namespace dozor::probes::service
