#include "src/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "process_group.h"

namespace dozor::probes {
namespace {

using namespace std::chrono_literals;
using probe_testing::group_gone;

ProcessResult run_sh(const std::string& script, std::chrono::milliseconds timeout = 5s) {
  ProcessRequest req;
  req.argv = {"sh", "-c", script};
  req.timeout = timeout;
  return run_process(req);
}

TEST(RunProcess, ExitCodeAndOutput) {
  ProcessResult r = run_sh("echo hello; exit 0");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(describe_end(r), "exit code 0");

  r = run_sh("exit 3");
  EXPECT_EQ(r.exit_code, 3);
  r = run_sh("exit 255");
  EXPECT_EQ(r.exit_code, 255);
}

TEST(RunProcess, StderrKeptApart) {
  const ProcessResult r = run_sh("echo out; echo oops >&2; exit 2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "oops\n");
}

TEST(RunProcess, StdinIsDevNull) {
  // cat would wait forever on an inherited terminal or pipe.
  const ProcessResult r = run_sh("cat; echo done", 3s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "done\n");
}

TEST(RunProcess, EnvironmentAddedAndReplaced) {
  ::setenv("DOZOR_SUBPROCESS_TEST_OLD", "agent", 1);
  ProcessRequest req;
  req.argv = {"sh", "-c", "echo \"$DOZOR_NEW:$DOZOR_SUBPROCESS_TEST_OLD:${HOME:+home}\""};
  req.env = {{"DOZOR_NEW", "a b"}, {"DOZOR_SUBPROCESS_TEST_OLD", "probe"}};
  ProcessResult r = run_process(req);
  EXPECT_EQ(r.out, "a b:probe:home\n");
  req.env.clear();
  r = run_process(req);
  EXPECT_EQ(r.out, ":agent:home\n");
  ::unsetenv("DOZOR_SUBPROCESS_TEST_OLD");
}

TEST(RunProcess, ArgumentsAreNotShellWords) {
  ProcessRequest req;
  req.argv = {"printf", "%s|", "a b", "$HOME", "*"};
  const ProcessResult r = run_process(req);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "a b|$HOME|*|");
}

TEST(RunProcess, OutputBeyondLimitIsReadAndDropped) {
  ProcessRequest req;
  // 1 MiB on stdout: the child must not block on a full pipe, and we keep only 1000 bytes.
  req.argv = {"sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; echo tail >&2"};
  req.max_output = 1000;
  const ProcessResult r = run_process(req);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.out, std::string(1000, 'x'));
  EXPECT_EQ(r.err, "tail\n");

  req.max_output = 64 * 1024;
  req.argv = {"echo", "short"};
  EXPECT_FALSE(run_process(req).truncated);
}

TEST(RunProcess, TimeoutKillsTheWholeGroup) {
  // The shell prints its pid, which is the group id; its two sleeps must not survive it.
  const ProcessResult r = run_sh("echo $$; sleep 30 & sleep 30", 300ms);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_LT(r.seconds, 3.0);
  EXPECT_EQ(describe_end(r), "timed out (process group killed)");
  const pid_t group = std::stoi(r.out);
  EXPECT_TRUE(group_gone(group)) << "sleeps of group " << group << " survived";
}

TEST(RunProcess, TermIgnoredThenKilled) {
  ProcessRequest req;
  req.argv = {"sh", "-c", "trap '' TERM; echo $$; while :; do sleep 0.05; done"};
  req.timeout = 200ms;
  req.kill_grace = 200ms;
  const ProcessResult r = run_process(req);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_LT(r.seconds, 3.0);
  EXPECT_TRUE(group_gone(std::stoi(r.out)));
}

TEST(RunProcess, GrandchildHoldingThePipesDoesNotHangUs) {
  // The child exits at once; its background sleep keeps stdout open. We must not wait for it to
  // the deadline, and it must not survive.
  const ProcessResult r = run_sh("echo $$; sleep 30 & exit 1", 10s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_LT(r.seconds, 3.0);
  EXPECT_TRUE(group_gone(std::stoi(r.out)));
}

TEST(RunProcess, DetachedGrandchildIsKilledAtTheEnd) {
  // The grandchild closes its output, so nothing waits on it; it is still killed with the group.
  const ProcessResult r = run_sh("echo $$; sleep 30 >/dev/null 2>&1 & exit 0");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_LT(r.seconds, 3.0);
  EXPECT_TRUE(group_gone(std::stoi(r.out)));
}

TEST(RunProcess, KilledBySignal) {
  const ProcessResult r = run_sh("kill -SEGV $$");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGSEGV);
  EXPECT_EQ(describe_end(r), "killed by signal 11 (SIGSEGV)");
}

TEST(RunProcess, SpawnFailures) {
  ProcessRequest req;
  req.argv = {"dozor-no-such-command-rac"};
  ProcessResult r = run_process(req);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.error, "dozor-no-such-command-rac: No such file or directory");
  EXPECT_EQ(describe_end(r),
            "could not start: dozor-no-such-command-rac: No such file or directory");

  req.argv = {"/etc/passwd"};
  r = run_process(req);
  EXPECT_EQ(r.error, "/etc/passwd: Permission denied");

  req.argv = {};
  EXPECT_EQ(run_process(req).error, "empty command");
}

}  // namespace
}  // namespace dozor::probes
