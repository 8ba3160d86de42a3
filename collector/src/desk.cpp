#include "dozor/collector/desk.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "desk_parts.h"
#include "dozor/protocol/units.h"

namespace dozor::collector {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Events the notifiers hear of; the others (attached, detached, flapping) are history only.
constexpr std::string_view kNotified[] = {"opened",   "escalated", "acknowledged",
                                          "resolved", "reopened",  "closed"};

json stamp(double t) { return t > 0 ? json(format_timestamp(t)) : json(nullptr); }

std::string priority_name(int p) { return "P" + std::to_string(p); }

// The incident of a status rule on one probe.
std::string status_key(const AgentState& a, const std::string& probe, const Rule& rule) {
  return a.site + "/" + a.id + "/" + probe + "/" + rule.name;
}

ServiceCalendar::TimePoint to_tp(double t) {
  return ServiceCalendar::TimePoint(
      std::chrono::duration_cast<ServiceCalendar::Duration>(std::chrono::duration<double>(t)));
}
double from_tp(ServiceCalendar::TimePoint tp) {
  return std::chrono::duration<double>(tp.time_since_epoch()).count();
}

}  // namespace

struct Desk::Series {
  std::string site, type;
  struct Status {
    std::size_t rule;
    Incident* incident;  // made when the rule first holds: a healthy probe costs none
  };
  std::vector<Status> status;             // one per matching status rule
  std::vector<std::size_t> metric_rules;  // stale and forecast rules that match
};

// What the open transaction changed in memory, as it was before.
struct Desk::Undo {
  bool open = false;
  std::uint64_t next_ticket = 0, next_event = 0;
  std::unordered_map<Incident*, IncidentState> incidents;
  std::vector<std::unique_ptr<Incident>> erased;
  std::map<std::uint64_t, std::optional<Ticket>> tickets;  // none: made in the transaction
  std::map<std::uint64_t, std::optional<std::set<std::string>>> members;
  std::vector<std::string> events;  // dozor_ticket_events_total, counted once stored
};

json to_json(const Ticket& t) {
  return {{"id", t.id},
          {"key", t.key},
          {"class", t.ticket_class},
          {"priority", priority_name(t.priority)},
          {"status", t.status},
          {"summary", t.summary},
          {"details", t.details},
          {"site", t.site},
          {"agent", t.agent},
          {"probe", t.probe},
          {"rule", t.rule},
          {"opened_at", stamp(t.opened_at)},
          {"acknowledged_at", stamp(t.acknowledged_at)},
          {"resolved_at", stamp(t.resolved_at)},
          {"closed_at", stamp(t.closed_at)},
          {"updated_at", stamp(t.updated_at)},
          {"deadline", stamp(t.deadline)},
          {"escalations", t.escalations},
          {"occurrences", t.occurrences},
          {"flapping", t.flapping},
          {"probes", t.probes},
          {"acknowledged_by", t.acknowledged_by},
          {"comment", t.comment}};
}

bool Silence::matches(std::string_view s, std::string_view a, std::string_view p,
                      std::string_view r) const {
  return glob_match(site, s) && glob_match(agent, a) && glob_match(probe, p) && glob_match(rule, r);
}

json to_json(const Silence& s, double now) {
  return {
      {"id", s.id},
      {"matchers", {{"site", s.site}, {"agent", s.agent}, {"probe", s.probe}, {"rule", s.rule}}},
      {"starts_at", stamp(s.starts_at)},
      {"ends_at", stamp(s.ends_at)},
      {"comment", s.comment},
      {"created_by", s.created_by},
      {"created_at", stamp(s.created_at)},
      {"active", s.active(now)}};
}

ReactionTargets DeskConfig::default_targets() {
  ReactionTargets t;
  t.by_key.emplace("emergency", 15min);
  t.by_key.emplace("task", 8h);
  t.by_key.emplace("consultation", 8h);
  return t;
}

Desk::Desk(DeskConfig config, Metrics& metrics, sql::Database& db)
    : config_(std::move(config)),
      metrics_(metrics),
      db_(db),
      gauges_(std::make_unique<TicketGauges>(metrics)),
      undo_(std::make_unique<Undo>()) {
  rows_ = std::make_unique<DeskRows>(db_);  // on a store migrate() made
  std::lock_guard lock(mu_);
  load_locked();
}

Desk::~Desk() = default;

// ---------------------------------------------------------------- persistence

