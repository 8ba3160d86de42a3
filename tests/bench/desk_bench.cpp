// Rule evaluation throughput: results per second through the collector's rules and tickets.
//
// 10,000 (agent, probe) keys: 100 agents (one site each) x 100 probes, each agent sending one
// report of its 100 results every 30 s of simulated time (the agents take turns, 0.3 s apart).
// Most results are ok; 1% of the results each round change status: 50 keys turn critical (a new
// ticket, `for: 0s`), and the 50 that turned critical the round before turn ok again (their tickets
// resolve after the default `recover_for: 1m`, on a later result). Every key fails once every 200
// rounds. The desk's timers (Desk::tick, every 250 ms in the server) run once a round, outside
// the timing: they close the tickets resolved for `reopen_within: 1h` (120 rounds), so after the
// warm-up the desk holds its steady state of ~6,000 resolved tickets and ~100 open ones.
//
//   BM_Ingest        Health::ingest of one report with a real SQLite Store in a temp folder and
//                    the Desk with the default rules: what the collector runs per report (state,
//                    Prometheus series, the store transaction, the rules, the tickets).
//   BM_Observe       Desk::observe alone on the same reports: no Health bookkeeping, no Store
//                    rows, no commit (one transaction is left open over the timed loop).
//   .../forecast:1   the same with one more rule, a forecast matching a metric every result has
//                    (connect_seconds; window 10m, so 20 readings of each key are fitted).
//   .../reopen_min:1 BM_Observe with `reopen_within: 1m` instead of 1h: resolved tickets close
//                    two rounds later, so the desk holds ~150 live tickets instead of ~6,000;
//                    the difference is what the desk spends walking its live tickets.
//   .../limits:0     the per-agent limits (collector.yaml `limits`) out of reach: what checking
//                    them costs, against limits:1 (the defaults).
//   BM_Tick          Health::tick (the desk's timers, every 250 ms in the server) on the same
//                    state after a run, for scale.
//   BM_Scrape        /metrics of a fleet (1,000 and 10,000 agents, 3 probes each), written from
//                    Health's state at each scrape.
//
// Each iteration is one report of 100 results; items/s are results/s. The world is built and
// warmed up (DOZOR_DESK_WARMUP rounds, default 130: every key seen, the steady state reached)
// before the first timed iteration, and kept for the repetitions of one benchmark; the loop only
// writes seq, ts and status into the prebuilt report (100 stores) before handing it over.
//
//   build/tests/bench/desk_bench --benchmark_repetitions=5
//   --benchmark_enable_random_interleaving=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dozor/collector/desk.h"
#include "dozor/collector/health.h"
#include "dozor/collector/store.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using dozor::collector::AgentState;
using dozor::collector::Desk;
using dozor::collector::DeskConfig;
using dozor::collector::Health;
using dozor::collector::Metrics;
using dozor::collector::ProbeState;
using dozor::collector::Rule;
using dozor::collector::RuleKind;
using dozor::collector::Store;
using dozor::protocol::Result;
using dozor::protocol::Status;

constexpr int kAgents = 100;
constexpr int kProbes = 100;
constexpr int kKeys = kAgents * kProbes;
constexpr int kFlipsPerRound = 50;     // turn critical; as many turn ok: 1% of results change
constexpr int kStride = 7919;          // prime: spreads a round's failing keys over the agents
constexpr double kRound = 30;          // seconds between two results of one key
constexpr double kStart = 1795435200;  // 2026-11-23 12:00 UTC

int warmup_rounds() {
  const char* v = std::getenv("DOZOR_DESK_WARMUP");
  return v ? std::atoi(v) : 130;
}

DeskConfig desk_config(bool forecast, int reopen_minutes = 60) {
  DeskConfig c;  // the default rules, calendars (24x7), outage grouping and reopen window
  c.reopen_within = std::chrono::minutes(reopen_minutes);
  if (forecast) {
    Rule r;
    r.name = "connect-forecast";
    r.kind = RuleKind::forecast;
    r.match.metric = "connect_seconds";
    r.threshold = 5;
    r.window = 10min;
    r.horizon = 1h;
    r.ticket_class = "task";
    r.priority = 3;
    c.rules.push_back(r);
  }
  return c;
}

