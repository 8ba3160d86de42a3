#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "bas/rac_output.h"
#include "probe_runner.h"

namespace dozor::probes {
namespace {

namespace fs = std::filesystem;
using namespace probe_testing;
using bas::parse_rac_output;

// No 1C:Enterprise server cluster can run here, so the probe talks to a fake `rac`
// (tests/probes/bas/fake_rac.sh) that answers from captured-format files in
// tests/probes/bas/testdata/<case>/.
const fs::path kBasDir = fs::path(DOZOR_SOURCE_DIR) / "tests/probes/bas";
constexpr const char* kPasswordVar = "DOZOR_TEST_BAS_PASSWORD";
const std::string kPassword = "s3cret-Пароль";

/// A temporary folder holding an executable `rac` that answers as testdata/<case> says and logs
/// its arguments; removed with the object.
class FakeRac {
 public:
  explicit FakeRac(const std::string& test_case) {
    dir_ =
        fs::temp_directory_path() / ("dozor-bas-" + std::to_string(::getpid()) + "-" + test_case);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(path()) << "#!/bin/sh\nexec /bin/sh '" << (kBasDir / "fake_rac.sh").string()
                          << "' '" << (kBasDir / "testdata" / test_case).string() << "' '"
                          << log().string() << "' \"$@\"\n";
    fs::permissions(path(), fs::perms::owner_all);
  }
  ~FakeRac() { fs::remove_all(dir_); }
  FakeRac(const FakeRac&) = delete;
  FakeRac& operator=(const FakeRac&) = delete;

  fs::path dir() const { return dir_; }
  fs::path path() const { return dir_ / "rac"; }
  fs::path log() const { return dir_ / "calls.log"; }
  /// Each call's arguments, tab-separated, one line per call.
  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    std::ifstream in(log());
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  /// Probe YAML using this rac, with `extra` keys.
  std::string yaml(const std::string& extra = "") const {
    return "{ name: erp, type: bas, timeout: 10s, rac: '" + path().string() + "'" +
           (extra.empty() ? "" : ", " + extra) + " }";
  }

