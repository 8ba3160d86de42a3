#include "service/service.h"

#include <time.h>

#include "dozor/protocol/units.h"
#include "service/unit_state.h"
#include "service/unit_watch.h"
#include "src/subprocess.h"

namespace dozor::probes::service {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view kProperties =
    "--property=ActiveState,SubState,LoadState,MainPID,NRestarts,ExecMainStartTimestampMonotonic";

constexpr OptionSpec kOptions[] = {
    {"unit", OptionKind::string, "", true,
     "the systemd unit, e.g. postgresql.service or srv1cv83.service"},
    {"systemctl", OptionKind::string, "systemctl", false,
     "the systemctl to run (searched on PATH), e.g. /usr/bin/systemctl"},
    {"bus", OptionKind::string, "system", false,
     "system: the system's units; user: the units of the agent's user (systemctl --user)"},
    {"watch", OptionKind::boolean, "true", false,
     "follow the unit's state changes on D-Bus: a change is a result at once"},
};

struct Config {
  std::string unit;
  std::string systemctl;
  bool user_bus = false;
  bool watch = true;
};

// What connecting to systemd's bus came to, on the pool.
struct Connected {
  std::shared_ptr<UnitWatch> watch;
  std::string error;
};

/// Microseconds of CLOCK_MONOTONIC, the clock systemd stamps ExecMainStartTimestampMonotonic with.
std::int64_t monotonic_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

class ServiceProbe final : public Probe {
 public:
  explicit ServiceProbe(Config c) : c_(std::move(c)) {}
  ~ServiceProbe() override { unwatch(); }

  void watch(Changed changed) override {
    if (c_.watch) changed_ = std::move(changed);
  }
  void unwatch() override {
    changed_ = nullptr;
    if (watch_) watch_->stop();
    watch_.reset();
  }

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    try {
      // Subscribed before the state is read, so that no change falls between the two.
      if (changed_ && !(watch_ && watch_->alive())) co_await follow(ctx);
      ProcessRequest request;
      request.argv = {c_.systemctl};
      if (c_.user_bus) request.argv.push_back("--user");
      request.argv.insert(request.argv.end(), {"show", std::string(kProperties), c_.unit});
      // systemctl's own messages untranslated; its answer is machine-readable anyway.
      request.env = {{"LC_ALL", "C"}, {"SYSTEMD_PAGER", ""}, {"SYSTEMD_COLORS", "0"}};
      const ProcessResult p = co_await run_process_on_pool(ctx, std::move(request), last_);
      Result r = evaluate(p, ctx.timeout);
      if (!watch_error_.empty())
        r.summary += "; changes seen at the interval only (" + watch_error_ + ")";
      co_return r;
    } catch (const std::exception& e) {
      co_return make_result(Status::unknown, std::string("service probe failed: ") + e.what());
    }
  }

  std::string plan() const override {
    return "runs " + c_.systemctl + (c_.user_bus ? " --user" : "") + " show " +
           std::string(kProperties) + " " + c_.unit +
           (c_.watch ? "; follows the unit's PropertiesChanged on D-Bus" : "");
  }

 private:
  asio::awaitable<void> follow(ProbeContext& ctx) {
    watch_.reset();
    if (auto last = connecting_.lock(); last && last->running()) co_return;  // still hanging
    const auto start = std::chrono::steady_clock::now();
    auto connect = [user = c_.user_bus, unit = object_unit(), timeout = ctx.timeout] {
      Connected c;
      c.watch = UnitWatch::connect(user, unit, timeout, c.error);
      return c;
    };
    auto connected = co_await run_blocking(ctx, start + ctx.timeout, connect, connecting_);
    if (!connected) {
      watch_error_ = "connecting to systemd timed out after " + format_duration(ctx.timeout);
      co_return;
    }
    watch_error_ = std::move(connected->error);
    watch_ = std::move(connected->watch);
    if (watch_) watch_->start(ctx.io, changed_);
  }

