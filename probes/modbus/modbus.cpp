#include "modbus/modbus.h"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <cstdio>

#include "modbus/link.h"
#include "modbus/plan.h"
#include "src/human_units.h"

namespace dozor::probes::modbus {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// A point as its series reads: voltage{phase="L1"}.
std::string point_name(const Point& p) { return protocol::series_name({p.name, 0, "", p.labels}); }

constexpr OptionSpec kOptions[] = {
    {"link", OptionKind::string, "", true,
     "tcp://host:port, rtu:///dev/ttyUSB0?baud=9600&parity=N&data=8&stop=1 or rtu+tcp://host:port"},
    {"unit", OptionKind::integer, "1", false, "device address (unit id) on the link"},
    {"points", OptionKind::yaml, "", true, "list of points to read"},
    {"forbidden", OptionKind::yaml, "", false, "list of {register, from, to} never to read"},
    {"request_timeout", OptionKind::duration, "", false,
     "wait for one answer; default 500ms or timeout if shorter"},
    {"max_registers", OptionKind::integer, "125", false, "registers per request, 1-125"},
    {"max_bits", OptionKind::integer, "2000", false, "coils or inputs per request, 1-2000"},
    {"min_gap", OptionKind::duration, "", false,
     "least quiet time between requests to this device"},
    {"turnaround", OptionKind::duration, "", false,
     "device's time to answer, for the cost model; default 1ms on TCP, 5ms on RTU"},
    {"max_backoff", OptionKind::duration, "1m", false,
     "longest pause between retries of a device that does not answer"},
};

struct Config {
  LinkSpec link;
  int unit = 1;
  std::vector<Point> points;
  RegisterPlan plan;
  CostModel cost;
  milliseconds request_timeout{500};
  milliseconds interval{30000};
  milliseconds min_gap{0};
  milliseconds max_backoff{60000};
};

// What one cycle on the blocking pool brings back.
struct Cycle {
  std::vector<std::optional<Value>> values;  // per point; empty when not read
  int requests = 0, timeouts = 0, exceptions = 0, answered = 0;
  bool link_down = false;  // the link, not the device, failed: no device backoff for it
  double seconds = 0;
  std::vector<std::string> problems;
};

// State a run leaves for the next; shared with the blocking task, which may outlive a run.
struct DeviceState {
  Clock::time_point last_exchange{};
  int failures = 0;     // cycles in a row without any answer
  int skip_cycles = 0;  // left before the next try
  struct Seen {
    Value value;
    Clock::time_point since{};
    bool valid = false;
  };
  std::vector<Seen> seen;
};

// Runs `f` on the blocking pool and resumes the awaiting coroutine on its own executor with the
// result. Not a coroutine itself, and `f` travels as an initiation argument: g++ 12 mishandles
// lambda temporaries with non-trivial captures inside co_await expressions.
template <class R, class F>
asio::awaitable<R> on_pool(asio::thread_pool& pool, F f) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(R)>(
      [&pool](auto handler, F f) {
        asio::post(pool, [f = std::move(f), handler = std::move(handler)]() mutable {
          R r = f();
          auto ex = asio::get_associated_executor(handler);
          asio::post(ex, [handler = std::move(handler), r = std::move(r)]() mutable {
            handler(std::move(r));
          });
        });
      },
      asio::use_awaitable, std::move(f));
}

std::string two_digits(int code) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02X", code);
  return buf;
}

std::string range_text(const PlannedRequest& r) {
  std::string s = std::string(to_string(r.reg)) + " " + std::to_string(r.address);
  if (r.count > 1) s += "-" + std::to_string(r.address + r.count - 1);
  return s;
}

Cycle poll_device(Link& link, const Config& c, DeviceState& st, Clock::time_point deadline) {
  Cycle out;
  out.values.resize(c.points.size());
  const auto start = Clock::now();
  std::vector<std::uint16_t> regs(125);
  std::vector<std::uint8_t> bits(2000);
  for (const auto& r : c.plan.requests) {
    Exchange x;
    x.unit = c.unit;
    x.reg = r.reg;
    x.address = r.address;
    x.count = r.count;
    x.timeout = c.request_timeout;
    x.min_gap = c.min_gap;
    x.device_last = &st.last_exchange;
    Reply reply = link.read(x, regs.data(), bits.data(), deadline);
    if (reply.sent) ++out.requests;
    if (reply.status == Reply::Status::ok) {
      ++out.answered;
      for (int i : r.points) {
        const Point& p = c.points[i];
        const int at = p.address - r.address;
        out.values[i] =
            is_bit_type(p.reg)
                ? decode_bit(bits[at] != 0)
                : decode(p, std::span<const std::uint16_t>(regs).subspan(at, p.count()));
      }
      continue;
    }
    if (reply.status == Reply::Status::exception) {
      ++out.answered;
      ++out.exceptions;
      out.problems.push_back("exception " + two_digits(reply.exception) + " (" + reply.message +
                             ") reading " + range_text(r));
      continue;
    }
    if (reply.status == Reply::Status::bad_response) {
      out.problems.push_back("bad answer reading " + range_text(r) + ": " + reply.message);
      continue;
    }
    if (reply.status == Reply::Status::timeout && reply.sent) ++out.timeouts;
    if (reply.status == Reply::Status::link_down) out.link_down = true;
    out.problems.push_back("no answer reading " + range_text(r) + ": " + reply.message);
    break;  // a silent device costs one timeout per cycle, not one per request
  }
  out.seconds = seconds_between(start, Clock::now());
  return out;
}

