#include "dozor/collector/calendar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <thread>

namespace dozor::collector {
namespace {

using namespace std::chrono_literals;
using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using TimePoint = ServiceCalendar::TimePoint;
using testing::HasSubstr;

// Expectations are written in UTC, with the local time beside them: Europe/Kyiv is UTC+2 in
// winter, UTC+3 in summer; in 2026 its clocks go 03:00 -> 04:00 on 29 March (01:00Z) and
// 04:00 -> 03:00 on 25 October (01:00Z).
TimePoint utc(int y, unsigned m, unsigned d, int hh, int mm = 0) {
  return std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{m} / std::chrono::day{d}} +
         hours{hh} + minutes{mm};
}

std::vector<ConfigError> errors_of(const std::string& yaml) {
  std::vector<ConfigError> errors;
  const YAML::Node root = YAML::Load(yaml);
  parse_calendars(root["calendars"], "collector.yaml", "calendars", errors);
  return errors;
}

ServiceCalendar calendar(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto c = parse_calendar(YAML::Load(yaml), "collector.yaml", "calendars.test", errors);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  if (!c) throw std::runtime_error("calendar did not parse: " + yaml);
  return *c;
}

std::string one_error(const std::string& yaml) {
  const auto errors = errors_of(yaml);
  EXPECT_EQ(errors.size(), 1u) << yaml;
  return errors.empty() ? "" : errors.front().to_string();
}

const ServiceCalendar& office() {
  static const ServiceCalendar c = calendar("{zone: Europe/Kyiv, hours: daily 08:00-22:00}");
  return c;
}
const ServiceCalendar& night() {
  static const ServiceCalendar c = calendar("{zone: Europe/Kyiv, hours: daily 22:00-06:00}");
  return c;
}

TEST(CalendarTest, DeadlineRunsAcrossTheNight) {
  const auto start = utc(2026, 2, 10, 19, 50);  // Tue 21:50 local
  EXPECT_TRUE(office().in_service(start));
  EXPECT_EQ(office().deadline(start, 15min), utc(2026, 2, 11, 6, 5));  // Wed 08:05 local
  EXPECT_EQ(office().service_time_between(start, utc(2026, 2, 11, 6, 5)), 15min);
  EXPECT_FALSE(office().in_service(utc(2026, 2, 10, 20, 0)));  // 22:00 local: closed
  EXPECT_TRUE(office().in_service(utc(2026, 2, 10, 19, 59)));
  EXPECT_EQ(office().next_service_start(utc(2026, 2, 10, 20, 30)), utc(2026, 2, 11, 6, 0));
  EXPECT_EQ(office().next_service_start(start), start);
  EXPECT_EQ(office().zone_name(), "Europe/Kyiv");
  EXPECT_FALSE(office().is_24x7());
}

TEST(CalendarTest, DeadlineSkipsTheWeekend) {
  const auto weekdays = calendar("{zone: Europe/Kyiv, hours: mon-fri 09:00-18:00}");
  const auto friday = utc(2026, 2, 13, 15, 55);                          // Fri 17:55 local
  EXPECT_EQ(weekdays.deadline(friday, 15min), utc(2026, 2, 16, 7, 10));  // Mon 09:10 local
  EXPECT_FALSE(weekdays.in_service(utc(2026, 2, 14, 10, 0)));            // Saturday noon
  EXPECT_EQ(weekdays.next_service_start(utc(2026, 2, 14, 10, 0)), utc(2026, 2, 16, 7, 0));
  // A whole week of service: five days of nine hours.
  EXPECT_EQ(weekdays.service_time_between(utc(2026, 2, 9, 0), utc(2026, 2, 16, 0)), 45h);
}

TEST(CalendarTest, HolidaysHaveNoService) {
  const auto c = calendar(
      "{zone: Europe/Kyiv, hours: mon-fri 09:00-18:00, holidays: [2026-02-13, 2026-02-16]}");
  // Thu 17:55 local; Friday and Monday are holidays: Tue 09:10 local.
  EXPECT_EQ(c.deadline(utc(2026, 2, 12, 15, 55), 15min), utc(2026, 2, 17, 7, 10));
  EXPECT_FALSE(c.in_service(utc(2026, 2, 16, 8, 0)));  // Mon 10:00 local
  EXPECT_TRUE(c.in_service(utc(2026, 2, 17, 8, 0)));

  // A night window loses the part that reaches into a holiday, and the holiday's own night.
  const auto n = calendar("{zone: Europe/Kyiv, hours: daily 22:00-06:00, holidays: [2026-02-11]}");
  EXPECT_TRUE(n.in_service(utc(2026, 2, 10, 21, 0)));   // 10th 23:00 local
  EXPECT_FALSE(n.in_service(utc(2026, 2, 10, 23, 0)));  // 11th 01:00 local
  EXPECT_FALSE(n.in_service(utc(2026, 2, 11, 21, 0)));  // 11th 23:00 local
  EXPECT_EQ(n.service_time_between(utc(2026, 2, 10, 20, 0), utc(2026, 2, 12, 4, 0)), 8h);
}

TEST(CalendarTest, AroundTheClockCountsEveryInstant) {
  const auto c = calendar("{hours: 24x7}");
  EXPECT_TRUE(c.is_24x7());
  const auto t = utc(2026, 3, 29, 0, 30);
  EXPECT_EQ(c.deadline(t, 15min), t + 15min);
  EXPECT_EQ(c.service_time_between(t, t + 72h), 72h);
  EXPECT_TRUE(c.in_service(t));
  EXPECT_EQ(c.next_service_start(t), t);
  EXPECT_EQ(c.deadline(t, 0s), t);

  // 24x7 less holidays: whole local days off.
  const auto h = calendar("{zone: Europe/Kyiv, hours: 24x7, holidays: [2026-01-01]}");
  EXPECT_FALSE(h.is_24x7());
  // 23:50 local: ten minutes before the holiday, five after it (Jan 2, 00:05 local).
  EXPECT_EQ(h.deadline(utc(2025, 12, 31, 21, 50), 15min), utc(2026, 1, 1, 22, 5));
  EXPECT_EQ(h.service_time_between(utc(2025, 12, 31, 0), utc(2026, 1, 2, 0)), 24h);
}

TEST(CalendarTest, SpringForwardOutsideTheWindow) {
  // Sat 21:50 EET, and Sunday's clocks go forward at 03:00: Sun 08:05 EEST.
  EXPECT_EQ(office().deadline(utc(2026, 3, 28, 19, 50), 15min), utc(2026, 3, 29, 5, 5));
  // The short day still has all 14 hours of its window.
  EXPECT_EQ(office().service_time_between(utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 21, 0)), 14h);
}

