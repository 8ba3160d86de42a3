#include "service/service.h"

#include <time.h>

#include "dozor/protocol/units.h"
#include "service/unit_state.h"
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
};

struct Config {
  std::string unit;
  std::string systemctl;
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

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    try {
      ProcessRequest request;
      request.argv = {c_.systemctl, "show", std::string(kProperties), c_.unit};
      // systemctl's own messages untranslated; its answer is machine-readable anyway.
      request.env = {{"LC_ALL", "C"}, {"SYSTEMD_PAGER", ""}, {"SYSTEMD_COLORS", "0"}};
      const ProcessResult p = co_await run_process_on_pool(ctx, std::move(request), last_);
      co_return evaluate(p, ctx.timeout);
    } catch (const std::exception& e) {
      co_return make_result(Status::unknown, std::string("service probe failed: ") + e.what());
    }
  }

  std::string plan() const override {
    return "runs " + c_.systemctl + " show " + std::string(kProperties) + " " + c_.unit;
  }

 private:
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
};

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.unit = o.string("unit");
  c.systemctl = o.string("systemctl");
  // A leading '-' would make systemctl read the unit as an option.
  if (c.unit.empty() || c.unit.front() == '-' || c.unit.find_first_of(" \t\n") != std::string::npos)
    o.error("unit", "expected a unit name such as postgresql.service");
  if (c.systemctl.empty()) o.error("systemctl", "must not be empty");
  return std::make_unique<ServiceProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"service", "whether a systemd unit is active (systemctl show)", kOptions, &make};
}

}  // namespace dozor::probes::service
