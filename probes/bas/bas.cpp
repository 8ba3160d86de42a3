#include "bas/bas.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "bas/rac_output.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/url.h"
#include "src/human_units.h"
#include "src/subprocess.h"

namespace dozor::probes::bas {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMaxOutput = 32 << 20;

constexpr OptionSpec kOptions[] = {
    {"rac", OptionKind::string, "rac", false,
     "the platform's rac client, e.g. /opt/1cv8/x86_64/8.3.24.1467/rac; searched on PATH "
     "without a '/'"},
    {"ras", OptionKind::yaml, "", false,
     "the cluster's administration server (ras), host:port, default localhost:1545; or a list of "
     "them (one per central server), asked in order until one answers"},
    {"cluster", OptionKind::string, "", false,
     "uuid or name of the one cluster to check; "
     "default every cluster the ras knows"},
    {"cluster_user", OptionKind::string, "", false, "cluster administrator, when the cluster has"},
    {"cluster_password_env", OptionKind::string, "", false,
     "NAME of the environment variable that holds the cluster administrator's password"},
    {"blocked_warning", OptionKind::integer, "1", false,
     "sessions waiting for a lock (DBMS or managed), at or above which to warn"},
    {"blocked_critical", OptionKind::integer, "5", false, "blocked sessions, critical"},
    {"call_warning", OptionKind::duration, "30s", false,
     "an interactive server call (thin, thick or web client, COM, services) running this long "
     "or longer is a warning"},
    {"call_critical", OptionKind::duration, "2m", false,
     "an interactive server call this long is critical"},
    {"background_call_warning", OptionKind::duration, "", false,
     "a background job's server call this long is a warning; default: not judged (a routine "
     "job is one long call)"},
    {"background_call_critical", OptionKind::duration, "", false,
     "a background job's server call this long is critical"},
    {"licenses_total", OptionKind::integer, "0", false,
     "licences bought (client and server together); with it, licences in use are judged"},
    {"licenses_warning", OptionKind::number, "0.9", false,
     "share of licenses_total in use at or above which to warn; all of them is critical"},
    {"performance_warning", OptionKind::number, "80", false,
     "a running worker's available-perfomance at or below which to warn"},
    {"performance_critical", OptionKind::number, "50", false,
     "available-perfomance at or below which it is critical"},
    {"memory_excess_critical", OptionKind::duration, "1m", false,
     "how long a worker may exceed the cluster's memory limit before it is critical (any "
     "excess is a warning)"},
    {"infobases", OptionKind::yaml, "", false,
     "list of infobase names to count sessions of; default all"},
};

struct Config {
  std::string rac, cluster, cluster_user, password_env;
  std::vector<std::string> ras;
  double blocked_warning = 1, blocked_critical = 5;
  milliseconds call_warning{30000}, call_critical{120000};
  std::optional<milliseconds> background_warning, background_critical;
  std::int64_t licenses_total = 0;
  double licenses_warning = 0.9;
  double performance_warning = 80, performance_critical = 50;
  milliseconds memory_excess_critical{60000};
  std::vector<std::string> infobases;
};

// Session kinds by app-id, in metric order.
constexpr std::array<std::string_view, 6> kKinds = {"thin",       "thick",    "web",
                                                    "background", "designer", "other"};

std::size_t kind_of(std::string_view app_id) {
  if (app_id == "1CV8C") return 0;
  if (app_id == "1CV8") return 1;
  if (app_id == "WebClient") return 2;
  if (app_id == "BackgroundJob") return 3;
  if (app_id == "Designer") return 4;
  return 5;  // COMConnection, WSConnection, HTTPServiceConnection, SrvrConsole, ...
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string> nonempty_lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const auto line = trim(text.substr(0, nl));
    if (!line.empty()) out.emplace_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

bool contains_any(std::string_view text, std::initializer_list<std::string_view> needles) {
  for (auto n : needles)
    if (text.find(n) != std::string_view::npos) return true;
  return false;
}

// rac's messages, Russian and English platform builds. The credentials test goes first: a
// refused login comes under the header "Ошибка операции администрирования".
bool credentials_refused(std::string_view err) {
  return contains_any(
      err, {"не аутентифицирован", "Недостаточно прав", "not authenticated", "Insufficient rights",
            "insufficient rights", "Insufficient user rights"});
}

// Not always followed by "администрирования": some builds print the short header, then the
// OS's socket error.
bool ras_unreachable(std::string_view err) {
  return contains_any(err,
                      {"Ошибка соединения с сервером", "Administration server connection error",
                       "Connection refused", "No connection could be made", "Host not found",
                       "Компьютер отсутствует в сети", "No route to host"});
}

// ras answers, but the cluster manager (rmngr, :1541) behind it does not: rac waits about 2 s,
// then prints "нет ответа от tcp://host:1541".
bool manager_unreachable(std::string_view err) {
  return contains_any(err, {"нет ответа от tcp://", "no response from tcp://"});
}

/// One cluster as rac lists it.
struct ClusterState {
  RacCluster cluster;
  std::vector<RacInfobase> infobases;
  std::vector<RacSession> sessions;
  std::vector<RacProcess> processes;
  std::vector<RacLicense> licenses;
};

/// What one round of rac calls found: the clusters, or the result that says why it stopped.
struct Survey {
  std::optional<Result> failure;
  std::vector<ClusterState> clusters;
  std::vector<std::string> unreachable;  // ras addresses tried first that did not answer
};

/// The rac calls of one run, made one after another on a pool thread against one deadline.
class RacClient {
 public:
  RacClient(const Config& c, std::string ras, std::string password, milliseconds timeout,
            Clock::time_point deadline, milliseconds kill_grace)
      : c_(c),
        ras_(std::move(ras)),
        password_(std::move(password)),
        timeout_(timeout),
        deadline_(deadline),
        kill_grace_(kill_grace) {}

  Survey survey() {
    Survey s;
    RacOutput out;
    if (auto failure = call({"cluster", "list"}, nullptr, out)) {
      s.failure = std::move(failure);
      return s;
    }
    std::vector<RacCluster> clusters;
    if (auto error = read_clusters(out, clusters); !error.empty()) {
      s.failure = unreadable("cluster list", error);
      return s;
    }
    std::erase_if(clusters, [&](const RacCluster& cl) {
      return !c_.cluster.empty() && cl.id != c_.cluster && cl.name != c_.cluster;
    });
    if (clusters.empty()) {
      s.failure =
          answered(Status::critical, c_.cluster.empty()
                                         ? "ras " + ras_ + " lists no cluster"
                                         : "cluster '" + c_.cluster + "' not found on ras " + ras_);
      return s;
    }
    for (const auto& cl : clusters) {
      ClusterState st{cl, {}, {}, {}, {}};
      if (!read(cl, {"infobase", "summary", "list"}, read_infobases, st.infobases, s) ||
          !read(cl, {"session", "list"}, read_sessions, st.sessions, s) ||
          !read(cl, {"process", "list"}, read_processes, st.processes, s) ||
          !read(cl, {"session", "list", "--licenses"}, read_licenses, st.licenses, s))
        return s;
      s.clusters.push_back(std::move(st));
    }
    return s;
  }

 private:
  template <class T>
  bool read(const RacCluster& cl, std::vector<std::string> words,
            std::string (*reader)(const RacOutput&, std::vector<T>&), std::vector<T>& items,
            Survey& s) {
    RacOutput out;
    const std::string command = join(words);
    if (auto failure = call(std::move(words), &cl, out)) {
      s.failure = std::move(failure);
      return false;
    }
    if (auto error = reader(out, items); !error.empty()) {
      s.failure = unreadable(command, error);
      return false;
    }
    return true;
  }

  static std::string join(const std::vector<std::string>& words) {
    std::string s;
    for (const auto& w : words) s += (s.empty() ? "" : " ") + w;
    return s;
  }

  // Runs `rac <ras> <words> [--cluster=... --cluster-user=... --cluster-pwd=...]`; the failure
  // as a result, or nullopt and the parsed output.
  std::optional<Result> call(std::vector<std::string> words, const RacCluster* cluster,
                             RacOutput& out) {
    const std::string command = join(words);
    ProcessRequest req;
    req.argv = {c_.rac, ras_};
    req.argv.insert(req.argv.end(), words.begin(), words.end());
    if (cluster) {
      req.argv.push_back("--cluster=" + cluster->id);
      if (!c_.cluster_user.empty()) req.argv.push_back("--cluster-user=" + c_.cluster_user);
      // rac reads the password only from its command line, so it is visible in
      // /proc/<pid>/cmdline to the agent's own user (and root) while rac runs.
      if (!password_.empty()) req.argv.push_back("--cluster-pwd=" + password_);
    }
    const auto left = std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now());
    if (left <= milliseconds(0))
      return answered(Status::critical, "rac " + command + " not started: the run's timeout " +
                                            "was used up by the calls before it");
    req.timeout = left;
    req.kill_grace = kill_grace_;
    // A session list runs at about 2 KiB a session; a thousand sessions fit many times over.
    req.max_output = kMaxOutput;
    const ProcessResult r = run_process(req);
    if (!r.error.empty())
      return make_result(Status::unknown, "cannot run " + c_.rac + ": " + r.error);
    if (r.timed_out)
      return answered(Status::critical, "rac " + command +
                                            " did not finish within the probe's timeout of " +
                                            format_duration(timeout_));
    if (r.exit_code != 0) return refused(command, r);
    ras_answered_ = true;
    if (r.truncated)
      return answered(Status::unknown, "rac " + command + " printed more than " +
                                           std::to_string(kMaxOutput >> 20) + " MiB");
    out = parse_rac_output(r.out);
    if (!out.ok()) return unreadable(command, out.error);
    return std::nullopt;
  }

  Result refused(const std::string& command, const ProcessResult& r) {
    const auto lines = nonempty_lines(r.err);
    if (credentials_refused(r.err)) {
      ras_answered_ = true;
      std::string why;
      for (const auto& l : lines)
        if (credentials_refused(l)) why = l;
      return answered(Status::critical,
                      "cluster administrator credentials refused" +
                          (c_.cluster_user.empty() ? std::string(" (no cluster_user configured)")
                                                   : " for user '" + c_.cluster_user + "'") +
                          ": " + why);
    }
    if (manager_unreachable(r.err)) {
      ras_answered_ = true;
      manager_answered_ = false;
      std::string why;
      for (const auto& l : lines)
        if (manager_unreachable(l)) why = l;
      return answered(Status::critical,
                      "ras " + ras_ + " answers, the cluster manager behind it does not: " + why);
    }
    if (ras_unreachable(r.err)) {
      // The last line is the cause ("Connection refused"), the first only rac's header.
      return answered(Status::critical,
                      "ras " + ras_ + " unreachable: " + (lines.empty() ? "" : lines.back()));
    }
    if (command != "cluster list") ras_answered_ = true;
    return answered(Status::critical, "rac " + command + " failed, " + describe_end(r) +
                                          (lines.empty() ? "" : ": " + lines.front()));
  }

  Result unreadable(const std::string& command, const std::string& error) {
    return answered(Status::unknown, "rac " + command + " printed unreadable output: " + error);
  }

  // A failure result with ras_up, which says whether the ras answered at all, and, once it did,
  // cluster_manager_up: whether the cluster manager behind it did.
  Result answered(Status status, std::string summary) const {
    Result r = make_result(status, std::move(summary));
    r.metrics.push_back({"ras_up", ras_answered_ ? 1.0 : 0.0, ""});
    if (ras_answered_)
      r.metrics.push_back({"cluster_manager_up", manager_answered_ ? 1.0 : 0.0, ""});
    return r;
  }

  const Config& c_;
  std::string ras_;
  std::string password_;
  milliseconds timeout_;  // the probe's, for messages
  Clock::time_point deadline_;
  milliseconds kill_grace_;
  bool ras_answered_ = false;
  bool manager_answered_ = true;

 public:
  bool ras_answered() const { return ras_answered_; }
};

class BasProbe final : public Probe {
 public:
  explicit BasProbe(Config c) : c_(std::move(c)) {}

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    std::string password;
    Result r;
    try {
      r = co_await check(ctx, password);
    } catch (const std::exception& e) {
      r = make_result(Status::unknown, std::string("bas probe failed: ") + e.what());
    }
    // Belt and braces: no message of rac's may carry the password into a summary.
    if (!password.empty())
      for (auto at = r.summary.find(password); at != std::string::npos;
           at = r.summary.find(password, at))
        r.summary.replace(at, password.size(), "***");
    co_return r;
  }

