#include "board.h"

#include <algorithm>

namespace dozor::server {
namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// `clock` moves by itself (the service time left, as of `at`): boards count it down, and it is
// not a change to send.
json ticket_json(const collector::Ticket& t, const collector::Desk::Countdown& c, double now) {
  return {{"kind", "ticket"},
          {"id", t.id},
          {"class", t.ticket_class},
          {"priority", "P" + std::to_string(t.priority)},
          {"status", t.status},
          {"summary", t.summary},
          {"details", t.details},
          {"site", t.site},
          {"agent", t.agent},
          {"probe", t.probe},
          {"rule", t.rule},
          {"opened_at", t.opened_at},
          {"raised_at", t.raised_at},
          {"acknowledged_at", t.acknowledged_at},
          {"acknowledged_by", t.acknowledged_by},
          {"comment", t.comment},
          {"deadline", t.deadline},
          {"has_deadline", c.has_deadline},
          {"clock", {{"left", c.left}, {"at", now}}},
          {"counting", c.counting},
          {"escalations", t.escalations},
          {"occurrences", t.occurrences},
          {"flapping", t.flapping},
          {"probes", t.probes}};
}

}  // namespace

Board::Board(collector::Health& health, collector::Desk* desk) : health_(health), desk_(desk) {}

void Board::set(const std::string& key, const std::string& scope, json entity,
                const char* volatile_field) {
  std::string text = dump(entity);
  std::string compare;
  if (volatile_field) {
    entity.erase(volatile_field);
    compare = dump(entity);
  }
  auto it = entities_.find(key);
  if (it != entities_.end() && it->second.scope == scope &&
      (volatile_field ? it->second.compare == compare : it->second.json == text)) {
    it->second.json = std::move(text);  // fresh for the next snapshot; boards count it themselves
    return;
  }
  pending_.bytes += text.size();
  pending_.changes.push_back({key, scope, text});
  entities_[key] = {scope, std::move(text), std::move(compare)};
}

void Board::erase_entity(const std::string& key) {
  auto it = entities_.find(key);
  if (it == entities_.end()) return;
  pending_.changes.push_back({key, it->second.scope, ""});
  entities_.erase(it);
}

void Board::erase_missing(std::string_view prefix, const std::set<std::string>& keys) {
  std::vector<std::string> gone;
  for (auto it = entities_.lower_bound(std::string(prefix));
       it != entities_.end() && std::string_view(it->first).starts_with(prefix); ++it)
    if (!keys.count(it->first)) gone.push_back(it->first);
  for (const auto& key : gone) erase_entity(key);
}

double Board::track(const std::string& key, const std::string& state, double at) {
  auto [it, fresh] = since_.try_emplace(key, Since{state, started_ ? at : 0});
  if (!fresh && it->second.state != state) it->second = {state, at};
  return it->second.since;
}

void Board::agent_entities(const collector::AgentState& a) {
  std::set<std::string> keys;
  const std::string agent_key = "agent:" + a.id;
  set(agent_key, a.site,
      {{"kind", "agent"},
       {"id", a.id},
       {"site", a.site},
       {"hostname", a.hostname},
       {"version", a.version},
       {"up", a.up},
       {"down_since", a.down_since},
       {"last_report", a.last_report},
       {"heartbeat", a.heartbeat},
       {"clock_skew", a.clock_skew},
       {"results", a.results},
       {"dropped", a.dropped},
       {"refused", a.refused},
       {"last_refusal", a.last_refusal}});
  keys.insert(agent_key);
  for (const auto& [name, p] : a.probes) {
    json values = json::array();
    for (const auto& m : p.metrics) {
      json v = {{"name", m.name}, {"value", m.value}};
      if (!m.unit.empty()) v["unit"] = m.unit;
      if (!m.labels.empty()) v["labels"] = m.labels;
      values.push_back(std::move(v));
    }
    const std::string key = "probe:" + a.id + "/" + name;
    const auto& since = since_.find(key);
    set(key, a.site,
        {{"kind", "probe"},
         {"agent", a.id},
         {"site", a.site},
         {"name", name},
         {"type", p.type},
         {"status", protocol::to_string(p.status)},
         {"since", since != since_.end() ? since->second.since : 0},
         {"summary", p.summary},
         {"ts", p.ts},
         {"duration", p.duration},
         {"metrics", std::move(values)}});
    keys.insert(key);
  }
  auto& held = agent_entity_keys_[a.id];
  for (const auto& key : held)
    if (!keys.count(key)) erase_entity(key);
  held = std::move(keys);
}

