#include <gtest/gtest.h>

#include <filesystem>

#include "probe_runner.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;

TEST(DiskProbe, RootIsOkWithPlausibleReadings) {
  // Thresholds at 100% so that the test does not depend on how full this machine's disk is.
  const Result r = run("{ name: root, type: disk, path: /, warning: 100, critical: 100, "
                       "inodes_warning: 100, inodes_critical: 100 }")
                       .result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("/ ")) << r.summary;
  EXPECT_NE(r.summary.find("% used, "), std::string::npos) << r.summary;
  EXPECT_NE(r.summary.find(" free"), std::string::npos) << r.summary;

  const auto used = metric(r, "used_percent");
  const auto free = metric(r, "free_bytes");
  const auto total = metric(r, "total_bytes");
  ASSERT_TRUE(used && free && total) << to_text(r);
  EXPECT_GE(*used, 0.0);
  EXPECT_LE(*used, 100.0);
  EXPECT_GT(*total, 0.0);
  EXPECT_LE(*free, *total);
  // Cross-check against another reader of the same filesystem; other processes may write
  // meanwhile, so within 1 GiB.
  const auto space = std::filesystem::space("/");
  EXPECT_NEAR(*free, static_cast<double>(space.available), 1024.0 * 1024 * 1024);
  EXPECT_NEAR(*total, static_cast<double>(space.capacity), 1024.0 * 1024 * 1024);
  if (const auto inodes = metric(r, "inodes_used_percent")) {
    EXPECT_GE(*inodes, 0.0);
    EXPECT_LE(*inodes, 100.0);
    ASSERT_TRUE(metric(r, "inodes_free"));
    EXPECT_GE(*metric(r, "inodes_free"), 0.0);
  }
}

TEST(DiskProbe, Thresholds) {
  // Any filesystem is at least 0% used.
  Result r = run("{ name: root, type: disk, path: /, warning: 0, critical: 100 }").result;
  EXPECT_TRUE(r.status == Status::warning || r.status == Status::critical) << to_text(r);
  r = run("{ name: root, type: disk, path: /, warning: 0, critical: 0 }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
}

TEST(DiskProbe, InodeThresholds) {
  // /dev/shm is a tmpfs, which always has an inode table; /proc has none (0 inodes), as btrfs
  // and vfat report: no inode figures there rather than a made-up 0 %.
  Result r = run("{ name: shm, type: disk, path: /dev/shm, warning: 100, critical: 100, "
                 "inodes_warning: 0, inodes_critical: 0 }")
                 .result;
  ASSERT_TRUE(metric(r, "inodes_used_percent")) << to_text(r);
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_NE(r.summary.find("inodes "), std::string::npos) << r.summary;

  r = run("{ name: proc, type: disk, path: /proc, warning: 100, critical: 100, "
          "inodes_warning: 0, inodes_critical: 0 }")
          .result;
  EXPECT_FALSE(metric(r, "inodes_used_percent")) << to_text(r);
  EXPECT_EQ(r.summary.find("inodes "), std::string::npos) << r.summary;
}

TEST(DiskProbe, MissingPathIsCritical) {
  const Result r = run("{ name: gone, type: disk, path: /nonexistent/dozor }").result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "cannot stat /nonexistent/dozor: No such file or directory");
  EXPECT_TRUE(r.metrics.empty());
}

TEST(DiskProbe, ConfigErrors) {
  auto errors = config_errors("{ name: d, type: disk, path: /, warning: 150 }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].warning: expected a percentage, 0-100"), std::string::npos)
      << errors[0];
  errors = config_errors("{ name: d, type: disk }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].path: missing required key"), std::string::npos) << errors[0];
}

}  // namespace
}  // namespace dozor::probes