 private:
  fs::path dir_;
};

/// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void expect_metric(const Result& r, std::string_view name, double value) {
  const auto v = metric(r, name);
  ASSERT_TRUE(v) << name << " missing: " << to_text(r);
  EXPECT_DOUBLE_EQ(*v, value) << name;
}

// The value of `name` with exactly `labels`.
std::optional<double> labelled(const Result& r, std::string_view name,
                               const std::map<std::string, std::string>& labels) {
  for (const auto& m : r.metrics)
    if (m.name == name && m.labels == labels) return m.value;
  return std::nullopt;
}

void expect_sessions(const Result& r, const std::string& infobase, const std::string& kind,
                     double value) {
  const auto v = labelled(r, "sessions", {{"infobase", infobase}, {"kind", kind}});
  ASSERT_TRUE(v) << "sessions{infobase=" << infobase << ",kind=" << kind
                 << "} missing: " << to_text(r);
  EXPECT_DOUBLE_EQ(*v, value) << infobase << " " << kind;
}

// The sum of every series of `name`, as Prometheus' sum() would take it.
double sum_of(const Result& r, std::string_view name, const std::string& kind = "") {
  double sum = 0;
  for (const auto& m : r.metrics)
    if (m.name == name && (kind.empty() || m.labels.at("kind") == kind)) sum += m.value;
  return sum;
}

constexpr const char* kCluster = "--cluster=e3a1f5b2-7c44-4d1e-9a0b-1f2e3d4c5b6a";

TEST(BasProbe, HealthyClusterThroughRacOnPath) {
  FakeRac rac("healthy");
  // The default `rac` is looked up on PATH, as on a server where the platform's bin is in it.
  ScopedEnv path("PATH", rac.dir().string() + ":" + ::getenv("PATH"));
  const Result r = run("{ name: erp, type: bas, timeout: 10s }").result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(r.summary,
            "10 sessions (thin 5, thick 1, web 1, background 1, designer 1, other 1) in 3 "
            "infobases, 2/2 workers running, 7 licences in use");
  expect_metric(r, "ras_up", 1);
  expect_metric(r, "clusters", 1);
  EXPECT_DOUBLE_EQ(sum_of(r, "sessions"), 10);
  EXPECT_DOUBLE_EQ(sum_of(r, "sessions", "thin"), 5);
  for (const char* kind : {"thick", "web", "background", "designer", "other"})
    EXPECT_DOUBLE_EQ(sum_of(r, "sessions", kind), 1) << kind;
  expect_sessions(r, "acc", "thin", 3);
  expect_sessions(r, "acc", "designer", 1);
  expect_sessions(r, "acc", "web", 0);
  expect_sessions(r, "zup", "web", 1);
  expect_sessions(r, "trade", "thick", 1);
  expect_sessions(r, "trade", "other", 1);
  EXPECT_EQ(r.metrics.end(), std::find_if(r.metrics.begin(), r.metrics.end(), [](const auto& m) {
              return m.name.find('.') != std::string::npos;
            }));  // nothing glued into a name
  expect_metric(r, "sessions_blocked_dbms", 0);
  expect_metric(r, "sessions_blocked_ls", 0);
  expect_metric(r, "longest_interactive_call_seconds", 0);
  expect_metric(r, "longest_background_call_seconds", 0);
  expect_metric(r, "longest_lock_wait_seconds", 0);
  expect_metric(r, "workers_running", 2);
  expect_metric(r, "workers_enabled", 2);
  expect_metric(r, "lowest_performance", 181);
  expect_metric(r, "worker_memory_bytes", (1281672.0 + 954112.0) * 1024);
  expect_metric(r, "memory_excess_seconds", 0);
  // Licences from session list --licenses, by type, who issued them and series, one per session.
  EXPECT_EQ(labelled(r, "licenses",
                     {{"license_type", "soft"}, {"issued_by", "server"}, {"series", "8100886831"}}),
            4);
  EXPECT_EQ(labelled(r, "licenses",
                     {{"license_type", "HASP"}, {"issued_by", "server"}, {"series", "ORG8A"}}),
            2);
  EXPECT_EQ(labelled(r, "licenses",
                     {{"license_type", "soft"}, {"issued_by", "client"}, {"series", "8100078895"}}),
            1);
  EXPECT_FALSE(metric(r, "licenses_total"));  // none configured
  // Every label is one the collector takes (none shadows its own, such as `type`).
  for (const auto& m : r.metrics)
    for (const auto& [key, value] : m.labels)
      EXPECT_EQ(protocol::label_name_problem(key), "") << m.name << " " << key;
  EXPECT_FALSE(metric(r, "locks"));  // lock list counts connections, not waits: not asked

  // rac [options] host:port mode command: the address first, then what to do.
  const auto calls = rac.calls();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls[0], "localhost:1545\tcluster\tlist");
  EXPECT_EQ(calls[1], std::string("localhost:1545\tinfobase\tsummary\tlist\t") + kCluster);
  EXPECT_EQ(calls[2], std::string("localhost:1545\tsession\tlist\t") + kCluster);
  EXPECT_EQ(calls[3], std::string("localhost:1545\tprocess\tlist\t") + kCluster);
  EXPECT_EQ(calls[4], std::string("localhost:1545\tsession\tlist\t--licenses\t") + kCluster);
}

TEST(BasProbe, InfobaseFilterCountsOnlyThoseAndWarnsOfMissingOnes) {
  FakeRac rac("healthy");
  const Result r = run(rac.yaml("ras: 'srv-1c:1545', infobases: [acc, hrm]")).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_EQ(r.summary,
            "infobase 'hrm' not found in the cluster; 5 sessions (thin 3, background 1, designer "
            "1) in 1 infobase, 2/2 workers running, 7 licences in use");
  EXPECT_DOUBLE_EQ(sum_of(r, "sessions"), 5);
  expect_sessions(r, "acc", "thin", 3);
  EXPECT_FALSE(labelled(r, "sessions", {{"infobase", "zup"}, {"kind", "thin"}}));
  EXPECT_EQ(rac.calls().at(0), "srv-1c:1545\tcluster\tlist");
}