// The simulated fleet: one prebuilt report per agent and the status schedule.
class Fleet {
 public:
  Fleet() : critical_(kKeys, 0), seq_(kAgents, 0) {
    for (int a = 0; a < kAgents; ++a) {
      dozor::protocol::Report rep;
      // Heartbeat 30 s: the agent reports every round, so none falls silent.
      rep.agent = {"0.1.0", agent_id(a) + ".lan",  site(a), kStart - 3600,
                   kRound,  "spool-" + agent_id(a)};
      for (int p = 0; p < kProbes; ++p) {
        Result r;
        r.probe = "probe-" + std::to_string(p);
        r.type = "tcp";
        r.duration = 0.0012;
        r.summary = "10.0.0.1:1541 connected in 0.001 s";
        r.metrics = {{"connect_seconds", 0.0011, "s"}};
        rep.results.push_back(std::move(r));
      }
      reports_.push_back(std::move(rep));
    }
  }

  static std::string agent_id(int a) { return "agent-" + std::to_string(a); }
  static std::string site(int a) { return "site-" + std::to_string(a); }

  // The report the next agent sends, and when. Cheap: 100 small writes into a prebuilt report.
  std::pair<int, double> next(dozor::protocol::Report*& out) {
    const int a = static_cast<int>(sent_ % kAgents);
    if (a == 0) start_round(static_cast<int>(sent_ / kAgents));
    const double now = kStart + static_cast<double>(sent_) * (kRound / kAgents);
    auto& rep = reports_[static_cast<std::size_t>(a)];
    for (int p = 0; p < kProbes; ++p) {
      Result& r = rep.results[static_cast<std::size_t>(p)];
      r.seq = ++seq_[static_cast<std::size_t>(a)];
      r.ts = now;
      const bool bad = critical_[static_cast<std::size_t>(a * kProbes + p)] != 0;
      r.status = bad ? Status::critical : Status::ok;
      r.metrics[0].value = 0.0011 + 0.0001 * static_cast<double>((r.seq * 7) % 5);
    }
    ++sent_;
    out = &rep;
    return {a, now};
  }
  long rounds() const { return static_cast<long>(sent_ / kAgents); }
  // The next report starts a round (after the first): time for the desk's timers.
  bool round_done() const { return sent_ > 0 && sent_ % kAgents == 0; }

 private:
  static int key(int round, int j) {
    return static_cast<int>((static_cast<long>(round) * kFlipsPerRound + j) * kStride % kKeys);
  }
  void start_round(int round) {
    for (int j = 0; j < kFlipsPerRound; ++j) {
      if (round > 0) critical_[static_cast<std::size_t>(key(round - 1, j))] = 0;
    }
    for (int j = 0; j < kFlipsPerRound; ++j) critical_[static_cast<std::size_t>(key(round, j))] = 1;
  }

  std::vector<char> critical_;
  std::vector<std::uint64_t> seq_;
  std::vector<dozor::protocol::Report> reports_;
  std::uint64_t sent_ = 0;
};