TEST(CalendarTest, SpringForwardInsideTheWindow) {
  // 22:00 EET (20:00Z) to 06:00 EEST (03:00Z): 8 hours on the clock, 7 real.
  EXPECT_EQ(night().service_time_between(utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0)), 7h);
  // 02:30 EET plus one hour of service is 04:30 EEST.
  EXPECT_EQ(night().deadline(utc(2026, 3, 29, 0, 30), 1h), utc(2026, 3, 29, 1, 30));
  EXPECT_TRUE(night().in_service(utc(2026, 3, 29, 1, 30)));
  EXPECT_FALSE(night().in_service(utc(2026, 3, 29, 3, 0)));

  // A window that starts in the skipped hour starts at the jump.
  const auto c = calendar("{zone: Europe/Kyiv, hours: sun 03:30-05:00}");
  EXPECT_EQ(c.next_service_start(utc(2026, 3, 28, 12, 0)), utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(c.service_time_between(utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0)), 1h);
}

TEST(CalendarTest, FallBackOutsideTheWindow) {
  // Sat 21:50 EEST, and Sunday's clocks go back at 04:00: Sun 08:05 EET.
  EXPECT_EQ(office().deadline(utc(2026, 10, 24, 18, 50), 15min), utc(2026, 10, 25, 6, 5));
  // The long day has 14 hours of service too.
  EXPECT_EQ(office().service_time_between(utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 22, 0)), 14h);
}

TEST(CalendarTest, FallBackInsideTheWindow) {
  // 22:00 EEST (19:00Z) to 06:00 EET (04:00Z): 8 hours on the clock, 9 real.
  EXPECT_EQ(night().service_time_between(utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 12, 0)), 9h);
  // 02:30 EEST plus two hours of service: 03:30 EET, the clock's second pass through 03:30.
  EXPECT_EQ(night().deadline(utc(2026, 10, 24, 23, 30), 2h), utc(2026, 10, 25, 1, 30));

  // A window starting in the repeated hour starts at its first pass.
  const auto c = calendar("{zone: Europe/Kyiv, hours: sun 03:30-05:00}");
  EXPECT_EQ(c.next_service_start(utc(2026, 10, 24, 12, 0)), utc(2026, 10, 25, 0, 30));
  EXPECT_EQ(c.service_time_between(utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 12, 0)), 150min);
}

