#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "probe_runner.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;
namespace fs = std::filesystem;

constexpr const char* kPasswordEnv = "DOZOR_TEST_PG_PASSWORD";
constexpr const char* kWrongPasswordEnv = "DOZOR_TEST_PG_WRONG_PASSWORD";
constexpr const char* kPassword = "monitor-Secret-4711";
constexpr const char* kWrongPassword = "not-the-Password-0815";

/// A port nothing listens on right now (bound to 0, then closed).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Debian's server binaries, newest major version first; empty when postgresql is not installed.
fs::path server_bin_dir() {
  fs::path best;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec))
    if (fs::exists(e.path() / "bin" / "initdb") && e.path() > best) best = e.path();
  return best.empty() ? best : best / "bin";
}

/// A throwaway PostgreSQL cluster on 127.0.0.1: superuser `dozor` (trust on its unix socket in
/// the temp dir), and the role the probe uses, `monitor`, in pg_monitor, with a password that
/// pg_hba checks by scram-sha-256 over TCP. With `primary`, a streaming standby of it instead
/// (pg_basebackup -R). PostgreSQL refuses to run as root, so as root (CI, containers) it runs as
/// the `postgres` system user the package creates.
class PgCluster {
 public:
  explicit PgCluster(const PgCluster* primary = nullptr) {
    bin_ = server_bin_dir();
    if (bin_.empty()) {
      problem_ = "no /usr/lib/postgresql/*/bin/initdb; install postgresql (scripts/setup --test)";
      return;
    }
    char tmpl[] = "/tmp/dozor-pg-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    { std::ofstream(dir_ / "pw") << "dozor-super\n"; }
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (!pw) {
        problem_ = "running as root and there is no postgres user to run the server as";
        return;
      }
      as_ = "runuser -u postgres -- ";
      for (const auto& p : {dir_, dir_ / "pw"})
        if (::chown(p.c_str(), pw->pw_uid, pw->pw_gid) != 0) problem_ = "chown " + p.string();
    }
    if (!problem_.empty()) return;
    if (primary) {
      standby_ = true;
      if (!shell((bin_ / "pg_basebackup").string() + " -D " + (dir_ / "data").string() +
                     " -R -N -c fast -h " + primary->dir_.string() + " -p " +
                     std::to_string(primary->port_) + " -U dozor",
                 dir_ / "basebackup.log"))
        return;
      port_ = free_port();
      start();
      return;  // the roles come with the copy
    }
    if (!shell((bin_ / "initdb").string() + " -D " + (dir_ / "data").string() +
                   " -U dozor --pwfile=" + (dir_ / "pw").string() +
                   " --auth-local=trust --auth-host=scram-sha-256 -N -E UTF8 --locale=C",
               dir_ / "initdb.log"))
      return;
    port_ = free_port();
    if (!start()) return;
    const std::string ok = exec_as_superuser("CREATE ROLE monitor LOGIN PASSWORD '" +
                                             std::string(kPassword) + "' IN ROLE pg_monitor");
    if (!ok.empty()) problem_ = "CREATE ROLE: " + ok;
  }

  ~PgCluster() {
    if (started_) stop(standby_ ? "fast" : "immediate");
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  bool start() {
    started_ = shell((bin_ / "pg_ctl").string() + " -D " + (dir_ / "data").string() + " -l " +
                         (dir_ / "server.log").string() + " -w -t 15 -o '-c listen_addresses=" +
                         "127.0.0.1 -c port=" + std::to_string(port_) +
                         " -c unix_socket_directories=" + dir_.string() + " -c fsync=off' start",
                     dir_ / "pg_ctl.log");
    if (!started_) problem_ += "\n" + read_text(dir_ / "server.log");
    return started_;
  }

  bool stop(const char* mode) {
    started_ = !shell(
        (bin_ / "pg_ctl").string() + " -D " + (dir_ / "data").string() + " -m " + mode + " -w stop",
        dir_ / "pg_ctl.log");
    return !started_;
  }

  /// Over the unix socket, as the superuser.
  std::string superuser_conninfo() const {
    return "host=" + dir_.string() + " port=" + std::to_string(port_) +
           " dbname=postgres user=dozor";
  }
  /// Over TCP, as the monitoring role; the password comes from password_env.
  std::string monitor_conninfo() const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres user=monitor";
  }
  int port() const { return port_; }
  const std::string& problem() const { return problem_; }

  /// Runs one statement as the superuser; libpq's or the server's message when it fails.
  std::string exec_as_superuser(const std::string& sql) const {
    PGconn* conn = PQconnectdb(superuser_conninfo().c_str());
    std::string error;
    if (PQstatus(conn) != CONNECTION_OK) {
      error = PQerrorMessage(conn);
    } else {
      PGresult* r = PQexec(conn, sql.c_str());
      if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(conn);
    return error;
  }

 private:
  bool shell(const std::string& command, const fs::path& log) {
    if (std::system((as_ + command + " >" + log.string() + " 2>&1").c_str()) == 0) return true;
    problem_ = command + " failed:\n" + read_text(log);
    return false;
  }

  fs::path bin_;
  fs::path dir_;
  std::string as_;  // the command prefix that drops root
  // An immediate stop makes a standby's walreceiver linger until the postmaster kills it 5 s
  // later; a fast stop of a standby has nothing to flush.
  bool standby_ = false;
  int port_ = 0;
  bool started_ = false;
  std::string problem_;
};

class PostgresProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::setenv(kPasswordEnv, kPassword, 1);
    ::setenv(kWrongPasswordEnv, kWrongPassword, 1);
    cluster_ = new PgCluster();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(cluster_->problem().empty()) << cluster_->problem(); }

  /// A probe of the test cluster as `monitor`; `extra` adds keys to the YAML mapping.
  static std::string probe_yaml(const std::string& extra = "",
                                const char* password_env = kPasswordEnv,
                                const PgCluster* cluster = cluster_) {
    return "{ name: erp-db, type: postgres, timeout: 5s, conninfo: '" +
           cluster->monitor_conninfo() + "', password_env: " + password_env +
           (extra.empty() ? "" : ", " + extra) + " }";
  }

  static PgCluster* cluster_;
};
PgCluster* PostgresProbeTest::cluster_ = nullptr;

TEST_F(PostgresProbeTest, HealthyServerIsOkWithMetrics) {
  const ProbeRun run_ = run(probe_yaml());
  const Result& r = run_.result;
  ASSERT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("postgres: select ")) << r.summary;
  EXPECT_NE(r.summary.find(" connections ("), std::string::npos) << r.summary;
  EXPECT_NE(r.summary.find("transaction"), std::string::npos) << r.summary;

  const auto select = metric(r, "select_seconds");
  ASSERT_TRUE(select) << to_text(r);
  EXPECT_GT(*select, 0.0);
  EXPECT_LT(*select, run_.seconds);
  // A fresh cluster's postgres database is several MiB; far below a GiB.
  EXPECT_GT(*metric(r, "database_bytes"), 1e6);
  EXPECT_LT(*metric(r, "database_bytes"), 1e9);
  EXPECT_GE(*metric(r, "connections"), 1.0);        // the probe's own
  EXPECT_EQ(*metric(r, "max_connections"), 100.0);  // initdb's default
  EXPECT_NEAR(*metric(r, "connections_percent"), *metric(r, "connections"), 1e-9);
  EXPECT_GE(*metric(r, "oldest_transaction_seconds"), 0.0);
  EXPECT_LT(*metric(r, "oldest_transaction_seconds"), 60.0);
  EXPECT_EQ(*metric(r, "in_recovery"), 0.0);
  EXPECT_FALSE(metric(r, "replication_lag_seconds")) << "a primary has no replay lag";
  EXPECT_FALSE(metric(r, "value")) << "no query configured";
}

TEST_F(PostgresProbeTest, WrongPasswordIsCriticalWithoutThePassword) {
  const Result r = run(probe_yaml("", kWrongPasswordEnv)).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("cannot connect: ")) << r.summary;
  EXPECT_NE(r.summary.find("password authentication failed for user \"monitor\""),
            std::string::npos)
      << r.summary;
  EXPECT_EQ(r.summary.find(kWrongPassword), std::string::npos) << r.summary;
  EXPECT_EQ(r.summary.find('\n'), std::string::npos) << r.summary;
  EXPECT_TRUE(r.metrics.empty());
}

