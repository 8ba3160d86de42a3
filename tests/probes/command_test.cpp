#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "command/perfdata.h"
#include "probe_runner.h"
#include "process_group.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;
using command::parse_plugin_output;
using command::PluginOutput;

// Debian's monitoring-plugins (monitoring-plugins-basic, scripts/setup --test).
const std::string kPlugins = "/usr/lib/nagios/plugins/";

/// The command probe with plugins written as /bin/sh scripts in a scratch folder.
class CommandProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dozor-command-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  /// An executable sh script in the test's folder.
  std::string script(const std::string& name, const std::string& body) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path;
  }

  static Result run_command(const std::string& command, const std::string& extra = "") {
    return run("{ name: plugin, type: command, command: " + command + extra + " }").result;
  }

  std::string dir_;
};

/// The command probe against Debian's real plugins. Their absence is a failure, not a skip:
/// `scripts/test` installs them.
class CommandPlugin : public CommandProbe {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kPlugins + "check_dummy"))
        << "monitoring-plugins-basic is not installed: run scripts/setup --test";
    CommandProbe::SetUp();
  }
};

/// A TCP listener on 127.0.0.1; the kernel completes connections into its backlog.
struct Listener {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port = 0;
  Listener() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 8) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
    port = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd); }
};

TEST_F(CommandPlugin, DummyStatusesAndText) {
  const struct {
    int code;
    Status status;
    const char* summary;
  } cases[] = {{0, Status::ok, "OK: all good"},
               {1, Status::warning, "WARNING: all good"},
               {2, Status::critical, "CRITICAL: all good"},
               {3, Status::unknown, "UNKNOWN: all good"}};
  for (const auto& c : cases) {
    const Result r =
        run_command("[" + kPlugins + "check_dummy, '" + std::to_string(c.code) + "', all good]");
    EXPECT_EQ(r.status, c.status) << to_text(r);
    EXPECT_EQ(r.summary, c.summary);
    EXPECT_EQ(metric(r, "exit_code"), c.code);
    ASSERT_TRUE(metric(r, "duration_seconds"));
    EXPECT_GE(*metric(r, "duration_seconds"), 0.0);
    EXPECT_LT(*metric(r, "duration_seconds"), 5.0);
  }
}

// The value of the plugin's performance data item `label`.
std::optional<double> perf(const Result& r, const std::string& label) {
  for (const auto& m : r.metrics)
    if (m.name == "perfdata" && m.labels.count("label") && m.labels.at("label") == label)
      return m.value;
  return std::nullopt;
}

TEST_F(CommandPlugin, DiskOfRoot) {
  const Result r = run_command("[" + kPlugins + "check_disk, -w, 10%, -c, 5%, -p, /]");
  // How full this machine's disk is decides the status; the exit code must agree with it.
  ASSERT_TRUE(metric(r, "exit_code")) << to_text(r);
  EXPECT_EQ(static_cast<int>(r.status), static_cast<int>(*metric(r, "exit_code")));
  EXPECT_TRUE(r.summary.starts_with("DISK ")) << r.summary;
  // "/=25063063552B;...": the mount point is the label, bytes the unit.
  const auto used = perf(r, "/");
  ASSERT_TRUE(used) << to_text(r);
  EXPECT_GT(*used, 0.0);
  EXPECT_LE(*used, static_cast<double>(std::filesystem::space("/").capacity));
  for (const auto& m : r.metrics) {
    if (m.name == "perfdata") {
      EXPECT_EQ(m.unit, "bytes");
    }
  }
}

TEST_F(CommandPlugin, TcpToListenerAndClosedPort) {
  Listener listener;
  Result r = run_command("[" + kPlugins + "check_tcp, -H, 127.0.0.1, -p, '" +
                         std::to_string(listener.port) + "']");
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("TCP OK")) << r.summary;
  ASSERT_TRUE(perf(r, "time")) << to_text(r);  // time=0.000123s;;;0.000000;10.000000
  EXPECT_GE(*perf(r, "time"), 0.0);
  EXPECT_LT(*perf(r, "time"), 5.0);

  int closed_port = 0;
  {
    Listener gone;  // a port that was free a moment ago, closed again
    closed_port = gone.port;
  }
  r = run_command("[" + kPlugins + "check_tcp, -H, 127.0.0.1, -p, '" + std::to_string(closed_port) +
                  "']");
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "connect to address 127.0.0.1 and port " + std::to_string(closed_port) +
                           ": Connection refused");
}

TEST_F(CommandPlugin, Procs) {
  const Result r = run_command("[" + kPlugins + "check_procs]");
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_TRUE(r.summary.starts_with("PROCS OK: ")) << r.summary;
  ASSERT_TRUE(perf(r, "procs")) << to_text(r);
  EXPECT_GE(*perf(r, "procs"), 1.0);
}

