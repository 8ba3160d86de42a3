#include "dozor/collector/health.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "dozor/collector/desk.h"
#include "dozor/collector/store.h"
#include "dozor/protocol/codec.h"

namespace dozor::collector {
namespace {

// Moves the watermark over the seqs stored just beyond it.
void absorb(AgentState& a) {
  while (!a.above.empty() && *a.above.begin() == a.watermark + 1) {
    a.above.erase(a.above.begin());
    ++a.watermark;
  }
}

// The agent holds nothing below `floor` any more: what we do not have up to `floor - 1` was
// dropped by its spool and will never come. Returns how many results that is.
std::uint64_t skip_below(AgentState& a, std::uint64_t floor) {
  if (floor == 0 || floor - 1 <= a.watermark) return 0;
  auto end = a.above.upper_bound(floor - 1);
  const auto held = static_cast<std::uint64_t>(std::distance(a.above.begin(), end));
  const std::uint64_t lost = floor - 1 - a.watermark - held;
  a.above.erase(a.above.begin(), end);
  a.watermark = floor - 1;
  absorb(a);
  return lost;
}

}  // namespace

Health::Health(Metrics& metrics, Store* store, double started_at)
    : metrics_(metrics), store_(store) {
  metrics_.set_fleet([this](Exposition& e) { expose(e); });
  if (!store_) return;
  auto agents = store_->load();
  // The latest report of all tells roughly when this collector stopped; agents that were up then
  // get one window from this start to come back.
  double last_alive = 0;
  for (const auto& a : agents) last_alive = std::max(last_alive, a.last_report);
  for (auto& a : agents) {
    if (last_alive - a.last_report <= kUpHeartbeats * a.heartbeat)
      a.grace_until = started_at + kUpHeartbeats * a.heartbeat;
    for (const auto& [name, p] : a.probes) a.series += p.metrics.size();
    std::string id = a.id;
    agents_.emplace(std::move(id), std::move(a));
  }
  for (auto& [id, a] : agents_) refresh_locked(a, started_at);
}

Health::~Health() { metrics_.set_fleet(nullptr); }

IngestOutcome Health::ingest(const std::string& agent_id, const protocol::Report& report,
                             double now, const std::string& serial) {
  std::lock_guard lock(mu_);
  try {
    return ingest_locked(agent_id, report, now, serial);
  } catch (const sql::Error& e) {
    if (!shared_) throw;
    if (Store::revoked(e)) throw AgentRevoked(e.what());
    if (!Store::stale_agent(e)) throw;
  }
  // Another collector stored a report of the agent (or forgot it) since this one last did:
  // the report applies to the store's state of it.
  reread_locked(agent_id, now);
  try {
    return ingest_locked(agent_id, report, now, serial);
  } catch (const sql::Error& e) {
    if (Store::revoked(e)) throw AgentRevoked(e.what());
    throw;
  }
}

void Health::reread_locked(const std::string& agent_id, double now) {
  auto stored = store_->load(agent_id);
  if (stored) *stored = held_over(std::move(*stored));
  agents_.erase(agent_id);
  if (!stored) return;
  AgentState& a = agents_[agent_id] = std::move(*stored);
  a.up = now - a.last_report <= kUpHeartbeats * a.heartbeat || now <= a.grace_until;
}

IngestOutcome Health::ingest_locked(const std::string& agent_id, const protocol::Report& report,
                                    double now, const std::string& serial) {
  // The report and the tickets it causes are stored together, or neither is (and not acked).
  std::optional<sql::Transaction> tx;
  if (store_) tx.emplace(store_->db());
  auto it = agents_.find(agent_id);
  // Work on a copy: nothing changes unless the store took it.
  AgentState a = it != agents_.end() ? it->second : AgentState{};
  const bool was_up = it != agents_.end() && it->second.up;
  std::vector<Store::StateChange> history;
  if (a.id.empty()) {
    a.id = agent_id;
    a.first_seen = now;
    if (auto c = connections_.find(agent_id); c != connections_.end())
      a.cert_not_after = c->second.not_after;  // it connected before its first report
  }
  IngestOutcome out;
  std::vector<std::uint64_t> added_above;
  std::vector<std::string> changed;
  std::vector<const protocol::Result*> accepted;
  if (report.agent.spool_id != a.spool_id) {
    // A new spool (reinstalled agent, deleted file) numbers its results from 1 again: any of
    // its results is newer than what the old spool sent.
    a.spool_id = report.agent.spool_id;
    a.watermark = 0;
    a.above.clear();
    a.last_seq = 0;
    for (auto& [name, p] : a.probes) {
      p.seq = 0;
      changed.push_back(name);
    }
  }
  a.site = report.agent.site;
  a.hostname = report.agent.hostname;
  a.version = report.agent.version;
  a.started_at = report.agent.started_at;
  a.heartbeat = report.agent.heartbeat;
  a.last_report = now;
  const bool had_skew = std::abs(a.clock_skew) > kSkewWarning;
  if (report.agent.sent_at > 0) a.clock_skew = report.agent.sent_at - now;
  if (std::abs(a.clock_skew) > kSkewWarning && !had_skew)
    spdlog::warn(
        "agent {}: its clock is {:+.1f} s off the collector's; results are ordered by "
        "seq, and readings dated more than {:.0f} s ahead are dated on receipt",
        agent_id, a.clock_skew, kMaxAhead);
  // A reading dated further ahead of our clock than any honest skew, or before 2001, is the
  // agent's clock gone wrong: it is dated when it arrived.
  std::vector<protocol::Result> redated;
  const std::vector<protocol::Result>* results = &report.results;
  auto absurd = [now](const protocol::Result& r) { return r.ts > now + kMaxAhead || r.ts < 1e9; };
  if (std::any_of(report.results.begin(), report.results.end(), absurd)) {
    redated = report.results;
    for (auto& r : redated)
      if (absurd(r)) r.ts = now;
    results = &redated;
  }
  // Counted from the seqs themselves rather than from the report's `dropped`: a result dropped
  // while already on its way here was delivered, not lost.
  a.dropped += skip_below(a, report.oldest_seq);

  for (const auto& r : *results) {
    if (r.seq <= a.watermark || a.above.count(r.seq)) {
      ++out.duplicates;
      continue;
    }
    // A refused result is acked like a stored one: sending it again cannot help.
    a.last_seq = std::max(a.last_seq, r.seq);
    if (r.seq == a.watermark + 1) {
      ++a.watermark;
      absorb(a);
    } else {
      a.above.insert(r.seq);
      added_above.push_back(r.seq);
    }
    if (auto refusal = over_limit(a, r)) {
      ++a.refused;
      a.last_refusal = refusal->message;
      out.refused.push_back(std::move(*refusal));
      continue;
    }
    ++out.accepted;
    accepted.push_back(&r);
    ++a.results;
    ProbeState& p = a.probes[r.probe];
    // An older reading never overwrites a newer one. Within a spool the seq says which is
    // newer, whatever the agent's clock said (a clock a year ahead, then corrected by NTP).
    if (r.seq < p.seq) continue;
    a.series = a.series + r.metrics.size() - p.metrics.size();
    if (p.ts == 0 || p.status != r.status)
      history.push_back({a.site, a.id, r.probe, r.ts, static_cast<int>(r.status)});
    p = {r.type, r.status, r.summary, r.ts, r.duration, r.seq, r.metrics};
    if (std::find(changed.begin(), changed.end(), r.probe) == changed.end())
      changed.push_back(r.probe);
  }
  ++a.row_version;
  if (store_) {
    bool observed = false;
    try {
      store_->save(a, added_above, changed, serial);
      if (!was_up) store_->state_change({a.site, a.id, "", now, Store::kAgentUp});
      for (const auto& change : history) store_->state_change(change);
      if (desk_ && leading_) {
        observed = true;
        desk_->observe(a, accepted, now);
        desk_->fence();
      } else if (shared_) {
        std::string logged = "[";  // the wire format's results array, without copying them
        for (const auto* r : accepted)
          logged += (logged.size() > 1 ? "," : "") + protocol::encode(*r);
        store_->log_report(a.id, logged + "]");
      }
      tx->commit();
    } catch (...) {
      if (observed) desk_->rolled_back();
      throw;
    }
    if (observed) desk_->committed();
  } else if (desk_) {
    desk_->observe(a, accepted, now);
  }
  for (const auto& r : out.refused) metrics_.rejected(r.reason);
  metrics_.ingest_results.Increment(static_cast<double>(out.accepted));
  if (out.duplicates) metrics_.ingest_duplicates.Increment(static_cast<double>(out.duplicates));
  refresh_locked(a, now);
  a.generation = ++generation_;
  out.acked_seq = a.watermark;
  agents_[agent_id] = std::move(a);
  return out;
}

AgentState Health::held_over(AgentState stored) const {
  if (auto c = connections_.find(stored.id); c != connections_.end())
    stored.cert_not_after = c->second.not_after;
  if (auto it = agents_.find(stored.id); it != agents_.end()) {
    const AgentState& held = it->second;
    stored.clock_skew = held.clock_skew;
    stored.refused = held.refused;
    stored.last_refusal = held.last_refusal;
    stored.grace_until = held.grace_until;
  }
  for (const auto& [name, p] : stored.probes) stored.series += p.metrics.size();
  return stored;
}

void Health::share_store(bool shared) {
  std::lock_guard lock(mu_);
  shared_ = shared && store_;
  if (shared_) store_->share();
}

void Health::lead(bool leading, double now) {
  std::lock_guard lock(mu_);
  if (leading == leading_) return;
  ++generation_;
  if (!leading) {
    leading_ = false;
    return;
  }
  // What the followers took meanwhile is in the store. As after a restart, the newest report of
  // all says when the cluster last stored anything (the lead passes after a kill): agents up
  // then get one window from now, rather than being called silent for reports nobody stored.
  // When this collector saw the store fail lately (the database was away), agents back off
  // before they try again, and some are stored again before others: every agent heard within a
  // window and that backoff gets the backoff too.
  const double backoff = now - store_failed_at_ <= kAgentMaxBackoff ? kAgentMaxBackoff : 0;
  auto loaded = store_->load();
  double last_alive = 0;
  for (const auto& a : loaded) last_alive = std::max(last_alive, a.last_report);
  std::map<std::string, AgentState> fresh;
  for (auto& a : loaded) {
    a = held_over(std::move(a));
    const double window = kUpHeartbeats * a.heartbeat;
    if (last_alive - a.last_report <= window || now - a.last_report <= window + backoff)
      a.grace_until = std::max(a.grace_until, now + window + backoff);
    std::string id = a.id;
    fresh.emplace(std::move(id), std::move(a));
  }
  agents_ = std::move(fresh);
  leading_ = true;
  for (auto& [id, a] : agents_) {
    refresh_locked(a, now);
    a.generation = generation_;
  }
}

bool Health::leading() {
  std::lock_guard lock(mu_);
  return leading_;
}

std::size_t Health::replay(double now, std::size_t limit) {
  std::lock_guard lock(mu_);
  if (!shared_ || !leading_) return 0;
  bool observed = false;
  try {
    sql::Transaction tx(store_->db());
    const auto logged = store_->take_logged(limit);
    if (logged.empty()) return 0;
    std::map<std::string, AgentState> states;  // each agent read once, after all its reports
    std::vector<std::string> names;
    for (const auto& row : logged) names.push_back(row.agent);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    for (auto& a : store_->load(names)) {
      a = held_over(std::move(a));
      std::string id = a.id;
      states.emplace(std::move(id), std::move(a));
    }
    for (const auto& row : logged) {
      auto state = states.find(row.agent);
      auto results = protocol::decode_results(row.results);
      if (state == states.end() || !results) continue;  // forgotten meanwhile, or not ours
      std::vector<const protocol::Result*> accepted;
      for (const auto& r : *results.value) accepted.push_back(&r);
      observed = true;
      if (desk_) desk_->observe(state->second, accepted, now);
    }
    if (desk_) desk_->fence();
    tx.commit();
    if (desk_) desk_->committed();
    for (auto& [id, a] : states) {
      auto held = agents_.find(id);
      if (held != agents_.end() && held->second.row_version >= a.row_version) continue;
      refresh_locked(a, now);
      a.generation = ++generation_;
      agents_[id] = std::move(a);
    }
    return logged.size();
  } catch (...) {
    if (observed && desk_) desk_->rolled_back();
    throw;
  }
}

std::optional<Refusal> Health::over_limit(const AgentState& a, const protocol::Result& r) const {
  auto refuse = [&r](const char* limit, std::size_t bound, const std::string& what) {
    return Refusal{r.seq, std::string("limit_") + limit,
                   what + " (limits." + limit + ": " + std::to_string(bound) + ")"};
  };
  // Names are quoted shortened: the refusal itself must stay small.
  auto quoted = [](const std::string& name) {
    return "'" + (name.size() > 48 ? name.substr(0, 48) + "..." : name) + "'";
  };
  const std::size_t n = limits_.name_length;
  if (r.probe.size() > n)
    return refuse(
        "name_length", n,
        "probe name " + quoted(r.probe) + " of " + std::to_string(r.probe.size()) + " bytes");
  for (const auto& m : r.metrics) {
    if (m.name.size() > n)
      return refuse("name_length", n,
                    "probe " + quoted(r.probe) + ": metric name " + quoted(m.name) + " of " +
                        std::to_string(m.name.size()) + " bytes");
    for (const auto& [key, value] : m.labels)
      if (key.size() > n || value.size() > n)
        return refuse(
            "name_length", n,
            "probe " + quoted(r.probe) + ": metric " + quoted(m.name) + " label " + quoted(key));
  }
  for (const auto& [key, value] : r.labels)
    if (key.size() > n || value.size() > n)
      return refuse("name_length", n, "probe " + quoted(r.probe) + ": label " + quoted(key));
  if (r.metrics.size() > limits_.metrics_per_result)
    return refuse(
        "metrics_per_result", limits_.metrics_per_result,
        "probe " + quoted(r.probe) + " sent " + std::to_string(r.metrics.size()) + " metrics");
  const auto known = a.probes.find(r.probe);
  if (known == a.probes.end() && a.probes.size() >= limits_.probes_per_agent)
    return refuse("probes_per_agent", limits_.probes_per_agent,
                  "new probe " + quoted(r.probe) + ": the agent has " +
                      std::to_string(a.probes.size()) + " probes");
  const std::size_t held = known == a.probes.end() ? 0 : known->second.metrics.size();
  if (r.metrics.size() > held && a.series - held + r.metrics.size() > limits_.series_per_agent)
    return refuse("series_per_agent", limits_.series_per_agent,
                  "probe " + quoted(r.probe) + " with " + std::to_string(r.metrics.size()) +
                      " metrics: the agent holds " + std::to_string(a.series) + " series");
  return std::nullopt;
}

void Health::set_limits(const AgentLimits& limits) {
  std::lock_guard lock(mu_);
  limits_ = limits;
}

void Health::forget_stored(const std::string& agent, const std::vector<std::string>& probes,
                           double now) {
  auto forget_all = [&] {
    if (store_) store_->forget(agent, probes);
    if (!desk_) return;
    if (probes.empty()) desk_->forget(agent, "", now);
    for (const auto& name : probes) desk_->forget(agent, name, now);
    desk_->fence();
  };
  if (!store_) return forget_all();
  try {
    sql::Transaction tx(store_->db());
    forget_all();
    tx.commit();
  } catch (...) {
    if (desk_) desk_->rolled_back();
    throw;
  }
  if (desk_) desk_->committed();
}

bool Health::forget(const std::string& agent_id, double now) {
  std::lock_guard lock(mu_);
  auto it = agents_.find(agent_id);
  // Another collector may have taken its reports only (the leader not yet replayed them).
  if (it == agents_.end() && !(shared_ && store_->load(agent_id))) return false;
  forget_stored(agent_id, {}, now);
  if (it != agents_.end()) agents_.erase(it);
  connections_.erase(agent_id);
  ++generation_;
  return true;
}

void Health::forget_stale(double now) {
  if (now < next_forget_) return;
  next_forget_ = now + 60;  // a minute is fine-grained enough for a bound of days
  if (store_ && now >= next_prune_) {
    next_prune_ = now + 3600;
    try {
      store_->prune_history(now - limits_.history_keep);
      if (desk_) desk_->prune(now - limits_.history_keep);
    } catch (const std::exception& e) {
      spdlog::error("store: pruning the history: {}", e.what());
    }
  }
  const double before = now - limits_.forget_after;
  for (auto it = agents_.begin(); it != agents_.end();) {
    AgentState& a = it->second;
    if (a.last_report < before) {  // silent for as long: the agent itself goes
      forget_stored(a.id, {}, now);
      connections_.erase(a.id);
      it = agents_.erase(it);
      ++generation_;
      continue;
    }
    std::vector<std::string> stale;
    for (const auto& [name, p] : a.probes)
      if (p.ts < before) stale.push_back(name);
    if (!stale.empty()) {
      forget_stored(a.id, stale, now);
      for (const auto& name : stale) {
        a.series -= a.probes.at(name).metrics.size();
        a.probes.erase(name);
      }
      a.generation = ++generation_;
    }
    ++it;
  }
}

void Health::refresh_locked(AgentState& a, double now) {
  const double window = kUpHeartbeats * a.heartbeat;
  const bool was_up = a.up;
  a.up = now - a.last_report <= window || now <= a.grace_until;
  a.down_since = a.up ? 0 : std::max(a.last_report + window, a.grace_until);
  if (!leading_ || a.up == was_up) return;  // the leader keeps the fleet's history
  a.generation = ++generation_;
  if (!a.up && a.last_report > 0 && store_) {
    try {  // history only: a store failing now must not stop the timers
      store_->state_change({a.site, a.id, "", a.down_since, Store::kAgentSilent});
    } catch (const std::exception& e) {
      spdlog::error("store: agent {} silent not recorded in the history: {}", a.id, e.what());
    }
  }
}

void Health::set_desk(Desk* desk) {
  std::lock_guard lock(mu_);
  desk_ = desk;
}

void Health::refresh(double now) {
  std::lock_guard lock(mu_);
  for (auto& [id, a] : agents_) refresh_locked(a, now);
}

void Health::tick(double now) {
  std::lock_guard lock(mu_);
  forget_stale(now);
  std::vector<const AgentState*> all;
  all.reserve(agents_.size());
  for (auto& [id, a] : agents_) {
    refresh_locked(a, now);
    all.push_back(&a);
  }
  if (desk_) desk_->tick(all, now);
}

void Health::stalled(double now) {
  std::lock_guard lock(mu_);
  for (auto& [id, a] : agents_)
    if (a.up) a.grace_until = std::max(a.grace_until, now + kUpHeartbeats * a.heartbeat);
}

void Health::heard_from(const std::string& agent_id, double now) {
  std::lock_guard lock(mu_);
  store_failed_at_ = now;
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) return;
  AgentState& a = it->second;
  a.last_report = now;
  a.grace_until = std::max(a.grace_until, now + kUpHeartbeats * a.heartbeat + kAgentMaxBackoff);
}

