#include "service/unit_watch.h"

#include <systemd/sd-bus.h>

#include <cstdlib>
#include <cstring>

namespace dozor::probes::service {
namespace {

std::string bus_error(int r, const sd_bus_error* e = nullptr) {
  if (e && sd_bus_error_is_set(e)) return e->message ? e->message : e->name;
  return std::strerror(-r);
}

// systemd's socket for its own clients: what systemctl uses where no bus daemon runs.
int open_private(sd_bus** bus, bool user_bus) {
  std::string path = "/run/systemd/private";
  if (user_bus) {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    if (!runtime || !*runtime) return -ENXIO;
    path = std::string(runtime) + "/systemd/private";
  }
  sd_bus* b = nullptr;
  int r = sd_bus_new(&b);
  if (r < 0) return r;
  if ((r = sd_bus_set_address(b, ("unix:path=" + path).c_str())) < 0 || (r = sd_bus_start(b)) < 0) {
    sd_bus_unref(b);
    return r;
  }
  *bus = b;
  return 0;
}

}  // namespace

std::string unit_object_path(const std::string& unit) {
  char* path = nullptr;
  if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path) < 0) return {};
  std::string out(path);
  std::free(path);
  return out;
}

std::shared_ptr<UnitWatch> UnitWatch::connect(bool user_bus, const std::string& unit,
                                              std::chrono::milliseconds timeout,
                                              std::string& error) {
  sd_bus* bus = nullptr;
  int r = user_bus ? sd_bus_open_user(&bus) : sd_bus_open_system(&bus);
  if (r < 0) {
    const std::string via_bus = bus_error(r);
    if ((r = open_private(&bus, user_bus)) < 0) {
      error = std::string("cannot reach systemd: no ") + (user_bus ? "user" : "system") + " bus (" +
              via_bus + "), no systemd socket (" + bus_error(r) + ")";
      return nullptr;
    }
  }
  std::shared_ptr<UnitWatch> w(new UnitWatch(bus));
  sd_bus_set_method_call_timeout(bus, static_cast<std::uint64_t>(timeout.count()) * 1000);
  // systemd sends unit signals only to clients that subscribed.
  sd_bus_error e = SD_BUS_ERROR_NULL;
  r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                         "org.freedesktop.systemd1.Manager", "Subscribe", &e, nullptr, "");
  if (r < 0) {
    error = "systemd Subscribe: " + bus_error(r, &e);
    sd_bus_error_free(&e);
    return nullptr;
  }
  const std::string path = unit_object_path(unit);
  r = sd_bus_match_signal(bus, nullptr, nullptr, path.c_str(), "org.freedesktop.DBus.Properties",
                          "PropertiesChanged", &UnitWatch::on_signal, w.get());
  if (r < 0) {
    error = "D-Bus match on " + path + ": " + bus_error(r);
    return nullptr;
  }
  return w;
}

UnitWatch::~UnitWatch() {
  stop();
  sd_bus_flush_close_unref(bus_);
}

void UnitWatch::start(const asio::any_io_executor& io, Changed changed) {
  changed_ = std::move(changed);
  fd_.emplace(io, sd_bus_get_fd(bus_));
  process();  // what came with the Subscribe reply
  if (alive_) read();
}

void UnitWatch::stop() {
  changed_ = nullptr;
  alive_ = false;
  if (fd_) {
    fd_->cancel();
    fd_->release();  // sd-bus closes its descriptor
    fd_.reset();
  }
}

int UnitWatch::on_signal(sd_bus_message*, void* self, sd_bus_error*) {
  static_cast<UnitWatch*>(self)->signalled_ = true;
  return 0;
}

void UnitWatch::process() {
  int r;
  while ((r = sd_bus_process(bus_, nullptr)) > 0) {
  }
  if (r < 0) alive_ = false;  // disconnected: the probe's next run connects again
  if ((signalled_ || !alive_) && changed_) changed_();
  signalled_ = false;
}

void UnitWatch::read() {
  fd_->async_wait(asio::posix::stream_descriptor::wait_read,
                  [self = shared_from_this()](const boost::system::error_code& ec) {
                    if (ec || !self->changed_) return;
                    self->process();
                    if (self->alive_ && self->changed_) self->read();
                  });
}

}  // namespace dozor::probes::service
