#pragma once

// The service report as a page for the client: readable on screen, printed to A4 by a browser.
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace dozor::server {

/// Who serves whom, and on what terms, as the page heads it.
struct ReportHeading {
  std::string company, client, site;
  std::string month;    // "2026-11", or empty for a range
  std::string targets;  // "emergency 15m, task 8h"
  std::string hours;    // "24x7" or the calendar's zone
};

/// The languages of the page's labels.
bool report_language_known(std::string_view lang);

/// `report` (collector::site_report) as one self-contained HTML page in `lang` ("en", "uk").
std::string report_html(const nlohmann::json& report, const ReportHeading& heading,
                        std::string_view lang);

}  // namespace dozor::server