// The probe's defaults (gssencmode=disable, client_encoding) give way to conninfo's own keys.
TEST_F(PostgresProbeTest, ConninfoOverridesTheProbesDefaults) {
  const std::string yaml = "{ name: erp-db, type: postgres, timeout: 5s, conninfo: '" +
                           cluster_->monitor_conninfo() +
                           " gssencmode=require', password_env: " + kPasswordEnv + " }";
  const Result r = run(yaml).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  // No Kerberos here: libpq cannot do what conninfo asked for.
  EXPECT_NE(r.summary.find("GSSAPI encryption required"), std::string::npos) << r.summary;
}

TEST_F(PostgresProbeTest, QueryValueThresholds) {
  Result r = run(probe_yaml("query: 'SELECT 42', warning: 40, critical: 50")).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_EQ(metric(r, "value"), 42.0);
  EXPECT_TRUE(r.summary.starts_with("postgres: value 42 (warning at 40), select ")) << r.summary;

  r = run(probe_yaml("query: 'SELECT 42', warning: 40, critical: 42")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("value 42 (critical at 42)"), std::string::npos) << r.summary;

  r = run(probe_yaml("query: 'SELECT 42', warning: 50, critical: 10, direction: below")).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);

  r = run(probe_yaml("query: 'SELECT count(*) FROM pg_class', warning: 1e9")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_GT(*metric(r, "value"), 10.0);
}

TEST_F(PostgresProbeTest, FailingQueryIsCritical) {
  Result r = run(probe_yaml("query: 'SELECT no_such_column'")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "query failed: column \"no_such_column\" does not exist");

  r = run(probe_yaml("query: \"SELECT 'many'\"")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "query returned 'many', not a number");

  // 1C keeps Cyrillic text; a cut summary must stay valid UTF-8 for the JSON report.
  r = run(probe_yaml("query: \"SELECT 'a' || repeat('ж', 30)\"")).result;
  std::string cut = "a";
  for (int i = 0; i < 19; ++i) cut += "ж";  // 39 bytes: the 20th would end past byte 40
  EXPECT_EQ(r.summary, "query returned '" + cut + "...', not a number");

  r = run(probe_yaml("query: 'SELECT 1 WHERE false'")).result;
  EXPECT_EQ(r.summary, "query returned no rows");
}

TEST_F(PostgresProbeTest, LongOpenTransactionWarns) {
  // Another client holds a transaction open (idle in transaction), as a stuck 1C session would.
  PGconn* holder = PQconnectdb(cluster_->superuser_conninfo().c_str());
  ASSERT_EQ(PQstatus(holder), CONNECTION_OK) << PQerrorMessage(holder);
  for (const char* sql : {"BEGIN", "SELECT txid_current()"}) PQclear(PQexec(holder, sql));

  const std::string yaml =
      probe_yaml("transaction_age_warning: 300ms, transaction_age_critical: 1h");
  Result r;
  // Poll until the transaction is older than the threshold.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    r = run(yaml).result;
  } while (r.status == Status::ok && std::chrono::steady_clock::now() < until);
  PQfinish(holder);

  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("postgres: oldest transaction ")) << r.summary;
  EXPECT_NE(r.summary.find("(warning at 300 ms)"), std::string::npos) << r.summary;
  EXPECT_GE(*metric(r, "oldest_transaction_seconds"), 0.3);
  EXPECT_LT(*metric(r, "oldest_transaction_seconds"), 10.0);
}

TEST_F(PostgresProbeTest, StoppedServerIsCritical) {
  ASSERT_TRUE(cluster_->stop("fast")) << cluster_->problem();
  const Result r = run(probe_yaml()).result;
  const bool restarted = cluster_->start();
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "cannot connect: connection to server at \"127.0.0.1\", port " +
                           std::to_string(cluster_->port()) + " failed: Connection refused");
  EXPECT_TRUE(restarted) << cluster_->problem();
}

TEST_F(PostgresProbeTest, StandbyReportsReplayLag) {
  const PgCluster standby(cluster_);
  ASSERT_TRUE(standby.problem().empty()) << standby.problem();
  const std::string yaml = probe_yaml("lag_warning: 1ms, lag_critical: 1h", kPasswordEnv, &standby);
  // A standby has no replay timestamp until it replays a commit made after the copy.
  ASSERT_EQ(cluster_->exec_as_superuser("CREATE TABLE IF NOT EXISTS replicated (id int)"), "");
  Result r;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    r = run(yaml).result;
  } while (!metric(r, "replication_lag_seconds") && std::chrono::steady_clock::now() < until);

  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("postgres: standby, replay lag ")) << r.summary;
  EXPECT_EQ(metric(r, "in_recovery"), 1.0);
  ASSERT_TRUE(metric(r, "replication_lag_seconds")) << to_text(r);
  EXPECT_GE(*metric(r, "replication_lag_seconds"), 0.0);
  EXPECT_LT(*metric(r, "replication_lag_seconds"), 10.0);
}

