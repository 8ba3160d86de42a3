#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "log/state.h"
#include "probe_runner.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;
namespace fs = std::filesystem;

/// A folder for one test's log file and state file, removed with everything in it.
class LogFolder {
 public:
  LogFolder() {
    std::string tmpl = (fs::temp_directory_path() / "dozor-log-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~LogFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string log() const { return (path_ / "app.log").string(); }
  std::string state() const { return (path_ / "app.offset").string(); }
  /// What the application writes: appends to the file as it is now (a new one if it is not).
  void append(const std::string& text, const std::string& file = {}) const {
    std::ofstream(file.empty() ? log() : file, std::ios::app | std::ios::binary) << text;
  }
  std::string yaml(const std::string& extra = {}) const {
    return "{ name: app, type: log, path: '" + log() + "', pattern: 'ERROR|FATAL', state: '" +
           state() + "', warning: 1, critical: 10" + (extra.empty() ? "" : ", " + extra) + " }";
  }
  /// A probe as the agent builds it from the config; a new one stands for an agent restart.
  ProbeSpec probe(const std::string& extra = {}) const {
    std::vector<ConfigError> errors;
    auto spec = build(yaml(extra), errors);
    for (const auto& e : errors) ADD_FAILURE() << e.to_string();
    return spec ? std::move(*spec) : ProbeSpec{};
  }

 private:
  fs::path path_;
};

struct Counts {
  double matches = -1, lines = -1, bytes = -1;
};

Counts counts(const Result& r) {
  return {metric(r, "matches").value_or(-1), metric(r, "lines").value_or(-1),
          metric(r, "read_bytes").value_or(-1)};
}

TEST(LogProbe, CountsAppendedLinesOnce) {
  LogFolder dir;
  dir.append("ERROR from before the agent\n");
  ProbeSpec p = dir.probe();
  ASSERT_TRUE(p.probe);
  Result r = run(p).result;  // starts at the end
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(counts(r).lines, 0.0) << to_text(r);

  dir.append("2026-11-23 10:00:01 INFO started\n2026-11-23 10:00:02 ERROR disk full\n");
  dir.append("2026-11-23 10:00:03 FATAL gave up\n");
  r = run(p).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_EQ(counts(r).matches, 2.0);
  EXPECT_EQ(counts(r).lines, 3.0);
  EXPECT_EQ(counts(r).bytes, 103.0);
  EXPECT_EQ(r.summary, "2 of 3 new lines of " + dir.log() +
                           " match 'ERROR|FATAL', last: 2026-11-23 10:00:03 FATAL gave up");

  r = run(p).result;
  EXPECT_EQ(r.status, Status::ok) << to_text(r);
  EXPECT_EQ(r.summary, "no match for 'ERROR|FATAL' in 0 new lines of " + dir.log());

  std::string many;
  for (int i = 0; i < 12; ++i) many += "ERROR " + std::to_string(i) + "\r\n";
  dir.append(many);
  r = run(p).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(counts(r).matches, 12.0);
  EXPECT_TRUE(r.summary.ends_with("last: ERROR 11")) << r.summary;  // without the \r
}

TEST(LogProbe, FromStartReadsWhatIsThere) {
  LogFolder dir;
  dir.append("ERROR one\nok\nERROR two\n");
  ProbeSpec p = dir.probe("from_start: true");
  const Result r = run(p).result;
  EXPECT_EQ(counts(r).matches, 2.0) << to_text(r);
  EXPECT_EQ(counts(r).lines, 3.0);
}

TEST(LogProbe, RotationByRenameFinishesTheOldFileFirst) {
  LogFolder dir;
  dir.append("ok 0\n");
  ProbeSpec p = dir.probe();
  run(p);
  dir.append("ERROR a before rotation\n");
  const std::string rotated = dir.log() + ".1";
  fs::rename(dir.log(), rotated);
  // The application still writes to the renamed file until it reopens its log.
  dir.append("ERROR b after rename, old file\n", rotated);
  dir.append("ERROR c new file\nok 1\n");
  Result r = run(p).result;
  EXPECT_EQ(counts(r).matches, 3.0) << to_text(r);
  EXPECT_EQ(counts(r).lines, 4.0) << to_text(r);
  EXPECT_NE(r.summary.find("; rotated"), std::string::npos) << r.summary;
  EXPECT_NE(r.summary.find("last: ERROR c new file"), std::string::npos) << r.summary;

  dir.append("ERROR d\n");
  dir.append("ERROR late write to the rotated file\n", rotated);  // after we moved on: not seen
  r = run(p).result;
  EXPECT_EQ(counts(r).matches, 1.0) << to_text(r);
  EXPECT_EQ(counts(r).lines, 1.0) << to_text(r);
  EXPECT_EQ(r.summary.find("rotated"), std::string::npos) << r.summary;
}

TEST(LogProbe, TruncationReadsFromTheStart) {
  LogFolder dir;
  ProbeSpec p = dir.probe("from_start: true");
  dir.append("a long line that makes the file big enough\nERROR x\nanother long line here\n");
  EXPECT_EQ(counts(run(p).result).lines, 3.0);
  // copytruncate: the file is emptied in place and written again.
  fs::resize_file(dir.log(), 0);
  dir.append("ERROR after truncation\n");
  const Result r = run(p).result;
  EXPECT_EQ(counts(r).matches, 1.0) << to_text(r);
  EXPECT_EQ(counts(r).lines, 1.0) << to_text(r);
  EXPECT_NE(r.summary.find("; truncated, read from the start"), std::string::npos) << r.summary;
}

TEST(LogProbe, RestartInTheMiddleOfAFileCountsTheRestOnce) {
  LogFolder dir;
  std::string text;
  for (int i = 0; i < 1000; ++i)
    text += (i % 10 == 0 ? "ERROR line " : "INFO line ") + std::to_string(i) + " padding....\n";
  dir.append(text);
  double matches = 0, lines = 0, bytes = 0;
  {
    ProbeSpec first = dir.probe("from_start: true, max_read: 4KiB");
    const Counts c = counts(run(first).result);
    EXPECT_GT(c.lines, 0.0);
    EXPECT_LT(c.lines, 1000.0);  // bounded work: the rest is left for later runs
    matches += c.matches;
    lines += c.lines;
    bytes += c.bytes;
  }
  ProbeSpec second = dir.probe("from_start: true, max_read: 4KiB");  // the agent restarted
  for (int i = 0; i < 100 && lines < 1000; ++i) {
    const Counts c = counts(run(second).result);
    ASSERT_GT(c.lines, 0.0);
    matches += c.matches;
    lines += c.lines;
    bytes += c.bytes;
  }
  EXPECT_EQ(lines, 1000.0);
  EXPECT_EQ(matches, 100.0);
  EXPECT_EQ(bytes, static_cast<double>(text.size()));
  EXPECT_EQ(counts(run(second).result).lines, 0.0);
}

TEST(LogProbe, LinesWrittenWhileTheAgentIsDownCountOnce) {
  LogFolder dir;
  dir.append("ok\n");
  run(dir.probe());  // the agent's first run, then it stops
  dir.append("ERROR while down 1\nERROR while down 2\n");
  ProbeSpec p = dir.probe();
  Result r = run(p).result;
  EXPECT_EQ(counts(r).matches, 2.0) << to_text(r);
  EXPECT_EQ(counts(r).lines, 2.0);
  EXPECT_EQ(counts(run(p).result).lines, 0.0);

  // Down again, and the log is rotated meanwhile: the rest of the old file (now app.log.1) and
  // the whole new one are counted.
  dir.append("ERROR old file, while down\n");
  fs::rename(dir.log(), dir.log() + ".1");
  dir.append("ERROR new file, while down\nok\n");
  ProbeSpec again = dir.probe();
  r = run(again).result;
  EXPECT_EQ(counts(r).matches, 2.0) << to_text(r);
  EXPECT_EQ(counts(r).lines, 3.0) << to_text(r);
  EXPECT_EQ(counts(run(again).result).lines, 0.0);
}

TEST(LogProbe, ShortTimeoutSpreadsABigFileOverRunsAndCountsEachLineOnce) {
  LogFolder dir;
  std::string text;
  // ~60 MB: more than a run reads in its 80 ms on a fast, idle machine (max_read is out of the
  // way, so only the deadline stops a run).
  constexpr int kLines = 2'000'000;
  text.reserve(kLines * 32);
  for (int i = 0; i < kLines; ++i)
    text += (i % 100 == 0 ? "ERROR " : "INFO ") + std::to_string(i) + " some ordinary log text\n";
  dir.append(text);
  ProbeSpec p =
      dir.probe("from_start: true, pattern: 'ERROR [0-9]+ some', timeout: 100ms, max_read: 1GiB");
  double lines = 0, matches = 0;
  int runs = 0;
  for (; runs < 5000 && lines < kLines; ++runs) {
    const Result r = run(p).result;
    // A run past its timeout (a loaded machine) is unknown; the next run reports its lines.
    if (r.status == Status::unknown) continue;
    lines += counts(r).lines;
    matches += counts(r).matches;
  }
  EXPECT_GT(runs, 1);  // each run stopped at its deadline, at a line boundary
  EXPECT_EQ(lines, kLines);
  EXPECT_EQ(matches, kLines / 100);
  std::printf("%d runs of 100 ms for %d lines\n", runs, kLines);
}

TEST(LogProbe, NotARegularFile) {
  LogFolder dir;
  ASSERT_EQ(::mkfifo(dir.log().c_str(), 0600), 0);  // opening a FIFO could block forever
  const Result r = run(dir.probe("from_start: true")).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, dir.log() + " is not a regular file");

  // A file that could not be opened on the first run does not count as seen: once it can be,
  // the first run's rule (start at the end) applies.
  fs::remove(dir.log());
  fs::create_directory(dir.log());
  ProbeSpec p = dir.probe();
  EXPECT_EQ(run(p).result.summary, dir.log() + " is not a regular file");
  EXPECT_FALSE(fs::exists(dir.state()));
  fs::remove(dir.log());
  dir.append("ERROR from before\n");
  EXPECT_EQ(counts(run(p).result).lines, 0.0);
  dir.append("ERROR new\n");
  EXPECT_EQ(counts(run(p).result).matches, 1.0);
}

TEST(LogProbe, PartialLineCountsOnceWhenComplete) {
  LogFolder dir;
  ProbeSpec p = dir.probe("from_start: true");
  dir.append("ERROR part");
  Result r = run(p).result;
  EXPECT_EQ(counts(r).lines, 0.0) << to_text(r);
  EXPECT_EQ(counts(r).bytes, 0.0);
  // Not across a restart either.
  ProbeSpec restarted = dir.probe("from_start: true");
  EXPECT_EQ(counts(run(restarted).result).lines, 0.0);
  dir.append("ial\n");
  r = run(restarted).result;
  EXPECT_EQ(counts(r).matches, 1.0) << to_text(r);
  EXPECT_EQ(counts(r).lines, 1.0);
  EXPECT_TRUE(r.summary.ends_with("last: ERROR partial")) << r.summary;
  EXPECT_EQ(counts(run(restarted).result).lines, 0.0);
}

TEST(LogProbe, StartsAtTheEndOnALineBoundary) {
  LogFolder dir;
  dir.append("ERROR complete\nERROR being writ");
  ProbeSpec p = dir.probe();
  EXPECT_EQ(counts(run(p).result).lines, 0.0);
  dir.append("ten\n");
  const Result r = run(p).result;
  EXPECT_EQ(counts(r).lines, 1.0) << to_text(r);
  EXPECT_TRUE(r.summary.ends_with("last: ERROR being written")) << r.summary;
}

TEST(LogProbe, MissingFileThenAppearsIsReadWhole) {
  LogFolder dir;
  ProbeSpec p = dir.probe();
  Result r = run(p).result;
  EXPECT_EQ(r.status, Status::critical) << to_text(r);
  EXPECT_EQ(r.summary, dir.log() + " does not exist");
  dir.append("ERROR first\nok\n");
  r = run(p).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_EQ(counts(r).lines, 2.0) << to_text(r);

  // Deleted, then the agent restarts, then it appears: whole again.
  fs::remove(dir.log());
  EXPECT_EQ(run(p).result.status, Status::critical);
  ProbeSpec restarted = dir.probe();
  EXPECT_EQ(run(restarted).result.status, Status::critical);
  dir.append("ERROR again\n");
  EXPECT_EQ(counts(run(restarted).result).matches, 1.0);
}

TEST(LogProbe, VeryLongLine) {
  LogFolder dir;
  // `.*` on a long line is what overflows libstdc++'s regex stack without the windowed search.
  ProbeSpec p = dir.probe("from_start: true, pattern: 'ERROR.*'");
  dir.append("ERROR " + std::string(1 << 20, 'x') + "\nok\nERROR short\n");
  const Result r = run(p).result;
  EXPECT_EQ(counts(r).lines, 3.0) << to_text(r);
  EXPECT_EQ(counts(r).matches, 2.0) << to_text(r);
  EXPECT_EQ(counts(r).bytes, (1 << 20) + 6 + 1 + 3 + 12.0);
  EXPECT_LT(r.summary.size(), 400u);
}

TEST(LogProbe, LineLongerThanMaxReadIsSplit) {
  LogFolder dir;
  ProbeSpec p = dir.probe("from_start: true, max_read: 4KiB");
  dir.append("ERROR " + std::string(10000, 'x') + "\n");
  double lines = 0;
  for (int i = 0; i < 10; ++i) lines += counts(run(p).result).lines;
  EXPECT_EQ(lines, 3.0);  // 4 KiB + 4 KiB + the rest: it moves on rather than sticking
}

TEST(LogProbe, LastMatchTrimmedForTheSummary) {
  LogFolder dir;
  ProbeSpec p = dir.probe("from_start: true");
  dir.append("ERROR " + std::string(300, 'y') + "\n");
  const Result r = run(p).result;
  const std::string tail = "last: ERROR " + std::string(194, 'y') + "...";
  EXPECT_TRUE(r.summary.ends_with(tail)) << r.summary;
}

TEST(LogProbe, DamagedStateFileStartsAtTheEnd) {
  LogFolder dir;
  dir.append("ERROR old\n");
  std::ofstream(dir.state()) << "garbage";
  ProbeSpec p = dir.probe();
  Result r = run(p).result;
  EXPECT_EQ(counts(r).lines, 0.0) << to_text(r);
  EXPECT_NE(r.summary.find("ignored a damaged " + dir.state() + ", position lost"),
            std::string::npos)
      << r.summary;
  std::ifstream in(dir.state());
  std::string saved((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto pos = log::parse_log_state(saved);
  ASSERT_TRUE(pos) << saved;
  EXPECT_EQ(pos->offset, 10u);
  struct stat st {};
  ASSERT_EQ(::stat(dir.log().c_str(), &st), 0);
  EXPECT_EQ(pos->inode, static_cast<std::uint64_t>(st.st_ino));
  EXPECT_EQ(pos->dev, static_cast<std::uint64_t>(st.st_dev));
}

TEST(LogProbe, UnwritableStateIsAWarning) {
  LogFolder dir;
  const std::string yaml = "{ name: app, type: log, path: '" + dir.log() +
                           "', pattern: ERROR, state: '" + dir.state() + "/x' }";
  fs::create_directory(dir.state());  // state's folder exists, its file cannot be created
  std::vector<ConfigError> errors;
  auto spec = build(yaml, errors);
  ASSERT_TRUE(spec);
  fs::remove(dir.state());
  dir.append("ok\n");
  const Result r = run(*spec).result;
  EXPECT_EQ(r.status, Status::warning) << to_text(r);
  EXPECT_NE(r.summary.find("cannot save the position to " + dir.state() + "/x.tmp"),
            std::string::npos)
      << r.summary;
}

TEST(LogState, FormatParsesBack) {
  const log::LogPosition p{2049, 131090, 5678};
  EXPECT_EQ(log::format_log_state(p), "dozor-log-state 1 dev=2049 inode=131090 offset=5678\n");
  EXPECT_EQ(log::parse_log_state(log::format_log_state(p)), p);
  for (const char* bad :
       {"", "dozor-log-state 1", "dozor-log-state 1 dev=1 inode=2 offset=3",
        "dozor-log-state 1 dev=1 inode=2 offset=-3\n",
        "dozor-log-state 1 dev=01 inode=2 offset=3\n", "dozor-log-state 2 dev=1 inode=2 offset=3\n",
        "dozor-log-state 1 dev=1 inode=2 offset=3\nx",
        "dozor-log-state 1 dev=1 inode=2 offset=99999999999999999999\n"})
    EXPECT_FALSE(log::parse_log_state(bad)) << bad;
}

TEST(LogProbe, ConfigErrors) {
  auto errors = config_errors("{ name: a, type: log, path: /var/log/x, pattern: '(' }");
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("probes[0].pattern: invalid regular expression"), std::string::npos)
      << errors[0];
  errors = config_errors("{ name: a, type: log, path: /var/log/x, pattern: x, state: rel.offset }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].state: must be an absolute path"), std::string::npos)
      << errors[0];
  errors =
      config_errors("{ name: a, type: log, path: /var/log/x, pattern: x, state: /nonexistent/s }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("probes[0].state: folder /nonexistent does not exist"),
            std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace dozor::probes