TEST(CalendarTest, WindowCrossingMidnight) {
  const auto c = calendar("{zone: Europe/Kyiv, hours: mon-fri 22:00-06:00}");
  EXPECT_TRUE(c.in_service(utc(2026, 2, 13, 21, 0)));   // Fri 23:00 local
  EXPECT_TRUE(c.in_service(utc(2026, 2, 14, 3, 0)));    // Sat 05:00 local: Friday's night
  EXPECT_FALSE(c.in_service(utc(2026, 2, 14, 21, 0)));  // Sat 23:00 local
  EXPECT_FALSE(c.in_service(utc(2026, 2, 16, 2, 0)));   // Mon 04:00 local: Sunday has no night
  // Sat 07:00 local + 30 min: Mon 22:30 local.
  EXPECT_EQ(c.next_service_start(utc(2026, 2, 14, 5, 0)), utc(2026, 2, 16, 20, 0));
  EXPECT_EQ(c.deadline(utc(2026, 2, 14, 5, 0), 30min), utc(2026, 2, 16, 20, 30));
  // One week: five nights of eight hours.
  EXPECT_EQ(c.service_time_between(utc(2026, 2, 9, 0), utc(2026, 2, 16, 0)), 40h);
}

TEST(CalendarTest, ParsesHours) {
  std::string error;
  using std::chrono::Friday;
  using std::chrono::Monday;
  using std::chrono::Saturday;
  using std::chrono::Sunday;
  auto w = parse_service_hours("fri-mon 22:00-06:00", error);
  ASSERT_TRUE(w) << error;
  ASSERT_EQ(w->size(), 4u);
  EXPECT_EQ((*w)[0], (ServiceWindow{Friday, 22h, 6h}));
  EXPECT_EQ((*w)[3], (ServiceWindow{Monday, 22h, 6h}));

  w = parse_service_hours("Sat, Sun 9:00-13:00,14:00-24:00", error);
  ASSERT_TRUE(w) << error;
  ASSERT_EQ(w->size(), 4u);
  EXPECT_EQ((*w)[0], (ServiceWindow{Saturday, 9h, 13h}));
  EXPECT_EQ((*w)[3], (ServiceWindow{Sunday, 14h, 24h}));

  EXPECT_EQ(parse_service_hours("daily 00:00-24:00", error)->size(), 7u);

  for (const char* bad :
       {"", "daily", "09:00-18:00", "mon-fry 09:00-18:00", "mon 9-18", "mon 09:00-18:60",
        "mon 24:00-02:00", "mon 09:00-25:00", "mon 09:00", "mon 10:00-10:00", "mon 09:00-18:00,"}) {
    EXPECT_FALSE(parse_service_hours(bad, error)) << bad;
  }
}

TEST(CalendarTest, ParsesTheCalendarsSection) {
  std::vector<ConfigError> errors;
  const YAML::Node root = YAML::Load(R"(
calendars:
  office: { zone: Europe/Kyiv, hours: "daily 08:00-22:00" }
  support24: { zone: UTC, hours: 24x7 }
  weekdays:
    zone: Europe/Kyiv
    hours: ["mon-fri 09:00-18:00", "sat 10:00-14:00"]
    holidays: [2026-01-01]
targets: { emergency: 15m, emergency/P1: 5m, task: 8h }
)");
  const auto calendars = parse_calendars(root["calendars"], "collector.yaml", "calendars", errors);
  const auto targets = parse_reaction_targets(root["targets"], "collector.yaml", "targets", errors);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  ASSERT_EQ(calendars.size(), 3u);
  EXPECT_TRUE(calendars.at("support24").is_24x7());
  const auto& weekdays = calendars.at("weekdays");
  EXPECT_TRUE(weekdays.in_service(utc(2026, 1, 3, 9, 0)));    // Sat 11:00 local
  EXPECT_FALSE(weekdays.in_service(utc(2026, 1, 3, 13, 0)));  // Sat 15:00 local
  EXPECT_FALSE(weekdays.in_service(utc(2026, 1, 1, 9, 0)));   // New Year's Day
  EXPECT_TRUE(weekdays.in_service(utc(2026, 1, 2, 9, 0)));

  EXPECT_EQ(targets.target("emergency", 1), 5min);
  EXPECT_EQ(targets.target("emergency", 2), 15min);
  EXPECT_EQ(targets.target("task", 4), 8h);
  EXPECT_EQ(targets.target("consultation", 3), std::nullopt);

  // What the ticket engine will do: a P2 emergency opened on Tuesday night at 21:50 local.
  const auto opened = utc(2026, 2, 10, 19, 50);
  EXPECT_EQ(calendars.at("office").deadline(opened, *targets.target("emergency", 2)),
            utc(2026, 2, 11, 6, 5));
}