// Session fault tolerance with two central servers lists every session twice (and its licence
// too); two sessions asleep; a background job in a call for an hour, a client for 45 s. CRLF, and
// the licence blocks of a platform build that adds started-at and last-active-at.
TEST(BasProbe, SessionsByUuidHibernatedApartInteractiveAndBackgroundCallsJudgedApart) {
  FakeRac rac("fault_tolerant");
  const Result r = run(rac.yaml("licenses_total: 7, background_call_warning: 30m, "
                                "background_call_critical: 2h"))
                       .result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary,
            "call running 45s (acc, 1CV8C, user 'Иванова О.П.', session acc/1); background job "
            "call running 1h (acc, BackgroundJob, user 'Администратор', session acc/4); 7 of 7 "
            "licences in use; 8 sessions (thin 3, thick 1, web 1, background 1, designer 1, "
            "other 1) and 2 hibernated in 3 infobases, 2/2 workers running, 7 licences of 7 in "
            "use");
  EXPECT_DOUBLE_EQ(sum_of(r, "sessions"), 8);
  EXPECT_EQ(labelled(r, "sessions_hibernated", {{"infobase", "zup"}}), 2);
  EXPECT_EQ(labelled(r, "sessions_hibernated", {{"infobase", "acc"}}), 0);
  expect_metric(r, "longest_interactive_call_seconds", 45);
  expect_metric(r, "longest_background_call_seconds", 3600);
  expect_metric(r, "licenses_total", 7);
  EXPECT_EQ(labelled(r, "licenses",
                     {{"license_type", "soft"}, {"issued_by", "server"}, {"series", "8100886831"}}),
            4);  // not 8
  // Without background thresholds, the hour-long job call is reported and not judged.
  const Result quiet = run(rac.yaml()).result;
  EXPECT_EQ(quiet.status, Status::warning) << to_text(quiet);
  EXPECT_EQ(quiet.summary.find("background job call"), std::string::npos) << quiet.summary;
}

// What older platforms and other builds print (open tools' fixtures, their users' issues): two
// clusters with different key sets and 0/1 booleans; sessions without the memory, read, write
// and cpu keys, and "duration current-dbms" with a space; processes without `reserve`, with
// `avg-back-call-time` (old builds only) and a negative average.
TEST(BasProbe, OlderPlatformsAndSeveralClustersRead) {
  FakeRac rac("old_platform");  // the fake answers both clusters alike
  const Result r = run(rac.yaml()).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(r.summary,
            "2 clusters: 20 sessions (thin 10, thick 2, web 2, background 2, designer 2, other "
            "2) in 3 infobases, 4/4 workers running, 14 licences in use");
  expect_metric(r, "clusters", 2);
  expect_sessions(r, "acc", "thin", 6);  // same-named infobases of two clusters add up
}

TEST(BasProbe, ClusterChosenByNameOrUuid) {
  FakeRac rac("healthy");
  EXPECT_EQ(run(rac.yaml("cluster: 'Локальный кластер'")).result.status, Status::ok);
  EXPECT_EQ(run(rac.yaml("cluster: e3a1f5b2-7c44-4d1e-9a0b-1f2e3d4c5b6a")).result.status,
            Status::ok);
  const Result r = run(rac.yaml("cluster: Бухгалтерия")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "cluster 'Бухгалтерия' not found on ras localhost:1545");
  expect_metric(r, "ras_up", 1);
}

TEST(BasProbe, BlockedSessionsAndLongCall) {
  FakeRac rac("blocked");  // captured on Windows: CRLF line ends and a BOM
  Result r = run(rac.yaml()).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary,
            "3 sessions waiting for a lock (dbms 2, managed 1), the longest 42.0s; call running "
            "3m5s (acc, 1CV8C, user 'Сидорова Е.В.', session acc/3); 10 sessions (thin 5, thick 1, "
            "web 1, background "
            "1, designer 1, other 1) in 3 infobases, 2/2 workers running, 7 licences in use");
  expect_metric(r, "sessions_blocked_dbms", 2);
  expect_metric(r, "sessions_blocked_ls", 1);
  expect_metric(r, "longest_interactive_call_seconds", 185);
  expect_metric(r, "longest_lock_wait_seconds", 42);

  // Thresholds: the long call alone is a warning under 10m, the blocked ones critical from 3.
  r = run(rac.yaml("call_critical: 10m")).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  r = run(rac.yaml("call_critical: 10m, blocked_critical: 3")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  r = run(rac.yaml("call_warning: 5m, call_critical: 10m, blocked_warning: 4, blocked_critical: 9"))
          .result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
}