  std::string plan() const override {
    std::string auth;
    if (!c_.cluster_user.empty()) auth += " --cluster-user=" + c_.cluster_user;
    if (!c_.password_env.empty()) auth += " --cluster-pwd=$" + c_.password_env;
    std::string ras;
    for (const auto& a : c_.ras) ras += (ras.empty() ? "" : " or ") + a;
    return c_.rac + " " + ras + " cluster list; then per cluster" +
           (c_.cluster.empty() ? "" : " '" + c_.cluster + "'") +
           ": infobase summary list, session list, process list, session list --licenses, each "
           "with "
           "--cluster=<uuid>" +
           auth;
  }

 private:
  asio::awaitable<Result> check(ProbeContext& ctx, std::string& password) {
    if (auto last = last_.lock(); last && last->running())
      co_return make_result(Status::critical, "rac from an earlier run is still running");
    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to run rac on");
    if (!c_.password_env.empty()) {
      const char* p = std::getenv(c_.password_env.c_str());
      if (!p)
        co_return make_result(Status::unknown, "environment variable " + c_.password_env +
                                                   " (cluster_password_env) is not set");
      password = p;
    }

    // rac gets the run's timeout less a reserve in which a hung rac is killed and reaped.
    const auto start = Clock::now();
    const auto reserve = std::min<milliseconds>(milliseconds(300), ctx.timeout / 2);
    // Several ras (one per central server): asked in order until one answers.
    auto survey = [c = c_, password, timeout = ctx.timeout,
                   deadline = start + ctx.timeout - reserve, grace = reserve / 2] {
      Survey s;
      for (std::size_t i = 0; i < c.ras.size(); ++i) {
        RacClient client(c, c.ras[i], password, timeout, deadline, grace);
        auto unreachable = std::move(s.unreachable);
        s = client.survey();
        s.unreachable = std::move(unreachable);
        if (!s.failure || client.ras_answered() || i + 1 == c.ras.size()) break;
        s.unreachable.push_back(c.ras[i]);
      }
      return s;
    };
    const std::optional<Survey> s = co_await run_blocking(ctx, start + ctx.timeout, survey, last_);
    if (!s)
      co_return make_result(Status::critical,
                            "rac still running after " + format_duration(ctx.timeout));
    if (s->failure) {
      Result failure = *s->failure;
      std::string before;
      for (const auto& ras : s->unreachable) before += "ras " + ras + " unreachable; ";
      failure.summary = before + failure.summary;
      co_return failure;
    }
    co_return evaluate(s->clusters, s->unreachable);
  }

