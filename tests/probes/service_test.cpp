#include <gtest/gtest.h>

#include <filesystem>

#include "probe_runner.h"
#include "service/unit_state.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;

// systemd does not run in the test machine, so no real unit can be active here. The real
// systemctl is run for its error path (RealSystemctl); the states come from a stand-in systemctl
// that prints `systemctl show` answers as systemd 252 prints them (probes/service/testdata).
const std::string kFakeSystemctl =
    (std::filesystem::path(DOZOR_SOURCE_DIR) / "probes/service/testdata/systemctl")
        .lexically_normal()
        .string();

Result run_unit(const std::string& unit) {
  return run("{ name: svc, type: service, unit: " + unit + ", systemctl: " + kFakeSystemctl + " }")
      .result;
}

TEST(ServiceProbe, ActiveUnit) {
  const Result r = run_unit("postgresql.service");
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("postgresql.service active (running), pid 812, up "))
      << r.summary;
  EXPECT_EQ(metric(r, "active"), 1.0);
  EXPECT_EQ(metric(r, "restarts_total"), 0.0);
  // Started 5.4s after boot by the monotonic clock; this machine has been up longer than that.
  ASSERT_TRUE(metric(r, "uptime_seconds")) << to_text(r);
  EXPECT_GT(*metric(r, "uptime_seconds"), 0.0);
}

TEST(ServiceProbe, FailedUnitIsCritical) {
  const Result r = run_unit("srv1cv83.service");
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "srv1cv83.service failed (failed), restarted 3 times");
  EXPECT_EQ(metric(r, "active"), 0.0);
  EXPECT_EQ(metric(r, "restarts_total"), 3.0);
  EXPECT_FALSE(metric(r, "uptime_seconds"));
}

TEST(ServiceProbe, MissingUnitIsCritical) {
  const Result r = run_unit("nosuch.service");
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "unit nosuch.service not found");
  EXPECT_EQ(metric(r, "active"), 0.0);
}

TEST(ServiceProbe, ReloadingWarnsButCrashLoopIsCritical) {
  Result r = run_unit("nginx.service");
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_EQ(r.summary, "nginx.service reloading (reload), pid 1520");
  r = run_unit("ras.service");
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "ras.service activating (auto-restart), restarted 5 times");
}

TEST(ServiceProbe, SystemctlFailingIsUnknownWithItsMessage) {
  const Result r = run_unit("unknown-to-the-fake.service");
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary,
            "systemctl show unknown-to-the-fake.service: exit code 1: Failed to get properties: "
            "no capture for unknown-to-the-fake.service");
}

// The real systemctl (Debian's systemd package; scripts/setup --test installs it). Where systemd
// does not run (containers, this test machine) it must fail clearly; where it runs, journald is
// a unit every systemd machine has active.
TEST(ServiceProbe, RealSystemctl) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/systemctl") ||
              std::filesystem::exists("/bin/systemctl"))
      << "no systemctl installed: run scripts/setup --test";
  if (std::filesystem::exists("/run/systemd/system")) {
    const Result r =
        run("{ name: journald, type: service, unit: systemd-journald.service }").result;
    EXPECT_EQ(r.status, Status::ok) << to_text(r);
    EXPECT_EQ(metric(r, "active"), 1.0);
    return;
  }
  const Result r = run("{ name: ssh, type: service, unit: ssh.service }").result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_NE(r.summary.find("System has not been booted with systemd"), std::string::npos)
      << r.summary;
  EXPECT_TRUE(r.summary.starts_with("systemctl show ssh.service: exit code 1: ")) << r.summary;
}

TEST(ServiceProbe, MissingSystemctlIsUnknown) {
  const Result r =
      run("{ name: s, type: service, unit: a.service, systemctl: /nonexistent/systemctl }").result;
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "cannot run /nonexistent/systemctl: No such file or directory");
}

TEST(ServiceProbe, ConfigErrors) {
  EXPECT_EQ(config_errors("{ name: s, type: service }"),
            std::vector<std::string>{"test.yaml:1: probes[0].unit: missing required key"});
  const auto errors = config_errors("{ name: s, type: service, unit: --all }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].unit: expected a unit name"), std::string::npos) << errors[0];
}

TEST(UnitState, ParsesShowOutput) {
  auto s = service::parse_unit_state(
      "MainPID=812\r\nNRestarts=x\nExecMainStartTimestampMonotonic=5\nLoadState=loaded\n"
      "ActiveState=active\nSubState=running\nnoise\nId=a=b");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->load_state, "loaded");
  EXPECT_EQ(s->active_state, "active");
  EXPECT_EQ(s->sub_state, "running");
  EXPECT_EQ(s->main_pid, 812);
  EXPECT_FALSE(s->restarts);  // malformed number: absent
  EXPECT_EQ(s->start_monotonic_us, 5);
  EXPECT_FALSE(service::parse_unit_state("System has not been booted with systemd\n"));
  EXPECT_FALSE(service::parse_unit_state(""));
}

}  // namespace
}  // namespace dozor::probes
