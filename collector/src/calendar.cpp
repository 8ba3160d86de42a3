#include "dozor/collector/calendar.h"

#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <exception>

namespace dozor::collector {

namespace {

using TimePoint = ServiceCalendar::TimePoint;
using Duration = ServiceCalendar::Duration;

constexpr int kDayMinutes = 24 * 60;
// Longest search, and longest stretch of days without service before a search gives up.
constexpr std::int64_t kMaxDays = 100 * 366;
constexpr std::int64_t kMaxQuietDays = 400;
// Outside these, local-time arithmetic on nanosecond time points could overflow.
constexpr TimePoint kEarliest =
    std::chrono::sys_days{std::chrono::year{1900} / std::chrono::January / 1};
constexpr TimePoint kLatest =
    std::chrono::sys_days{std::chrono::year{2200} / std::chrono::January / 1};

TimePoint clamp_time(TimePoint t) { return std::clamp(t, kEarliest, kLatest); }

const date::time_zone* find_zone(std::string_view name, std::string& error) {
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    error = "unknown time zone '" + std::string(name) +
            "'; expected an IANA name such as Europe/Kyiv or UTC";
    return nullptr;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string without_spaces(std::string_view s) {
  std::string out;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (true) {
    const auto at = s.find(sep, from);
    out.emplace_back(s.substr(from, at == std::string_view::npos ? s.npos : at - from));
    if (at == std::string_view::npos) return out;
    from = at + 1;
  }
}

// 0 = Sunday, as std::chrono::weekday::c_encoding.
std::optional<unsigned> parse_weekday(std::string_view name) {
  static constexpr std::array<std::string_view, 7> kShort = {"sun", "mon", "tue", "wed",
                                                             "thu", "fri", "sat"};
  static constexpr std::array<std::string_view, 7> kLong = {
      "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
  for (unsigned i = 0; i < 7; ++i)
    if (name == kShort[i] || name == kLong[i]) return i;
  return std::nullopt;
}

// "8:00", "08:00"; "24:00" only when allow_24.
std::optional<int> parse_clock(std::string_view s, bool allow_24) {
  const auto colon = s.find(':');
  if (colon == s.npos || colon == 0 || colon > 2 || s.size() != colon + 3) return std::nullopt;
  int h = 0;
  for (char c : s.substr(0, colon)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    h = h * 10 + (c - '0');
  }
  int m = 0;
  for (char c : s.substr(colon + 1)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    m = m * 10 + (c - '0');
  }
  if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24))) return std::nullopt;
  return h * 60 + m;
}

std::optional<std::chrono::year_month_day> parse_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int v[3] = {0, 0, 0};
  const std::size_t starts[3] = {0, 5, 8};
  const std::size_t lens[3] = {4, 2, 2};
  for (int f = 0; f < 3; ++f)
    for (char c : s.substr(starts[f], lens[f])) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      v[f] = v[f] * 10 + (c - '0');
    }
  std::chrono::year_month_day d{std::chrono::year{v[0]},
                                std::chrono::month{static_cast<unsigned>(v[1])},
                                std::chrono::day{static_cast<unsigned>(v[2])}};
  if (!d.ok()) return std::nullopt;
  return d;
}

int line_of(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

}  // namespace

// ---- ServiceCalendar ----

ServiceCalendar ServiceCalendar::around_the_clock() {
  ServiceCalendar c;
  c.always_ = true;
  return c;
}

