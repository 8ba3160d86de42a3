#include "dozor/collector/rules.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>

#include "dozor/collector/calendar.h"

namespace dozor::collector {
namespace {

using namespace std::chrono_literals;
using protocol::Status;

// No fallbacks: a key left out keeps the value of the default rule it overrides.
constexpr OptionSpec kRule[] = {
    {"name", OptionKind::string, "", true, "unique name; a default's name overrides it"},
    {"kind", OptionKind::string, "", false, "status, silent, stale, forecast or certificate"},
    {"match", OptionKind::string_map, "", false, "globs on site, agent, probe, type, metric"},
    {"when", OptionKind::yaml, "", false, "status rules: critical, warning, unknown, or a list"},
    {"for", OptionKind::duration, "", false, "how long the condition holds before a ticket"},
    {"recover_for", OptionKind::duration, "", false, "how long a recovery holds before resolving"},
    {"class", OptionKind::string, "", false, "emergency, task, consultation or development"},
    {"priority", OptionKind::string, "", false, "P1 (highest) to P4"},
    {"flap_changes", OptionKind::integer, "", false, "changes within flap_window that flap"},
    {"flap_window", OptionKind::duration, "", false, "window for flapping"},
    {"threshold", OptionKind::number, "", false, "forecast: the value that must not be reached"},
    {"direction", OptionKind::string, "", false, "forecast: rising (default) or falling"},
    {"window", OptionKind::duration, "", false, "forecast: readings fitted"},
    {"horizon", OptionKind::duration, "", false, "forecast: how far ahead to look"},
    {"min_points", OptionKind::integer, "", false, "forecast: readings needed before a forecast"},
    {"enabled", OptionKind::boolean, "", false, "false switches a default rule off"},
};

std::optional<RuleKind> parse_kind(std::string_view s) {
  for (auto k : {RuleKind::status, RuleKind::silent, RuleKind::stale, RuleKind::forecast,
                 RuleKind::certificate})
    if (to_string(k) == s) return k;
  return std::nullopt;
}

std::optional<Status> parse_status(std::string_view s) {
  for (auto st : {Status::ok, Status::warning, Status::critical, Status::unknown})
    if (protocol::to_string(st) == s) return st;
  return std::nullopt;
}

void read_rule(const Options& o, Rule& r) {
  if (o.has("kind")) {
    if (auto k = parse_kind(o.string("kind")))
      r.kind = *k;
    else
      o.error("kind", "expected status, silent, stale, forecast or certificate");
  }
  if (o.has("match")) {
    for (const auto& [field, glob] : o.string_map("match")) {
      std::string* slot = field == "site"     ? &r.match.site
                          : field == "agent"  ? &r.match.agent
                          : field == "probe"  ? &r.match.probe
                          : field == "type"   ? &r.match.type
                          : field == "metric" ? &r.match.metric
                                              : nullptr;
      if (slot)
        *slot = glob;
      else
        o.error("match", "unknown field '" + field + "'; known: site, agent, probe, type, metric");
    }
  }
  if (YAML::Node when = o.yaml("when"); when && !when.IsNull()) {
    std::vector<YAML::Node> items;
    if (when.IsSequence())
      for (const auto& n : when) items.push_back(n);
    else
      items.push_back(when);
    r.when.clear();
    for (const auto& n : items) {
      auto st = n.IsScalar() ? parse_status(n.Scalar()) : std::nullopt;
      if (st && *st != Status::ok)
        r.when.push_back(*st);
      else
        o.error("when", "expected critical, warning or unknown (or a list of them)");
    }
  }
  if (o.has("for")) r.hold = o.duration("for");
  if (o.has("recover_for")) r.recover = o.duration("recover_for");
  if (o.has("class")) {
    r.ticket_class = o.string("class");
    if (std::find(kTicketClasses.begin(), kTicketClasses.end(), r.ticket_class) ==
        kTicketClasses.end())
      o.error("class", "expected emergency, task, consultation or development");
  }
  if (o.has("priority")) {
    const std::string p = o.string("priority");
    if (p.size() == 2 && (p[0] == 'P' || p[0] == 'p') && p[1] >= '1' && p[1] <= '4')
      r.priority = p[1] - '0';
    else
      o.error("priority", "expected P1, P2, P3 or P4");
  }
  if (o.has("flap_changes")) {
    r.flap_changes = static_cast<int>(o.integer("flap_changes"));
    if (r.flap_changes < 2) o.error("flap_changes", "must be at least 2");
  }
  if (o.has("flap_window")) r.flap_window = o.duration("flap_window");
  if (o.has("threshold")) r.threshold = o.number("threshold");
  if (o.has("direction")) {
    const std::string d = o.string("direction");
    if (d != "rising" && d != "falling") o.error("direction", "expected rising or falling");
    r.falling = d == "falling";
  }
  if (o.has("window")) r.window = o.duration("window");
  if (o.has("horizon")) r.horizon = o.duration("horizon");
  if (o.has("min_points")) {
    auto n = o.integer("min_points");
    if (n < 2) o.error("min_points", "must be at least 2");
    r.min_points = static_cast<std::size_t>(std::max<std::int64_t>(2, n));
  }
  if (o.has("enabled")) r.enabled = o.boolean("enabled");
  if (r.kind == RuleKind::forecast && r.window <= 0ms) o.error("window", "must be positive");
  if (r.kind == RuleKind::stale && r.hold <= 0ms)
    o.error("for", "a stale rule needs `for`: how long an unchanged value is tolerated");
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  if (pattern == "*") return true;
  return fnmatch(std::string(pattern).c_str(), std::string(text).c_str(), 0) == 0;
}

bool Matcher::matches(std::string_view s, std::string_view a, std::string_view p,
                      std::string_view t) const {
  return glob_match(site, s) && glob_match(agent, a) && glob_match(probe, p) && glob_match(type, t);
}

std::string_view to_string(RuleKind kind) {
  switch (kind) {
    case RuleKind::status:
      return "status";
    case RuleKind::silent:
      return "silent";
    case RuleKind::stale:
      return "stale";
    case RuleKind::forecast:
      return "forecast";
    case RuleKind::certificate:
      return "certificate";
  }
  return "status";
}

std::vector<Rule> default_rules() {
  Rule critical;
  critical.name = "probe-critical";
  critical.when = {Status::critical};

  Rule warning;
  warning.name = "probe-warning";
  warning.when = {Status::warning};
  warning.hold = 10min;
  warning.recover = 5min;
  warning.ticket_class = "task";
  warning.priority = 3;

  Rule silent;
  silent.name = "agent-silent";
  silent.kind = RuleKind::silent;
  silent.priority = 1;
  silent.recover = 0ms;  // a report is proof enough that the site is back

  Rule full;
  full.name = "disk-full-forecast";
  full.kind = RuleKind::forecast;
  full.match.metric = "used_percent";
  full.threshold = 100;
  full.horizon = 72h;
  full.window = 6h;
  full.recover = 1h;
  full.ticket_class = "task";
  full.priority = 3;

  Rule certificate;
  certificate.name = "certificate-expiring";
  certificate.kind = RuleKind::certificate;
  certificate.horizon = 7 * 24h;
  certificate.recover = 0ms;  // a renewed certificate is proof enough
  certificate.ticket_class = "task";
  certificate.priority = 3;
  return {critical, warning, silent, full, certificate};
}

std::vector<Rule> parse_rules(const YAML::Node& node, const std::string& file,
                              std::vector<ConfigError>& errors) {
  std::vector<Rule> rules = default_rules();
  if (!node || node.IsNull()) return rules;
  if (!node.IsSequence()) {
    errors.push_back({file, node.Mark().line + 1, "rules", "expected a list of rules"});
    return rules;
  }
  std::vector<std::string> seen;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string path = "rules[" + std::to_string(i) + "]";
    Options o = read_options(node[i], kRule, file, path, errors);
    if (!o.has("name")) continue;
    const std::string name = o.string("name");
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      o.error("name", "another rule is named '" + name + "'");
      continue;
    }
    seen.push_back(name);
    auto it =
        std::find_if(rules.begin(), rules.end(), [&](const Rule& r) { return r.name == name; });
    Rule r = it != rules.end() ? *it : Rule{};
    r.name = name;
    read_rule(o, r);
    if (it != rules.end())
      *it = std::move(r);
    else
      rules.push_back(std::move(r));
  }
  std::erase_if(rules, [](const Rule& r) { return !r.enabled; });
  return rules;
}