  // Interactive: someone waits for the call (a client, a COM or web-service caller); a
  // background job's long call is routine; the Designer's (a configuration update) too.
  static bool interactive(std::size_t kind) { return kind != 3 && kind != 4; }

  Result evaluate(const std::vector<ClusterState>& clusters,
                  const std::vector<std::string>& unreachable) const {
    const std::set<std::string> wanted(c_.infobases.begin(), c_.infobases.end());
    std::set<std::string> seen;
    // Per infobase name, awake sessions of each kind; every infobase counted is listed, also at
    // 0. Hibernated sessions (their client gone for now) apart.
    std::map<std::string, std::array<int, kKinds.size()>> per_infobase;
    std::map<std::string, int> hibernated_per_infobase;
    std::array<int, kKinds.size()> totals{};
    int sessions = 0, hibernated = 0, blocked_dbms = 0, blocked_ls = 0;
    struct Longest {
      const RacSession* session = nullptr;
      std::string infobase;
      double seconds() const { return session ? session->call_seconds : 0.0; }
      void offer(const RacSession& s, const std::string& ib) {
        if (!session || s.call_seconds > session->call_seconds) {
          session = &s;
          infobase = ib;
        }
      }
    } longest_interactive, longest_background, longest_wait;
    // Licences in use by (type, issued by, series), each session counted once.
    std::map<std::array<std::string, 3>, std::set<std::string>> licenses;
    std::set<std::string> licensed_sessions;
    int enabled = 0, running = 0;
    std::vector<std::string> dead;
    std::optional<double> lowest_perf;
    double memory = 0, excess = 0;

    for (const auto& st : clusters) {
      std::map<std::string, std::string> names;  // uuid -> name
      for (const auto& ib : st.infobases) {
        names[ib.id] = ib.name;
        seen.insert(ib.name);
        if (wanted.empty() || wanted.contains(ib.name)) {
          per_infobase[ib.name];
          hibernated_per_infobase[ib.name];
        }
      }
      // With session fault tolerance and two central servers a session is listed by each:
      // a session is its uuid.
      std::set<std::string> counted;
      for (const auto& s : st.sessions) {
        const auto n = names.find(s.infobase);
        const std::string& ib = n != names.end() ? n->second : s.infobase;
        if (!wanted.empty() && !wanted.contains(ib)) continue;
        if (!counted.insert(s.id).second) continue;
        const auto k = kind_of(s.app_id);
        if (s.hibernate) {
          ++hibernated;
          ++hibernated_per_infobase[ib];
          continue;
        }
        ++sessions;
        ++totals[k];
        ++per_infobase[ib][k];
        if (s.blocked_by_dbms != 0) ++blocked_dbms;
        if (s.blocked_by_ls != 0) ++blocked_ls;
        if (s.blocked_by_dbms != 0 || s.blocked_by_ls != 0) longest_wait.offer(s, ib);
        if (k == 3) longest_background.offer(s, ib);
        if (interactive(k)) longest_interactive.offer(s, ib);
      }
      for (const auto& l : st.licenses) {
        if (!licensed_sessions.insert(st.cluster.id + "/" + l.session).second) continue;
        licenses[{l.type.empty() ? "unknown" : l.type, l.issued_by_server ? "server" : "client",
                  l.series}]
            .insert(l.session);
      }
      for (const auto& p : st.processes) {
        if (p.enabled) ++enabled;
        if (p.running) ++running;
        if (p.enabled && !p.running)
          dead.push_back(p.host + ":" + std::to_string(p.port) + " pid " + std::to_string(p.pid));
        if (p.running && p.available_performance)
          lowest_perf =
              std::min(lowest_perf.value_or(*p.available_performance), *p.available_performance);
        memory += p.memory_bytes;
        excess = std::max(excess, p.memory_excess_seconds);
      }
    }

    Result r;
    auto& m = r.metrics;
    m.push_back({"ras_up", 1, ""});
    m.push_back({"cluster_manager_up", 1, ""});
    m.push_back({"clusters", static_cast<double>(clusters.size()), ""});
    // One series per infobase and kind (0 included); totals are sums of them.
    for (const auto& [ib, counts] : per_infobase)
      for (std::size_t k = 0; k < kKinds.size(); ++k)
        m.push_back({"sessions",
                     static_cast<double>(counts[k]),
                     "",
                     {{"infobase", ib}, {"kind", std::string(kKinds[k])}}});
    for (const auto& [ib, n] : hibernated_per_infobase)
      m.push_back({"sessions_hibernated", static_cast<double>(n), "", {{"infobase", ib}}});
    m.push_back({"sessions_blocked_dbms", static_cast<double>(blocked_dbms), ""});
    m.push_back({"sessions_blocked_ls", static_cast<double>(blocked_ls), ""});
    m.push_back({"longest_lock_wait_seconds", longest_wait.seconds(), "s"});
    m.push_back({"longest_interactive_call_seconds", longest_interactive.seconds(), "s"});
    m.push_back({"longest_background_call_seconds", longest_background.seconds(), "s"});
    const auto licenses_used = static_cast<std::int64_t>(licensed_sessions.size());
    for (const auto& [key, holders] : licenses)
      m.push_back({"licenses",
                   static_cast<double>(holders.size()),
                   "",
                   {{"license_type", key[0]}, {"issued_by", key[1]}, {"series", key[2]}}});
    if (c_.licenses_total > 0)
      m.push_back({"licenses_total", static_cast<double>(c_.licenses_total), ""});
    m.push_back({"workers_running", static_cast<double>(running), ""});
    m.push_back({"workers_enabled", static_cast<double>(enabled), ""});
    if (lowest_perf) m.push_back({"lowest_performance", *lowest_perf, ""});
    m.push_back({"worker_memory_bytes", memory, "bytes"});
    m.push_back({"memory_excess_seconds", excess, "s"});

    Status status = Status::ok;
    std::vector<std::string> problems;
    auto flag = [&](Status s, std::string what) {
      if (s == Status::ok) return;
      status = protocol::worst(status, s);
      problems.push_back(std::move(what));
    };
    // A ras that did not answer while another did: one central server's redundancy is gone.
    for (const auto& ras : unreachable)
      flag(Status::warning, "ras " + ras + " unreachable (another answered)");
    for (const auto& name : c_.infobases)
      if (!seen.contains(name))
        flag(Status::warning, "infobase '" + name + "' not found in the cluster");
    const int blocked = blocked_dbms + blocked_ls;
    flag(threshold_status(blocked, c_.blocked_warning, c_.blocked_critical),
         std::to_string(blocked) + " session" + (blocked == 1 ? "" : "s") +
             " waiting for a lock (dbms " + std::to_string(blocked_dbms) + ", managed " +
             std::to_string(blocked_ls) + ")" +
             (longest_wait.session ? ", the longest " + human_seconds(longest_wait.seconds())
                                   : std::string()));
    if (!dead.empty()) {
      std::string list;
      for (const auto& d : dead) list += (list.empty() ? "" : ", ") + d;
      // Some dead workers leave the cluster short; none running leaves it down.
      flag(running == 0 ? Status::critical : Status::warning,
           std::to_string(dead.size()) + " worker" + (dead.size() == 1 ? "" : "s") +
               " enabled but not running (" + list + ")");
    }
    auto call_text = [](const char* what, const Longest& l) {
      return std::string(what) + " running " +
             format_duration(milliseconds(static_cast<long>(l.seconds() * 1000))) + " (" +
             l.infobase + ", " + l.session->app_id + ", user '" + l.session->user_name +
             "', session " + l.infobase + "/" + std::to_string(l.session->number) + ")";
    };
    if (longest_interactive.session)
      flag(threshold_status(longest_interactive.seconds(), seconds(c_.call_warning),
                            seconds(c_.call_critical)),
           call_text("call", longest_interactive));
    if (longest_background.session && c_.background_warning)
      flag(threshold_status(longest_background.seconds(), seconds(*c_.background_warning),
                            seconds(c_.background_critical.value_or(milliseconds::max()))),
           call_text("background job call", longest_background));
    if (c_.licenses_total > 0) {
      const double share = static_cast<double>(licenses_used) / c_.licenses_total;
      flag(licenses_used >= c_.licenses_total ? Status::critical
           : share >= c_.licenses_warning     ? Status::warning
                                              : Status::ok,
           std::to_string(licenses_used) + " of " + std::to_string(c_.licenses_total) +
               " licences in use");
    }
    if (lowest_perf)
      flag(threshold_status_below(*lowest_perf, c_.performance_warning, c_.performance_critical),
           "worker available performance down to " + human_number(*lowest_perf));
    if (excess > 0)
      flag(excess >= seconds(c_.memory_excess_critical) ? Status::critical : Status::warning,
           "a worker over the memory limit for " +
               format_duration(milliseconds(static_cast<long>(excess * 1000))));

    std::string kinds;
    for (std::size_t k = 0; k < kKinds.size(); ++k)
      if (totals[k] > 0)
        kinds +=
            (kinds.empty() ? "" : ", ") + std::string(kKinds[k]) + " " + std::to_string(totals[k]);
    std::string overview =
        std::to_string(sessions) + " session" + (sessions == 1 ? "" : "s") +
        (kinds.empty() ? "" : " (" + kinds + ")") +
        (hibernated > 0 ? " and " + std::to_string(hibernated) + " hibernated" : "") + " in " +
        std::to_string(per_infobase.size()) + " infobase" + (per_infobase.size() == 1 ? "" : "s") +
        ", " + std::to_string(running) + "/" + std::to_string(enabled) + " workers running, " +
        std::to_string(licenses_used) + " licence" + (licenses_used == 1 ? "" : "s") +
        (c_.licenses_total > 0 ? " of " + std::to_string(c_.licenses_total) : "") + " in use";
    if (clusters.size() > 1) overview = std::to_string(clusters.size()) + " clusters: " + overview;
    std::string summary;
    for (const auto& p : problems) summary += p + "; ";
    r.status = status;
    r.summary = summary + overview;
    return r;
  }