TEST(BasProbe, DeadWorkerLowPerformanceMemoryExcess) {
  FakeRac rac("dead_worker");
  Result r = run(rac.yaml()).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_EQ(r.summary,
            "1 worker enabled but not running (srv-1c:1561 pid 3201); worker available "
            "performance down to 70; a worker over the memory limit for 20s; 10 sessions (thin "
            "5, thick 1, web 1, background 1, designer 1, other 1) in 3 infobases, 1/2 workers "
            "running, 7 licences in use");
  expect_metric(r, "workers_running", 1);
  expect_metric(r, "workers_enabled", 2);
  expect_metric(r, "lowest_performance", 70);
  expect_metric(r, "memory_excess_seconds", 20);
  expect_metric(r, "worker_memory_bytes", 1281672.0 * 1024);

  r = run(rac.yaml("memory_excess_critical: 15s")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  r = run(rac.yaml("performance_warning: 75, performance_critical: 70")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
}

TEST(BasProbe, RasDownIsCritical) {
  FakeRac rac("ras_down");
  const Result r = run(rac.yaml()).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "ras localhost:1545 unreachable: Connection refused");
  expect_metric(r, "ras_up", 0);
  EXPECT_EQ(rac.calls().size(), 1u);
}

// rac's texts when ras answers and the cluster manager behind it does not, and the short header
// some builds print when ras itself is unreachable.
TEST(BasProbe, ClusterManagerDownIsToldApartFromRasDown) {
  {
    FakeRac rac("manager_down");
    const Result r = run(rac.yaml()).result;
    EXPECT_EQ(r.status, Status::critical) << to_text(r);
    EXPECT_EQ(r.summary,
              "ras localhost:1545 answers, the cluster manager behind it does not: нет ответа от "
              "tcp://srv-1c:1541");
    expect_metric(r, "ras_up", 1);
    expect_metric(r, "cluster_manager_up", 0);
  }
  {
    FakeRac rac("ras_no_route");
    const Result r = run(rac.yaml()).result;
    EXPECT_EQ(r.summary, "ras localhost:1545 unreachable: 113: No route to host") << to_text(r);
    expect_metric(r, "ras_up", 0);
    EXPECT_FALSE(metric(r, "cluster_manager_up"));
  }
  FakeRac rac("healthy");
  expect_metric(run(rac.yaml()).result, "cluster_manager_up", 1);
}

// Two central servers, a ras on each: the first down, the second answers for the cluster.
TEST(BasProbe, SeveralRasAreAskedInOrderUntilOneAnswers) {
  FakeRac rac("failover");
  Result r = run(rac.yaml("ras: [srv-a:1545, srv-b:1545]")).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("ras srv-a:1545 unreachable (another answered); 10 sessions"))
      << r.summary;
  expect_metric(r, "ras_up", 1);
  const auto calls = rac.calls();
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls[0], "srv-a:1545\tcluster\tlist");
  EXPECT_EQ(calls[1], "srv-b:1545\tcluster\tlist");
  r = run(rac.yaml("ras: [srv-a:1545, srv-c:1545]")).result;  // both down
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary,
            "ras srv-a:1545 unreachable; ras srv-c:1545 unreachable: Connection refused");
  expect_metric(r, "ras_up", 0);
}

// A server running ras with no cluster prints nothing for `cluster list`; an English platform
// refuses a user without rights in its own words.
TEST(BasProbe, NoClusterAndEnglishRefusalsAreNamed) {
  FakeRac none("no_cluster");
  Result r = run(none.yaml()).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "ras localhost:1545 lists no cluster");
  FakeRac rights("english_rights");
  r = run(rights.yaml("cluster_user: viewer")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary,
            "cluster administrator credentials refused for user 'viewer': Insufficient user "
            "rights to manage the cluster");
  expect_metric(r, "ras_up", 1);
}

TEST(BasProbe, WrongCredentialsAndThePasswordNeverShows) {
  FakeRac rac("wrong_credentials");
  const std::string auth =
      "cluster_user: admin, cluster_password_env: " + std::string(kPasswordVar);
  {
    ScopedEnv pwd(kPasswordVar, "wrong-pass");
    const Result r = run(rac.yaml(auth)).result;
    EXPECT_EQ(r.status, Status::critical) << to_text(r);
    EXPECT_EQ(r.summary,
              "cluster administrator credentials refused for user 'admin': Администратор "
              "кластера не аутентифицирован");
    expect_metric(r, "ras_up", 1);
    EXPECT_EQ(r.summary.find("wrong-pass"), std::string::npos);
  }
  {
    ScopedEnv pwd(kPasswordVar, kPassword);
    const Result r = run(rac.yaml(auth)).result;
    EXPECT_EQ(r.status, Status::ok) << to_text(r);
    EXPECT_EQ(r.summary.find(kPassword), std::string::npos);
    const auto calls = rac.calls();
    ASSERT_GE(calls.size(), 3u);
    EXPECT_NE(calls.back().find("\t--cluster-user=admin\t--cluster-pwd=" + kPassword),
              std::string::npos)
        << calls.back();
  }
  // Without the variable the probe cannot log in, and says which variable it missed.
  ::unsetenv(kPasswordVar);
  const Result r = run(rac.yaml(auth)).result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, std::string("environment variable ") + kPasswordVar +
                           " (cluster_password_env) is not set");
}