TEST_F(CommandProbe, HangingPluginIsKilledWithItsChildren) {
  const std::string pgid_file = dir_ + "/pgid";
  const std::string plugin =
      script("check_hang", "echo $$ > " + pgid_file + "\nsleep 30 &\nsleep 30 &\nsleep 30\n");
  const ProbeRun run_ =
      run("{ name: hang, type: command, interval: 10s, timeout: 1s, command: [" + plugin + "] }");
  const Result& r = run_.result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "timed out after 1s (process group killed)");
  EXPECT_LT(run_.seconds, 1.0 + 2.0);  // killed, not left to its 30 s; timeout + 2 s of slack
  std::ifstream in(pgid_file);
  pid_t pgid = 0;
  ASSERT_TRUE(in >> pgid);
  EXPECT_TRUE(group_gone(pgid)) << "children of the plugin survived";
}

TEST_F(CommandProbe, LongOutputPerfdataAndEnvironment) {
  const std::string plugin = script("check_long",
                                    "echo \"ERP OK - $DOZOR_BASE answers | 'sessions active'=12;"
                                    "50;80;0; latency=250ms\"\n"
                                    "echo 'base 1: ok'\n"
                                    "echo 'base 2: ok | db_size=2GB;;;0 exit_code=9 latency=1s'\n"
                                    "echo 'free=75%'\n");
  const Result r = run_command("[" + plugin + "]", ", env: { DOZOR_BASE: acc2026 }");
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(r.summary, "ERP OK - acc2026 answers");
  EXPECT_EQ(perf(r, "sessions active"), 12.0);
  EXPECT_EQ(perf(r, "latency"), 0.25);
  EXPECT_EQ(perf(r, "db_size"), 2.0 * 1024 * 1024 * 1024);
  // The plugin's own exit_code item cannot shadow the probe's; a repeated label gets a suffix.
  EXPECT_EQ(metric(r, "exit_code"), 0.0);
  EXPECT_EQ(perf(r, "exit_code"), 9.0);
  EXPECT_EQ(perf(r, "latency_2"), 1.0);
  EXPECT_EQ(perf(r, "free"), 75.0);
}

TEST_F(CommandProbe, OddEndings) {
  Result r = run_command("[" + script("check_5", "echo 'odd'; exit 5\n") + "]");
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "exit code 5: odd");

  r = run_command("[" + script("check_err", "echo 'cannot read config' >&2; exit 2\n") + "]");
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, "cannot read config");  // stderr when stdout says nothing

  r = run_command("[" + script("check_quiet", "exit 0\n") + "]");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.summary, "no output (exit code 0)");

  r = run_command("[" + script("check_crash", "echo partial; kill -SEGV $$\n") + "]");
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "killed by signal 11 (SIGSEGV): partial");
  EXPECT_FALSE(metric(r, "exit_code"));

  r = run_command("[/nonexistent/check_rac]");
  EXPECT_EQ(r.status, Status::unknown) << to_text(r);
  EXPECT_EQ(r.summary, "cannot run /nonexistent/check_rac: No such file or directory");
}

TEST_F(CommandProbe, TruncatedOutputKeepsWholeLinesOnly) {
  // The second line's perfdata is cut by max_output: half a number must not become a metric.
  const std::string plugin =
      script("check_big", "echo 'OK | a=1'\necho 'x | b=123456789'\nhead -c 100000 /dev/zero\n");
  const Result r = run_command("[" + plugin + "]", ", max_output: 20B");
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(perf(r, "a"), 1.0);
  EXPECT_FALSE(perf(r, "b"));
}

TEST_F(CommandProbe, ConfigErrors) {
  auto errors = config_errors("{ name: c, type: command, command: check_disk -w 10% }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].command: expected a list"), std::string::npos) << errors[0];
  errors = config_errors("{ name: c, type: command, command: [] }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].command: expected a non-empty list"), std::string::npos);
  errors = config_errors("{ name: c, type: command, command: [a, [b]] }");
  ASSERT_EQ(errors.size(), 1u);
  errors = config_errors("{ name: c, type: command, command: [a], max_output: 0 }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].max_output:"), std::string::npos) << errors[0];
}

