#pragma once

// Where a test's store lives, for either engine: SQLite in a file of its own, PostgreSQL in a
// database of its own on the test cluster (tests/postgres/cluster.sh, started once by ctest's
// `postgres` fixture, whose folder DOZOR_TEST_POSTGRES names; run by hand, the first test that
// needs it starts one for the process).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "dozor/collector/sql.h"

namespace dozor::collector::testing {

namespace fs = std::filesystem;

inline std::string first_line_of(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

/// The test cluster's folder (its url and password files).
inline fs::path postgres_cluster() {
  if (const char* dir = std::getenv("DOZOR_TEST_POSTGRES")) return dir;
  static const struct Own {
    fs::path dir;
    Own() {
      char tmpl[] = "/tmp/dozor-store-pg-XXXXXX";
      dir = ::mkdtemp(tmpl);
      fs::permissions(dir, fs::perms::others_exec | fs::perms::group_exec,
                      fs::perm_options::add);  // for the postgres user, when run as root
      dir /= "cluster";
      const std::string script = DOZOR_SOURCE_DIR "/tests/postgres/cluster.sh";
      if (std::system((script + " start " + dir.string() + " >/dev/null").c_str()) != 0)
        dir.clear();
    }
    ~Own() {
      if (dir.empty()) return;
      std::system((DOZOR_SOURCE_DIR "/tests/postgres/cluster.sh stop " + dir.string()).c_str());
      fs::remove_all(dir.parent_path());
    }
  } own;
  return own.dir;
}

/// One test's store on `engine` ("sqlite" or "postgres"), removed afterwards.
class TestStore {
 public:
  /// `second`: another store for the same test.
  explicit TestStore(std::string engine, const std::string& second = "")
      : engine_(std::move(engine)) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "dozor_" + std::to_string(::getpid()) + "_" + second + test->name();
    for (char& c : name)  // a name PostgreSQL keeps as written: lower case, no quotes
      c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    if (engine_ == "sqlite") {
      path_ = (fs::temp_directory_path() / (name + ".db")).string();
      remove_files();
      options_ = {"sqlite:" + path_, ""};
      return;
    }
    const fs::path cluster = postgres_cluster();
    if (cluster.empty() || !fs::exists(cluster / "url")) {
      ADD_FAILURE() << "no PostgreSQL for the test: tests/postgres/cluster.sh start failed";
      return;
    }
    admin_ = {first_line_of(cluster / "url"), (cluster / "password").string()};
    database_ = name.substr(0, 63);
    std::string url = admin_.url;
    url.replace(url.rfind('/') + 1, std::string::npos, database_);
    options_ = {url, admin_.password_file};
    auto admin = sql::open(admin_);
    admin->exec("DROP DATABASE IF EXISTS " + database_);
    admin->exec("CREATE DATABASE " + database_);
  }
  ~TestStore() {
    if (!path_.empty()) remove_files();
    if (!database_.empty()) {
      try {
        sql::open(admin_)->exec("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
      } catch (const sql::Error&) {  // the cluster went; it takes its databases with it
      }
    }
  }
  TestStore(const TestStore&) = delete;
  TestStore& operator=(const TestStore&) = delete;

  const sql::Options& options() const { return options_; }
  const std::string& engine() const { return engine_; }
  /// The SQLite file; empty for PostgreSQL.
  const std::string& path() const { return path_; }
  /// A new connection to this store.
  std::unique_ptr<sql::Database> connect() const { return sql::open(options_); }
  /// A connection to the cluster's `postgres` database, as its superuser.
  std::unique_ptr<sql::Database> admin() const { return sql::open(admin_); }

 private:
  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix);
  }

  std::string engine_, path_, database_;
  sql::Options options_, admin_;
};

/// INSTANTIATE_TEST_SUITE_P(Engines, X, ::testing::Values("sqlite", "postgres"), engine_name).
inline std::string engine_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace dozor::collector::testing