  // The name systemd gives the unit's object: it adds .service to a name without a type.
  std::string object_unit() const {
    return c_.unit.find('.') == std::string::npos ? c_.unit + ".service" : c_.unit;
  }

  Result evaluate(const ProcessResult& p, milliseconds timeout) const {
    if (p.timed_out)
      return make_result(Status::unknown, c_.systemctl + " show " + c_.unit + " timed out after " +
                                              format_duration(timeout));
    if (!p.error.empty()) return make_result(Status::unknown, "cannot run " + p.error);
    const std::optional<UnitState> state = parse_unit_state(p.out);
    if (p.exit_code != 0 || !state) {
      // Typically "System has not been booted with systemd as init system (PID 1). Can't
      // operate." or "Failed to connect to bus": we cannot tell the unit's state.
      std::string why = first_output_line(p.err);
      if (why.empty()) why = first_output_line(p.out);
      return make_result(Status::unknown, "systemctl show " + c_.unit + ": " + describe_end(p) +
                                              (why.empty() ? "" : ": " + why));
    }
    return evaluate(*state);
  }

  Result evaluate(const UnitState& s) const {
    if (s.load_state == "not-found")
      return with_active(make_result(Status::critical, "unit " + c_.unit + " not found"), false);

    const bool active = s.active_state == "active";
    Status status = Status::critical;
    if (active) {
      status = Status::ok;
    } else if ((s.active_state == "activating" && s.sub_state != "auto-restart") ||
               s.active_state == "reloading") {
      // activating (auto-restart) is a crashed service waiting out RestartSec: still critical.
      status = Status::warning;
    }
    // A unit may still run while masked or with a broken unit file: that is worth saying.
    std::string summary = c_.unit + " " + s.active_state + " (" + s.sub_state + ")";
    if (s.load_state != "loaded" && !s.load_state.empty()) summary += ", unit " + s.load_state;
    if (s.main_pid && *s.main_pid > 0) summary += ", pid " + std::to_string(*s.main_pid);

    Result r = with_active(make_result(status, ""), active);
    if (s.restarts) {
      r.metrics.push_back({"restarts_total", static_cast<double>(*s.restarts), ""});
      if (*s.restarts > 0) summary += ", restarted " + std::to_string(*s.restarts) + " times";
    }
    if (active && s.start_monotonic_us && *s.start_monotonic_us > 0) {
      const double up = static_cast<double>(monotonic_us() - *s.start_monotonic_us) / 1e6;
      if (up >= 0) {
        r.metrics.push_back({"uptime_seconds", up, "s"});
        summary += ", up " + format_duration(seconds(static_cast<std::int64_t>(up)));
      }
    }
    r.summary = std::move(summary);
    return r;
  }

  static Result with_active(Result r, bool active) {
    r.metrics.insert(r.metrics.begin(), Metric{"active", active ? 1.0 : 0.0, ""});
    return r;
  }

  Config c_;
  std::weak_ptr<BlockingCall<ProcessResult>> last_;
  Changed changed_;
  std::shared_ptr<UnitWatch> watch_;
  std::weak_ptr<BlockingCall<Connected>> connecting_;
  std::string watch_error_;  // why changes are seen at the interval only
};

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.unit = o.string("unit");
  c.systemctl = o.string("systemctl");
  // A leading '-' would make systemctl read the unit as an option.
  if (c.unit.empty() || c.unit.front() == '-' || c.unit.find_first_of(" \t\n") != std::string::npos)
    o.error("unit", "expected a unit name such as postgresql.service");
  if (c.systemctl.empty()) o.error("systemctl", "must not be empty");
  if (const std::string bus = o.string("bus"); bus == "user")
    c.user_bus = true;
  else if (bus != "system")
    o.error("bus", "expected system or user, got '" + bus + "'");
  c.watch = o.boolean("watch");
  return std::make_unique<ServiceProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"service", "whether a systemd unit is active (systemctl show, D-Bus for its changes)",
          kOptions, &make};
}

}  // namespace dozor::probes::service