// The parser by itself: the plugin API's examples and the odd things plugins print.
TEST(Perfdata, FirstLine) {
  const PluginOutput o = parse_plugin_output(
      "DISK OK - free space: / 74083MiB (75% inode=97%);| "
      "/=25063063552B;243497277849;257024904396;0;270552530944\n");
  EXPECT_EQ(o.summary, "DISK OK - free space: / 74083MiB (75% inode=97%);");
  ASSERT_EQ(o.perfdata.size(), 1u);
  const auto& v = o.perfdata[0];
  EXPECT_EQ(v.label, "/");
  EXPECT_EQ(v.value, 25063063552.0);
  EXPECT_EQ(v.unit, "bytes");
  EXPECT_EQ(v.uom, "B");
  EXPECT_EQ(v.warn, "243497277849");
  EXPECT_EQ(v.crit, "257024904396");
  EXPECT_EQ(v.min, "0");
  EXPECT_EQ(v.max, "270552530944");
  EXPECT_EQ(o.skipped, 0u);
}

TEST(Perfdata, UnitsQuotesAndOddValues) {
  const PluginOutput o = parse_plugin_output(
      "OK|'label with spaces'=12.5ms;@10:20;~:30 'it''s'=1 u=3us t=2s p=50% k=1KB m=+1,5MB "
      "c=-3e2c f=5furlongs n=7 big=1e400 und=U bad=abc =1 x 'open=1");
  EXPECT_EQ(o.summary, "OK");
  ASSERT_EQ(o.perfdata.size(), 10u);
  EXPECT_EQ(o.perfdata[0].label, "label with spaces");
  EXPECT_DOUBLE_EQ(o.perfdata[0].value, 0.0125);
  EXPECT_EQ(o.perfdata[0].unit, "s");
  EXPECT_EQ(o.perfdata[0].warn, "@10:20");
  EXPECT_EQ(o.perfdata[0].crit, "~:30");
  EXPECT_EQ(o.perfdata[1].label, "it's");
  EXPECT_DOUBLE_EQ(o.perfdata[2].value, 3e-6);
  EXPECT_EQ(o.perfdata[3].value, 2.0);
  EXPECT_EQ(o.perfdata[4].unit, "%");
  EXPECT_EQ(o.perfdata[5].value, 1024.0);
  EXPECT_EQ(o.perfdata[6].value, 1.5 * 1024 * 1024);  // decimal comma of a localised plugin
  EXPECT_EQ(o.perfdata[7].value, -300.0);
  EXPECT_EQ(o.perfdata[7].unit, "c");
  EXPECT_EQ(o.perfdata[8].unit, "furlongs");
  EXPECT_EQ(o.perfdata[9].value, 7.0);
  EXPECT_EQ(o.perfdata[9].unit, "");
  EXPECT_EQ(o.skipped, 6u);  // big, und, bad, =1, x, 'open
}

TEST(Perfdata, LongOutput) {
  // The plugin API's example: perfdata after the first `|` of the long output runs to the end.
  const PluginOutput o = parse_plugin_output(
      "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\r\n"
      "/ 15272 MB (77%);\n"
      "/boot 68 MB (69%);\n"
      "/home 69357 MB (27%);\n"
      "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
      "/home=69357MB;253404;253409;0;253414\n"
      "/var/log=818MB;970;975;0;980\n");
  EXPECT_EQ(o.summary, "DISK OK - free space: / 3326 MB (56%);");
  ASSERT_EQ(o.perfdata.size(), 4u);
  EXPECT_EQ(o.perfdata[0].label, "/");
  EXPECT_EQ(o.perfdata[1].label, "/boot");
  EXPECT_EQ(o.perfdata[2].label, "/home");
  EXPECT_EQ(o.perfdata[3].label, "/var/log");
  EXPECT_EQ(o.perfdata[3].value, 818.0 * 1024 * 1024);
  EXPECT_EQ(o.perfdata[3].max, "980");

  // Long output without a `|` carries no perfdata, even when it looks like some.
  EXPECT_TRUE(parse_plugin_output("OK\nfoo=1\n").perfdata.empty());
  EXPECT_EQ(parse_plugin_output("").summary, "");
  EXPECT_EQ(parse_plugin_output("  | a=1").summary, "");
}

TEST(Perfdata, LabelsAreKeptAsWrittenAndBounded) {
  EXPECT_EQ(command::perfdata_label("/var/log"), "/var/log");
  EXPECT_EQ(command::perfdata_label("sessions active"), "sessions active");
  EXPECT_EQ(command::perfdata_label("C:\\ used %"), "C:\\ used %");
  EXPECT_EQ(command::perfdata_label("база\t1"), "база1");
  EXPECT_EQ(command::perfdata_label(""), "value");
  EXPECT_EQ(command::perfdata_label(std::string(500, 'a')).size(), 100u);
  EXPECT_EQ(command::perfdata_label(std::string(99, 'a') + "б").size(), 101u);  // not cut in half
}

}  // namespace
}  // namespace dozor::probes