// Reads everything first and replaces memory only when all of it was read: a store that fails
// meanwhile leaves memory as it was, marked stale until a load succeeds (ready_locked()).
void Desk::load_locked() {
  stale_ = true;
  auto rows = rows_->load();
  std::unordered_map<std::string, std::unique_ptr<Incident>> loaded;
  std::map<std::uint64_t, std::set<std::string>> members;
  std::set<std::string> pending;
  for (auto& inc : rows.incidents) {
    auto idx = rule_index(inc->rule_name);
    if (!idx) continue;  // its rule is gone; reconfigure() resolves what it left
    inc->rule = *idx;
    auto t = rows.tickets.find(inc->ticket);
    if (t != rows.tickets.end() && t->second.active()) members[inc->ticket].insert(inc->key);
    pending.insert(inc->key);  // the next tick decides what is due
    std::string key = inc->key;
    loaded.emplace(std::move(key), std::move(inc));
  }
  ++generation_;
  series_.clear();
  site_series_.clear();
  agent_silences_.clear();
  incidents_ = std::move(loaded);
  live_ = std::move(rows.tickets);
  members_ = std::move(members);
  pending_ = std::move(pending);
  silences_ = std::move(rows.silences);
  next_ticket_ = rows.next_ticket;
  next_event_ = rows.next_event;
  next_silence_ = rows.next_silence;
  stale_ = false;
  *undo_ = Undo{};
  gauges_->recount(live_);
}

void Desk::ready_locked() {
  if (stale_) load_locked();
}

void Desk::save(const Ticket& t) {
  ++generation_;
  rows_->save(t);
}

void Desk::save(Incident& inc) {
  inc.relearn = false;
  rows_->save(inc);
}

template <class F>
void Desk::in_transaction(F&& f) {
  try {
    sql::Transaction tx(db_);
    f();
    fence();
    tx.commit();
  } catch (...) {
    rollback_locked();
    throw;
  }
  commit_locked();
}

void Desk::opening() {
  if (undo_->open) return;
  undo_->open = true;
  undo_->next_ticket = next_ticket_;
  undo_->next_event = next_event_;
}

void Desk::edit(Incident& inc) {
  opening();
  undo_->incidents.try_emplace(&inc, static_cast<const IncidentState&>(inc));
}

void Desk::edit(Ticket& t) {
  opening();
  undo_->tickets.try_emplace(t.id, t);
}

std::set<std::string>& Desk::members(std::uint64_t ticket) {
  opening();
  auto it = members_.find(ticket);
  undo_->members.try_emplace(ticket, it != members_.end()
                                         ? std::optional<std::set<std::string>>(it->second)
                                         : std::nullopt);
  return members_[ticket];
}

void Desk::commit_locked() {
  for (const auto& name : undo_->events) metrics_.ticket_events.Add({{"event", name}}).Increment();
  *undo_ = Undo{};
  wake();
}

void Desk::rollback_locked() {
  Undo& u = *undo_;
  if (!u.open) return;
  for (auto& [inc, before] : u.incidents) {
    static_cast<IncidentState&>(*inc) = std::move(before);
    pending_.insert(inc->key);  // the next tick looks at its timers again
  }
  for (auto& inc : u.erased) {
    std::string key = inc->key;
    pending_.insert(key);
    incidents_[std::move(key)] = std::move(inc);
  }
  for (auto& [id, before] : u.tickets)
    if (before)
      live_[id] = std::move(*before);
    else
      live_.erase(id);
  for (auto& [id, before] : u.members)
    if (before)
      members_[id] = std::move(*before);
    else
      members_.erase(id);
  next_ticket_ = u.next_ticket;
  next_event_ = u.next_event;
  queued_ = false;  // what it queued was not stored
  *undo_ = Undo{};
  ++generation_;
  gauges_->recount(live_);
}

void Desk::committed() {
  std::lock_guard lock(mu_);
  commit_locked();
}

void Desk::rolled_back() {
  std::lock_guard lock(mu_);
  rollback_locked();
}

// Trends, flap histories and values' ages are saved when an incident changes anyway, else at most
// every kLearnedEvery (a few a tick, so that a fleet's trends do not all go in one transaction),
// and at a clean stop: a crash costs at most that much of what they learned.
void Desk::save_learned_locked(double now, std::size_t at_most) {
  for (auto& [key, inc] : incidents_) {
    if (!at_most) return;
    if (!inc->relearn || now - inc->learned_at < kLearnedEvery) continue;
    save(*inc);
    inc->learned_at = now;
    --at_most;
  }
}

void Desk::save_learned() {
  std::lock_guard lock(mu_);
  if (stale_) return;  // what memory holds was not stored: nothing to add to it
  in_transaction([&] {
    for (auto& [key, inc] : incidents_)
      if (inc->relearn) save(*inc);
  });
}

void Desk::reload() {
  std::lock_guard lock(mu_);
  reload_locked();
}

void Desk::reload_locked() {
  try {
    load_locked();
  } catch (const std::exception& e) {
    // The store is away: the next change loads again before it acts (ready_locked()).
    spdlog::warn("desk: reloading from the store failed ({}); trying again before the next change",
                 e.what());
  }
}

void Desk::set_fence(std::function<void()> f) {
  std::lock_guard lock(mu_);
  fence_ = std::move(f);
}

void Desk::fence() {
  std::lock_guard lock(mu_);
  if (fence_) fence_();
}

void Desk::on_queued(std::function<void()> f) {
  std::lock_guard lock(mu_);
  on_queued_ = std::move(f);
}

void Desk::wake() {
  if (!queued_) return;
  queued_ = false;
  if (on_queued_) on_queued_();
}

// ---------------------------------------------------------------- rules

