#include "postgres/postgres.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "dozor/protocol/units.h"
#include "postgres/libpq.h"
#include "src/human_units.h"

namespace dozor::probes::postgres {
namespace {

using Clock = std::chrono::steady_clock;

constexpr OptionSpec kOptions[] = {
    {"conninfo", OptionKind::string, "", true,
     "libpq connection string or URI without a password, e.g. "
     "host=127.0.0.1 port=5432 dbname=erp user=dozor"},
    {"password_env", OptionKind::string, "", false,
     "environment variable of the agent that holds the password"},
    {"query", OptionKind::string, "", false,
     "SQL returning one number, checked against warning "
     "and critical"},
    {"warning", OptionKind::number, "", false, "query value at which to warn"},
    {"critical", OptionKind::number, "", false, "query value at which it is critical"},
    {"direction", OptionKind::string, "above", false,
     "above: a value at or above the thresholds is bad; below: at or below"},
    {"connections_warning", OptionKind::number, "80", false,
     "client connections, percent of max_connections, at or above which to warn"},
    {"connections_critical", OptionKind::number, "95", false,
     "client connections, percent of max_connections, critical"},
    {"transaction_age_warning", OptionKind::duration, "10m", false,
     "age of the oldest open transaction at which to warn"},
    {"transaction_age_critical", OptionKind::duration, "1h", false,
     "age of the oldest open transaction at which it is critical"},
    {"lag_warning", OptionKind::duration, "", false,
     "replication lag of a standby at which to warn"},
    {"lag_critical", OptionKind::duration, "", false,
     "replication lag of a standby at which it is critical"},
    {"size_warning", OptionKind::size, "", false, "database size at which to warn, e.g. 50GiB"},
    {"size_critical", OptionKind::size, "", false, "database size at which it is critical"},
};

// One round trip for everything but the latency probe and the operator's query. Our own session
// is left out of the transaction age: its transaction has just begun.
constexpr const char* kStatsSql =
    "SELECT current_database(),"
    " pg_database_size(current_database()),"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
    " current_setting('max_connections'),"
    " (SELECT extract(epoch FROM max(now() - xact_start)) FROM pg_stat_activity"
    "   WHERE state <> 'idle' AND pid <> pg_backend_pid()),"
    " pg_is_in_recovery(),"
    " CASE WHEN pg_is_in_recovery()"
    "   THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END";

struct Config {
  std::string conninfo;
  std::string server;  // host:port from conninfo, for the messages libpq does not write
  std::string password_env;
  std::string query;
  std::optional<double> warning, critical;
  bool below = false;
  double connections_warning = 80, connections_critical = 95;
  double transaction_warning = 600, transaction_critical = 3600;  // seconds
  std::optional<double> lag_warning, lag_critical;                // seconds
  std::optional<double> size_warning, size_critical;              // bytes
};

/// What one session with the server found; `failure` set when it could not finish.
struct Reading {
  std::optional<std::string> failure;
  std::string database;
  double select_seconds = 0;
  double database_bytes = 0;
  double connections = 0;
  double max_connections = 0;
  double oldest_transaction_seconds = 0;
  bool in_recovery = false;
  std::optional<double> replication_lag_seconds;  // none when replay has not started
  std::optional<double> value;
};

std::string first_line(std::string_view text) {
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r' || text.back() == '\t'))
    text.remove_suffix(1);
  return std::string(text);
}

/// At most `max` bytes of `text`, not cutting a UTF-8 sequence in two.
std::string utf8_prefix(const std::string& text, std::size_t max) {
  if (text.size() <= max) return text;
  while (max > 0 && (static_cast<unsigned char>(text[max]) & 0xC0) == 0x80) --max;
  return text.substr(0, max) + "...";
}

std::optional<double> parse_number(const char* text) {
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (*end != '\0' || errno == ERANGE || !std::isfinite(v)) return std::nullopt;
  return v;
}

/// A cell of a result, as a number; nullopt when NULL or not numeric.
std::optional<double> number_at(const PGresult* r, int column) {
  if (pq().PQntuples(r) < 1 || pq().PQnfields(r) <= column || pq().PQgetisnull(r, 0, column))
    return std::nullopt;
  return parse_number(pq().PQgetvalue(r, 0, column));
}

using PgResult = std::unique_ptr<PGresult, decltype(Libpq::PQclear)>;

/// One connection driven through libpq's non-blocking calls, so that every step stops at the
/// deadline (connect_timeout counts whole seconds, at least 2, and covers only the connect). Runs
/// on a pool thread; not thread-safe.
class Session {
 public:
  explicit Session(Clock::time_point deadline) : deadline_(deadline) {}
  ~Session() {
    if (conn_) pq().PQfinish(conn_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  bool connect(const std::string& conninfo, const std::optional<std::string>& password) {
    // conninfo goes in as an expandable dbname; the password after it, so it is never part of
    // a string that could be logged. Defaults before it, so conninfo may override them:
    // client_encoding, as summaries travel as UTF-8 JSON whatever the database's encoding (1C
    // bases in WIN1251); gssencmode, as libpq's "prefer" sets up Kerberos on every connect
    // (0.7 MiB of the agent's memory with 10 postgres probes) for an encryption few sites use.
    // clang-format off
    const char* keys[] =   {"client_encoding", "gssencmode", "dbname",
                            "fallback_application_name", password ? "password" : nullptr,
                            nullptr};
    const char* values[] = {"UTF8",            "disable",    conninfo.c_str(),
                            "dozor-agent",               password ? password->c_str() : nullptr,
                            nullptr};
    // clang-format on
    conn_ = pq().PQconnectStartParams(keys, values, 1);
    if (!conn_) return fail("libpq is out of memory");
    if (pq().PQstatus(conn_) == CONNECTION_BAD) return fail(first_line(pq().PQerrorMessage(conn_)));
    PostgresPollingStatusType state = PGRES_POLLING_WRITING;
    while (state != PGRES_POLLING_OK) {
      if (state == PGRES_POLLING_FAILED) return fail(first_line(pq().PQerrorMessage(conn_)));
      if (!wait(state == PGRES_POLLING_READING ? POLLIN : POLLOUT)) return false;
      state = pq().PQconnectPoll(conn_);
    }
    return true;
  }

  /// The last result of `sql`, or nullptr with error() set.
  PgResult exec(const char* sql) {
    PgResult last(nullptr, pq().PQclear);
    if (!pq().PQsendQuery(conn_, sql)) {
      fail(first_line(pq().PQerrorMessage(conn_)));
      return last;
    }
    // Every result must be read before the connection takes the next query, errors included.
    for (;;) {
      while (pq().PQisBusy(conn_)) {
        if (!wait(POLLIN)) {
          cancel();
          return PgResult(nullptr, pq().PQclear);
        }
        if (!pq().PQconsumeInput(conn_)) {
          fail(first_line(pq().PQerrorMessage(conn_)));
          return PgResult(nullptr, pq().PQclear);
        }
      }
      PgResult r(pq().PQgetResult(conn_), pq().PQclear);
      if (!r) break;
      const ExecStatusType s = pq().PQresultStatus(r.get());
      if (s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE) {
        const char* primary = pq().PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
        if (error_.empty())
          error_ = primary ? primary : first_line(pq().PQresultErrorMessage(r.get()));
      } else {
        last = std::move(r);
      }
    }
    if (!error_.empty()) last.reset();
    return last;
  }

  const std::string& error() const { return error_; }
  bool timed_out() const { return timed_out_; }

 private:
  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  /// Waits for the socket until the deadline; false (and timed_out) when it passed.
  bool wait(short events) {
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0) {
        timed_out_ = true;
        return fail("timed out");
      }
      pollfd p{pq().PQsocket(conn_), events, 0};
      if (p.fd < 0) return true;  // a broken connection: libpq's next call says why
      const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 60'000)));
      if (n > 0 || (n < 0 && errno != EINTR)) return true;
    }
  }

