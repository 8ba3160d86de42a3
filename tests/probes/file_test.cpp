#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "probe_runner.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;
namespace fs = std::filesystem;

/// A folder of real files for one test, removed with everything in it.
class TempFolder {
 public:
  TempFolder() {
    std::string tmpl = (fs::temp_directory_path() / "dozor-file-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  /// Writes `bytes` bytes to `name` and sets its mtime `age_seconds` into the past.
  std::string put(const std::string& name, std::size_t bytes, double age_seconds) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary) << std::string(bytes, 'x');
    const double when =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() -
        age_seconds;
    timespec times[2];
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = static_cast<time_t>(when);
    times[1].tv_nsec = 0;
    EXPECT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0) << p;
    return p;
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

constexpr double kHour = 3600, kDay = 86400;

std::string probe(const std::string& pattern, const std::string& checks) {
  return "{ name: backup, type: file, path: '" + pattern + "'" +
         (checks.empty() ? "" : ", " + checks) + " }";
}

TEST(FileProbe, FreshBackupIsOk) {
  TempFolder dir;
  dir.put("erp-1.dt", 20 * 1024, 25 * kHour);
  const std::string newest = dir.put("erp-2.dt", 10 * 1024, 1 * kHour);
  dir.put("other.log", 5, 0);
  const Result r =
      run(probe(dir / "erp-*.dt", "max_age: 1d, age_warning: 12h, min_size: 1KiB")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with(newest + " 10.0 KiB, 1h 0m old; 2 files, 30.0 KiB"))
      << r.summary;
  EXPECT_EQ(metric(r, "files"), 2.0);
  EXPECT_EQ(metric(r, "newest_bytes"), 10240.0);
  EXPECT_EQ(metric(r, "total_bytes"), 30720.0);
  ASSERT_TRUE(metric(r, "newest_age_seconds") && metric(r, "oldest_age_seconds"));
  EXPECT_NEAR(*metric(r, "newest_age_seconds"), kHour, 30);
  EXPECT_NEAR(*metric(r, "oldest_age_seconds"), 25 * kHour, 30);
}

TEST(FileProbe, StaleBackupIsCriticalOrWarning) {
  TempFolder dir;
  dir.put("erp-1.dt", 1024, 2 * kDay + 3 * kHour);
  Result r = run(probe(dir / "erp-*.dt", "max_age: 1d, age_warning: 12h")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("2d 3h old; older than 1d (max_age)"), std::string::npos) << r.summary;

  TempFolder dir2;
  dir2.put("erp-1.dt", 1024, 18 * kHour);
  r = run(probe(dir2 / "erp-*.dt", "max_age: 1d, age_warning: 12h")).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_NE(r.summary.find("older than 12h (age_warning)"), std::string::npos) << r.summary;
}

TEST(FileProbe, TooSmallOrTooLargeBackupIsCritical) {
  TempFolder dir;
  dir.put("erp-1.dt", 50 * 1024 * 1024, 2 * kDay);  // a good old one does not help
  dir.put("erp-2.dt", 100, kHour);
  Result r = run(probe(dir / "erp-*.dt", "min_size: 1MiB")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("100 B, 1h 0m old"), std::string::npos) << r.summary;
  EXPECT_NE(r.summary.find("smaller than 1.0 MiB (min_size)"), std::string::npos) << r.summary;

  r = run(probe(dir / "erp-1.dt", "max_size: 10MiB")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("larger than 10.0 MiB (max_size)"), std::string::npos) << r.summary;
}

TEST(FileProbe, NoMatch) {
  TempFolder dir;
  dir.put("erp-1.bak", 10, 0);
  fs::create_directory(dir / "erp-dir.dt");  // a folder is not a backup
  const std::string pattern = dir / "erp-*.dt";
  Result r = run(probe(pattern, "")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "no file matches " + pattern);
  EXPECT_EQ(metric(r, "files"), 0.0);
  EXPECT_FALSE(metric(r, "newest_age_seconds"));

  r = run(probe("/nonexistent/dozor/erp-*.dt", "")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary,
            "no file matches /nonexistent/dozor/erp-*.dt (/nonexistent/dozor: No such file or "
            "directory)");
}

TEST(FileProbe, ExistsFalseWantsNoMatch) {
  TempFolder dir;
  const std::string lock = dir / "exchange.lock";
  Result r = run(probe(lock, "exists: false")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  dir.put("exchange.lock", 0, 10);
  r = run(probe(lock, "exists: false")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("1 file matches " + lock + ", expected none"), std::string::npos)
      << r.summary;
}

TEST(FileProbe, QueueFolderCount) {
  TempFolder dir;
  for (int i = 0; i < 5; ++i) dir.put("in-" + std::to_string(i) + ".xml", 100, 60.0 * i);
  const std::string checks = "exists: any, count_warning: 3, count_critical: 10";
  Result r = run(probe(dir / "*.none", checks)).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);  // an empty queue is the good case
  r = run(probe(dir / "*.xml", checks)).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_NE(r.summary.find("5 files, 500 B, oldest 4m 0s old; more than 3 files (count_warning)"),
            std::string::npos)
      << r.summary;
  for (int i = 5; i < 11; ++i) dir.put("in-" + std::to_string(i) + ".xml", 100, 0);
  r = run(probe(dir / "*.xml", checks)).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("more than 10 files (count_critical)"), std::string::npos) << r.summary;
  EXPECT_EQ(metric(r, "files"), 11.0);
}

TEST(FileProbe, OldestTooOld) {
  TempFolder dir;
  const std::string stuck = dir.put("in-1.xml", 100, 3 * kHour);
  dir.put("in-2.xml", 100, 60);
  Result r = run(probe(dir / "*.xml", "oldest_max_age: 1h")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("oldest " + stuck + " older than 1h (oldest_max_age)"),
            std::string::npos)
      << r.summary;
  r = run(probe(dir / "*.xml", "oldest_max_age: 4h")).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
}

TEST(FileProbe, ConfigErrors) {
  auto errors = config_errors(probe("/backup/*.dt", "max_age: 1h, age_warning: 2h"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].age_warning: must be shorter than max_age"),
            std::string::npos)
      << errors[0];
  errors = config_errors(probe("/backup/*.dt", "count_warning: -1"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].count_warning: must not be negative"), std::string::npos)
      << errors[0];
  errors = config_errors(probe("/backup/*.dt", "exists: maybe"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].exists: expected true, false or any, got 'maybe'"),
            std::string::npos)
      << errors[0];
  errors = config_errors("{ name: b, type: file }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].path: missing required key"), std::string::npos) << errors[0];
}

}  // namespace
}  // namespace dozor::probes