std::optional<std::size_t> Desk::rule_index(const std::string& name) const {
  for (std::size_t i = 0; i < config_.rules.size(); ++i)
    if (config_.rules[i].name == name) return i;
  return std::nullopt;
}

Incident& Desk::incident(const std::string& key, std::size_t rule, const std::string& site,
                         const std::string& agent, const std::string& probe,
                         const std::string& metric) {
  auto& slot = incidents_[key];
  if (!slot) {
    slot = std::make_unique<Incident>();
    opening();
    undo_->incidents.try_emplace(slot.get());  // made now: back to nothing held
    slot->key = key;
    slot->rule = rule;
    slot->rule_name = config_.rules[rule].name;
    slot->site = site;
    slot->agent = agent;
    slot->probe = probe;
    slot->metric = metric;
  }
  return *slot;
}

Incident* Desk::find_incident(const std::string& key) {
  auto it = incidents_.find(key);
  return it != incidents_.end() ? it->second.get() : nullptr;
}

Desk::Series& Desk::series(const AgentState& a, const std::string& probe, const std::string& type) {
  const std::string id = a.id + "/" + probe;
  auto& slot = series_[id];
  if (slot && slot->site == a.site && slot->type == type) return *slot;
  if (slot) site_series_[slot->site].erase(id);
  slot = std::make_unique<Series>();
  slot->site = a.site;
  slot->type = type;
  site_series_[a.site].insert(id);
  for (std::size_t i = 0; i < config_.rules.size(); ++i) {
    const Rule& r = config_.rules[i];
    if (r.kind == RuleKind::silent || r.kind == RuleKind::certificate ||
        !r.match.matches(a.site, a.id, probe, type))
      continue;
    if (r.kind == RuleKind::status) {
      slot->status.push_back({i, find_incident(status_key(a, probe, r))});
    } else
      slot->metric_rules.push_back(i);
  }
  return *slot;
}

void Desk::observe(const AgentState& a, const std::vector<const protocol::Result*>& accepted,
                   double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  for (const protocol::Result* result : accepted) {
    const protocol::Result& r = *result;
    Series& s = series(a, r.probe, r.type);
    auto state = a.probes.find(r.probe);
    // Status rules look at the probe's newest state only: a replayed backlog is history.
    if (state != a.probes.end() && state->second.seq == r.seq) {
      for (auto& st : s.status) {
        const Rule& rule = config_.rules[st.rule];
        Finding found = check_status(rule, a, r);
        if (!st.incident && !found.holds) continue;
        if (!st.incident)
          st.incident = &incident(status_key(a, r.probe, rule), st.rule, a.site, a.id, r.probe, "");
        Incident* inc = st.incident;
        if (found.holds) {
          edit(*inc);
          inc->summary = std::move(found.summary);
          inc->details = std::move(found.details);
        }
        set_failing(*inc, found.holds, now);
        advance(*inc, now);
      }
    }
    for (std::size_t idx : s.metric_rules) {
      const Rule& rule = config_.rules[idx];
      for (const auto& m : r.metrics) {
        if (!glob_match(rule.match.metric, m.name)) continue;
        // One incident per series: a disk's mounts, an infobase's sessions each have their own.
        const std::string series = protocol::series_name(m);
        Incident& inc =
            incident(a.site + "/" + a.id + "/" + r.probe + "/" + rule.name + "/" + series, idx,
                     a.site, a.id, r.probe, series);
        Finding found = check_metric(rule, inc, a, r, m);
        if (found.holds) {
          edit(inc);
          inc.summary = std::move(found.summary);
          inc.details = std::move(found.details);
        }
        set_failing(inc, found.holds, now);
        advance(inc, now);
      }
    }
  }
  if (!db_.in_transaction()) commit_locked();  // each change was stored as it was written
}

void Desk::set_failing(Incident& inc, bool failing, double now) {
  if (inc.failing == failing) return;
  edit(inc);
  inc.failing = failing;
  (failing ? inc.since : inc.clear_since) = now;
  const Rule& rule = config_.rules[inc.rule];
  const double window = std::chrono::duration<double>(rule.flap_window).count();
  inc.changes.push_back(now);
  std::erase_if(inc.changes, [&](double t) { return t < now - window; });
  if (!inc.flapping && static_cast<int>(inc.changes.size()) >= rule.flap_changes) {
    inc.flapping = true;
    auto t = live_.find(inc.ticket);
    if (t != live_.end() && t->second.active()) {
      edit(t->second);
      t->second.flapping = true;
      event(t->second, "flapping",
            std::to_string(inc.changes.size()) + " changes within " +
                format_duration(rule.flap_window) + ": resolves only after a calm window",
            now);
      save(t->second);
    }
  }
  save(inc);
}