  static double seconds(milliseconds d) { return static_cast<double>(d.count()) / 1000; }

  Config c_;
  std::weak_ptr<BlockingCall<Survey>> last_;
};

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  c.rac = o.string("rac");
  if (c.rac.empty()) o.error("rac", "must not be empty");
  const YAML::Node ras = o.has("ras") ? o.yaml("ras") : YAML::Node("localhost:1545");
  if (ras.IsScalar()) {
    c.ras.push_back(ras.Scalar());
  } else if (ras.IsSequence()) {
    for (const auto& n : ras) c.ras.push_back(n.IsScalar() ? n.Scalar() : "");
  }
  if (c.ras.empty()) o.error("ras", "expected host:port, e.g. localhost:1545, or a list of them");
  for (const auto& address : c.ras) {
    std::string why;
    if (address.empty())
      o.error("ras", "expected host:port, e.g. localhost:1545");
    else if (!parse_host_port(address, "1545", why))
      o.error("ras", why);
  }
  c.cluster = o.string("cluster");
  c.cluster_user = o.string("cluster_user");
  c.password_env = o.string("cluster_password_env");
  if (!c.password_env.empty() && c.cluster_user.empty())
    o.error("cluster_password_env", "needs cluster_user too");
  if (c.password_env.find('=') != std::string::npos)
    o.error("cluster_password_env", "the NAME of an environment variable, not the password itself");
  c.blocked_warning = static_cast<double>(o.integer("blocked_warning"));
  c.blocked_critical = static_cast<double>(o.integer("blocked_critical"));
  if (c.blocked_warning < 1) o.error("blocked_warning", "must be at least 1");
  if (c.blocked_critical < c.blocked_warning)
    o.error("blocked_critical", "must not be below blocked_warning");
  c.call_warning = o.duration("call_warning");
  c.call_critical = o.duration("call_critical");
  if (c.call_critical < c.call_warning) o.error("call_critical", "must not be below call_warning");
  c.performance_warning = o.number("performance_warning");
  c.performance_critical = o.number("performance_critical");
  if (c.performance_critical > c.performance_warning)
    o.error("performance_critical", "must not be above performance_warning");
  c.memory_excess_critical = o.duration("memory_excess_critical");
  if (o.has("background_call_warning"))
    c.background_warning = o.duration("background_call_warning");
  if (o.has("background_call_critical")) {
    c.background_critical = o.duration("background_call_critical");
    if (!c.background_warning)
      o.error("background_call_critical", "needs background_call_warning too");
    else if (*c.background_critical < *c.background_warning)
      o.error("background_call_critical", "must not be below background_call_warning");
  }
  c.licenses_total = o.integer("licenses_total");
  if (c.licenses_total < 0) o.error("licenses_total", "must not be negative");
  c.licenses_warning = o.number("licenses_warning");
  if (c.licenses_warning <= 0 || c.licenses_warning > 1)
    o.error("licenses_warning", "expected a share above 0 and at most 1, e.g. 0.9");
  if (o.has("infobases")) {
    const YAML::Node list = o.yaml("infobases");
    if (!list.IsSequence()) {
      o.error("infobases", "expected a list of infobase names, e.g. [acc, hrm]");
    } else {
      for (const auto& n : list) {
        if (!n.IsScalar() || n.Scalar().empty()) {
          o.error("infobases", "expected a list of infobase names, e.g. [acc, hrm]");
          break;
        }
        c.infobases.push_back(n.Scalar());
      }
    }
  }
  return std::make_unique<BasProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  // rac's cluster list alone can take seconds on a loaded server: the community's 10 s.
  return {"bas",
          "a BAS / 1C:Enterprise server cluster through rac: sessions, licences, lock waits, "
          "workers",
          kOptions, &make, std::chrono::seconds(10)};
}

}  // namespace dozor::probes::bas