  /// Asks the server to stop the running statement, so it does not go on after we left.
  void cancel() {
    if (PGcancel* c = pq().PQgetCancel(conn_)) {
      char buf[256];
      pq().PQcancel(c, buf, sizeof buf);
      pq().PQfreeCancel(c);
    }
  }

  Clock::time_point deadline_;
  PGconn* conn_ = nullptr;
  std::string error_;
  bool timed_out_ = false;
};

std::string timed_out_message(const Config& c, std::chrono::milliseconds timeout,
                              std::string_view doing) {
  return "timed out after " + format_duration(timeout) + " " + std::string(doing) + " " + c.server;
}

/// The whole check, blocking: connect, SELECT 1, the statistics, the operator's query.
Reading collect(const Config& c, const std::optional<std::string>& password,
                std::chrono::milliseconds timeout, Clock::time_point deadline) {
  Reading rd;
  Session s(deadline);
  if (!s.connect(c.conninfo, password)) {
    rd.failure = s.timed_out() ? timed_out_message(c, timeout, "connecting to")
                               : "cannot connect: " + s.error();
    return rd;
  }
  const auto select_start = Clock::now();
  if (!s.exec("SELECT 1")) {
    rd.failure = s.timed_out() ? timed_out_message(c, timeout, "waiting for SELECT 1 on")
                               : "SELECT 1 failed: " + s.error();
    return rd;
  }
  rd.select_seconds = seconds_between(select_start, Clock::now());

  const PgResult stats = s.exec(kStatsSql);
  if (!stats) {
    rd.failure = s.timed_out() ? timed_out_message(c, timeout, "waiting for statistics from")
                               : "statistics query failed: " + s.error();
    return rd;
  }
  if (pq().PQntuples(stats.get()) != 1 || pq().PQnfields(stats.get()) != 7) {
    rd.failure = "statistics query returned an unexpected shape";
    return rd;
  }
  rd.database = pq().PQgetvalue(stats.get(), 0, 0);
  rd.database_bytes = number_at(stats.get(), 1).value_or(0);
  rd.connections = number_at(stats.get(), 2).value_or(0);
  rd.max_connections = number_at(stats.get(), 3).value_or(0);
  // NULL when nothing else is in a transaction, or when the role may not see other sessions.
  rd.oldest_transaction_seconds = std::max(0.0, number_at(stats.get(), 4).value_or(0));
  rd.in_recovery = std::string_view(pq().PQgetvalue(stats.get(), 0, 5)) == "t";
  rd.replication_lag_seconds = number_at(stats.get(), 6);

  if (c.query.empty()) return rd;
  const PgResult answer = s.exec(c.query.c_str());
  if (!answer) {
    rd.failure = s.timed_out() ? timed_out_message(c, timeout, "waiting for the query on")
                               : "query failed: " + s.error();
    return rd;
  }
  if (pq().PQresultStatus(answer.get()) != PGRES_TUPLES_OK || pq().PQntuples(answer.get()) < 1 ||
      pq().PQnfields(answer.get()) < 1) {
    rd.failure = "query returned no rows";
  } else if (pq().PQgetisnull(answer.get(), 0, 0)) {
    rd.failure = "query returned NULL";
  } else if (!(rd.value = parse_number(pq().PQgetvalue(answer.get(), 0, 0)))) {
    rd.failure = "query returned '" +
                 utf8_prefix(first_line(pq().PQgetvalue(answer.get(), 0, 0)), 40) +
                 "', not a number";
  }
  return rd;
}

std::string format_seconds(double s) { return human_seconds(s); }

/// One reading in the summary, with the verdict of its thresholds.
struct Finding {
  std::string text;
  Status status = Status::ok;
  std::string limit;  // the threshold crossed, when status is not ok
};

int severity(Status s) { return s == Status::critical ? 2 : s == Status::warning ? 1 : 0; }

Finding judge(std::string text, Status status, std::optional<double> warning,
              std::optional<double> critical, std::string (*format)(double)) {
  Finding f{std::move(text), status, {}};
  if (status == Status::critical && critical) f.limit = "critical at " + format(*critical);
  if (status == Status::warning && warning) f.limit = "warning at " + format(*warning);
  return f;
}

class PostgresProbe final : public Probe {
 public:
  explicit PostgresProbe(Config c) : c_(std::move(c)) {}

