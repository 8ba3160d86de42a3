#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "dozor/collector/calendar.h"
#include "dozor/collector/sql.h"

namespace dozor::collector {

/// What a service report covers and how it counts.
struct ReportRequest {
  std::string site;  // empty: every site (the support company's own view)
  double from = 0;   // unix seconds, [from, to)
  double to = 0;
  double notice_within = 600;            // restored this soon after it began: no client noticed
  std::set<std::string> forecast_rules;  // rules of kind forecast, for "failures prevented"
};

/// The first instant of `month` ("2026-11") and of the month after, in time zone `zone` (IANA);
/// nullopt and a message for a malformed month or an unknown zone.
std::optional<std::pair<double, double>> month_in_zone(std::string_view month,
                                                       std::string_view zone, std::string& error);

/// The month ("2026-11") that holds unix time `t` in time zone `zone` (UTC when unknown).
std::string month_at(double t, std::string_view zone);

/// What one site got in a period, from the store's history (state changes, tickets and their
/// events, silences): time ok / degraded / down per probe and for the site as a whole, in the
/// service hours of `calendar` and around the clock, less silences for planned work; every
/// incident with its times to detect, react (service time, against its deadline) and restore;
/// and the totals. Only rows from before `now` count, so a past period reads the same every time.
nlohmann::json site_report(sql::Database& db, const ServiceCalendar& calendar,
                           const ReportRequest& request, double now);

/// Every site's report in one: per site its availability, incidents and deadlines, the worst
/// first, and the probes that failed most across the fleet. `calendar_of(site)` gives each
/// site's calendar.
nlohmann::json fleet_report(
    sql::Database& db, const std::function<const ServiceCalendar&(const std::string&)>& calendar_of,
    const ReportRequest& request, double now);

/// The incidents of a site report as CSV (RFC 4180; a header row; UTF-8).
std::string incidents_csv(const nlohmann::json& report);

}  // namespace dozor::collector