void Desk::advance(Incident& inc, double now) {
  const Rule& rule = config_.rules[inc.rule];
  auto found = live_.find(inc.ticket);
  Ticket* t = found != live_.end() ? &found->second : nullptr;
  if (inc.ticket && !t) {  // closed meanwhile
    edit(inc);
    inc.ticket = 0;
    save(inc);
  }
  if (inc.failing) {
    const bool waiting = !(t && t->active()) && !inc.latched;
    if (!waiting) {
      pending_.erase(inc.key);
      return;
    }
    const double hold = rule.kind == RuleKind::stale
                            ? 0  // its `for` is how long the value stood still
                            : std::chrono::duration<double>(rule.hold).count();
    if (now - inc.since < hold || silenced(inc.site, inc.agent, inc.probe, rule.name, now)) {
      pending_.insert(inc.key);
      return;
    }
    pending_.erase(inc.key);
    open_ticket(inc, now);
    return;
  }
  if (inc.latched) {
    edit(inc);
    inc.latched = false;
    save(inc);
  }
  if (!t || !t->active() || !members_[t->id].count(inc.key)) {
    pending_.erase(inc.key);
    return;
  }
  double need = std::chrono::duration<double>(rule.recover).count();
  if (inc.flapping) need = std::max(need, std::chrono::duration<double>(rule.flap_window).count());
  if (now - inc.clear_since < need) {
    pending_.insert(inc.key);
    return;
  }
  pending_.erase(inc.key);
  detach(inc, now);
}

bool Desk::silenced(const std::string& site, const std::string& agent, const std::string& probe,
                    const std::string& rule, double now) const {
  return std::any_of(silences_.begin(), silences_.end(), [&](const Silence& s) {
    return s.active(now) && s.matches(site, agent, probe, rule);
  });
}

// ---------------------------------------------------------------- tickets

void Desk::open_ticket(Incident& inc, double now) {
  const Rule& rule = config_.rules[inc.rule];
  auto found = live_.find(inc.ticket);
  if (found != live_.end() && found->second.status == "resolved" && found->second.key == inc.key) {
    // It failed again soon after: the same ticket, reopened, rather than a second one.
    members(found->second.id).insert(inc.key);
    reopen(found->second, inc.summary, inc.details, inc.flapping, now);
    return;
  }
  if (rule.ticket_class == "emergency") {
    // One ticket for what one failure caused: a site-wide outage, an agent gone silent, or the
    // collector cut off from most agents (which also takes what those agents report late).
    // An agent falling silent long after the others is news of its own, not the same cut-off.
    const std::string silent_agent = inc.agent + "/*";
    const double mass_window = std::chrono::duration<double>(config_.mass_silence_window).count();
    for (auto& [id, t] : live_) {
      if (!t.active() || t.key == inc.key) continue;
      if (t.site == inc.site
              ? t.rule == kSiteOutage || (t.agent == inc.agent && t.probe == "*")
              : t.rule == kMassSilence &&
                    (rule.kind == RuleKind::silent ? inc.since <= t.raised_at + mass_window
                                                   : std::find(t.probes.begin(), t.probes.end(),
                                                               silent_agent) != t.probes.end())) {
        attach(inc, t, now);
        return;
      }
    }
    if (rule.kind == RuleKind::status && try_site_outage(inc, now)) return;
    if (rule.kind == RuleKind::silent && try_mass_silence(inc, now)) return;
  }
  Ticket t;
  t.key = inc.key;
  t.ticket_class = rule.ticket_class;
  t.priority = rule.priority;
  t.summary = inc.summary;
  t.details = inc.details;
  t.site = inc.site;
  t.agent = inc.agent;
  t.probe = inc.metric.empty() ? inc.probe : inc.probe + "/" + inc.metric;
  t.rule = rule.name;
  t.flapping = inc.flapping;
  if (rule.kind == RuleKind::silent) t.probes = inc.probes;
  Ticket& stored = new_ticket(std::move(t), now);
  edit(inc);
  inc.ticket = stored.id;
  members(stored.id).insert(inc.key);
  save(inc);
}

Ticket& Desk::new_ticket(Ticket t, double now) {
  opening();
  t.id = next_ticket_++;
  undo_->tickets.try_emplace(t.id);  // made now: gone again if the store refuses it
  t.status = "open";
  t.opened_at = t.raised_at = now;
  t.deadline = deadline_for(t, now);
  Ticket& stored = live_.emplace(t.id, std::move(t)).first->second;
  event(stored, "opened", stored.summary, now);
  save(stored);
  gauges_->opened(stored);
  return stored;
}

bool Desk::try_site_outage(Incident& inc, double now) {
  const double window = std::chrono::duration<double>(config_.outage_window).count();
  const auto& ids = site_series_[inc.site];
  std::vector<Incident*> failing;
  for (const auto& id : ids) {
    auto s = series_.find(id);
    if (s == series_.end()) continue;
    for (const auto& st : s->second->status) {
      Incident* i = st.incident;
      if (!i) continue;
      const Rule& r = config_.rules[i->rule];
      if (i->failing && r.ticket_class == "emergency" && i->since >= now - window) {
        failing.push_back(i);
        break;  // a probe counts once
      }
    }
  }
  const auto n = failing.size();
  if (static_cast<int>(n) < config_.outage_probes ||
      static_cast<double>(n) <= config_.outage_share * static_cast<double>(ids.size()))
    return false;
  Ticket t;
  t.key = inc.site + "/*/*/" + std::string(kSiteOutage);
  t.ticket_class = "emergency";
  t.priority = 1;
  t.summary = "site " + inc.site + ": " + std::to_string(n) + " of " + std::to_string(ids.size()) +
              " probes failing";
  t.site = inc.site;
  t.agent = "*";
  t.probe = "*";
  t.rule = std::string(kSiteOutage);
  t.details = "most of the site's probes began to fail within " +
              format_duration(config_.outage_window) + "; one ticket for all of them:";
  for (Incident* i : failing) t.details += "\n- " + i->summary;
  open_group(std::move(t), failing, inc, window, "site-wide ticket", now);
  return true;
}