std::vector<AgentState> Health::agents(double now) {
  std::lock_guard lock(mu_);
  std::vector<AgentState> out;
  out.reserve(agents_.size());
  for (auto& [id, a] : agents_) {
    refresh_locked(a, now);
    out.push_back(a);
  }
  return out;
}

std::uint64_t Health::generation() {
  std::lock_guard lock(mu_);
  return generation_;
}

std::uint64_t Health::changed_since(std::uint64_t since, std::vector<AgentState>& changed,
                                    std::vector<std::pair<std::string, std::string>>& known) {
  std::lock_guard lock(mu_);
  known.reserve(agents_.size());
  for (const auto& [id, a] : agents_) {
    known.emplace_back(id, a.site);
    if (a.generation > since) changed.push_back(a);
  }
  return generation_;
}

void Health::connected(const std::string& id, double not_after) {
  std::lock_guard lock(mu_);
  Connections& c = connections_[id];
  ++c.accepted;
  c.not_after = not_after;
  if (auto it = agents_.find(id); it != agents_.end()) it->second.cert_not_after = not_after;
}

bool Health::knows(const std::string& id) {
  std::lock_guard lock(mu_);
  return agents_.count(id) > 0;
}

std::optional<AgentState> Health::agent(const std::string& id, double now) {
  std::lock_guard lock(mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) return std::nullopt;
  refresh_locked(it->second, now);
  return it->second;
}