  std::string plan() const override {
    return "SELECT 1, then database size, connections, oldest transaction and standby lag" +
           (c_.query.empty() ? std::string() : ", then the query: " + c_.query);
  }

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    // A session still stuck from an earlier run holds a pool thread; do not take another one.
    if (auto last = last_.lock(); last && last->running())
      co_return make_result(Status::critical,
                            "session with " + c_.server + " still hanging since an earlier run");
    if (!ctx.blocking) co_return make_result(Status::unknown, "no blocking pool to run libpq on");

    std::optional<std::string> password;
    if (!c_.password_env.empty()) {
      const char* p = std::getenv(c_.password_env.c_str());
      if (!p)
        co_return make_result(Status::unknown,
                              "environment variable " + c_.password_env + " is not set");
      password = p;
    }

    const auto deadline = Clock::now() + ctx.timeout;
    // The session stops itself a little earlier, so that its own message (which step timed out)
    // is the one reported; the pool's deadline only catches a call libpq cannot interrupt, such
    // as a hung DNS lookup.
    const auto session_deadline =
        deadline - std::min<std::chrono::milliseconds>(ctx.timeout / 10, std::chrono::seconds(1));
    auto session = [c = c_, password, timeout = ctx.timeout, session_deadline] {
      return collect(c, password, timeout, session_deadline);
    };
    const std::optional<Reading> reading = co_await run_blocking(ctx, deadline, session, last_);
    if (!reading)
      co_return make_result(Status::critical, timed_out_message(c_, ctx.timeout, "talking to"));
    if (reading->failure)
      co_return make_result(Status::critical, scrub(*reading->failure, password));
    co_return evaluate(*reading);
  }