void Board::drop_agent_entities(const std::string& agent) {
  auto it = agent_entity_keys_.find(agent);
  if (it == agent_entity_keys_.end()) return;
  for (const auto& key : it->second) erase_entity(key);
  agent_entity_keys_.erase(it);
}

void Board::tile(const std::string& site, double now) {
  int agents = 0, up = 0;
  int counts[4] = {};  // ok, warning, critical, unknown
  double down_since = 0;
  for (const auto& id : site_agents_[site]) {
    const AgentBrief& a = agents_.at(id);
    ++agents;
    if (a.up) {
      ++up;
    } else if (down_since == 0 || a.down_since < down_since) {
      down_since = a.down_since;
    }
    for (const auto& [name, status] : a.probes) ++counts[std::min(static_cast<int>(status), 3)];
  }
  const auto tickets = site_tickets_.count(site) ? site_tickets_[site] : std::pair{0, 0};
  const std::string key = "site:" + site;
  if (agents == 0 && tickets.first == 0) {
    site_agents_.erase(site);
    erase_entity(key);
    since_.erase(key);
    return;
  }
  const char* state = up < agents ? "down"
                      : counts[2] ? "critical"
                      : counts[1] ? "warning"
                      : counts[3] ? "unknown"
                                  : "ok";
  double since = track(key, state, now);
  if (since == 0 && up < agents) since = down_since;
  set(key, "",
      {{"kind", "site"},
       {"name", site},
       {"state", state},
       {"since", since},
       {"agents", agents},
       {"agents_up", up},
       {"probes", counts[0] + counts[1] + counts[2] + counts[3]},
       {"warning", counts[1]},
       {"critical", counts[2]},
       {"unknown", counts[3]},
       {"tickets", tickets.first},
       {"emergencies", tickets.second}});
}

void Board::tickets(double now) {
  std::map<std::string, std::pair<int, int>> counts;
  std::set<std::string> keys;
  for (const auto& [t, countdown] : desk_->active(now)) {
    const std::string key = "ticket:" + std::to_string(t.id);
    set(key, "", ticket_json(t, countdown, now), "clock");
    keys.insert(key);
    auto& c = counts[t.site];
    ++c.first;
    if (t.ticket_class == "emergency") ++c.second;
  }
  erase_missing("ticket:", keys);
  std::set<std::string> sites;
  for (const auto& [site, c] : site_tickets_)
    if (!counts.count(site)) sites.insert(site);
  for (const auto& [site, c] : counts)
    if (site_tickets_[site] != c) sites.insert(site);
  site_tickets_ = std::move(counts);
  for (const auto& site : sites) tile(site, now);
}

void Board::silences(double now) {
  std::set<std::string> keys;
  for (const auto& s : desk_->silences(now)) {
    if (!s.active(now)) continue;
    const std::string key = "silence:" + std::to_string(s.id);
    set(key, "",
        {{"kind", "silence"},
         {"id", s.id},
         {"site", s.site},
         {"agent", s.agent},
         {"probe", s.probe},
         {"rule", s.rule},
         {"starts_at", s.starts_at},
         {"ends_at", s.ends_at},
         {"comment", s.comment},
         {"created_by", s.created_by}});
    keys.insert(key);
  }
  erase_missing("silence:", keys);
}