std::optional<ServiceCalendar> ServiceCalendar::weekly(
    std::string_view zone, const std::vector<ServiceWindow>& windows,
    const std::vector<std::chrono::year_month_day>& holidays, std::string& error) {
  ServiceCalendar c;
  c.zone_ = find_zone(zone, error);
  if (!c.zone_) return std::nullopt;
  for (const auto& w : windows) {
    const auto day = w.day.c_encoding();
    const auto s = static_cast<int>(w.start.count());
    const auto e = static_cast<int>(w.end.count());
    if (!w.day.ok() || s < 0 || s >= kDayMinutes || e < 0 || e > kDayMinutes || s == e) {
      error = "a service window must start in 00:00-23:59, end in 00:00-24:00, and not be empty";
      return std::nullopt;
    }
    if (s < e) {
      c.week_[day].emplace_back(s, e);
    } else {  // past midnight: the rest of this day, then the start of the next
      c.week_[day].emplace_back(s, kDayMinutes);
      if (e > 0) c.week_[(day + 1) % 7].emplace_back(0, e);
    }
  }
  bool any = false;
  for (auto& day : c.week_) {
    std::sort(day.begin(), day.end());
    std::vector<std::pair<int, int>> merged;
    for (const auto& r : day) {
      if (!merged.empty() && r.first <= merged.back().second)
        merged.back().second = std::max(merged.back().second, r.second);
      else
        merged.push_back(r);
    }
    day = std::move(merged);
    any = any || !day.empty();
  }
  if (!any) {
    error = "no service at all: give at least one window, or 24x7";
    return std::nullopt;
  }
  for (const auto& h : holidays) {
    if (!h.ok()) {
      error = "a holiday is not a valid date";
      return std::nullopt;
    }
    c.holidays_.push_back(
        static_cast<std::int32_t>(std::chrono::sys_days{h}.time_since_epoch().count()));
  }
  std::sort(c.holidays_.begin(), c.holidays_.end());
  c.holidays_.erase(std::unique(c.holidays_.begin(), c.holidays_.end()), c.holidays_.end());
  return c;
}

std::string ServiceCalendar::zone_name() const {
  return zone_ ? std::string(zone_->name()) : std::string("UTC");
}

template <class F>
void ServiceCalendar::for_each_span(TimePoint t, std::int64_t max_days, F&& f) const {
  // From the day before: a window of that day may still be open at t in a zone whose clocks go
  // back across midnight.
  const auto first = date::floor<date::days>(zone_->to_local(clamp_time(t))) - date::days{1};
  std::int64_t quiet = 0;
  for (std::int64_t i = 0; i <= max_days + 1 && quiet <= kMaxQuietDays; ++i) {
    const date::local_days day = first + date::days{i};
    const auto number = static_cast<std::int32_t>(day.time_since_epoch().count());
    bool served = false;
    if (!std::binary_search(holidays_.begin(), holidays_.end(), number)) {
      for (const auto& [s, e] : week_[date::weekday{day}.c_encoding()]) {
        // The first instant the clock shows the start, the last it shows the end: in a gap both
        // are the transition, in a repeated hour the window takes both passes.
        const TimePoint begin =
            zone_->to_sys(day + std::chrono::minutes{s}, date::choose::earliest);
        const TimePoint end = zone_->to_sys(day + std::chrono::minutes{e}, date::choose::latest);
        if (end <= begin) continue;  // wholly inside a skipped hour
        served = true;
        if (!f(Span{begin, end})) return;
      }
    }
    quiet = served ? 0 : quiet + 1;
  }
}

TimePoint ServiceCalendar::deadline(TimePoint start, Duration service) const {
  if (service <= Duration::zero()) return start;
  if (always_) return start > never - service ? never : start + service;
  Duration left = service;
  TimePoint cursor = clamp_time(start);
  TimePoint result = never;
  for_each_span(start, kMaxDays, [&](const Span& span) {
    const TimePoint from = std::max(span.begin, cursor);
    if (span.end <= from) return true;
    if (left <= span.end - from) {
      result = from + left;
      return false;
    }
    left -= span.end - from;
    cursor = span.end;
    return true;
  });
  return result;
}

Duration ServiceCalendar::service_time_between(TimePoint a, TimePoint b) const {
  a = clamp_time(a);
  b = clamp_time(b);
  if (b <= a) return Duration::zero();
  if (always_) return b - a;
  const auto days = std::min<std::int64_t>(kMaxDays, (b - a) / std::chrono::hours{24} + 2);
  Duration total = Duration::zero();
  TimePoint cursor = a;
  for_each_span(a, days, [&](const Span& span) {
    if (span.begin >= b) return false;
    const TimePoint from = std::max(span.begin, cursor);
    const TimePoint to = std::min(span.end, b);
    if (to > from) {
      total += to - from;
      cursor = to;
    }
    return true;
  });
  return total;
}

bool ServiceCalendar::in_service(TimePoint t) const {
  if (always_) return true;
  bool in = false;
  for_each_span(t, 2, [&](const Span& span) {
    if (span.begin > t) return false;
    in = t < span.end;
    return !in;
  });
  return in;
}