TEST(BasProbe, PasswordEchoedByRacIsMasked) {
  FakeRac rac("rejects_args");
  ScopedEnv pwd(kPasswordVar, kPassword);
  const Result r =
      run(rac.yaml("cluster_user: admin, cluster_password_env: " + std::string(kPasswordVar)))
          .result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(
      r.summary.starts_with("rac process list failed, exit code 255: Ошибка разбора "
                            "параметра: localhost:1545 process list"))
      << r.summary;
  EXPECT_EQ(r.summary.find(kPassword), std::string::npos) << r.summary;
  EXPECT_NE(r.summary.find("--cluster-pwd=***"), std::string::npos) << r.summary;
}

TEST(BasProbe, GarbageOutputIsUnknown) {
  FakeRac rac("garbage");
  const Result r = run(rac.yaml()).result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary,
            "rac session list printed unreadable output: line 1: expected 'key : value', got "
            "'1C:Enterprise 8.3 (x86-64) (8.3.24.1467) Remote Administrati'");
}

TEST(BasProbe, HungRacIsKilledAtTheTimeout) {
  FakeRac rac("timeout");  // cluster list sleeps 30s
  const auto run_ = run("{ name: erp, type: bas, timeout: 1s, interval: 10s, rac: '" +
                        rac.path().string() + "' }");
  EXPECT_EQ(run_.result.status, Status::critical) << to_text(run_.result);
  EXPECT_EQ(run_.result.summary,
            "rac cluster list did not finish within the probe's timeout of 1s");
  EXPECT_LT(run_.seconds, 1.0 + 2.0);  // killed at the timeout, not left to its 30 s
  expect_metric(run_.result, "ras_up", 0);
}

TEST(BasProbe, MissingRacIsUnknown) {
  const Result r = run("{ name: erp, type: bas, rac: /nonexistent/rac }").result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "cannot run /nonexistent/rac: /nonexistent/rac: No such file or directory");
}

TEST(BasProbe, SampleConfigAndPlan) {
  const YAML::Node sample =
      YAML::LoadFile((fs::path(DOZOR_SOURCE_DIR) / "probes/bas/sample.yaml").string());
  std::vector<ConfigError> errors;
  std::vector<ProbeSpec> specs;
  for (std::size_t i = 0; i < sample["probes"].size(); ++i)
    if (auto spec = read_probe(sample["probes"][i], "sample.yaml",
                               "probes[" + std::to_string(i) + "]", errors))
      specs.push_back(*spec);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  ASSERT_EQ(specs.size(), 2u);
  // The plan names the variable, never its value.
  ScopedEnv pwd("RAC_PASSWORD", kPassword);
  const std::string plan = specs[1].probe->plan();
  EXPECT_NE(plan.find("--cluster-pwd=$RAC_PASSWORD"), std::string::npos) << plan;
  EXPECT_EQ(plan.find(kPassword), std::string::npos) << plan;
}

TEST(BasProbe, ConfigErrors) {
  auto one = [](const std::string& yaml) {
    const auto errors = config_errors(yaml);
    EXPECT_EQ(errors.size(), 1u) << yaml;
    return errors.empty() ? std::string() : errors[0];
  };
  EXPECT_NE(one("{ name: b, type: bas, cluster_password_env: RAC_PWD }")
                .find("probes[0].cluster_password_env: needs cluster_user too"),
            std::string::npos);
  EXPECT_NE(one("{ name: b, type: bas, ras: 'srv:99999' }")
                .find("probes[0].ras: port must be 1-65535, got '99999'"),
            std::string::npos);
  EXPECT_NE(one("{ name: b, type: bas, infobases: acc }")
                .find("probes[0].infobases: expected a list of infobase names"),
            std::string::npos);
  EXPECT_NE(one("{ name: b, type: bas, call_warning: 5m, call_critical: 1m }")
                .find("probes[0].call_critical: must not be below call_warning"),
            std::string::npos);
  EXPECT_NE(one("{ name: b, type: bas, cluster_user: a, cluster_password_env: 'PWD=x' }")
                .find("probes[0].cluster_password_env: the NAME of an environment variable"),
            std::string::npos);
}

