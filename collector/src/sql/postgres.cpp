// The PostgreSQL engine (libpq): the store that several collectors share. Statements are
// prepared once per session, on first use, and prepared again after a reconnect.
#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engines.h"

namespace dozor::collector::sql {
namespace {

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("store: cannot read the password file " + path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

std::string message(PGconn* conn) {
  std::string m = PQerrorMessage(conn);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

class PgDatabase;

class PgCursor final : public Cursor {
 public:
  PgCursor(PgDatabase& db, std::string sql) : db_(db), sql_(std::move(sql)) {}
  ~PgCursor() override { PQclear(result_); }

  void bind(int i, std::int64_t v) override { set(i, std::to_string(v)); }
  void bind(int i, double v) override {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest exact form
    set(i, std::string(buf, r.ptr));
  }
  void bind(int i, std::string_view v) override {
    // A text value cannot hold NUL in PostgreSQL; SQLite keeps it. U+FFFD marks where it was.
    std::string s;
    s.reserve(v.size());
    for (char c : v) {
      if (c)
        s.push_back(c);
      else
        s.append("\xEF\xBF\xBD");
    }
    set(i, std::move(s));
  }
  bool step() override;
  void run() override;
  void reset() override {
    PQclear(result_);
    result_ = nullptr;
    row_ = 0;
    params_.clear();
  }
  std::int64_t integer(int col) const override {
    const char* v = value(col);
    std::int64_t out = 0;
    const char* end = v + std::char_traits<char>::length(v);
    if (std::from_chars(v, end, out).ec == std::errc{}) return out;
    if (*v == 't') return 1;  // a boolean
    return static_cast<std::int64_t>(std::strtod(v, nullptr));
  }
  double real(int col) const override { return std::strtod(value(col), nullptr); }
  std::string text(int col) const override {
    return std::string(value(col), static_cast<std::size_t>(PQgetlength(result_, row_, col)));
  }
  bool is_null(int col) const override { return PQgetisnull(result_, row_, col) != 0; }

 private:
  void set(int i, std::string v) {
    if (static_cast<std::size_t>(i) > params_.size()) params_.resize(static_cast<std::size_t>(i));
    params_[static_cast<std::size_t>(i) - 1] = std::move(v);
  }
  const char* value(int col) const { return PQgetvalue(result_, row_, col); }

  PgDatabase& db_;
  std::string sql_;
  std::vector<std::optional<std::string>> params_;
  PGresult* result_ = nullptr;
  int row_ = 0;
};

class PgDatabase final : public Database {
 public:
  explicit PgDatabase(const Options& options)
      : url_(options.url),
        password_(options.password_file.empty() ? "" : first_line(options.password_file)) {
    connect();
  }
  ~PgDatabase() override { PQfinish(conn_); }

  std::string_view engine() const override { return "postgres"; }
  std::string where() const override { return redacted(url_); }
  std::unique_ptr<Cursor> prepare(std::string_view sql) override {
    return std::make_unique<PgCursor>(*this, numbered_parameters(sql));
  }
  void exec(std::string_view sql) override {
    Sync sync(*this);
    finish(PQexec(conn_, std::string(sql).c_str()), sql);
  }
  // Inside a transaction, statements whose rows are not wanted are pipelined: sent at once and
  // their answers read together at the next statement that reads, at changes() or at COMMIT, so
  // that a report's transaction (BEGIN, its writes, COMMIT) is one round trip to the database
  // rather than one a statement.
  void begin() override {
    Sync sync(*this);
    in_transaction_ = true;
    if (PQenterPipelineMode(conn_) == 1) {
      pipelined_ = true;
      send("BEGIN");
    } else {
      finish(PQexec(conn_, "BEGIN"), "BEGIN");
    }
  }
  void commit() override {
    // Still in the transaction until COMMIT is answered, so that a lost connection is an error
    // here, never a new session that "commits" nothing.
    if (pipelined_) {
      send("COMMIT");
      drain();  // throws what failed on the way
    } else {
      Sync sync(*this);
      PGresult* r = PQexec(conn_, "COMMIT");
      const bool rolled_back = committed_nothing(r);
      finish(r, "COMMIT");
      if (rolled_back) throw Error(kRolledBack);
    }
    in_transaction_ = false;
    leave_pipeline();
  }
  void rollback() override {
    in_transaction_ = false;
    if (PQstatus(conn_) != CONNECTION_OK) {  // gone, and the transaction with it
      pipelined_ = false;
      queued_.clear();
      return;
    }
    try {
      drain();
    } catch (const Error&) {  // what failed is why we roll back
    }
    leave_pipeline();
    finish(PQexec(conn_, "ROLLBACK"), "ROLLBACK");
  }
  std::int64_t changes() override {
    drain();
    return changes_;
  }

  /// Runs one statement with its parameters; the result, or throws.
  PGresult* run(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
    Sync sync(*this);
    const auto values = pointers(params);
    const int n = static_cast<int>(values.size());
    const std::string* name = prepared(sql, false);
    PGresult* r =
        name ? PQexecPrepared(conn_, name->c_str(), n, values.data(), nullptr, nullptr, 0)
             : PQexecParams(conn_, sql.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
    check(r, sql);
    changes_ = tuples(r);
    return r;
  }

  /// A statement whose rows are not wanted: pipelined inside a transaction, else run().
  void queue(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
    if (!pipelined_) {
      PQclear(run(sql, params));
      return;
    }
    if (queued_.size() >= kMaxQueued) drain();  // the server's answers must not fill its socket
    const auto values = pointers(params);
    const int n = static_cast<int>(values.size());
    const std::string* name = prepared(sql, true);
    const int sent =
        name
            ? PQsendQueryPrepared(conn_, name->c_str(), n, values.data(), nullptr, nullptr, 0)
            : PQsendQueryParams(conn_, sql.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
    if (!sent) throw Error(sql.substr(0, 200) + ": " + message(conn_), lost());
    queued_.push_back({sql.substr(0, 200), ""});
  }

 private:
  // A statement that needs its answer now: the pipeline drained and left for it, entered again
  // after it (within the transaction).
  struct Sync {
    explicit Sync(PgDatabase& db) : db(db) {
      db.drain();
      db.leave_pipeline();
      db.ready();
    }
    ~Sync() {
      if (db.in_transaction_ && !db.pipelined_ && PQstatus(db.conn_) == CONNECTION_OK &&
          PQenterPipelineMode(db.conn_) == 1)
        db.pipelined_ = true;
    }
    PgDatabase& db;
  };

  static std::vector<const char*> pointers(const std::vector<std::optional<std::string>>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    return values;
  }
  // COMMIT of a transaction that failed on the way answers ROLLBACK, without an error.
  static bool committed_nothing(PGresult* r) {
    return PQresultStatus(r) == PGRES_COMMAND_OK && std::string_view(PQcmdStatus(r)) == "ROLLBACK";
  }
  static constexpr const char* kRolledBack =
      "COMMIT: the transaction had failed and was rolled back";

  // A statement without parameters into the pipeline.
  void send(const char* sql) {
    if (!PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0))
      throw Error(std::string(sql) + ": " + message(conn_), lost());
    queued_.push_back({sql, ""});
  }

  static std::int64_t tuples(PGresult* r) {
    const char* t = PQcmdTuples(r);
    return *t ? std::atoll(t) : 0;
  }
  bool lost() const { return PQstatus(conn_) != CONNECTION_OK; }

  // The name of sql prepared in this session, preparing it first (in the pipeline: sent ahead
  // of its use); null beyond kMaxPrepared, to run it unprepared.
  const std::string* prepared(const std::string& sql, bool pipelined) {
    if (auto it = prepared_.find(sql); it != prepared_.end()) return &it->second;
    if (prepared_.size() >= kMaxPrepared) return nullptr;
    const std::string id = "s" + std::to_string(++names_);
    if (pipelined) {
      if (!PQsendPrepare(conn_, id.c_str(), sql.c_str(), 0, nullptr))
        throw Error(sql.substr(0, 200) + ": " + message(conn_), lost());
      queued_.push_back({"PREPARE " + sql.substr(0, 200), sql});
    } else {
      finish(PQprepare(conn_, id.c_str(), sql.c_str(), 0, nullptr), sql);
    }
    return &prepared_.emplace(sql, id).first->second;
  }

  // Reads the answers of the pipelined statements; throws the first failure among them.
  void drain() {
    if (!pipelined_ || queued_.empty()) return;
    std::string failure;
    bool gone = false;
    if (PQpipelineSync(conn_) != 1) {
      failure = message(conn_);
      gone = true;
    } else {
      for (std::size_t i = 0; i < queued_.size(); ++i) {
        const Queued& q = queued_[i];
        PGresult* r = PQgetResult(conn_);
        if (!r) {
          failure = q.what + ": " + message(conn_);
          gone = lost();
          for (std::size_t j = i; j < queued_.size(); ++j)
            if (!queued_[j].prepares.empty()) prepared_.erase(queued_[j].prepares);
          break;
        }
        const auto status = PQresultStatus(r);
        const bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
        if (ok && q.what == "COMMIT" && committed_nothing(r)) {
          if (failure.empty()) failure = kRolledBack;
        } else if (ok) {
          changes_ = tuples(r);
        } else if (status != PGRES_PIPELINE_ABORTED && failure.empty()) {
          std::string m = PQresultErrorMessage(r);
          while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
          failure = q.what + ": " + m;
        }
        if (!ok && !q.prepares.empty()) prepared_.erase(q.prepares);  // it was never made
        PQclear(r);
        PQclear(PQgetResult(conn_));  // the null that ends each statement's answers
      }
      if (!gone) {  // the sync's own answer
        for (PGresult* r; (r = PQgetResult(conn_)) != nullptr;) {
          const bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
          PQclear(r);
          if (sync) break;
        }
      }
    }
    queued_.clear();
    if (!failure.empty()) throw Error(failure, gone || lost());
  }

  void leave_pipeline() {
    if (pipelined_ && PQexitPipelineMode(conn_) == 1) pipelined_ = false;
    if (lost()) pipelined_ = false;
  }

 private:
  void connect() {
    // A database that cannot be reached is tried again after a second, not at every report:
    // each try can block for connect_timeout, and the collector's other work waits meanwhile.
    const auto now = std::chrono::steady_clock::now();
    if (now < retry_at_)
      throw Error("store " + redacted(url_) + ": " + last_failure_ + " (trying again shortly)",
                  true);
    PQfinish(conn_);
    prepared_.clear();
    // Defaults first: what the URI says wins. Keepalives notice a database host gone silent in
    // about 25 s rather than the system's two hours.
    const char* keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "dbname",
                          password_.empty() ? nullptr : "password",
                          nullptr};
    const char* values[] = {"10",         "dozor-collector", "10",   "5", "3",
                            url_.c_str(), password_.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn_) != CONNECTION_OK) {
      last_failure_ = message(conn_);
      retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      throw Error("store " + redacted(url_) + ": " + last_failure_, true);
    }
    retry_at_ = {};
    // NOTICEs ("... does not exist, skipping") would go to stderr unformatted; none matters.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }

  // Connected, or connected again: a connection lost outside a transaction costs nothing.
  void ready() {
    if (PQstatus(conn_) == CONNECTION_OK) return;
    if (in_transaction_) throw Error("store " + redacted(url_) + ": connection lost", true);
    connect();
  }

  void check(PGresult* r, std::string_view sql) {
    const auto status = PQresultStatus(r);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
    std::string m = r ? PQresultErrorMessage(r) : message(conn_);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    PQclear(r);
    const bool lost = PQstatus(conn_) != CONNECTION_OK;
    throw Error(std::string(sql.substr(0, 200)) + ": " + (m.empty() ? message(conn_) : m), lost);
  }
  void finish(PGresult* r, std::string_view sql) {
    check(r, sql);
    PQclear(r);
  }

  // The statements in the code are a few dozen; one built from many filters is run unprepared
  // beyond this.
  static constexpr std::size_t kMaxPrepared = 256;
  // Statements in the pipeline before their answers are read.
  static constexpr std::size_t kMaxQueued = 256;
  bool pipelined_ = false;
  struct Queued {
    std::string what;      // the statement, for its error
    std::string prepares;  // for a PREPARE: the SQL it names, forgotten if it fails
  };
  std::vector<Queued> queued_;  // pipelined, answers not yet read
  std::uint64_t names_ = 0;     // prepared statements named so far in this process
  std::string url_, password_;
  PGconn* conn_ = nullptr;
  std::chrono::steady_clock::time_point retry_at_{};
  std::string last_failure_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> name, in this session
  std::int64_t changes_ = 0;
  bool in_transaction_ = false;
};

void PgCursor::run() {
  db_.queue(sql_, params_);
  reset();
}

bool PgCursor::step() {
  if (!result_) {
    result_ = db_.run(sql_, params_);
    row_ = 0;
  } else {
    ++row_;
  }
  return row_ < PQntuples(result_);
}

}  // namespace

std::unique_ptr<Database> open_postgres(const Options& options) {
  return std::make_unique<PgDatabase>(options);
}

}  // namespace dozor::collector::sql