class ModbusProbe final : public Probe {
 public:
  explicit ModbusProbe(std::shared_ptr<const Config> c)
      : c_(std::move(c)), st_(std::make_shared<DeviceState>()) {
    st_->seen.resize(c_->points.size());
  }

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    const auto start = Clock::now();
    const auto deadline = start + ctx.timeout;
    const std::string where = "unit " + std::to_string(c_->unit) + " on " + c_->link.key();
    if (!link_) {
      std::string error;
      link_ = acquire_link(c_->link, &error);
      if (!link_) co_return make_result(Status::unknown, error);
    }
    if (st_->skip_cycles > 0) {
      --st_->skip_cycles;
      Result r =
          make_result(Status::critical, where + ": no answer in " + std::to_string(st_->failures) +
                                            " cycles; next try in " +
                                            std::to_string(st_->skip_cycles + 1) + " cycles");
      add_health(r, 0, Cycle{});
      co_return r;
    }
    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to run on");
    // A named task, not a temporary in the co_await: g++ 12 destroys such temporaries twice.
    auto task = [link = link_, c = c_, st = st_, deadline] {
      return poll_device(*link, *c, *st, deadline);
    };
    Cycle cycle = co_await on_pool<Cycle>(*ctx.blocking, std::move(task));
    co_return evaluate(std::move(cycle), where);
  }

  std::string plan() const override {
    const auto& p = c_->plan;
    std::string out = "unit " + std::to_string(c_->unit) + " on " + c_->link.url() + ": " +
                      std::to_string(p.requests.size()) + " requests per cycle (lower bound " +
                      std::to_string(p.lower_bound) + ", one per point " +
                      std::to_string(p.one_per_point) + "), model " +
                      human_number(p.cost_seconds * 1000) + " ms per cycle";
    for (const auto& r : p.requests) {
      out += "\n  read " + range_text(r) + " (" + std::to_string(r.count) +
             (is_bit_type(r.reg) ? " bits" : " registers") + "):";
      for (int i : r.points) out += " " + c_->points[i].name;
    }
    return out;
  }

 private:
  void add_health(Result& r, int up, const Cycle& cycle) const {
    r.metrics.push_back({"up", static_cast<double>(up), ""});
    r.metrics.push_back({"response_seconds", cycle.seconds, "s"});
    r.metrics.push_back({"requests", static_cast<double>(cycle.requests), ""});
    r.metrics.push_back({"timeouts", static_cast<double>(cycle.timeouts), ""});
    r.metrics.push_back({"exceptions", static_cast<double>(cycle.exceptions), ""});
  }

  Result evaluate(Cycle cycle, const std::string& where) {
    DeviceState& st = *st_;
    Result r;
    if (cycle.answered == 0) {
      // A silent device is tried again next cycle, then every 2nd, 4th, ... up to max_backoff.
      // A link that is down has its own capped reconnect backoff; the device is not to blame.
      st.failures = cycle.link_down ? 0 : st.failures + 1;
      const long long cap = std::max<long long>(
          0, c_->max_backoff.count() / std::max<long long>(1, c_->interval.count()) - 1);
      st.skip_cycles = st.failures == 0 ? 0
                                        : static_cast<int>(std::min<long long>(
                                              (1LL << std::min(st.failures - 1, 20)) - 1, cap));
      r.status = Status::critical;
      r.summary = where + ": " + (cycle.problems.empty() ? "no answer" : cycle.problems.front());
      add_health(r, 0, cycle);
      return r;
    }
    st.failures = 0;
    st.skip_cycles = 0;
    Status status = cycle.problems.empty() ? Status::ok : Status::critical;
    std::vector<std::string> notes = cycle.problems;
    std::string texts;
    const auto now = Clock::now();
    for (std::size_t i = 0; i < c_->points.size(); ++i) {
      const Point& p = c_->points[i];
      if (!cycle.values[i]) continue;
      const Value& v = *cycle.values[i];
      auto& seen = st.seen[i];
      if (!seen.valid || !(seen.value == v)) {
        seen = {v, now, true};
      } else if (p.stale && now - seen.since >= *p.stale) {
        status = worst(status, Status::critical);
        notes.push_back(point_name(p) + " unchanged for " +
                        human_seconds(std::floor(seconds_between(seen.since, now))));
      }
      if (v.is_text) {
        texts += (texts.empty() ? "" : ", ") + point_name(p) + "='" + v.text + "'";
        continue;
      }
      r.metrics.push_back({p.name, v.number, p.unit, p.labels});
      if (p.critical && !p.critical->contains(v.number)) {
        status = worst(status, Status::critical);
        notes.push_back(point_name(p) + " " + human_number(v.number) + p.unit +
                        " outside critical [" + human_number(p.critical->low) + ", " +
                        human_number(p.critical->high) + "]");
      } else if (p.warning && !p.warning->contains(v.number)) {
        status = worst(status, Status::warning);
        notes.push_back(point_name(p) + " " + human_number(v.number) + p.unit +
                        " outside warning [" + human_number(p.warning->low) + ", " +
                        human_number(p.warning->high) + "]");
      }
    }
    add_health(r, 1, cycle);
    r.status = status;
    r.summary = where + ": " + std::to_string(c_->points.size()) + " points in " +
                std::to_string(cycle.requests) + " requests, " + human_seconds(cycle.seconds);
    for (const auto& n : notes) r.summary += "; " + n;
    if (!texts.empty()) r.summary += "; " + texts;
    return r;
  }

  std::shared_ptr<const Config> c_;
  std::shared_ptr<DeviceState> st_;
  std::shared_ptr<Link> link_;
};