// The parser on its own.

TEST(RacOutput, BlocksFieldsAndQuotes) {
  const auto out = parse_rac_output(
      "\xEF\xBB\xBF"
      "cluster                       : e3a1f5b2-7c44-4d1e-9a0b-1f2e3d4c5b6a\r\n"
      "name                          : \"Локальный кластер\"   \r\n"
      "restart-schedule              :\r\n"
      "\r\n"
      "\r\n"
      "infobase : 1\n"
      "descr    : \"Склад \\\"Центр\\\", C:\\base\n"
      "  вторая строка\"\n"
      "duration current-dbms : 0\n");
  ASSERT_TRUE(out.ok()) << out.error;
  ASSERT_EQ(out.blocks.size(), 2u);
  ASSERT_EQ(out.blocks[0].fields.size(), 3u);
  EXPECT_EQ(*out.blocks[0].find("name"), "Локальный кластер");
  EXPECT_TRUE(out.blocks[0].fields[1].quoted);
  EXPECT_EQ(*out.blocks[0].find("restart-schedule"), "");
  EXPECT_EQ(*out.blocks[1].find("descr"), "Склад \"Центр\", C:\\base\n  вторая строка");
  EXPECT_EQ(*out.blocks[1].find("duration current-dbms"), "0");
  EXPECT_EQ(out.blocks[1].find("nothing"), nullptr);
  EXPECT_TRUE(parse_rac_output("").ok());
  EXPECT_TRUE(parse_rac_output("\n\r\n").blocks.empty());

  const auto again = parse_rac_output(bas::format_rac_output(out.blocks));
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.blocks, out.blocks);
}

TEST(RacOutput, RejectsGarbage) {
  EXPECT_EQ(parse_rac_output("session : 1\nno separator here\n").error,
            "line 2: expected 'key : value', got 'no separator here'");
  EXPECT_EQ(parse_rac_output("http://host:1545\n").error,
            "line 1: expected 'key : value', got 'http://host:1545'");
  EXPECT_EQ(parse_rac_output("Ошибка разбора параметра: --port\n").error,
            "line 1: expected 'key : value', got 'Ошибка разбора параметра: --port'");
  EXPECT_EQ(parse_rac_output("a : 1\ndescr : \"never closed\nb : 2\n").error,
            "line 2: quoted value of 'descr' has no closing quote");
  EXPECT_TRUE(parse_rac_output("a : 1\nb\x01 : 2\n").blocks.empty());
}

TEST(RacOutput, TypedProcessesAndErrors) {
  std::vector<bas::RacProcess> ps;
  auto out = parse_rac_output(
      "process : p1\nhost : srv\nport : 1560\npid : 77\nis-enable : yes\nrunning : no\n"
      "memory-size : 2\navg-call-time : 9.99E-05\nmemory-excess-time : 3\n\nprocess : p2\n");
  ASSERT_EQ(bas::read_processes(out, ps), "");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].pid, 77);
  EXPECT_TRUE(ps[0].enabled);
  EXPECT_FALSE(ps[0].running);
  EXPECT_DOUBLE_EQ(ps[0].memory_bytes, 2048);
  EXPECT_DOUBLE_EQ(ps[0].avg_call_seconds, 9.99e-05);
  EXPECT_DOUBLE_EQ(ps[0].memory_excess_seconds, 3);
  EXPECT_FALSE(ps[0].available_performance);

  out = parse_rac_output("process : p1\n\nprocess : p2\npid : 12a\n");
  EXPECT_EQ(bas::read_processes(out, ps), "process 2: pid: expected an integer, got '12a'");
  EXPECT_TRUE(ps.empty());
  out = parse_rac_output("process : p1\nrunning : maybe\n");
  EXPECT_EQ(bas::read_processes(out, ps), "process 1: running: expected yes or no, got 'maybe'");
  std::vector<bas::RacSession> ss;
  out = parse_rac_output("infobase : x\n");
  EXPECT_EQ(bas::read_sessions(out, ss), "session 1: session: missing");
  out = parse_rac_output("session : s\nduration-current : 1500\nblocked-by-ls : 4\n");
  ASSERT_EQ(bas::read_sessions(out, ss), "");
  EXPECT_DOUBLE_EQ(ss[0].call_seconds, 1.5);
  EXPECT_EQ(ss[0].blocked_by_ls, 4);
}

}  // namespace
}  // namespace dozor::probes