bool Board::update(double now) {
  at_ = now;
  if (!started_ || health_.generation() != health_seen_) {
    std::vector<collector::AgentState> changed;
    std::vector<std::pair<std::string, std::string>> known;
    if (!started_) {
      health_seen_ = health_.generation();
      changed = health_.agents(now);
      for (const auto& a : changed) known.emplace_back(a.id, a.site);
    } else {
      health_seen_ = health_.changed_since(health_seen_, changed, known);
    }
    std::set<std::string> dirty;
    std::set<std::string> present;
    for (const auto& [id, site] : known) present.insert(id);
    for (auto it = agents_.begin(); it != agents_.end();) {
      if (present.count(it->first)) {
        ++it;
        continue;
      }
      dirty.insert(it->second.site);  // forgotten
      site_agents_[it->second.site].erase(it->first);
      drop_agent_entities(it->first);
      for (const auto& [name, status] : it->second.probes)
        since_.erase("probe:" + it->first + "/" + name);
      it = agents_.erase(it);
    }
    for (const auto& a : changed) {
      auto [at, fresh] = agents_.try_emplace(a.id);
      AgentBrief& brief = at->second;
      if (fresh || brief.site != a.site) {
        if (!fresh) {
          dirty.insert(brief.site);
          site_agents_[brief.site].erase(a.id);
          drop_agent_entities(a.id);
        }
        site_agents_[a.site].insert(a.id);
      }
      for (const auto& [name, status] : brief.probes)
        if (!a.probes.count(name)) since_.erase("probe:" + a.id + "/" + name);
      brief = {a.site, a.up, a.down_since, {}};
      for (const auto& [name, p] : a.probes) {
        brief.probes[name] = p.status;
        track("probe:" + a.id + "/" + name, std::string(protocol::to_string(p.status)), p.ts);
      }
      dirty.insert(a.site);
      if (watched_.count(a.site)) agent_entities(a);
    }
    for (const auto& site : dirty) tile(site, now);
  }
  if (desk_ && (!started_ || desk_->generation() != desk_seen_ || now >= next_second_)) {
    // Once a second anyway: a countdown stops and starts with the service hours.
    desk_seen_ = desk_->generation();
    next_second_ = now + 1;
    tickets(now);
    silences(now);
  }
  started_ = true;
  if (pending_.changes.empty()) return false;
  pending_.seq = ++seq_;
  pending_.at = now;
  kept_bytes_ += pending_.bytes;
  kept_.push_back(std::move(pending_));
  pending_ = {};
  while (kept_.size() > kKeptChanges || (kept_.size() > 1 && kept_bytes_ > kKeptBytes)) {
    kept_bytes_ -= kept_.front().bytes;
    kept_.pop_front();
  }
  return true;
}

std::string Board::snapshot(const std::string& site, const json& head) const {
  json top = head;
  top["seq"] = seq_;
  top["at"] = at_;
  top["site"] = site;
  std::string out = dump(top);
  out.pop_back();  // the closing brace: the entities follow, already serialized
  out += R"(,"entities":{)";
  bool first = true;
  for (const auto& [key, e] : entities_) {
    if (!e.scope.empty() && e.scope != site) continue;
    if (!first) out += ',';
    first = false;
    out += dump(key);
    out += ':';
    out += e.json;
  }
  out += "}}";
  return out;
}

std::optional<std::string> Board::changes_after(std::uint64_t since,
                                                const std::string& site) const {
  if (since >= seq_) return std::string();
  if (kept_.empty() || kept_.front().seq > since + 1) return std::nullopt;
  std::map<std::string_view, const std::string*> merged;  // the latest of each key
  for (const auto& d : kept_) {
    if (d.seq <= since) continue;
    for (const auto& c : d.changes)
      if (c.scope.empty() || c.scope == site) merged[c.key] = &c.json;
  }
  if (merged.empty()) return std::string();
  std::string set, del;
  for (const auto& [key, text] : merged) {
    std::string& to = text->empty() ? del : set;
    if (!to.empty()) to += ',';
    to += dump(std::string(key));
    if (!text->empty()) {
      to += ':';
      to += *text;
    }
  }
  std::string out = dump(json{{"seq", seq_}, {"at", at_}});
  out.pop_back();
  return out + R"(,"set":{)" + set + R"(},"del":[)" + del + "]}";
}

void Board::watch(const std::string& site) {
  if (watched_[site]++ > 0) return;
  // Made quietly: only the board that asked shows them, and it starts from a snapshot.
  auto quiet = std::move(pending_);
  pending_ = {};
  for (const auto& a : health_.agents(at_))
    if (a.site == site) agent_entities(a);
  pending_ = std::move(quiet);
}

void Board::unwatch(const std::string& site) {
  auto it = watched_.find(site);
  if (it == watched_.end() || --it->second > 0) return;
  watched_.erase(it);
  for (auto a = agent_entity_keys_.begin(); a != agent_entity_keys_.end();) {
    const auto& keys = a->second;
    const auto sample = keys.empty() ? entities_.end() : entities_.find(*keys.begin());
    if (sample == entities_.end() || sample->second.scope != site) {
      ++a;
      continue;
    }
    for (const auto& key : keys) entities_.erase(key);  // no board shows them any longer
    a = agent_entity_keys_.erase(a);
  }
}

}  // namespace dozor::server
