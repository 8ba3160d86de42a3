#include "report_page.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace dozor::server {
namespace {

using nlohmann::json;

// Every label of the page, in English and in Ukrainian.
const std::map<std::string_view, std::pair<std::string_view, std::string_view>> kLabels = {
    {"title", {"Service report", "Звіт про обслуговування"}},
    {"client", {"Client", "Клієнт"}},
    {"site", {"Site", "Об'єкт"}},
    {"period", {"Period", "Період"}},
    {"served_by", {"Served by", "Обслуговує"}},
    {"targets", {"Reaction targets (service time)", "Час реакції (у робочий час)"}},
    {"hours", {"Service hours", "Робочий час"}},
    {"availability", {"Availability", "Доступність"}},
    {"in_hours", {"in service hours", "у робочий час"}},
    {"around", {"around the clock", "цілодобово"}},
    {"ok", {"ok", "працює"}},
    {"degraded", {"degraded", "з попередженням"}},
    {"down", {"down", "не працює"}},
    {"silenced", {"planned work", "планові роботи"}},
    {"no_data", {"no data", "немає даних"}},
    {"probes", {"Checks", "Перевірки"}},
    {"check", {"check", "перевірка"}},
    {"incidents", {"Incidents", "Інциденти"}},
    {"none", {"None.", "Немає."}},
    {"what", {"what failed", "що сталося"}},
    {"started", {"began", "почалося"}},
    {"detect", {"detected in", "виявлено за"}},
    {"react", {"reaction", "реакція"}},
    {"deadline", {"deadline", "термін"}},
    {"restore", {"restored in", "відновлено за"}},
    {"kept", {"kept", "дотримано"}},
    {"missed", {"missed by", "порушено на"}},
    {"not_needed", {"over before it", "минуло раніше"}},
    {"running", {"running", "триває"}},
    {"no_target", {"none", "немає"}},
    {"unnoticed", {"before the client noticed", "до того, як помітив клієнт"}},
    {"totals", {"Totals", "Підсумки"}},
    {"t_incidents", {"incidents", "інцидентів"}},
    {"t_kept", {"reaction deadlines kept", "дотримано термінів реакції"}},
    {"t_react", {"reaction, median / worst", "реакція, медіана / найгірша"}},
    {"t_restore", {"restoration, median / worst", "відновлення, медіана / найгірше"}},
    {"t_unnoticed",
     {"resolved before the client could notice", "усунено до того, як клієнт міг помітити"}},
    {"t_prevented", {"failures prevented by a forecast", "відвернено завдяки прогнозу"}},
    {"planned", {"Planned work", "Планові роботи"}},
    {"partial",
     {"The period is not over yet: figures so far.", "Період ще триває: дані на цей момент."}},
    {"reopened", {"reopened", "повторно"}},
    {"flapping", {"flapping", "нестабільно"}},
};

std::string_view label(std::string_view key, std::string_view lang) {
  auto it = kLabels.find(key);
  if (it == kLabels.end()) return key;
  return lang == "uk" ? it->second.second : it->second.first;
}

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string text(const json& v) { return v.is_string() ? v.get<std::string>() : ""; }

// 3725 -> "1 h 02 min"; 45 -> "45 s".
std::string span(const json& v) {
  if (!v.is_number()) return "—";
  const auto s = static_cast<long long>(std::llround(std::abs(v.get<double>())));
  char out[64];
  if (s < 60)
    std::snprintf(out, sizeof out, "%lld s", s);
  else if (s < 3600)
    std::snprintf(out, sizeof out, "%lld min %02lld s", s / 60, s % 60);
  else if (s < 86400)
    std::snprintf(out, sizeof out, "%lld h %02lld min", s / 3600, s % 3600 / 60);
  else
    std::snprintf(out, sizeof out, "%lld d %lld h", s / 86400, s % 86400 / 3600);
  return out;
}

std::string percent(const json& v) {
  if (!v.is_number()) return "—";
  char out[32];
  std::snprintf(out, sizeof out, "%.3f %%", v.get<double>() * 100);
  return out;
}

// "2026-11-05T07:00:00.000Z" -> "2026-11-05 07:00 UTC".
std::string when(const json& v) {
  const std::string s = text(v);
  return s.size() >= 16 ? s.substr(0, 10) + " " + s.substr(11, 5) + " UTC" : "—";
}

std::string times_row(const json& t) {
  std::string row;
  for (const char* k : {"ok", "degraded", "down", "silenced", "no_data"})
    row += "<td>" + span(t[k]) + "</td>";
  return row + "<td class=\"num\"><b>" + percent(t["availability"]) + "</b></td>";
}

}  // namespace