fs::path scratch(const std::string& name) {
  auto dir =
      fs::temp_directory_path() / ("dozor-desk-bench-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

double events(Metrics& m, const std::string& name) {
  return m.ticket_events.Add({{"event", name}}).Value();
}

// ---------------------------------------------------------------- the whole path

struct IngestWorld {
  explicit IngestWorld(bool forecast)
      : dir(scratch(forecast ? "ingest-forecast" : "ingest")),
        store(std::make_unique<Store>((dir / "collector.db").string())),
        health(std::make_unique<Health>(metrics, store.get(), kStart)),
        desk(std::make_unique<Desk>(desk_config(forecast), metrics, store->db())) {
    health->set_desk(desk.get());
    for (int i = 0; i < (warmup_rounds() + 1) * kAgents; ++i) {
      if (fleet.round_done()) tick();
      send();
    }
  }
  ~IngestWorld() {
    desk.reset();
    health.reset();
    store.reset();
    fs::remove_all(dir);
  }
  void send() {
    dozor::protocol::Report* rep = nullptr;
    auto [a, now] = fleet.next(rep);
    health->ingest(Fleet::agent_id(a), *rep, now);
    last = now;
  }
  void tick() { health->tick(last + 0.1); }

  fs::path dir;
  Metrics metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<Health> health;
  std::unique_ptr<Desk> desk;
  Fleet fleet;
  double last = 0;
};

IngestWorld& ingest_world(bool forecast) {
  static std::unique_ptr<IngestWorld> worlds[2];
  auto& w = worlds[forecast ? 1 : 0];
  if (!w) w = std::make_unique<IngestWorld>(forecast);
  return *w;
}

void report_counters(benchmark::State& state, Metrics& m, double opened0, double resolved0,
                     double reopened0, std::size_t live) {
  state.SetItemsProcessed(state.iterations() * kProbes);
  state.counters["opened"] = events(m, "opened") - opened0;
  state.counters["resolved"] = events(m, "resolved") - resolved0;
  state.counters["reopened"] = events(m, "reopened") - reopened0;
  state.counters["live_tickets"] = static_cast<double>(live);
}

void BM_Ingest(benchmark::State& state) {
  IngestWorld& w = ingest_world(state.range(0) != 0);
  // limits:0 lifts the per-agent limits out of reach, for the cost of checking them.
  dozor::collector::AgentLimits limits;
  if (state.range(1) == 0) {
    constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max() / 2;
    limits = {kNone, kNone, kNone, kNone, limits.forget_after};
  }
  w.health->set_limits(limits);
  const double opened = events(w.metrics, "opened"), resolved = events(w.metrics, "resolved"),
               reopened = events(w.metrics, "reopened");
  for (auto _ : state) {
    if (w.fleet.round_done()) {
      state.PauseTiming();
      w.tick();
      state.ResumeTiming();
    }
    w.send();
  }
  Desk::Query all;
  all.limit = 1000000;
  all.statuses = {"open", "acknowledged", "resolved"};
  report_counters(state, w.metrics, opened, resolved, reopened, w.desk->tickets(all).size());
  state.counters["rounds"] = static_cast<double>(w.fleet.rounds());
}
BENCHMARK(BM_Ingest)
    ->ArgNames({"forecast", "limits"})
    ->Args({0, 1})
    ->Args({0, 0})
    ->Args({1, 1})
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(3.0)
    ->UseRealTime();

// ---------------------------------------------------------------- the rules alone

struct ObserveWorld {
  ObserveWorld(bool forecast, int reopen_minutes)
      : dir(scratch("observe-" + std::to_string(forecast) + "-" + std::to_string(reopen_minutes))),
        store((dir / "desk.db").string()),
        db(store.db()),
        desk(desk_config(forecast, reopen_minutes), metrics, db),
        agents(kAgents),
        states(kAgents) {
    for (int a = 0; a < kAgents; ++a) {
      AgentState& s = agents[static_cast<std::size_t>(a)];
      s.id = Fleet::agent_id(a);
      s.site = Fleet::site(a);
      s.hostname = s.id + ".lan";
      s.up = true;
      for (int p = 0; p < kProbes; ++p)
        states[static_cast<std::size_t>(a)].push_back(&s.probes["probe-" + std::to_string(p)]);
    }
    accepted.resize(kAgents);
    for (int i = 0; i < (warmup_rounds() + 1) * kAgents; ++i) {
      if (fleet.round_done()) tick();
      dozor::collector::sql::Transaction tx(db);
      send();
      tx.commit();
    }
  }
  ~ObserveWorld() { fs::remove_all(dir); }

  void send() {
    dozor::protocol::Report* rep = nullptr;
    auto [a, now] = fleet.next(rep);
    auto& acc = accepted[static_cast<std::size_t>(a)];
    if (acc.empty())
      for (const auto& r : rep->results) acc.push_back(&r);
    // What Health::ingest leaves in the agent's state for the desk: each probe's newest result.
    auto& ps = states[static_cast<std::size_t>(a)];
    for (std::size_t p = 0; p < ps.size(); ++p) {
      ps[p]->seq = rep->results[p].seq;
      ps[p]->status = rep->results[p].status;
    }
    AgentState& s = agents[static_cast<std::size_t>(a)];
    s.last_report = now;
    desk.observe(s, acc, now);
    last = now;
  }
  void tick() {
    std::vector<const AgentState*> all;
    for (auto& a : agents) all.push_back(&a);
    desk.tick(all, last + 0.1);
  }

  fs::path dir;
  Metrics metrics;
  Store store;
  dozor::collector::sql::Database& db;
  Desk desk;
  Fleet fleet;
  std::vector<AgentState> agents;
  std::vector<std::vector<ProbeState*>> states;
  std::vector<std::vector<const Result*>> accepted;
  double last = 0;
};

ObserveWorld& observe_world(bool forecast, int reopen_minutes) {
  static std::map<std::pair<bool, int>, std::unique_ptr<ObserveWorld>> worlds;
  auto& w = worlds[{forecast, reopen_minutes}];
  if (!w) w = std::make_unique<ObserveWorld>(forecast, reopen_minutes);
  return *w;
}

void BM_Observe(benchmark::State& state) {
  ObserveWorld& w = observe_world(state.range(0) != 0, static_cast<int>(state.range(1)));
  const double opened = events(w.metrics, "opened"), resolved = events(w.metrics, "resolved"),
               reopened = events(w.metrics, "reopened");
  // The desk's writes, but no commit in the timed loop: one transaction a round.
  auto tx = std::make_unique<dozor::collector::sql::Transaction>(w.db);
  for (auto _ : state) {
    if (w.fleet.round_done()) {
      state.PauseTiming();
      tx->commit();
      w.tick();
      tx = std::make_unique<dozor::collector::sql::Transaction>(w.db);
      state.ResumeTiming();
    }
    w.send();
  }
  tx->commit();
  tx.reset();
  Desk::Query all;
  all.limit = 1000000;
  all.statuses = {"open", "acknowledged", "resolved"};
  report_counters(state, w.metrics, opened, resolved, reopened, w.desk.tickets(all).size());
  state.counters["incidents"] = static_cast<double>(w.desk.incident_count());
}
BENCHMARK(BM_Observe)
    ->ArgNames({"forecast", "reopen_min"})
    ->Args({0, 60})
    ->Args({1, 60})
    ->Args({0, 1})
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(3.0)
    ->UseRealTime();

// ---------------------------------------------------------------- the timers

void BM_Tick(benchmark::State& state) {
  IngestWorld& w = ingest_world(false);
  const double now = w.last + 0.25;  // the same instant each time: no agent falls silent meanwhile
  for (auto _ : state) w.health->tick(now);
}
BENCHMARK(BM_Tick)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---------------------------------------------------------------- a scrape

// Metrics::scrape() of a fleet of N agents with 3 probes each (one value a probe), the series
// written from Health's state: how long Prometheus's scrape holds Health's lock.
void BM_Scrape(benchmark::State& state) {
  Metrics m;
  Health h(m);
  const double now = 1795435200;
  dozor::protocol::Report rep;
  rep.agent = {"0.1.0", "host", "site", now - 60, 5, "spool"};
  for (const char* probe : {"erp-port", "web", "disk-root"}) {
    dozor::protocol::Result r;
    r.seq = rep.results.size() + 1;
    r.probe = probe;
    r.type = "tcp";
    r.ts = now;
    r.metrics = {{"connect_seconds", 0.002, "s"}};
    rep.results.push_back(r);
  }
  for (int i = 0; i < state.range(0); ++i) h.ingest("agent-" + std::to_string(i), rep, now);
  std::size_t bytes = 0;
  for (auto _ : state) bytes = m.scrape().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Scrape)->ArgName("agents")->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
