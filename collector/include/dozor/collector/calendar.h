#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/protocol/options.h"

namespace date {
class time_zone;
}

namespace dozor::collector {

/// One weekly service window in local time: from `start` on `day` until `end`. An `end` before
/// `start` runs past midnight into the next day (22:00-06:00); `end` may be 24:00.
struct ServiceWindow {
  std::chrono::weekday day;
  std::chrono::minutes start{0};
  std::chrono::minutes end{0};
  bool operator==(const ServiceWindow&) const = default;
};

/// When a support company works: around the clock, or weekly windows in an IANA time zone less
/// holidays. Reaction deadlines count only service time. Immutable, so thread-safe.
///
/// A window runs from the first instant the local clock shows its start to the last instant it
/// shows its end: real elapsed time counts, so the hour skipped in spring is not served and the
/// hour repeated in autumn is served twice over. A holiday is a local date with no service at
/// all, also for the part of a night window that reaches into it. Searches give up after 400
/// days without service (a calendar of holidays only) and answer `never`.
class ServiceCalendar {
 public:
  using Clock = std::chrono::system_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;
  static constexpr TimePoint never = TimePoint::max();

  /// Service all the time, everywhere.
  static ServiceCalendar around_the_clock();
  /// Windows in `zone` (e.g. "Europe/Kyiv"); nullopt and a message for an unknown zone or no
  /// windows. Holidays are local dates in the zone.
  static std::optional<ServiceCalendar> weekly(
      std::string_view zone, const std::vector<ServiceWindow>& windows,
      const std::vector<std::chrono::year_month_day>& holidays, std::string& error);

  bool is_24x7() const { return always_; }
  /// The IANA name of the zone; "UTC" for around the clock.
  std::string zone_name() const;

  /// The earliest instant by which `service` of service time has passed since `start`; `start`
  /// itself for a zero duration, `never` when out of reach.
  TimePoint deadline(TimePoint start, Duration service) const;
  /// Service time within [a, b); zero when b <= a.
  Duration service_time_between(TimePoint a, TimePoint b) const;
  bool in_service(TimePoint t) const;
  /// `t` when in service, else the start of the next service period (`never` if none).
  TimePoint next_service_start(TimePoint t) const;

 private:
  struct Span {
    TimePoint begin;
    TimePoint end;
  };
  // Calls f(span) for each service span of the local days from the one holding `t` on, in order
  // of their begin (spans may touch or overlap), until f returns false or the search gives up.
  template <class F>
  void for_each_span(TimePoint t, std::int64_t max_days, F&& f) const;

  bool always_ = false;
  const date::time_zone* zone_ = nullptr;
  // Per weekday (0 = Sunday): sorted, disjoint [start, end) minutes of the local day.
  std::array<std::vector<std::pair<int, int>>, 7> week_;
  std::vector<std::int32_t> holidays_;  // local days since 1970-01-01, sorted
};

/// Parses one entry of `hours`: "daily 08:00-22:00", "mon-fri 09:00-18:00", "sat,sun
/// 10:00-14:00", "mon-fri 09:00-13:00,14:00-18:00", "fri-mon 22:00-06:00". nullopt and a message
/// when malformed.
std::optional<std::vector<ServiceWindow>> parse_service_hours(std::string_view text,
                                                              std::string& error);

/// One calendar from its YAML mapping `{zone, hours, holidays}`; `hours` is `24x7`, one entry
/// for parse_service_hours, or a list of them. Errors go to `errors` as "file:line: path.key: ...".
std::optional<ServiceCalendar> parse_calendar(const YAML::Node& node, const std::string& file,
                                              const std::string& path,
                                              std::vector<ConfigError>& errors);

/// The `calendars:` section: a mapping of names to calendars.
std::map<std::string, ServiceCalendar> parse_calendars(const YAML::Node& node,
                                                       const std::string& file,
                                                       const std::string& path,
                                                       std::vector<ConfigError>& errors);

/// How soon, in service time, a ticket must be acknowledged: by class ("emergency") and, more
/// specifically, by class and priority ("emergency/P1"). Immutable once read, so thread-safe.
struct ReactionTargets {
  std::map<std::string, std::chrono::milliseconds, std::less<>> by_key;

  /// The target for a ticket of `ticket_class` and priority 1-4; nullopt when none is set.
  std::optional<std::chrono::milliseconds> target(std::string_view ticket_class,
                                                  int priority) const;
};

/// The ticket classes the support company works by, highest first.
inline constexpr std::array<std::string_view, 4> kTicketClasses = {"emergency", "task",
                                                                   "consultation", "development"};

/// A `targets:` mapping such as `{emergency: 15m, emergency/P1: 10m, task: 8h}`.
ReactionTargets parse_reaction_targets(const YAML::Node& node, const std::string& file,
                                       const std::string& path, std::vector<ConfigError>& errors);

}  // namespace dozor::collector