bool report_language_known(std::string_view lang) { return lang == "en" || lang == "uk"; }

std::string report_html(const json& r, const ReportHeading& h, std::string_view lang) {
  auto L = [&](std::string_view key) { return std::string(label(key, lang)); };
  std::string o;
  o += "<!doctype html><html lang=\"" + std::string(lang) + "\"><head><meta charset=\"utf-8\">";
  o += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  o += "<title>" +
       escape(L("title") + " · " + (h.client.empty() ? h.site : h.client) + " · " +
              (h.month.empty() ? text(r["from"]) : h.month)) +
       "</title><style>"
       "@page{size:A4;margin:14mm}"
       "body{font-family:'DejaVu Sans','Noto Sans',system-ui,sans-serif;font-size:10.5pt;"
       "color:#1a1f26;max-width:190mm;margin:1em auto;line-height:1.35}"
       "h1{font-size:17pt;margin:0 0 .3em}h2{font-size:12.5pt;margin:1.1em 0 .4em;"
       "border-bottom:1px solid #ccd;page-break-after:avoid}"
       "table{border-collapse:collapse;width:100%;margin:.3em 0}"
       "th,td{text-align:left;padding:.2em .4em;border-bottom:1px solid #e3e6ea;vertical-align:top}"
       "th{font-weight:600;color:#555;font-size:9pt}td.num{text-align:right;white-space:nowrap}"
       "tr{page-break-inside:avoid}.head td{border:none;padding:.1em .4em .1em 0}"
       ".big{font-size:20pt;font-weight:700}.ok{color:#1d7a45}.missed{color:#b3261e}"
       ".note{color:#666}.cards{display:flex;gap:1.5em;flex-wrap:wrap;margin:.4em 0}"
       ".cards div{min-width:9em}"
       "</style></head><body>";
  o += "<h1>" + escape(L("title")) + "</h1><table class=\"head\">";
  auto head_row = [&](std::string_view key, const std::string& value) {
    if (!value.empty())
      o += "<tr><td>" + escape(L(key)) + ":</td><td><b>" + escape(value) + "</b></td></tr>";
  };
  head_row("client", h.client);
  head_row("site", h.site);
  head_row("period", h.month.empty() ? when(r["from"]) + " — " + when(r["to"])
                                     : h.month + " (" + text(r["zone"]) + ")");
  head_row("served_by", h.company);
  head_row("hours", h.hours);
  head_row("targets", h.targets);
  o += "</table>";
  if (!r.value("complete", true)) o += "<p class=\"note\">" + escape(L("partial")) + "</p>";

  const json& t = r["totals"];
  o += "<h2>" + escape(L("availability")) + "</h2><div class=\"cards\">";
  o += "<div><div class=\"big\">" + percent(r["site"]["service_hours"]["availability"]) + "</div>" +
       escape(L("in_hours")) + "</div>";
  o += "<div><div class=\"big\">" + percent(r["site"]["around_the_clock"]["availability"]) +
       "</div>" + escape(L("around")) + "</div>";
  o += "<div><div class=\"big\">" + std::to_string(t["incidents"].get<int>()) + "</div>" +
       escape(L("t_incidents")) + "</div>";
  o += "<div><div class=\"big\">" + percent(t["deadlines_kept_share"]) + "</div>" +
       escape(L("t_kept")) + "</div></div>";
  std::string heads;
  for (const char* k : {"ok", "degraded", "down", "silenced", "no_data"})
    heads += "<th>" + escape(L(k)) + "</th>";
  heads += "<th class=\"num\">" + escape(L("availability")) + "</th>";
  o += "<table><tr><th></th>" + heads + "</tr>";
  o += "<tr><td>" + escape(L("in_hours")) + "</td>" + times_row(r["site"]["service_hours"]) +
       "</tr>";
  o += "<tr><td>" + escape(L("around")) + "</td>" + times_row(r["site"]["around_the_clock"]) +
       "</tr></table>";

  o += "<h2>" + escape(L("probes")) + " (" + escape(L("in_hours")) + ")</h2>";
  o += "<table><tr><th>" + escape(L("check")) + "</th>" + heads + "</tr>";
  for (const auto& p : r["probes"])
    o += "<tr><td>" + escape(text(p["agent"]) + " / " + text(p["probe"])) + "</td>" +
         times_row(p["service_hours"]) + "</tr>";
  o += "</table>";

  o += "<h2>" + escape(L("incidents")) + "</h2>";
  if (r["incidents"].empty()) {
    o += "<p>" + escape(L("none")) + "</p>";
  } else {
    o += "<table><tr><th>#</th><th>" + escape(L("what")) + "</th><th>" + escape(L("started")) +
         "</th><th>" + escape(L("detect")) + "</th><th>" + escape(L("react")) + "</th><th>" +
         escape(L("deadline")) + "</th><th>" + escape(L("restore")) + "</th></tr>";
    for (const auto& i : r["incidents"]) {
      const std::string verdict = text(i["deadline"]);
      std::string deadline = escape(L(verdict));
      if (verdict == "missed") deadline += " " + span(i["missed_by_service_seconds"]);
      std::string notes;
      if (i.value("reopened", 0) > 0) notes += ", " + L("reopened");
      if (i.value("flapping", false)) notes += ", " + L("flapping");
      if (i.value("unnoticed", false)) notes += ", " + L("unnoticed");
      o += "<tr><td>" + std::to_string(i["id"].get<long long>()) + "</td><td>" +
           escape(text(i["class"]) + " " + text(i["priority"]) + ": " + text(i["summary"])) +
           "<br><span class=\"note\">" + escape(notes.empty() ? "" : notes.substr(2)) +
           "</span></td><td>" + when(i["started_at"]) + "</td><td>" + span(i["detect_seconds"]) +
           "</td><td>" + span(i.value("react_service_seconds", json())) + "</td><td class=\"" +
           (verdict == "missed" ? "missed"
            : verdict == "kept" ? "ok"
                                : "") +
           "\">" + deadline + "</td><td>" + span(i.value("restore_seconds", json())) + "</td></tr>";
    }
    o += "</table>";
  }

  o += "<h2>" + escape(L("totals")) + "</h2><table>";
  auto total = [&](std::string_view key, const std::string& value) {
    o += "<tr><td>" + escape(L(key)) + "</td><td class=\"num\"><b>" + value + "</b></td></tr>";
  };
  total("t_incidents", std::to_string(t["incidents"].get<int>()));
  total("t_kept",
        std::to_string(t["deadlines_kept"].get<int>()) + " / " +
            std::to_string(t["deadlines_kept"].get<int>() + t["deadlines_missed"].get<int>()) +
            " (" + percent(t["deadlines_kept_share"]) + ")");
  total("t_react",
        span(t["react_median_service_seconds"]) + " / " + span(t["react_worst_service_seconds"]));
  total("t_restore", span(t["restore_median_seconds"]) + " / " + span(t["restore_worst_seconds"]));
  total("t_unnoticed", std::to_string(t["unnoticed"].get<int>()));
  total("t_prevented", std::to_string(t["failures_prevented"].get<int>()));
  o += "</table>";

  if (!r["silences"].empty()) {
    o += "<h2>" + escape(L("planned")) + "</h2><table>";
    for (const auto& s : r["silences"])
      o += "<tr><td>" + when(s["starts_at"]) + " — " + when(s["ends_at"]) + "</td><td>" +
           escape(text(s["comment"])) + "</td></tr>";
    o += "</table>";
  }
  o += "</body></html>\n";
  return o;
}

}  // namespace dozor::server