// The cases below need no server.

TEST(PostgresProbe, SilentPeerTimesOut) {
  // A listening socket that never accepts: the kernel completes the TCP handshake from the
  // backlog, and then nothing ever answers libpq's startup packet.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string port = std::to_string(ntohs(a.sin_port));

  const ProbeRun run_ =
      run("{ name: db, type: postgres, timeout: 1s, conninfo: 'host=127.0.0.1 "
          "port=" +
          port + " dbname=erp user=dozor' }");
  ::close(fd);
  EXPECT_EQ(run_.result.status, Status::critical) << to_text(run_.result);
  EXPECT_EQ(run_.result.summary, "timed out after 1s connecting to 127.0.0.1:" + port);
  EXPECT_GE(run_.seconds, 0.8);
  EXPECT_LT(run_.seconds, 1.0 + 2.0);  // given up at the timeout, not at libpq's own
}

TEST(PostgresProbe, UnsetPasswordVariableIsUnknown) {
  const Result r = run("{ name: db, type: postgres, conninfo: 'host=127.0.0.1 dbname=erp', "
                       "password_env: DOZOR_TEST_PG_NOT_SET }")
                       .result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "environment variable DOZOR_TEST_PG_NOT_SET is not set");
}

TEST(PostgresProbe, ConfigErrors) {
  auto one_error = [](const std::string& options) {
    const auto errors = config_errors("{ name: db, type: postgres, " + options + " }");
    EXPECT_EQ(errors.size(), 1u) << options;
    return errors.empty() ? std::string() : errors[0];
  };
  std::string e = one_error("conninfo: 'host=db1 dbname=erp user=dozor password=Hunter2'");
  EXPECT_NE(e.find("probes[0].conninfo: must not contain a password"), std::string::npos) << e;
  EXPECT_EQ(e.find("Hunter2"), std::string::npos) << e;
  e = one_error("conninfo: 'postgresql://dozor:Hunter2@db1:5432/erp'");
  EXPECT_NE(e.find("probes[0].conninfo: must not contain a password"), std::string::npos) << e;
  EXPECT_EQ(e.find("Hunter2"), std::string::npos) << e;
  e = one_error("conninfo: 'host=db1 colour=blue'");
  EXPECT_NE(e.find("probes[0].conninfo: invalid connection option \"colour\""), std::string::npos)
      << e;
  e = one_error("conninfo: 'host=db1', warning: 5");
  EXPECT_NE(e.find("probes[0].warning: needs a query"), std::string::npos) << e;
  e = one_error("conninfo: 'host=db1', query: 'SELECT 1', direction: sideways");
  EXPECT_NE(e.find("probes[0].direction: expected above or below"), std::string::npos) << e;
  e = one_error("conninfo: 'host=db1', connections_warning: 120");
  EXPECT_NE(e.find("probes[0].connections_warning: expected a percentage"), std::string::npos) << e;
  e = one_error("conninfo: 'host=db1', size_warning: lots");
  EXPECT_NE(e.find("probes[0].size_warning"), std::string::npos) << e;
  e = one_error("interval: 1m");
  EXPECT_NE(e.find("probes[0].conninfo: missing required key"), std::string::npos) << e;

  EXPECT_TRUE(config_errors("{ name: db, type: postgres, conninfo: 'postgresql://dozor@db1/erp', "
                            "password_env: ERP_PG_PASSWORD, lag_warning: 30s, lag_critical: 5m, "
                            "size_warning: 50GiB, query: 'SELECT 1', critical: 0, "
                            "direction: below }")
                  .empty());
}

TEST(PostgresProbe, SampleConfigIsValid) {
  const YAML::Node sample = YAML::LoadFile(DOZOR_SOURCE_DIR "/probes/postgres/sample.yaml");
  std::vector<ConfigError> errors;
  for (std::size_t i = 0; i < sample["probes"].size(); ++i)
    EXPECT_TRUE(read_probe(sample["probes"][i], "sample.yaml", "probes[" + std::to_string(i) + "]",
                           errors));
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
}

}  // namespace
}  // namespace dozor::probes
