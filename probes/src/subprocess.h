#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dozor/probes/probe.h"

namespace dozor::probes {

/// A child process to run for a probe: a monitoring plugin, `systemctl`, a BAS utility.
struct ProcessRequest {
  std::vector<std::string> argv;  // argv[0] searched on the agent's PATH when it has no '/'
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) the
                                                         // agent's environment
  std::chrono::milliseconds timeout{5000};
  std::size_t max_output = 64 * 1024;  // per stream; the rest is read and dropped
  // Between SIGTERM and SIGKILL of the group; also how long descendants may keep the output
  // pipes open after the direct child exited before the group is killed.
  std::chrono::milliseconds kill_grace{500};
};

struct ProcessResult {
  int exit_code = -1;      // -1 when it did not exit by itself (killed, or failed to start)
  int signal = 0;          // the signal that ended it, if any
  bool timed_out = false;  // killed at the deadline (the whole process group)
  bool truncated = false;  // output longer than max_output
  std::string out, err;
  std::string error;  // could not start: "rac: No such file or directory"
  double seconds = 0;
};

/// Runs argv without a shell, in its own process group, stdin from /dev/null; at the deadline
/// the whole group gets SIGTERM, then SIGKILL after a short grace. Whatever is left of the group
/// when the child has exited (a forked grandchild) is killed too. Blocking: call it through
/// run_blocking on the probe pool. Thread-safe; needs SIGCHLD not ignored (SIG_IGN would reap
/// the child before we can read its status).
ProcessResult run_process(const ProcessRequest& request);

/// A probe's child process: run_process on ctx.blocking, its deadline and kill grace cut from
/// ctx.timeout so that even a child ignoring SIGTERM is killed and reaped within it. Always
/// answers; `error` says when the child did not run or the pool did not answer in time. `last`
/// remembers the call, so that a run still stuck in an earlier call does not take a second pool
/// thread (see BlockingCall).
asio::awaitable<ProcessResult> run_process_on_pool(
    ProbeContext& ctx, ProcessRequest request, std::weak_ptr<BlockingCall<ProcessResult>>& last);

/// The first non-blank line of a child's output, fit for a summary: trimmed, control characters
/// as spaces, at most about 1 KiB (cut between UTF-8 characters).
std::string first_output_line(std::string_view text);

/// "exit code 2", "killed by signal 9 (Killed)", "timed out after 5s": how a run ended, for
/// summaries.
std::string describe_end(const ProcessResult& result);

}  // namespace dozor::probes