TEST(CalendarTest, ConfigErrorsNameFileLineAndKey) {
  EXPECT_THAT(
      one_error("calendars:\n"
                "  office:\n"
                "    zone: Europe/Kyev\n"
                "    hours: daily 08:00-22:00\n"),
      HasSubstr("collector.yaml:3: calendars.office.zone: unknown time zone 'Europe/Kyev'"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office:\n"
                        "    zone: Europe/Kyiv\n"
                        "    hours: mon-fry 09:00-18:00\n"),
              HasSubstr("collector.yaml:4: calendars.office.hours: unknown days 'mon-fry'"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office:\n"
                        "    zone: Europe/Kyiv\n"
                        "    hours:\n"
                        "      - mon-fri 09:00-18:00\n"
                        "      - sat 10:00-25:00\n"),
              HasSubstr("collector.yaml:6: calendars.office.hours[1]: bad hours '10:00-25:00'"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office: {zone: Europe/Kyiv, hours: daily 08:00-08:00}\n"),
              HasSubstr("collector.yaml:2: calendars.office.hours: empty window '08:00-08:00'"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office: {zone: Europe/Kyiv, hours: []}\n"),
              HasSubstr("collector.yaml:2: calendars.office.hours: no service at all"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office: {hours: daily 08:00-22:00}\n"),
              HasSubstr("collector.yaml:2: calendars.office.zone: missing"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office: {zone: UTC}\n"),
              HasSubstr("collector.yaml:2: calendars.office.hours: missing required key"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office:\n"
                        "    zone: UTC\n"
                        "    hours: 24x7\n"
                        "    timezone: UTC\n"),
              HasSubstr("collector.yaml:5: calendars.office.timezone: unknown key"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office:\n"
                        "    zone: UTC\n"
                        "    hours: 24x7\n"
                        "    holidays:\n"
                        "      - 2026-01-01\n"
                        "      - 2026-02-30\n"),
              HasSubstr("collector.yaml:7: calendars.office.holidays[1]: expected a date"));
  EXPECT_THAT(one_error("calendars:\n"
                        "  office: {zone: UTC, hours: [24x7, mon 09:00-10:00]}\n"),
              HasSubstr("calendars.office.hours[0]: 24x7 stands alone"));
  // An end before the start is a night window, not a mistake.
  EXPECT_TRUE(errors_of("calendars:\n  office: {zone: UTC, hours: daily 22:00-06:00}\n").empty());
}

TEST(CalendarTest, TargetErrorsNameTheKey) {
  auto errors_for = [](const std::string& yaml) {
    std::vector<ConfigError> errors;
    parse_reaction_targets(YAML::Load(yaml)["targets"], "collector.yaml", "targets", errors);
    return errors;
  };
  auto e = errors_for("targets:\n  emergncy: 15m\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_THAT(e[0].to_string(), HasSubstr("collector.yaml:2: targets.emergncy: unknown key"));
  e = errors_for("targets:\n  task: 0s\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_THAT(e[0].to_string(), HasSubstr("collector.yaml:2: targets.task: expected a positive"));
  e = errors_for("targets:\n  emergency/P1: soon\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_THAT(e[0].to_string(), HasSubstr("collector.yaml:2: targets.emergency/P1: expected a"));
}

TEST(CalendarTest, WeeklyRejectsAnUnknownZoneAndNoService) {
  std::string error;
  EXPECT_FALSE(
      ServiceCalendar::weekly("Mars/Olympus", {{std::chrono::Monday, 9h, 18h}}, {}, error));
  EXPECT_THAT(error, HasSubstr("unknown time zone 'Mars/Olympus'"));
  EXPECT_FALSE(ServiceCalendar::weekly("UTC", {}, {}, error));
  EXPECT_THAT(error, HasSubstr("no service at all"));
}

TEST(CalendarTest, GivesUpWhenServiceIsOutOfReach) {
  // A calendar whose only window falls on holidays for more than 400 days.
  std::vector<std::chrono::year_month_day> holidays;
  for (auto d = std::chrono::sys_days{std::chrono::year{2026} / 1 / 1};
       d < std::chrono::sys_days{std::chrono::year{2028} / 1 / 1}; d += days{1})
    holidays.emplace_back(d);
  std::string error;
  const auto c = ServiceCalendar::weekly("UTC", {{std::chrono::Monday, 9h, 10h}}, holidays, error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->deadline(utc(2026, 1, 1, 0), 1h), ServiceCalendar::never);
  EXPECT_EQ(c->next_service_start(utc(2026, 1, 1, 0)), ServiceCalendar::never);
  EXPECT_EQ(c->service_time_between(utc(2026, 1, 1, 0), utc(2027, 1, 1, 0)), 0s);
}

// For random starts and durations, in zones with different DST rules (Lord Howe moves its
// clocks by 30 minutes): the service time up to the deadline is the duration asked for, to the
// nanosecond, and the other queries agree with it.
TEST(CalendarTest, DeadlineAndServiceTimeAgree) {
  const std::vector<ServiceCalendar> calendars = {
      office(),
      night(),
      calendar("{zone: Europe/Kyiv, hours: [mon-fri 09:00-18:00, sat 10:00-14:00], "
               "holidays: [2026-03-30, 2026-10-26]}"),
      calendar("{zone: America/New_York, hours: \"mon-fri 09:00-13:00,14:00-18:00\"}"),
      calendar("{zone: Australia/Lord_Howe, hours: [daily 01:00-03:00, sun 20:00-02:30]}"),
      calendar("{zone: Europe/Kyiv, hours: 24x7, holidays: [2026-03-29]}"),
  };
  std::mt19937_64 rng(20260329);
  const auto year_start = utc(2026, 1, 1, 0);
  std::uniform_int_distribution<std::int64_t> offset(0,
                                                     std::chrono::nanoseconds(366 * 24h).count());
  std::uniform_int_distribution<std::int64_t> length(1, std::chrono::nanoseconds(100h).count());
  for (const auto& c : calendars) {
    for (int i = 0; i < 1500; ++i) {
      const TimePoint s = year_start + std::chrono::nanoseconds(offset(rng));
      const ServiceCalendar::Duration d = std::chrono::nanoseconds(length(rng));
      const TimePoint end = c.deadline(s, d);
      ASSERT_GT(end, s);
      ASSERT_EQ(c.service_time_between(s, end), d) << c.zone_name() << " start " << i;
      ASSERT_TRUE(c.in_service(end - 1ns));
      const TimePoint next = c.next_service_start(s);
      ASSERT_TRUE(c.in_service(next));
      ASSERT_EQ(c.deadline(s, 1ns), next + 1ns);
      ASSERT_EQ(c.in_service(s), next == s);
      const TimePoint mid = s + (end - s) / 3;
      ASSERT_EQ(c.service_time_between(s, mid) + c.service_time_between(mid, end), d);
    }
  }
}

TEST(CalendarTest, SharedAcrossThreads) {
  // A zone no other test touches, so the threads race to load it.
  const auto c = calendar("{zone: America/Sao_Paulo, hours: [mon-fri 08:00-20:00]}");
  std::vector<TimePoint> starts;
  for (int i = 0; i < 500; ++i) starts.push_back(utc(2026, 1, 1, 0) + i * 17h + i * 1min);
  std::vector<std::vector<TimePoint>> results(4);
  std::vector<std::thread> threads;
  for (auto& r : results)
    threads.emplace_back([&c, &starts, &r] {
      for (auto s : starts) r.push_back(c.deadline(s, 15min));
    });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < starts.size(); ++i) {
    EXPECT_EQ(results[0][i], c.deadline(starts[i], 15min));
    for (const auto& r : results) EXPECT_EQ(r[i], results[0][i]);
  }
}

}  // namespace
}  // namespace dozor::collector
