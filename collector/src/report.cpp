#include "dozor/collector/report.h"

#include <date/tz.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <map>

#include "dozor/collector/rules.h"
#include "dozor/collector/store.h"
#include "dozor/protocol/units.h"

namespace dozor::collector {
namespace {

using nlohmann::json;

// How a probe (or the site) spent a stretch of time.
enum Bucket { kOk, kDegraded, kDown, kUnknown, kSilenced, kNoData, kBuckets };
constexpr std::array<const char*, kBuckets> kBucketNames = {"ok",      "degraded", "down",
                                                            "unknown", "silenced", "no_data"};

ServiceCalendar::TimePoint tp(double t) {
  return ServiceCalendar::TimePoint(
      std::chrono::duration_cast<ServiceCalendar::Duration>(std::chrono::duration<double>(t)));
}

double service_seconds(const ServiceCalendar& cal, double a, double b) {
  if (b <= a) return 0;
  if (cal.is_24x7()) return b - a;
  return std::chrono::duration<double>(cal.service_time_between(tp(a), tp(b))).count();
}

struct Times {
  std::array<double, kBuckets> service{}, all{};
  void add(Bucket b, double from, double to, const ServiceCalendar& cal) {
    all[b] += to - from;
    service[b] += service_seconds(cal, from, to);
  }
};

json times_json(const std::array<double, kBuckets>& t) {
  json j;
  for (int b = 0; b < kBuckets; ++b) j[kBucketNames[b]] = std::round(t[b] * 1000) / 1000;
  // Known time only: silences for planned work, and time nobody reported, do not count.
  const double counted = t[kOk] + t[kDegraded] + t[kDown];
  j["availability"] = counted > 0 ? json((t[kOk] + t[kDegraded]) / counted) : json(nullptr);
  return j;
}

json times_json(const Times& t) {
  return {{"service_hours", times_json(t.service)}, {"around_the_clock", times_json(t.all)}};
}

json stamp(double t) { return t > 0 ? json(format_timestamp(t)) : json(nullptr); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Silenced {
  std::int64_t id;
  std::string site, agent, probe;
  double starts_at, ends_at;
  std::string comment, by;
};

// Silences that hold every rule (planned work), overlapping [from, to), for `site` (all sites
// when empty).
std::vector<Silenced> silences(sql::Database& db, const std::string& site, double from, double to) {
  sql::Statement q(db,
                   "SELECT id, site, agent, probe, starts_at, ends_at, comment, created_by FROM "
                   "silences WHERE rule = '*' AND starts_at < ? AND ends_at > ? ORDER BY id");
  q.bind(1, to).bind(2, from);
  std::vector<Silenced> out;
  while (q.step()) {
    Silenced s{q.integer(0), q.text(1), q.text(2), q.text(3),
               q.real(4),    q.real(5), q.text(6), q.text(7)};
    if (site.empty() || glob_match(s.site, site)) out.push_back(std::move(s));
  }
  return out;
}

// One probe's (or agent's) record through the period.
struct Track {
  std::string agent, probe;
  int status = -1;  // -1: nothing known yet
  std::size_t agent_track = 0;
  Times times;
};

struct Event {
  double t;
  int kind;  // 0: state of a track, 1: silence starts, 2: silence ends
  std::size_t index;
  int value;
};

// The availability part: per probe and for the site, from the state changes.
json availability(sql::Database& db, const ServiceCalendar& cal, const std::string& site,
                  double from, double to, const std::vector<Silenced>& silenced) {
  std::vector<Track> tracks;
  std::map<std::pair<std::string, std::string>, std::size_t> index;
  auto track = [&](const std::string& agent, const std::string& probe) -> std::size_t {
    auto [it, fresh] = index.try_emplace({agent, probe}, tracks.size());
    if (fresh) tracks.push_back({agent, probe, -1, 0, {}});
    return it->second;
  };
  std::vector<Event> events;
  // Where each probe and agent stood when the period began...
  sql::Statement before(db,
                        "SELECT agent, probe, status FROM (SELECT agent, probe, status, "
                        "row_number() OVER (PARTITION BY agent, probe ORDER BY ts DESC, rowid "
                        "DESC) AS n FROM state_changes WHERE site = ? AND ts < ?) AS last "
                        "WHERE n = 1");
  before.bind(1, std::string_view(site)).bind(2, from);
  while (before.step())
    tracks[track(before.text(0), before.text(1))].status = static_cast<int>(before.integer(2));
  // ... and every change within it.
  sql::Statement within(db,
                        "SELECT agent, probe, status, ts FROM state_changes WHERE site = ? AND "
                        "ts >= ? AND ts < ? ORDER BY ts, rowid");
  within.bind(1, std::string_view(site)).bind(2, from).bind(3, to);
  while (within.step())
    events.push_back({within.real(3), 0, track(within.text(0), within.text(1)),
                      static_cast<int>(within.integer(2))});
  for (std::size_t i = 0; i < silenced.size(); ++i) {
    events.push_back({std::max(from, silenced[i].starts_at), 1, i, 0});
    events.push_back({std::min(to, silenced[i].ends_at), 2, i, 0});
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.t < b.t; });
  for (auto& t : tracks)
    if (!t.probe.empty()) t.agent_track = track(t.agent, "");

  std::vector<bool> active(silenced.size(), false);
  Times site_times;
  auto bucket = [&](const Track& t) {
    for (std::size_t i = 0; i < silenced.size(); ++i)
      if (active[i] && glob_match(silenced[i].agent, t.agent) &&
          glob_match(silenced[i].probe, t.probe))
        return kSilenced;
    if (t.status < 0) return kNoData;
    if (tracks[t.agent_track].status == Store::kAgentSilent) return kDown;
    switch (t.status) {
      case 0:
        return kOk;
      case 1:
        return kDegraded;
      case 2:
        return kDown;
      default:
        return kUnknown;
    }
  };
  auto account = [&](double a, double b) {
    if (b <= a) return;
    // The site is as bad as its worst probe: down, unknown, degraded, ok.
    constexpr std::array<Bucket, 4> worst_first = {kDown, kUnknown, kDegraded, kOk};
    std::array<int, kBuckets> count{};
    for (auto& t : tracks) {
      if (t.probe.empty()) continue;
      const Bucket k = bucket(t);
      t.times.add(k, a, b, cal);
      ++count[k];
    }
    Bucket site_bucket = count[kSilenced] ? kSilenced : kNoData;
    for (Bucket k : worst_first)
      if (count[k]) {
        site_bucket = k;
        break;
      }
    site_times.add(site_bucket, a, b, cal);
  };
  double cursor = from;
  for (const auto& e : events) {
    account(cursor, e.t);
    cursor = std::max(cursor, e.t);
    if (e.kind == 0) tracks[e.index].status = e.value;
    if (e.kind == 1) active[e.index] = true;
    if (e.kind == 2) active[e.index] = false;
  }
  account(cursor, to);

  json probes = json::array();
  for (const auto& t : tracks)
    if (!t.probe.empty()) {
      json p = times_json(t.times);
      p["agent"] = t.agent;
      p["probe"] = t.probe;
      probes.push_back(std::move(p));
    }
  return {{"site", times_json(site_times)}, {"probes", std::move(probes)}};
}

// One figure from a probe's (or with `probe` empty, an agent's) history in (after, until]:
// `aggregate` of ts over the rows where `condition` holds; 0 when there are none.
double history(sql::Database& db, std::string_view aggregate, std::string_view condition,
               const std::string& site, const std::string& agent, const std::string& probe,
               double after, double until) {
  sql::Statement q(db, "SELECT " + std::string(aggregate) +
                           "(ts) FROM state_changes WHERE site = ? AND agent = ? AND "
                           "probe = ? AND ts > ? AND ts <= ? AND " +
                           std::string(condition));
  q.bind(1, std::string_view(site))
      .bind(2, std::string_view(agent))
      .bind(3, std::string_view(probe))
      .bind(4, after)
      .bind(5, until);
  return q.step() ? q.real(0) : 0;
}

// When the failure behind a ticket began: the first failing state of its probe (or its agent
// falling silent) since that probe was last ok, at or before the ticket opened.
double failure_start(sql::Database& db, const std::string& site, const std::string& agent,
                     const std::string& probe, double opened_at) {
  if (agent.empty()) return opened_at;
  const double ok = history(db, "MAX", "status = 0", site, agent, probe, -1, opened_at);
  const double bad = history(db, "MIN", "status != 0", site, agent, probe, ok, opened_at);
  return bad > 0 ? bad : opened_at;
}

// When the service came back: its last ok state (or the agent's return) before the ticket
// resolved, rather than the resolution, which waits for the recovery to hold.
double recovery(sql::Database& db, const std::string& site, const std::string& agent,
                const std::string& probe, double started, double resolved) {
  const double ok = history(db, "MAX", "status = 0", site, agent, probe, started, resolved);
  return ok > 0 ? ok : resolved;
}

json incidents(sql::Database& db, const ServiceCalendar& cal, const ReportRequest& r, double now,
               json& totals) {
  sql::Statement q(db,
                   "SELECT id, class, priority, summary, agent, probe, rule, opened_at, "
                   "acknowledged_at, acknowledged_by, resolved_at, closed_at, deadline, "
                   "occurrences, flapping, status FROM tickets WHERE site = ? AND opened_at >= ? "
                   "AND opened_at < ? AND opened_at < ? ORDER BY opened_at, id");
  q.bind(1, std::string_view(r.site)).bind(2, r.from).bind(3, r.to).bind(4, now);
  sql::Statement events(db,
                        "SELECT event, at FROM ticket_events WHERE ticket = ? AND at < ? "
                        "ORDER BY id");
  json out = json::array();
  std::map<std::string, int> by_class;
  int kept = 0, missed = 0, unnoticed = 0, prevented = 0;
  std::vector<double> reacts, restores;
  while (q.step()) {
    const auto id = q.integer(0);
    const std::string cls = q.text(1), agent = q.text(4), probe = q.text(5), rule = q.text(6);
    const int priority = static_cast<int>(q.integer(2));
    const double opened = q.real(7), deadline = q.real(12);
    // The store holds the ticket as it is now; as of `now` it is what its events up to then say.
    double acked = 0, resolved = 0, closed = 0;
    int reopened = 0;
    bool flapping = false;
    events.bind(1, id).bind(2, now);
    while (events.step()) {
      const std::string e = events.text(0);
      const double at = events.real(1);
      if (e == "acknowledged" && !acked) acked = at;
      if (e == "resolved") resolved = at;
      if (e == "reopened") {
        ++reopened;
        resolved = 0;
      }
      if (e == "closed") closed = at;
      if (e == "flapping") flapping = true;
    }
    events.reset();
    flapping = flapping || q.integer(14) != 0;
    // An agent's own tickets (silent: probe "*") follow its up/silent history (probe "").
    const std::string history_probe = probe == "*" ? "" : probe;
    const double started = failure_start(db, r.site, agent, history_probe, opened);
    const double ended = resolved ? resolved : closed;
    const double restored = resolved && !agent.empty()
                                ? recovery(db, r.site, agent, history_probe, started, resolved)
                                : ended;
    json i = {{"id", id},
              {"class", cls},
              {"priority", "P" + std::to_string(priority)},
              {"summary", q.text(3)},
              {"agent", agent},
              {"probe", probe},
              {"rule", rule},
              {"started_at", stamp(started)},
              {"opened_at", stamp(opened)},
              {"detect_seconds", opened - started},
              {"acknowledged_at", stamp(acked)},
              {"acknowledged_by", acked ? json(q.text(9)) : json(nullptr)},
              {"deadline_at", stamp(deadline)},
              {"resolved_at", stamp(ended)},
              {"restored_at", stamp(restored)},
              {"resolved_by", resolved ? "itself"
                              : closed ? "hand"
                                       : ""},
              {"reopened", reopened},
              {"flapping", flapping},
              {"occurrences", q.integer(13)}};
    ++by_class[cls + "/P" + std::to_string(priority)];
    if (acked) {
      const double react = service_seconds(cal, opened, acked);
      i["react_service_seconds"] = react;
      reacts.push_back(react);
    }
    // Kept: acknowledged by the deadline. Not needed: over before it, with nobody needed.
    std::string verdict = "no_target";
    if (deadline > 0) {
      const double answer = acked ? acked : ended ? ended : now;
      if (answer <= deadline) {
        verdict = acked ? "kept" : ended ? "not_needed" : "running";
      } else {
        verdict = "missed";
        i["missed_by_service_seconds"] = service_seconds(cal, deadline, answer);
      }
    }
    kept += verdict == "kept";
    missed += verdict == "missed";
    i["deadline"] = verdict;
    if (ended) {
      const double restore = restored - started;
      i["restore_seconds"] = restore;
      restores.push_back(restore);
      // Over before the client could see it: soon enough, or outside their working hours.
      const bool quiet = restore <= r.notice_within || service_seconds(cal, started, restored) == 0;
      i["unnoticed"] = quiet;
      unnoticed += quiet;
    }
    if (r.forecast_rules.count(rule) && ended &&
        history(db, "MAX", "status = 2", r.site, agent, probe, opened, r.to) == 0) {
      i["prevented"] = true;
      ++prevented;
    }
    out.push_back(std::move(i));
  }
  totals = {
      {"incidents", out.size()},
      {"by_class", by_class},
      {"deadlines_kept", kept},
      {"deadlines_missed", missed},
      {"deadlines_kept_share",
       kept + missed ? json(double(kept) / (kept + missed)) : json(nullptr)},
      {"react_median_service_seconds", reacts.empty() ? json(nullptr) : json(median(reacts))},
      {"react_worst_service_seconds",
       reacts.empty() ? json(nullptr) : json(*std::max_element(reacts.begin(), reacts.end()))},
      {"restore_median_seconds", restores.empty() ? json(nullptr) : json(median(restores))},
      {"restore_worst_seconds", restores.empty()
                                    ? json(nullptr)
                                    : json(*std::max_element(restores.begin(), restores.end()))},
      {"unnoticed", unnoticed},
      {"failures_prevented", prevented}};
  return out;
}

}  // namespace

std::optional<std::pair<double, double>> month_in_zone(std::string_view month,
                                                       std::string_view zone, std::string& error) {
  int y = 0;
  unsigned m = 0;
  if (month.size() != 7 || month[4] != '-' ||
      std::from_chars(month.data(), month.data() + 4, y).ptr != month.data() + 4 ||
      std::from_chars(month.data() + 5, month.data() + 7, m).ptr != month.data() + 7 || m < 1 ||
      m > 12) {
    error = "month: expected YYYY-MM, e.g. 2026-11";
    return std::nullopt;
  }
  const date::time_zone* tz = nullptr;
  try {
    tz = date::locate_zone(zone);
  } catch (const std::exception&) {
    error = "unknown time zone " + std::string(zone);
    return std::nullopt;
  }
  const date::year_month first{date::year{y}, date::month{m}};
  auto start = [&](date::year_month ym) {
    const auto local = date::local_days{ym / 1};
    const auto sys = tz->to_sys(local, date::choose::earliest);
    return std::chrono::duration<double>(sys.time_since_epoch()).count();
  };
  return std::pair{start(first), start(first + date::months{1})};
}

std::string month_at(double t, std::string_view zone) {
  const date::time_zone* tz = nullptr;
  try {
    tz = date::locate_zone(zone);
  } catch (const std::exception&) {
    tz = date::locate_zone("UTC");
  }
  const auto local =
      tz->to_local(date::sys_seconds(std::chrono::seconds(static_cast<std::int64_t>(t))));
  const date::year_month_day day{date::floor<date::days>(local)};
  char out[16];
  std::snprintf(out, sizeof out, "%04d-%02u", static_cast<int>(day.year()),
                static_cast<unsigned>(day.month()));
  return out;
}

json site_report(sql::Database& db, const ServiceCalendar& calendar, const ReportRequest& r,
                 double now) {
  const double to = std::min(r.to, std::max(r.from, now));  // not past what has happened
  const auto held = silences(db, r.site, r.from, to);
  json report = availability(db, calendar, r.site, r.from, to, held);
  json totals;
  report["incidents"] = incidents(db, calendar, r, now, totals);
  report["totals"] = std::move(totals);
  json s = json::array();
  for (const auto& h : held)
    s.push_back({{"id", h.id},
                 {"agent", h.agent},
                 {"probe", h.probe},
                 {"starts_at", stamp(h.starts_at)},
                 {"ends_at", stamp(h.ends_at)},
                 {"comment", h.comment},
                 {"created_by", h.by}});
  report["silences"] = std::move(s);
  report["name"] = r.site;
  report["from"] = stamp(r.from);
  report["to"] = stamp(r.to);
  report["complete"] = r.to <= now;
  report["zone"] = calendar.zone_name();
  report["service"] = calendar.is_24x7() ? "24x7" : "calendar";
  return report;
}

json fleet_report(sql::Database& db,
                  const std::function<const ServiceCalendar&(const std::string&)>& calendar_of,
                  const ReportRequest& request, double now) {
  std::vector<std::string> sites;
  sql::Statement q(db,
                   "SELECT DISTINCT site FROM state_changes WHERE ts < ? UNION SELECT DISTINCT "
                   "site FROM tickets WHERE opened_at >= ? AND opened_at < ? ORDER BY 1");
  q.bind(1, request.to).bind(2, request.from).bind(3, request.to);
  while (q.step()) sites.push_back(q.text(0));
  json rows = json::array();
  std::map<std::pair<std::string, std::string>, std::pair<double, int>> probes;  // down, incidents
  for (const auto& site : sites) {
    ReportRequest r = request;
    r.site = site;
    json one = site_report(db, calendar_of(site), r, now);
    for (const auto& p : one["probes"])
      probes[{site, p["agent"].get<std::string>() + "/" + p["probe"].get<std::string>()}].first +=
          p["service_hours"]["down"].get<double>();
    for (const auto& i : one["incidents"])
      ++probes[{site, i["agent"].get<std::string>() + "/" + i["probe"].get<std::string>()}].second;
    rows.push_back({{"site", site},
                    {"availability", one["site"]["service_hours"]["availability"]},
                    {"down_service_seconds", one["site"]["service_hours"]["down"]},
                    {"incidents", one["totals"]["incidents"]},
                    {"deadlines_missed", one["totals"]["deadlines_missed"]},
                    {"deadlines_kept_share", one["totals"]["deadlines_kept_share"]}});
  }
  // The worst month first: most downtime in service hours, then most deadlines missed.
  std::sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
    return std::pair(a["down_service_seconds"].get<double>(), a["deadlines_missed"].get<int>()) >
           std::pair(b["down_service_seconds"].get<double>(), b["deadlines_missed"].get<int>());
  });
  std::vector<std::pair<std::pair<std::string, std::string>, std::pair<double, int>>> ranked(
      probes.begin(), probes.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.second, a.second.first) > std::pair(b.second.second, b.second.first);
  });
  json failing = json::array();
  for (std::size_t i = 0; i < ranked.size() && i < 20; ++i) {
    if (ranked[i].second.second == 0 && ranked[i].second.first == 0) break;
    failing.push_back({{"site", ranked[i].first.first},
                       {"probe", ranked[i].first.second},
                       {"incidents", ranked[i].second.second},
                       {"down_service_seconds", ranked[i].second.first}});
  }
  return {{"from", stamp(request.from)},
          {"to", stamp(request.to)},
          {"sites", std::move(rows)},
          {"probes_failing_most", std::move(failing)}};
}

std::string incidents_csv(const json& report) {
  constexpr const char* columns[] = {"id",
                                     "class",
                                     "priority",
                                     "agent",
                                     "probe",
                                     "summary",
                                     "started_at",
                                     "opened_at",
                                     "detect_seconds",
                                     "acknowledged_at",
                                     "acknowledged_by",
                                     "react_service_seconds",
                                     "deadline",
                                     "missed_by_service_seconds",
                                     "resolved_at",
                                     "restore_seconds",
                                     "resolved_by",
                                     "reopened",
                                     "flapping",
                                     "unnoticed"};
  auto cell = [](const json& v) {
    std::string s = v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump();
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  std::string out;
  for (const char* c : columns) out += std::string(out.empty() ? "" : ",") + c;
  out += "\r\n";
  for (const auto& i : report["incidents"]) {
    std::string line;
    for (const char* c : columns) {
      if (!line.empty() || c != columns[0]) line += ',';
      line += cell(i.contains(c) ? i[c] : json(nullptr));
    }
    out += line + "\r\n";
  }
  return out;
}

}  // namespace dozor::collector