void Trend::add(double t, double value, double window) {
  if (!std::isfinite(value)) return;
  if (!points_.empty() && t <= points_.back().t) return;  // out of order: keep the line monotone
  // Keep readings at least window/kMaxPoints apart, so a fast probe costs no more memory.
  if (points_.size() >= 2 && t - points_[points_.size() - 2].t < window / kMaxPoints)
    points_.back() = {t, value};
  else
    points_.push_back({t, value});
  const auto old = std::find_if(points_.begin(), points_.end(),
                                [&](const Point& p) { return p.t >= t - window; });
  points_.erase(points_.begin(), old);
}

std::optional<Trend::Fit> Trend::fit() const {
  if (points_.size() < 2) return std::nullopt;
  // Centred on the newest reading so that unix times do not cost precision.
  const double t0 = points_.back().t;
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& p : points_) {
    const double x = p.t - t0;
    n += 1;
    sx += x;
    sy += p.v;
    sxx += x * x;
    sxy += x * p.v;
  }
  const double den = n * sxx - sx * sx;
  if (den <= 0) return std::nullopt;
  const double slope = (n * sxy - sx * sy) / den;
  const double intercept = (sy - slope * sx) / n;  // the fitted value at t0
  return Fit{slope, intercept};
}

std::optional<double> time_to_threshold(const Trend::Fit& fit, double threshold, bool falling) {
  const double gap = falling ? fit.at - threshold : threshold - fit.at;
  if (gap <= 0) return 0.0;
  const double speed = falling ? -fit.slope : fit.slope;
  if (speed <= 0) return std::nullopt;
  return gap / speed;
}

}  // namespace dozor::collector