// Every agent's and probe's series, from memory at each scrape. Only the leader shows the fleet's:
// its memory has every agent, a follower's only those it took reports from. The connections are
// each collector's own.
void Health::expose(Exposition& e) {
  std::lock_guard lock(mu_);
  using L = std::initializer_list<Exposition::Label>;
  e.family("dozor_agent_connections_total", "counter", "TLS connections accepted from the agent");
  for (const auto& [id, c] : connections_)
    e.sample("dozor_agent_connections_total", L{{"agent", id}}, static_cast<double>(c.accepted));
  e.family("dozor_agent_cert_expiry_timestamp_seconds", "gauge",
           "Unix time the certificate the agent last presented expires");
  for (const auto& [id, c] : connections_)
    e.sample("dozor_agent_cert_expiry_timestamp_seconds", L{{"agent", id}}, c.not_after);
  const bool fleet = leading_;
  auto each_agent = [&](const char* name, const char* type, const char* help, auto value) {
    e.family(name, type, help);
    if (!fleet) return;
    for (const auto& [id, a] : agents_)
      e.sample(name, L{{"agent", id}, {"site", a.site}}, value(a));
  };
  each_agent("dozor_agent_up", "gauge", "1 while the agent reports within 3 heartbeats, else 0",
             [](const AgentState& a) { return a.up ? 1.0 : 0.0; });
  each_agent("dozor_agent_last_report_timestamp_seconds", "gauge",
             "Unix time of the agent's last report",
             [](const AgentState& a) { return a.last_report; });
  each_agent("dozor_agent_clock_skew_seconds", "gauge",
             "The agent's clock minus the collector's, at its last report",
             [](const AgentState& a) { return a.clock_skew; });
  each_agent("dozor_agent_spool_dropped_total", "counter",
             "Results the agent's spool dropped before delivery",
             [](const AgentState& a) { return static_cast<double>(a.dropped); });
  each_agent("dozor_agent_results_refused_total", "counter",
             "Results of the agent refused over a limit (reasons: dozor_ingest_rejected_total)",
             [](const AgentState& a) { return static_cast<double>(a.refused); });
  auto each_probe = [&](const char* name, const char* help, auto write) {
    e.family(name, "gauge", help);
    if (!fleet) return;
    for (const auto& [id, a] : agents_)
      for (const auto& [probe, p] : a.probes) write(name, a, probe, p);
  };
  each_probe(
      "dozor_probe_status", "Last status of a probe: 0 ok, 1 warning, 2 critical, 3 unknown",
      [&](const char* name, const AgentState& a, const std::string& probe, const ProbeState& p) {
        e.sample(name, L{{"agent", a.id}, {"probe", probe}, {"site", a.site}, {"type", p.type}},
                 static_cast<double>(p.status));
      });
  each_probe(
      "dozor_probe_duration_seconds", "How long the probe's last run took",
      [&](const char* name, const AgentState& a, const std::string& probe, const ProbeState& p) {
        e.sample(name, L{{"agent", a.id}, {"probe", probe}, {"site", a.site}}, p.duration);
      });
  std::vector<Exposition::Label> labels;
  each_probe(
      "dozor_probe_value", "Last value of each metric a probe returns",
      [&](const char* name, const AgentState& a, const std::string& probe, const ProbeState& p) {
        for (const auto& m : p.metrics) {
          // The metric's own labels with the collector's (which the decoder keeps from
          // shadowing them), in order of name.
          labels.assign(m.labels.begin(), m.labels.end());
          for (Exposition::Label own :
               L{{"agent", a.id}, {"metric", m.name}, {"probe", probe}, {"site", a.site}})
            labels.insert(std::lower_bound(labels.begin(), labels.end(), own), own);
          e.sample(name, labels, m.value);
        }
      });
}

}  // namespace dozor::collector