 private:
  Result evaluate(const Reading& rd) const {
    Result r;
    r.metrics.push_back({"select_seconds", rd.select_seconds, "s"});
    r.metrics.push_back({"database_bytes", rd.database_bytes, "bytes"});
    r.metrics.push_back({"connections", rd.connections, ""});
    r.metrics.push_back({"max_connections", rd.max_connections, ""});
    const double connections_pct =
        rd.max_connections > 0 ? 100.0 * rd.connections / rd.max_connections : 0.0;
    r.metrics.push_back({"connections_percent", connections_pct, "%"});
    r.metrics.push_back({"oldest_transaction_seconds", rd.oldest_transaction_seconds, "s"});
    r.metrics.push_back({"in_recovery", rd.in_recovery ? 1.0 : 0.0, ""});

    std::vector<Finding> findings;
    findings.push_back({"select " + format_seconds(rd.select_seconds), Status::ok, {}});
    char pct[64];
    std::snprintf(pct, sizeof pct, "%.0f/%.0f connections (%.1f%%)", rd.connections,
                  rd.max_connections, connections_pct);
    findings.push_back(judge(
        pct, threshold_status(connections_pct, c_.connections_warning, c_.connections_critical),
        c_.connections_warning, c_.connections_critical,
        [](double v) { return human_number(v) + "%"; }));
    findings.push_back(judge(human_bytes(rd.database_bytes),
                             threshold_status(rd.database_bytes, c_.size_warning, c_.size_critical),
                             c_.size_warning, c_.size_critical, &human_bytes));
    findings.push_back(
        judge(rd.oldest_transaction_seconds > 0
                  ? "oldest transaction " + format_seconds(rd.oldest_transaction_seconds)
                  : std::string("no open transaction"),
              threshold_status(rd.oldest_transaction_seconds, c_.transaction_warning,
                               c_.transaction_critical),
              c_.transaction_warning, c_.transaction_critical, &format_seconds));
    if (rd.in_recovery) {
      if (rd.replication_lag_seconds) {
        const double lag = *rd.replication_lag_seconds;
        r.metrics.push_back({"replication_lag_seconds", lag, "s"});
        findings.push_back(judge("standby, replay lag " + format_seconds(lag),
                                 threshold_status(lag, c_.lag_warning, c_.lag_critical),
                                 c_.lag_warning, c_.lag_critical, &format_seconds));
      } else {
        findings.push_back({"standby, nothing replayed yet", Status::ok, {}});
      }
    }
    if (rd.value) {
      r.metrics.push_back({"value", *rd.value, ""});
      const Status s = c_.below ? threshold_status_below(*rd.value, c_.warning, c_.critical)
                                : threshold_status(*rd.value, c_.warning, c_.critical);
      findings.push_back(
          judge("value " + human_number(*rd.value), s, c_.warning, c_.critical, &human_number));
    }

    // What crossed a threshold comes first, worst first, so that it survives a cut-off summary.
    std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
      return severity(a.status) > severity(b.status);
    });
    Status status = Status::ok;
    std::string summary = rd.database + ": ";
    for (std::size_t i = 0; i < findings.size(); ++i) {
      const Finding& f = findings[i];
      status = protocol::worst(status, f.status);
      if (i > 0) summary += ", ";
      summary += f.text;
      if (!f.limit.empty()) summary += " (" + f.limit + ")";
    }
    r.status = status;
    r.summary = std::move(summary);
    return r;
  }

  /// libpq does not echo passwords; this keeps it so should a server message ever quote one.
  static std::string scrub(std::string text, const std::optional<std::string>& password) {
    // Too short a password would mangle the message while hiding little.
    if (!password || password->size() < 4) return text;
    for (auto at = text.find(*password); at != std::string::npos; at = text.find(*password, at))
      text.replace(at, password->size(), "***");
    return text;
  }

  Config c_;
  // The previous run's session while the pool still holds it; see disk.cpp.
  std::weak_ptr<BlockingCall<Reading>> last_;
};

