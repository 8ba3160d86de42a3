#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace dozor::collector::sql {

/// A statement or connection failed, with the statement and the engine's message. `lost`: the
/// connection to the database went away (the engine reconnects at the next statement), as
/// against a statement the database refused.
struct Error : std::runtime_error {
  explicit Error(const std::string& what, bool lost = false)
      : std::runtime_error(what), lost(lost) {}
  bool lost;
};

/// One statement of an engine: parameters by 1-based index, rows one at a time.
class Cursor {
 public:
  virtual ~Cursor() = default;
  virtual void bind(int i, std::int64_t v) = 0;
  virtual void bind(int i, double v) = 0;
  virtual void bind(int i, std::string_view v) = 0;
  /// True while there is a row to read; false when done. Throws Error.
  virtual bool step() = 0;
  /// Forgets the rows and the parameters, for the next run.
  virtual void reset() = 0;
  /// Runs a statement whose rows are not wanted, and resets. Inside a transaction an engine may
  /// only send it and report its failure at the next statement that reads, or at commit.
  virtual void run() {
    while (step()) {
    }
    reset();
  }
  virtual std::int64_t integer(int col) const = 0;
  virtual double real(int col) const = 0;
  /// "" for NULL.
  virtual std::string text(int col) const = 0;
  virtual bool is_null(int col) const = 0;
};

/// One connection to the store: SQLite (a file) or PostgreSQL. Statements are written once for
/// both, in the SQL the two share: `?` or `?N` parameters, ON CONFLICT upserts, no engine's own
/// functions. Not thread-safe: one per thread or behind a lock.
class Database {
 public:
  virtual ~Database() = default;
  /// "sqlite" or "postgres".
  virtual std::string_view engine() const = 0;
  /// Where it is, for logs, without a password.
  virtual std::string where() const = 0;
  virtual std::unique_ptr<Cursor> prepare(std::string_view sql) = 0;
  /// Runs statements without parameters, separated by `;`.
  virtual void exec(std::string_view sql) = 0;
  /// A write transaction: SQLite takes the write lock at once (BEGIN IMMEDIATE).
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() = 0;
  /// Rows changed by the last statement.
  virtual std::int64_t changes() = 0;
  /// Whether a Transaction is open on it.
  bool in_transaction() const { return open_ > 0; }

 private:
  friend class Transaction;
  int open_ = 0;
};

/// How to open the store.
struct Options {
  /// `sqlite:PATH`, a plain path (SQLite), or a libpq URI `postgres://` / `postgresql://`
  /// (host, port, user, database; TLS by `sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
  std::string url;
  /// A file whose first line is the database password, when it is not in the URI, PGPASSWORD
  /// or libpq's PGPASSFILE.
  std::string password_file;
};

/// Opens the store; throws Error when it cannot.
std::unique_ptr<Database> open(const Options& options);
/// The url without a password, for logs and errors.
std::string redacted(const std::string& url);

/// A prepared statement with the calls of the code that uses it: bind, step, read.
class Statement {
 public:
  Statement(Database& db, std::string_view sql) : cursor_(db.prepare(sql)) {}

  Statement& bind(int i, std::int64_t v) {
    cursor_->bind(i, v);
    return *this;
  }
  Statement& bind(int i, double v) {
    cursor_->bind(i, v);
    return *this;
  }
  Statement& bind(int i, std::string_view v) {
    cursor_->bind(i, v);
    return *this;
  }
  bool step() { return cursor_->step(); }
  /// Runs to completion and resets, for statements without rows (Cursor::run()).
  void run() { cursor_->run(); }
  void reset() { cursor_->reset(); }
  std::int64_t integer(int col) const { return cursor_->integer(col); }
  double real(int col) const { return cursor_->real(col); }
  std::string text(int col) const { return cursor_->text(col); }
  bool is_null(int col) const { return cursor_->is_null(col); }

 private:
  std::unique_ptr<Cursor> cursor_;
};

/// A write transaction; rolled back when left without commit().
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) {
    db_.begin();
    ++db_.open_;
  }
  ~Transaction() {
    if (!done_) {
      --db_.open_;
      try {
        db_.rollback();
      } catch (const Error&) {  // the connection is gone, and the transaction with it
      }
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    db_.commit();
    done_ = true;
    --db_.open_;
  }

 private:
  Database& db_;
  bool done_ = false;
};

/// "INSERT INTO table (columns) VALUES (?, ...) ON CONFLICT (key) DO UPDATE SET ...": a row
/// replaced by its key, in the SQL both engines speak. `columns` and `key` are comma-separated.
std::string upsert(std::string_view table, std::string_view columns, std::string_view key);

}  // namespace dozor::collector::sql
