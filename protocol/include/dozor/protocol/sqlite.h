#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace dozor::sqlite {

/// A SQLite failure, with the statement or step that failed.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One prepared statement; bind by 1-based index, step, read columns. Not thread-safe.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, double v);
  Statement& bind(int i, std::string_view v);
  /// True while there is a row to read; false when done. Throws on error.
  bool step();
  /// Steps to completion and resets, for statements without rows.
  void run();
  void reset();

  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string text(int col) const;
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// One connection to a database file. Not thread-safe: one per thread or behind a lock.
class Database {
 public:
  /// Opens (creating) `path` in WAL mode; `synchronous` is NORMAL or FULL.
  explicit Database(const std::string& path, std::string_view synchronous = "NORMAL");
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(std::string_view sql);
  sqlite3* handle() { return db_; }
  std::int64_t changes() const { return sqlite3_changes64(db_); }

 private:
  sqlite3* db_ = nullptr;
};

/// BEGIN IMMEDIATE ... COMMIT; rolls back when left without commit().
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Transaction();
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace dozor::sqlite
