// GoogleTest's main for every unit test executable, with one change: a skipped test fails.
// ctest counts a skipped test as passed (gtest_discover_tests matches GoogleTest's skip line),
// and scripts/test installs everything a test needs, so a skip could only hide a test that
// should have run. No test of the project skips; this keeps it so.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>

namespace {

/// Forwards to GoogleTest's own printer, but reports a skipped test as a failure.
class SkipIsFailurePrinter : public testing::TestEventListener {
 public:
  explicit SkipIsFailurePrinter(testing::TestEventListener* printer) : printer_(printer) {}

  void OnTestProgramStart(const testing::UnitTest& u) override { printer_->OnTestProgramStart(u); }
  void OnTestIterationStart(const testing::UnitTest& u, int i) override {
    printer_->OnTestIterationStart(u, i);
  }
  void OnEnvironmentsSetUpStart(const testing::UnitTest& u) override {
    printer_->OnEnvironmentsSetUpStart(u);
  }
  void OnEnvironmentsSetUpEnd(const testing::UnitTest& u) override {
    printer_->OnEnvironmentsSetUpEnd(u);
  }
  void OnTestSuiteStart(const testing::TestSuite& s) override { printer_->OnTestSuiteStart(s); }
  void OnTestStart(const testing::TestInfo& t) override { printer_->OnTestStart(t); }
  void OnTestPartResult(const testing::TestPartResult& r) override {
    printer_->OnTestPartResult(r);
  }
  void OnTestEnd(const testing::TestInfo& t) override {
    if (!t.result()->Skipped()) return printer_->OnTestEnd(t);
    std::string why;
    for (int i = 0; i < t.result()->total_part_count(); ++i)
      if (t.result()->GetTestPartResult(i).skipped())
        why = t.result()->GetTestPartResult(i).message();
    std::printf("[  FAILED  ] %s.%s was skipped, and a skip fails here: %s\n", t.test_suite_name(),
                t.name(), why.c_str());
    std::fflush(stdout);
  }
  void OnTestSuiteEnd(const testing::TestSuite& s) override { printer_->OnTestSuiteEnd(s); }
  void OnEnvironmentsTearDownStart(const testing::UnitTest& u) override {
    printer_->OnEnvironmentsTearDownStart(u);
  }
  void OnEnvironmentsTearDownEnd(const testing::UnitTest& u) override {
    printer_->OnEnvironmentsTearDownEnd(u);
  }
  void OnTestIterationEnd(const testing::UnitTest& u, int i) override {
    if (u.skipped_test_count() == 0) return printer_->OnTestIterationEnd(u, i);
    std::printf("[  FAILED  ] %d test(s) skipped: scripts/setup --test installs what they need\n",
                u.skipped_test_count());
    std::fflush(stdout);
  }
  void OnTestProgramEnd(const testing::UnitTest& u) override { printer_->OnTestProgramEnd(u); }

 private:
  std::unique_ptr<testing::TestEventListener> printer_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  auto& listeners = testing::UnitTest::GetInstance()->listeners();
  listeners.Append(new SkipIsFailurePrinter(listeners.Release(listeners.default_result_printer())));
  const int failed = RUN_ALL_TESTS();
  return failed != 0 || testing::UnitTest::GetInstance()->skipped_test_count() > 0 ? 1 : 0;
}