bool Desk::try_mass_silence(Incident& inc, double now) {
  const double window = std::chrono::duration<double>(config_.mass_silence_window).count();
  std::vector<Incident*> silent;
  std::set<std::string> agents;  // an agent counts once, whatever silent rules match it
  for (Incident* i : agent_silences_) {
    // Around this agent's silence rather than before now: a silence of the ticket may have held
    // it back longer than the window.
    if (i->failing && config_.rules[i->rule].ticket_class == "emergency" &&
        std::abs(i->since - inc.since) <= window) {
      silent.push_back(i);
      agents.insert(i->agent);
    }
  }
  const auto n = agents.size();
  if (static_cast<int>(n) < config_.mass_silence_agents ||
      static_cast<double>(n) <= config_.mass_silence_share * static_cast<double>(known_agents_))
    return false;
  // Planned work on the collector or its uplink: no ticket, and none for each site either.
  if (silenced("*", "*", "*", std::string(kMassSilence), now)) return true;
  Ticket t;
  t.key = "*/*/*/" + std::string(kMassSilence);
  t.ticket_class = "emergency";
  t.priority = 1;
  t.summary = std::to_string(n) + " of " + std::to_string(known_agents_) +
              " agents fell silent within " + format_duration(config_.mass_silence_window) +
              ": the collector's network or the collector itself";
  t.site = "*";
  t.agent = "*";
  t.probe = "*";
  t.rule = std::string(kMassSilence);
  t.details =
      "most agents stopped reporting at once: the collector's network, its uplink or "
      "the collector itself rather than each site; one ticket for all of them:";
  for (Incident* i : silent) t.details += "\n- " + i->summary;
  open_group(std::move(t), silent, inc, window, "collector-unreachable ticket", now);
  return true;
}

// One ticket for many incidents of one cause: opened, or reopened when the cause came back
// within `reopen_within`; the members' own tickets opened moments ago fold into it.
void Desk::open_group(Ticket t, const std::vector<Incident*>& members, Incident& inc, double window,
                      const std::string& merged_into, double now) {
  auto same = std::find_if(live_.begin(), live_.end(),
                           [&](const auto& kv) { return kv.second.key == t.key; });
  Ticket* group = same != live_.end() ? &same->second : nullptr;
  if (!group) {
    group = &new_ticket(std::move(t), now);
  } else if (!group->active()) {  // resolved not long ago: the same cause again
    edit(*group);
    group->probes.clear();  // its members attach again
    reopen(*group, t.summary, t.details, false, now);
  }
  for (Incident* i : members) {
    auto own = live_.find(i->ticket);
    if (own != live_.end() && own->second.active() && own->second.key == i->key &&
        own->second.opened_at >= now - window)
      close_locked(own->second, "merged into " + merged_into + " #" + std::to_string(group->id),
                   now);
    if (i->ticket == 0 || i == &inc) attach(*i, *group, now);
  }
}

void Desk::reopen(Ticket& t, const std::string& summary, const std::string& details, bool flapping,
                  double now) {
  edit(t);
  t.status = "open";
  ++t.occurrences;
  t.resolved_at = 0;
  t.acknowledged_at = 0;
  t.acknowledged_by.clear();
  t.raised_at = now;
  t.escalations = 0;
  t.flapping = flapping;
  t.summary = summary;
  t.details = details;
  t.deadline = deadline_for(t, now);
  event(t, "reopened", "failed again: " + summary, now);
  save(t);
  gauges_->opened(t);
}

void Desk::attach(Incident& inc, Ticket& t, double now) {
  edit(inc);
  edit(t);
  inc.ticket = t.id;
  members(t.id).insert(inc.key);
  const std::string probe = inc.agent + "/" + inc.probe;
  if (std::find(t.probes.begin(), t.probes.end(), probe) == t.probes.end())
    t.probes.push_back(probe);
  event(t, "attached", inc.summary, now);
  save(t);
  save(inc);
}