double percent_option(const Options& o, std::string_view key) {
  const double v = o.number(key);
  if (v < 0 || v > 100) o.error(key, "expected a percentage, 0-100");
  return v;
}

std::optional<double> optional_seconds(const Options& o, std::string_view key) {
  if (!o.has(key)) return std::nullopt;
  return std::chrono::duration<double>(o.duration(key)).count();
}

/// Checks conninfo with libpq's own parser and returns "host:port" for messages.
std::string check_conninfo(const Options& o, const std::string& conninfo) {
  char* message = nullptr;
  PQconninfoOption* parsed = pq().PQconninfoParse(conninfo.c_str(), &message);
  if (!parsed) {
    o.error("conninfo", message ? first_line(message) : "libpq is out of memory");
    pq().PQfreemem(message);
    return {};
  }
  std::string host, hostaddr, port;
  bool has_password = false;
  for (const PQconninfoOption* opt = parsed; opt->keyword; ++opt) {
    if (!opt->val) continue;
    const std::string_view key = opt->keyword;
    if (key == "password") has_password = true;
    if (key == "host") host = opt->val;
    if (key == "hostaddr") hostaddr = opt->val;
    if (key == "port") port = opt->val;
  }
  pq().PQconninfoFree(parsed);
  if (has_password)
    o.error("conninfo",
            "must not contain a password; put it in an environment variable and "
            "name that in password_env");
  std::string server = !host.empty() ? host : !hostaddr.empty() ? hostaddr : "the local socket";
  if (!port.empty()) server += ":" + port;
  return server;
}

std::unique_ptr<Probe> make(const Options& o) {
  std::string why;
  if (!load_libpq(&why)) {
    o.error("type", why);
    return nullptr;
  }
  Config c;
  c.conninfo = o.string("conninfo");
  c.server = check_conninfo(o, c.conninfo);
  c.password_env = o.has("password_env") ? o.string("password_env") : "";
  if (o.has("password_env") && c.password_env.empty()) o.error("password_env", "must not be empty");
  c.query = o.has("query") ? o.string("query") : "";
  if (o.has("warning")) c.warning = o.number("warning");
  if (o.has("critical")) c.critical = o.number("critical");
  if ((c.warning || c.critical) && c.query.empty())
    o.error(c.warning ? "warning" : "critical", "needs a query whose value it applies to");
  const std::string direction = o.string("direction");
  if (direction != "above" && direction != "below") o.error("direction", "expected above or below");
  c.below = direction == "below";
  c.connections_warning = percent_option(o, "connections_warning");
  c.connections_critical = percent_option(o, "connections_critical");
  c.transaction_warning = *optional_seconds(o, "transaction_age_warning");
  c.transaction_critical = *optional_seconds(o, "transaction_age_critical");
  c.lag_warning = optional_seconds(o, "lag_warning");
  c.lag_critical = optional_seconds(o, "lag_critical");
  if (o.has("size_warning")) c.size_warning = static_cast<double>(o.size("size_warning"));
  if (o.has("size_critical")) c.size_critical = static_cast<double>(o.size("size_critical"));
  return std::make_unique<PostgresProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"postgres", "a PostgreSQL server: latency, size, connections, transactions, lag",
          kOptions, &make};
}

}  // namespace dozor::probes::postgres
