#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/protocol/options.h"
#include "dozor/protocol/report.h"

namespace dozor::collector {

/// Shell-style glob: `*`, `?` and `[...]` as in fnmatch(3).
bool glob_match(std::string_view pattern, std::string_view text);

/// Which results a rule looks at; every field is a glob, "*" by default.
struct Matcher {
  std::string site = "*", agent = "*", probe = "*", type = "*", metric = "*";
  bool matches(std::string_view s, std::string_view a, std::string_view p,
               std::string_view t) const;
};

enum class RuleKind {
  status,       // a probe's status held `for` a duration
  silent,       // an agent that stopped reporting (no report for 3 heartbeats)
  stale,        // a metric whose value has not changed for `for` (a hung meter or PLC)
  forecast,     // a metric whose trend reaches `threshold` within `horizon`
  certificate,  // an agent's certificate (or the collector's own) expiring within `horizon`
};
std::string_view to_string(RuleKind kind);

/// One entry of `rules:` in collector.yaml.
struct Rule {
  std::string name;
  RuleKind kind = RuleKind::status;
  Matcher match;
  std::vector<protocol::Status> when{protocol::Status::critical};  // status rules
  std::chrono::milliseconds hold{0};  // `for`: how long the condition must hold to open a ticket
  std::chrono::milliseconds recover{std::chrono::minutes(1)};  // `recover_for`: hysteresis
  std::string ticket_class = "emergency";
  int priority = 2;  // 1 (highest) - 4
  // Flapping: this many changes within `flap_window` marks the incident flapping; its ticket
  // then resolves only after the condition stayed clear for a whole window.
  int flap_changes = 6;
  std::chrono::milliseconds flap_window{std::chrono::minutes(10)};
  // Forecast: least squares over `window`, at least `min_points` readings spanning half of it.
  double threshold = 100;
  bool falling = false;  // the metric falls towards the threshold (free space) instead of rising
  std::chrono::milliseconds window{std::chrono::hours(6)};
  std::chrono::milliseconds horizon{std::chrono::hours(72)};
  std::size_t min_points = 6;
  bool enabled = true;
};

/// The rules built in: probe critical -> emergency, warning held 10 m -> task, agent silent ->
/// emergency P1, a disk (`used_percent`) forecast full within 72 h -> task, a certificate
/// expiring within 7 d (its renewal failing) -> task.
std::vector<Rule> default_rules();

/// `rules:` from collector.yaml merged over the defaults: an entry named like a default replaces
/// it (`enabled: false` switches it off), any other is added. Errors name file:line: rules[i].key.
std::vector<Rule> parse_rules(const YAML::Node& node, const std::string& file,
                              std::vector<ConfigError>& errors);

/// A metric's recent readings and their least-squares line, for forecast rules. Keeps at most
/// kMaxPoints readings, evenly spread over the window, so memory stays bounded per series.
class Trend {
 public:
  static constexpr std::size_t kMaxPoints = 128;

  void add(double t, double value, double window);
  std::size_t size() const { return points_.size(); }
  double span() const { return points_.empty() ? 0 : points_.back().t - points_.front().t; }

  struct Fit {
    double slope;  // per second
    double at;     // the fitted value at the newest reading
  };
  /// nullopt with fewer than two readings or no spread in time.
  std::optional<Fit> fit() const;

  struct Point {
    double t, v;
  };
  /// The readings, oldest first, to keep them across a restart.
  const std::vector<Point>& points() const { return points_; }
  void restore(std::vector<Point> points) { points_ = std::move(points); }

 private:
  // A vector: an empty deque still costs its first 512-byte block, and every probe of every
  // agent has a Trend (at most kMaxPoints, so dropping from the front is cheap).
  std::vector<Point> points_;
};

/// When a trend reaches `threshold` (seconds from the newest reading; 0 when already there), or
/// nullopt when it moves away from it.
std::optional<double> time_to_threshold(const Trend::Fit& fit, double threshold, bool falling);

}  // namespace dozor::collector