void Desk::detach(Incident& inc, double now) {
  Ticket& t = live_.at(inc.ticket);
  edit(inc);
  edit(t);
  auto& held = members(t.id);
  held.erase(inc.key);
  const std::string text = inc.summary.empty() ? inc.key : inc.summary;
  if (held.empty()) {
    members_.erase(t.id);
    resolve(t, "recovered: " + text + " (clear for " + seconds_text(now - inc.clear_since) + ")",
            now);
    if (t.key != inc.key) inc.ticket = 0;  // only its own ticket may reopen
  } else {
    std::erase(t.probes, inc.agent + "/" + inc.probe);
    event(t, "detached", "recovered: " + text, now);
    save(t);
    inc.ticket = 0;
  }
  inc.flapping = false;  // its flips stay counted until they leave the flap window
  save(inc);
}

void Desk::resolve(Ticket& t, const std::string& text, double now) {
  edit(t);
  if (t.active()) gauges_->closed(t);
  t.status = "resolved";
  t.resolved_at = now;
  t.flapping = false;
  event(t, "resolved", text, now);
  save(t);
}

void Desk::close_locked(Ticket& t, const std::string& text, double now) {
  edit(t);
  for (const auto& key : members(t.id)) {
    auto it = incidents_.find(key);
    if (it == incidents_.end()) continue;
    Incident& inc = *it->second;
    edit(inc);
    inc.ticket = 0;
    inc.latched = inc.failing;
    pending_.erase(key);
    save(inc);
  }
  members_.erase(t.id);
  if (t.active()) gauges_->closed(t);
  t.status = "closed";
  t.closed_at = now;
  event(t, "closed", text, now);
  save(t);
  live_.erase(t.id);
}

void Desk::event(Ticket& t, const std::string& name, const std::string& text, double now) {
  edit(t);
  t.updated_at = now;
  const std::uint64_t id = next_event_++;
  rows_->event(id, t.id, now, name, text);
  undo_->events.push_back(name);
  if (std::find(std::begin(kNotified), std::end(kNotified), name) == std::end(kNotified)) return;
  std::string payload;
  for (const auto& n : config_.notifiers) {
    if (!n.wants(name)) continue;
    if (payload.empty())
      payload = json{{"event", name}, {"at", now}, {"text", text}, {"ticket", to_json(t)}}.dump(
          -1, ' ', false, json::error_handler_t::replace);
    rows_->queue(id, n.name, payload, now);
    queued_ = true;
  }
}

double Desk::deadline_for(const Ticket& t, double from) const {
  auto target = config_.targets.target(t.ticket_class, t.priority);
  if (!target) return 0;
  auto tp = calendar(t.site).deadline(to_tp(from), *target);
  return tp == ServiceCalendar::never ? 0 : from_tp(tp);
}

const ServiceCalendar& Desk::calendar(const std::string& site) const {
  static const ServiceCalendar always = ServiceCalendar::around_the_clock();
  auto s = config_.site_calendars.find(site);
  const std::string& name =
      s != config_.site_calendars.end() ? s->second : config_.default_calendar;
  auto c = config_.calendars.find(name);
  return c != config_.calendars.end() ? c->second : always;
}

// ---------------------------------------------------------------- timers

void Desk::tick(const std::vector<const AgentState*>& agents, double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  in_transaction([&] {
    // Every agent's silence is settled before any ticket opens, so that agents falling silent
    // in the same tick are seen together.
    agent_silences_.clear();
    known_agents_ = 0;
    for (const AgentState* agent : agents) {
      const AgentState& a = *agent;
      if (a.last_report > 0) ++known_agents_;
      for (std::size_t i = 0; i < config_.rules.size(); ++i) {
        const Rule& rule = config_.rules[i];
        if (rule.kind != RuleKind::silent || !rule.match.matches(a.site, a.id, "*", "*")) continue;
        const bool failing = !a.up && a.last_report > 0;
        const std::string key = a.site + "/" + a.id + "/*/" + rule.name;
        Incident* held = failing ? &incident(key, i, a.site, a.id, "*", "") : find_incident(key);
        if (!held) continue;  // never silent: no incident
        Incident& inc = *held;
        if (failing && !inc.failing) {
          edit(inc);
          inc.probes.clear();
          for (const auto& [name, p] : a.probes) inc.probes.push_back(a.id + "/" + name);
          inc.summary = a.id + " silent: no report since " + format_timestamp(a.last_report) +
                        " (site " + a.site + ")";
          inc.details = "site " + a.site + ", agent " + a.id + " (" + a.hostname +
                        ")\nlast report " + format_timestamp(a.last_report) + ", heartbeat " +
                        seconds_text(a.heartbeat) + "; silent after 3 heartbeats\nrule " +
                        rule.name;
        }
        set_failing(inc, failing, now);
        agent_silences_.push_back(&inc);
      }
    }
    for (Incident* inc : agent_silences_) advance(*inc, now);
    certificates(agents, now);
    gauges_->overdue(live_, now);
    save_learned_locked(now, kLearnedPerTick);
    for (const auto& key : std::vector<std::string>(pending_.begin(), pending_.end())) {
      auto it = incidents_.find(key);
      if (it == incidents_.end())
        pending_.erase(key);
      else
        advance(*it->second, now);
    }
    const double reopen = std::chrono::duration<double>(config_.reopen_within).count();
    std::vector<std::uint64_t> ids;
    for (const auto& [id, t] : live_) ids.push_back(id);
    for (auto id : ids) {
      Ticket& t = live_.at(id);
      if (t.status == "open" && t.deadline > 0 && now >= t.deadline &&
          !silenced(t.site, t.agent, t.probe, t.rule, now)) {
        edit(t);
        ++t.escalations;
        const auto target = config_.targets.target(t.ticket_class, t.priority);
        t.deadline = deadline_for(t, now);
        event(t, "escalated",
              "not acknowledged within " + format_duration(target.value_or(0ms)) +
                  " of service time; escalation level " + std::to_string(t.escalations),
              now);
        save(t);
      } else if (t.status == "resolved" && now - t.resolved_at >= reopen) {
        close_locked(t, "stayed resolved for " + format_duration(config_.reopen_within), now);
      }
    }
    agent_silences_.clear();  // forget() and reconfigure() may delete incidents meanwhile
  });
}