std::unique_ptr<Probe> make(const Options& o) {
  auto c = std::make_shared<Config>();
  std::string error;
  if (auto link = parse_link(o.string("link"), &error))
    c->link = *link;
  else
    o.error("link", error);
  const auto unit = o.integer("unit");
  const int max_unit = c->link.kind == LinkSpec::Kind::tcp ? 255 : 247;
  if (unit < (c->link.kind == LinkSpec::Kind::tcp ? 0 : 1) || unit > max_unit)
    o.error("unit", "expected " + std::string(c->link.kind == LinkSpec::Kind::tcp ? "0" : "1") +
                        "-" + std::to_string(max_unit));
  c->unit = static_cast<int>(unit);
  c->interval = o.duration("interval");
  const auto timeout = o.has("timeout")
                           ? o.duration("timeout")
                           : std::min<milliseconds>(std::chrono::seconds(5), c->interval);
  c->request_timeout = o.has("request_timeout") ? o.duration("request_timeout")
                                                : std::min(milliseconds(500), timeout);
  if (c->request_timeout <= milliseconds(0)) o.error("request_timeout", "must be positive");
  if (c->request_timeout > timeout) o.error("request_timeout", "must not exceed timeout");
  c->min_gap = o.has("min_gap") ? o.duration("min_gap") : milliseconds(0);
  c->max_backoff = o.duration("max_backoff");
  RequestLimits limits;
  limits.max_registers = static_cast<int>(o.integer("max_registers"));
  limits.max_bits = static_cast<int>(o.integer("max_bits"));
  if (limits.max_registers < 1 || limits.max_registers > 125)
    o.error("max_registers", "expected 1-125");
  if (limits.max_bits < 1 || limits.max_bits > 2000) o.error("max_bits", "expected 1-2000");
  const double turnaround = o.has("turnaround")
                                ? std::chrono::duration<double>(o.duration("turnaround")).count()
                            : c->link.serial() ? 0.005
                                               : 0.001;
  c->cost = c->link.serial() ? CostModel::serial(c->link.baud, c->link.bits_per_char(), turnaround)
                             : CostModel::tcp(turnaround);
  const auto forbidden = read_forbidden(o);
  c->points = read_points(o, forbidden);
  if (!o.ok()) return nullptr;
  const auto spans = spans_of(c->points);
  c->plan = plan_requests(spans, forbidden, limits, c->cost);
  if (!c->plan.ok()) {
    o.error("points", c->plan.error);
    return nullptr;
  }
  return std::make_unique<ModbusProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"modbus", "Modbus TCP/RTU device: points, ranges, frozen values", kOptions, &make};
}

}  // namespace dozor::probes::modbus