TimePoint ServiceCalendar::next_service_start(TimePoint t) const {
  if (always_) return t;
  TimePoint result = never;
  for_each_span(t, kMaxDays, [&](const Span& span) {
    if (span.end <= t) return true;
    result = std::max(span.begin, t);
    return false;
  });
  return result;
}

// ---- parsing ----

std::optional<std::vector<ServiceWindow>> parse_service_hours(std::string_view text,
                                                              std::string& error) {
  const std::string s = lower(text);
  const auto digit = s.find_first_of("0123456789");
  const std::string days_text = without_spaces(s.substr(0, digit));
  const std::string times_text = digit == s.npos ? "" : without_spaces(s.substr(digit));
  const std::string example = "expected days and hours such as \"mon-fri 09:00-18:00\"";
  if (days_text.empty() || times_text.empty()) {
    error = example + ", got '" + std::string(text) + "'";
    return std::nullopt;
  }
  std::vector<unsigned> days;
  if (days_text == "daily") {
    for (unsigned d = 0; d < 7; ++d) days.push_back(d);
  } else {
    for (const auto& item : split(days_text, ',')) {
      const auto dash = item.find('-');
      const auto from = parse_weekday(item.substr(0, dash));
      const auto to = dash == item.npos ? from : parse_weekday(item.substr(dash + 1));
      if (!from || !to) {
        error = "unknown days '" + item + "'; expected daily, or mon tue wed thu fri sat sun, " +
                "ranges such as mon-fri, separated by commas";
        return std::nullopt;
      }
      // A range may wrap around the week: fri-mon is fri, sat, sun, mon.
      for (unsigned d = *from;; d = (d + 1) % 7) {
        days.push_back(d);
        if (d == *to) break;
      }
    }
  }
  std::vector<ServiceWindow> out;
  for (const auto& range : split(times_text, ',')) {
    const auto dash = range.find('-');
    const auto start =
        dash == range.npos ? std::nullopt : parse_clock(range.substr(0, dash), false);
    const auto end = dash == range.npos ? std::nullopt : parse_clock(range.substr(dash + 1), true);
    if (!start || !end) {
      error = "bad hours '" + range + "'; expected HH:MM-HH:MM such as 08:00-22:00 (24:00 as an" +
              " end; an end before the start runs past midnight)";
      return std::nullopt;
    }
    if (*start == *end) {
      error = "empty window '" + range + "'; for a whole day write 00:00-24:00";
      return std::nullopt;
    }
    for (unsigned d : days)
      out.push_back(
          {std::chrono::weekday{d}, std::chrono::minutes{*start}, std::chrono::minutes{*end}});
  }
  return out;
}

namespace {

constexpr OptionSpec kCalendarOptions[] = {
    {"zone", OptionKind::string, "", false,
     "IANA time zone of the hours and holidays, e.g. Europe/Kyiv; needed unless hours is 24x7"},
    {"hours", OptionKind::yaml, "", true,
     "24x7, or service windows: \"daily 08:00-22:00\", or a list such as "
     "[\"mon-fri 09:00-18:00\", \"sat 10:00-14:00\"]"},
    {"holidays", OptionKind::yaml, "", false, "local dates with no service: [2026-01-01, ...]"},
};

}  // namespace