// An agent's certificate, or the collector's own, that expires within a certificate rule's
// horizon: its renewal is failing, and someone must look before the agent goes silent.
void Desk::certificates(const std::vector<const AgentState*>& agents, double now) {
  for (std::size_t i = 0; i < config_.rules.size(); ++i) {
    const Rule& rule = config_.rules[i];
    if (rule.kind != RuleKind::certificate) continue;
    const double horizon = std::chrono::duration<double>(rule.horizon).count();
    auto check = [&](const std::string& site, const std::string& agent, double not_after,
                     const std::string& whose) {
      const bool failing = not_after - now <= horizon;
      const std::string key = site + "/" + agent + "/certificate/" + rule.name;
      Incident* held =
          failing ? &incident(key, i, site, agent, "certificate", "") : find_incident(key);
      if (!held) return;
      Incident& inc = *held;
      if (failing && !inc.failing) {
        edit(inc);
        inc.summary =
            whose + " certificate expires " + format_timestamp(not_after) +
            (not_after > now ? " (in " + seconds_text(not_after - now) + ")" : " (expired)");
        inc.details = "site " + site + ", " + whose + " certificate, valid until " +
                      format_timestamp(not_after) + "; renewal should have replaced it\nrule " +
                      rule.name;
      }
      set_failing(inc, failing, now);
      advance(inc, now);
    };
    for (const AgentState* a : agents)
      if (a->cert_not_after > 0 && rule.match.matches(a->site, a->id, "*", "*"))
        check(a->site, a->id, a->cert_not_after, a->id + "'s");
    if (own_not_after_ > 0 && rule.match.matches("*", "collector", "*", "*"))
      check("*", "collector", own_not_after_, "the collector's own");
  }
}

void Desk::own_certificate(double not_after) {
  std::lock_guard lock(mu_);
  own_not_after_ = not_after;
}

// ---------------------------------------------------------------- API

std::vector<Ticket> Desk::tickets(const Query& q) {
  std::lock_guard lock(mu_);
  return rows_->tickets(q);
}

std::optional<Ticket> Desk::ticket(std::uint64_t id) {
  std::lock_guard lock(mu_);
  return rows_->ticket(id);
}

json Desk::events(std::uint64_t id) {
  std::lock_guard lock(mu_);
  return rows_->events(id);
}

void Desk::prune(double before) {
  std::lock_guard lock(mu_);
  sql::Transaction tx(db_);
  rows_->prune(before);
  tx.commit();
}

std::vector<std::pair<Ticket, Desk::Countdown>> Desk::active(double now) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<Ticket, Countdown>> out;
  for (const auto& [id, t] : live_) {
    if (!t.active()) continue;
    Countdown c;
    if (t.deadline > 0) {
      const auto& cal = calendar(t.site);
      const auto at = to_tp(now), deadline = to_tp(t.deadline);
      c.has_deadline = true;
      c.counting = cal.in_service(at);
      c.left = now < t.deadline
                   ? std::chrono::duration<double>(cal.service_time_between(at, deadline)).count()
                   : -std::chrono::duration<double>(cal.service_time_between(deadline, at)).count();
    }
    out.emplace_back(t, c);
  }
  return out;
}

Desk::Change Desk::acknowledge(std::uint64_t id, const std::string& by, const std::string& comment,
                               double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  auto it = live_.find(id);
  if (it == live_.end()) return rows_->ticket(id) ? Change::conflict : Change::not_found;
  Ticket& t = it->second;
  if (t.status == "resolved") return Change::conflict;
  if (t.status == "acknowledged") return Change::done;
  in_transaction([&] {
    edit(t);
    t.status = "acknowledged";
    t.acknowledged_at = now;
    t.acknowledged_by = by;
    if (!comment.empty()) t.comment = comment;
    event(t, "acknowledged",
          (by.empty() ? "acknowledged" : "by " + by) + (comment.empty() ? "" : ": " + comment),
          now);
    save(t);
  });
  const auto reaction = calendar(t.site).service_time_between(to_tp(t.raised_at), to_tp(now));
  metrics_.ticket_reaction.Observe(std::chrono::duration<double>(reaction).count());
  return Change::done;
}

