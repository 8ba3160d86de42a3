#include "dozor/collector/health.h"

namespace dozor::collector {

IngestOutcome Health::ingest(const std::string& agent_id, const protocol::Report& report,
                             double now) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = agents_.try_emplace(agent_id);
  AgentState& a = it->second;
  if (fresh) {
    a.id = agent_id;
    a.first_seen = now;
  }
  // A restarted agent without a durable sequence starts again at 1.
  if (!fresh && report.agent.started_at != a.started_at && !report.results.empty() &&
      report.results.front().seq <= a.last_seq && report.results.front().seq == 1) {
    a.last_seq = 0;
  }
  if (!a.site.empty() && a.site != report.agent.site) {
    // The site label changed: drop the series under the old one rather than show both.
    for (auto& fam : {&metrics_.agent_up, &metrics_.agent_last_report}) {
      if (fam->Has({{"agent", a.id}, {"site", a.site}}))
        fam->Remove(&fam->Add({{"agent", a.id}, {"site", a.site}}));
    }
  }
  a.site = report.agent.site;
  a.hostname = report.agent.hostname;
  a.version = report.agent.version;
  a.started_at = report.agent.started_at;
  a.heartbeat = report.agent.heartbeat;
  a.last_report = now;
  if (report.dropped > 0) {
    a.dropped += report.dropped;
    metrics_.agent_spool_dropped.Add({{"agent", a.id}, {"site", a.site}})
        .Increment(static_cast<double>(report.dropped));
  }

  IngestOutcome out;
  for (const auto& r : report.results) {
    if (r.seq != 0 && r.seq <= a.last_seq) {
      ++out.duplicates;
      continue;
    }
    ++out.accepted;
    ++a.results;
    if (r.seq > a.last_seq) a.last_seq = r.seq;
    ProbeState& p = a.probes[r.probe];
    if (r.ts < p.ts) continue;  // an older result never overwrites a newer one
    p.type = r.type;
    p.status = r.status;
    p.summary = r.summary;
    p.ts = r.ts;
    p.duration = r.duration;
    p.seq = r.seq;
    p.metrics = r.metrics;
    publish(a, r.probe, p);
  }
  metrics_.ingest_results.Increment(static_cast<double>(out.accepted));
  if (out.duplicates) metrics_.ingest_duplicates.Increment(static_cast<double>(out.duplicates));
  refresh_locked(a, now);
  out.acked_seq = a.last_seq;
  return out;
}

void Health::publish(const AgentState& a, const std::string& probe, const ProbeState& p) {
  metrics_.probe_status.Add({{"agent", a.id}, {"site", a.site}, {"probe", probe}, {"type", p.type}})
      .Set(static_cast<double>(p.status));
  metrics_.probe_duration.Add({{"agent", a.id}, {"site", a.site}, {"probe", probe}})
      .Set(p.duration);
  for (const auto& m : p.metrics) {
    metrics_.probe_value
        .Add({{"agent", a.id}, {"site", a.site}, {"probe", probe}, {"metric", m.name}})
        .Set(m.value);
  }
}

void Health::refresh_locked(AgentState& a, double now) {
  const double window = kUpHeartbeats * a.heartbeat;
  a.up = now - a.last_report <= window;
  a.down_since = a.up ? 0 : a.last_report + window;
  metrics_.agent_up.Add({{"agent", a.id}, {"site", a.site}}).Set(a.up ? 1 : 0);
  metrics_.agent_last_report.Add({{"agent", a.id}, {"site", a.site}}).Set(a.last_report);
}

void Health::refresh(double now) {
  std::lock_guard lock(mu_);
  for (auto& [id, a] : agents_) refresh_locked(a, now);
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

std::optional<AgentState> Health::agent(const std::string& id, double now) {
  std::lock_guard lock(mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) return std::nullopt;
  refresh_locked(it->second, now);
  return it->second;
}

}  // namespace dozor::collector
