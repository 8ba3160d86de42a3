// The SQLite engine: one file in WAL mode, the default store (zero setup).
#include "dozor/protocol/sqlite.h"

#include "engines.h"

namespace dozor::collector::sql {
namespace {

class SqliteCursor final : public Cursor {
 public:
  SqliteCursor(sqlite3* db, std::string_view sql) : stmt_(db, sql) {}

  void bind(int i, std::int64_t v) override { stmt_.bind(i, v); }
  void bind(int i, double v) override { stmt_.bind(i, v); }
  void bind(int i, std::string_view v) override { stmt_.bind(i, v); }
  bool step() override {
    try {
      return stmt_.step();
    } catch (const sqlite::Error& e) {
      throw Error(e.what());
    }
  }
  void reset() override { stmt_.reset(); }
  std::int64_t integer(int col) const override { return stmt_.integer(col); }
  double real(int col) const override { return stmt_.real(col); }
  std::string text(int col) const override { return stmt_.text(col); }
  bool is_null(int col) const override { return stmt_.is_null(col); }

 private:
  sqlite::Statement stmt_;
};

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(const std::string& path) : path_(path), db_(path, "NORMAL") {}

  std::string_view engine() const override { return "sqlite"; }
  std::string where() const override { return path_; }
  std::unique_ptr<Cursor> prepare(std::string_view sql) override {
    try {
      return std::make_unique<SqliteCursor>(db_.handle(), sql);
    } catch (const sqlite::Error& e) {
      throw Error(e.what());
    }
  }
  void exec(std::string_view sql) override {
    try {
      db_.exec(sql);
    } catch (const sqlite::Error& e) {
      throw Error(e.what());
    }
  }
  void begin() override { exec("BEGIN IMMEDIATE"); }
  void commit() override { exec("COMMIT"); }
  void rollback() override { exec("ROLLBACK"); }
  std::int64_t changes() override { return db_.changes(); }

 private:
  std::string path_;
  sqlite::Database db_;
};

}  // namespace

std::unique_ptr<Database> open_sqlite(const std::string& path) {
  try {
    return std::make_unique<SqliteDatabase>(path);
  } catch (const sqlite::Error& e) {
    throw Error(e.what());
  }
}

}  // namespace dozor::collector::sql