Desk::Change Desk::close(std::uint64_t id, const std::string& by, const std::string& comment,
                         double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  auto it = live_.find(id);
  if (it == live_.end()) return rows_->ticket(id) ? Change::conflict : Change::not_found;
  in_transaction([&] {
    edit(it->second);
    if (!comment.empty()) it->second.comment = comment;
    close_locked(it->second,
                 "closed" + (by.empty() ? std::string() : " by " + by) +
                     (comment.empty() ? "" : ": " + comment),
                 now);
  });
  return Change::done;
}

Silence Desk::add_silence(Silence s, double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  s.id = next_silence_++;
  s.created_at = now;
  if (s.starts_at <= 0) s.starts_at = now;
  in_transaction([&] {
    ++generation_;
    rows_->save(s);
  });
  silences_.push_back(s);
  return s;
}

bool Desk::remove_silence(std::uint64_t id, double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  auto it = std::find_if(silences_.begin(), silences_.end(),
                         [&](const Silence& s) { return s.id == id; });
  if (it == silences_.end() || it->ends_at <= now) return false;
  Silence ended = *it;
  ended.ends_at = now;
  in_transaction([&] {
    ++generation_;
    rows_->save(ended);
  });
  *it = ended;
  return true;
}

std::vector<Silence> Desk::silences(double now) {
  std::lock_guard lock(mu_);
  std::vector<Silence> out;
  for (const auto& s : silences_)
    if (s.ends_at > now - 86400) out.push_back(s);  // and those ended within a day
  return out;
}

std::size_t Desk::incident_count() {
  std::lock_guard lock(mu_);
  return incidents_.size();
}

// ---------------------------------------------------------------- outbox

std::vector<Notification> Desk::due(const std::string& notifier, double now, std::size_t limit) {
  std::lock_guard lock(mu_);
  return rows_->due(notifier, now, limit);
}

void Desk::delivered(const std::string& notifier, std::uint64_t id) {
  std::lock_guard lock(mu_);
  rows_->delivered(notifier, id);
}

void Desk::failed(const std::string& notifier, std::uint64_t id, double retry_at,
                  const std::string& error) {
  std::lock_guard lock(mu_);
  rows_->failed(notifier, id, retry_at, error);
}

std::vector<json> Desk::active_tickets() {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  for (const auto& [id, t] : live_)
    if (t.active()) out.push_back(to_json(t));
  return out;
}

// ---------------------------------------------------------------- configuration

void Desk::forget(const std::string& agent, const std::string& probe, double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  auto gone = [&](const std::string& a, const std::string& p) {
    return a == agent && (probe.empty() || p == probe);
  };
  for (auto it = series_.begin(); it != series_.end();) {
    const auto slash = it->first.find('/');
    if (!gone(it->first.substr(0, slash), it->first.substr(slash + 1))) {
      ++it;
      continue;
    }
    site_series_[it->second->site].erase(it->first);
    it = series_.erase(it);
  }
  for (auto it = incidents_.begin(); it != incidents_.end();) {
    Incident& inc = *it->second;
    if (!gone(inc.agent, inc.probe)) {
      ++it;
      continue;
    }
    auto t = live_.find(inc.ticket);
    if (t != live_.end() && t->second.active() && members_[inc.ticket].count(inc.key)) {
      inc.summary =
          (probe.empty() ? "agent " + agent : "probe " + agent + "/" + probe) + " forgotten";
      inc.clear_since = now;
      detach(inc, now);
    }
    rows_->forget(inc);
    pending_.erase(inc.key);
    opening();
    undo_->erased.push_back(std::move(it->second));
    it = incidents_.erase(it);
  }
  if (!db_.in_transaction()) commit_locked();  // each change was stored as it was written
}

void Desk::replace_config(DeskConfig config) {
  std::lock_guard lock(mu_);
  config_ = std::move(config);
  stale_ = true;  // read again, with the new rules, before the desk acts
}

void Desk::reconfigure(DeskConfig config, double now) {
  std::lock_guard lock(mu_);
  ready_locked();
  config_ = std::move(config);
  series_.clear();
  site_series_.clear();
  auto resolve_removed = [&] {
    for (auto it = incidents_.begin(); it != incidents_.end();) {
      Incident& inc = *it->second;
      auto idx = rule_index(inc.rule_name);
      if (idx) {
        inc.rule = *idx;
        ++it;
        continue;
      }
      // Its rule is gone: nothing will clear it any more.
      auto t = live_.find(inc.ticket);
      if (t != live_.end() && t->second.active() && members_[inc.ticket].count(inc.key)) {
        inc.summary = "rule " + inc.rule_name + " removed from the configuration";
        inc.clear_since = now;
        detach(inc, now);
      }
      rows_->forget(inc);
      pending_.erase(inc.key);
      opening();
      undo_->erased.push_back(std::move(it->second));
      it = incidents_.erase(it);
    }
  };
  try {
    in_transaction(resolve_removed);
  } catch (...) {
    reload_locked();  // what was put back has the old rules' numbers: read it all with the new
    throw;
  }
}

}  // namespace dozor::collector