std::optional<ServiceCalendar> parse_calendar(const YAML::Node& node, const std::string& file,
                                              const std::string& path,
                                              std::vector<ConfigError>& errors) {
  Options o = read_options(node, kCalendarOptions, file, path, errors);
  if (!o.ok()) return std::nullopt;

  bool always = false;
  std::vector<ServiceWindow> windows;
  const YAML::Node hours = o.yaml("hours");
  const std::string shape =
      "expected 24x7, a window such as \"daily 08:00-22:00\", or a list of them";
  auto read_entry = [&](const std::string& text, auto&& report) {
    std::string error;
    if (auto w = parse_service_hours(text, error))
      windows.insert(windows.end(), w->begin(), w->end());
    else
      report(error);
  };
  if (hours.IsScalar()) {
    if (lower(hours.Scalar()) == "24x7")
      always = true;
    else
      read_entry(hours.Scalar(), [&](std::string e) { o.error("hours", std::move(e)); });
  } else if (hours.IsSequence()) {
    if (hours.size() == 0) o.error("hours", "no service at all: " + shape);
    for (std::size_t i = 0; i < hours.size(); ++i) {
      const YAML::Node entry = hours[i];
      const std::string key = join(o.path(), "hours[" + std::to_string(i) + "]");
      auto report = [&](std::string e) {
        errors.push_back({file, line_of(entry), key, std::move(e)});
      };
      if (!entry.IsScalar())
        report("expected a string such as \"mon-fri 09:00-18:00\"");
      else if (lower(entry.Scalar()) == "24x7")
        report("24x7 stands alone: write hours: 24x7");
      else
        read_entry(entry.Scalar(), report);
    }
  } else {
    o.error("hours", shape);
  }

  std::vector<std::chrono::year_month_day> holidays;
  if (o.has("holidays")) {
    const YAML::Node list = o.yaml("holidays");
    if (!list.IsSequence()) {
      o.error("holidays", "expected a list of dates such as [2026-01-01, 2026-12-25]");
    } else {
      for (std::size_t i = 0; i < list.size(); ++i) {
        const auto d = list[i].IsScalar() ? parse_date(list[i].Scalar()) : std::nullopt;
        if (d)
          holidays.push_back(*d);
        else
          errors.push_back({file, line_of(list[i]),
                            join(o.path(), "holidays[" + std::to_string(i) + "]"),
                            "expected a date YYYY-MM-DD"});
      }
    }
  }

  std::string zone = o.string("zone");
  if (!o.has("zone")) {
    if (always)
      zone = "UTC";  // only the holidays' dates depend on it
    else
      o.error("zone", "missing: service hours need a time zone, e.g. zone: Europe/Kyiv");
  }
  std::string error;
  if (o.has("zone") && !find_zone(zone, error)) o.error("zone", error);
  if (!o.ok()) return std::nullopt;

  if (always && holidays.empty()) return ServiceCalendar::around_the_clock();
  if (always)
    for (unsigned d = 0; d < 7; ++d)
      windows.push_back(
          {std::chrono::weekday{d}, std::chrono::minutes{0}, std::chrono::minutes{kDayMinutes}});
  auto calendar = ServiceCalendar::weekly(zone, windows, holidays, error);
  if (!calendar) o.error("hours", error);
  return calendar;
}

std::map<std::string, ServiceCalendar> parse_calendars(const YAML::Node& node,
                                                       const std::string& file,
                                                       const std::string& path,
                                                       std::vector<ConfigError>& errors) {
  std::map<std::string, ServiceCalendar> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsMap()) {
    errors.push_back({file, line_of(node), path,
                      "expected a mapping of calendar names to {zone, hours, holidays}"});
    return out;
  }
  for (const auto& kv : node) {
    const std::string name = kv.first.Scalar();
    if (auto c = parse_calendar(kv.second, file, join(path, name), errors))
      out.emplace(name, std::move(*c));
  }
  return out;
}

// ---- reaction targets ----

std::optional<std::chrono::milliseconds> ReactionTargets::target(std::string_view ticket_class,
                                                                 int priority) const {
  const std::string specific = std::string(ticket_class) + "/P" + std::to_string(priority);
  if (auto it = by_key.find(specific); it != by_key.end()) return it->second;
  if (auto it = by_key.find(ticket_class); it != by_key.end()) return it->second;
  return std::nullopt;
}

namespace {

// "emergency", "emergency/P1".."emergency/P4", "task", ...: declared once, so read_options
// rejects a misspelt class and lists the right ones.
std::span<const OptionSpec> target_options() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (auto c : kTicketClasses) {
      k.emplace_back(c);
      for (int p = 1; p <= 4; ++p) k.push_back(std::string(c) + "/P" + std::to_string(p));
    }
    return k;
  }();
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> s;
    for (const auto& k : keys)
      s.push_back({k, OptionKind::duration, "", false, "reaction target in service time"});
    return s;
  }();
  return specs;
}

}  // namespace

ReactionTargets parse_reaction_targets(const YAML::Node& node, const std::string& file,
                                       const std::string& path, std::vector<ConfigError>& errors) {
  ReactionTargets out;
  if (!node || node.IsNull()) return out;
  Options o = read_options(node, target_options(), file, path, errors);
  for (const auto& spec : target_options()) {
    if (!o.has(spec.key)) continue;
    const auto d = o.duration(spec.key);
    if (d <= std::chrono::milliseconds::zero())
      o.error(spec.key, "expected a positive duration such as 15m");
    else
      out.by_key.emplace(std::string(spec.key), d);
  }
  return out;
}

}  // namespace dozor::collector
