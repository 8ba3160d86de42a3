#include "dozor/agent/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace dozor::agent {
namespace {

namespace fs = std::filesystem;

std::string base(const std::string& probes = "") {
  return "agent: { site: acme-kyiv, heartbeat: 2s }\n"
         "collector: { url: \"https://collector.example:7443/dozor/\", ca: certs/ca.pem, "
         "cert: certs/a.pem, key: certs/a.key }\n"
         "spool: { path: spool.db, max_size: 1MiB }\n"
         "probes:\n" +
         probes;
}

class AgentConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dozor-agent-config-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "certs");
    for (const char* f : {"ca.pem", "a.pem", "a.key"}) std::ofstream(dir_ / "certs" / f) << "x";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Loads `body` as agent.yaml; returns the config or the errors as "file:line: key: message".
  std::optional<AgentConfig> load(const std::string& body, std::vector<std::string>& errors,
                                  bool need_spool = true) {
    const auto path = (dir_ / "agent.yaml").string();
    std::ofstream(path) << body;
    std::vector<ConfigError> errs;
    auto c = load_agent_config(path, errs, need_spool);
    for (const auto& e : errs) {
      auto s = e.to_string();
      errors.push_back(s.substr(s.find("agent.yaml")));
    }
    return c;
  }

  fs::path dir_;
};

TEST_F(AgentConfigTest, OnceNeedsNoSpoolFolder) {
  std::vector<std::string> errors;
  std::string body = base("  - { name: d, type: disk, path: / }\n");
  body.replace(body.find("spool.db"), 8, "/nonexistent/dozor/spool.db");
  auto c = load(body, errors, false);
  EXPECT_TRUE(c) << ::testing::PrintToString(errors);
  EXPECT_TRUE(errors.empty()) << ::testing::PrintToString(errors);
}

TEST_F(AgentConfigTest, ReadsTheIssueShape) {
  std::vector<std::string> errors;
  auto c = load(base("  - { name: erp-port, type: tcp, host: 127.0.0.1, port: 1541, interval: 10s, "
                     "timeout: 2s }\n"
                     "  - { name: root-disk, type: disk, path: /, warning: 85, critical: 95, "
                     "interval: 60s }\n"),
                errors);
  ASSERT_TRUE(c) << ::testing::PrintToString(errors);
  EXPECT_EQ(c->site, "acme-kyiv");
  EXPECT_EQ(c->heartbeat, std::chrono::seconds(2));
  EXPECT_EQ(c->collector.host, "collector.example");
  EXPECT_EQ(c->collector.port, "7443");
  EXPECT_EQ(c->collector.path_prefix, "/dozor");
  EXPECT_EQ(c->collector.ca, (dir_ / "certs/ca.pem").string());  // relative to the file
  ASSERT_EQ(c->probes.size(), 2u);
  EXPECT_EQ(c->probes[0].name, "erp-port");
  EXPECT_EQ(c->probes[0].interval, std::chrono::seconds(10));
  EXPECT_EQ(c->probes[0].timeout, std::chrono::seconds(2));
  EXPECT_EQ(c->probes[1].timeout, std::chrono::seconds(5));  // default
  EXPECT_EQ(c->spool.path, (dir_ / "spool.db").string());
  EXPECT_EQ(c->spool.max_size, 1u << 20);
  EXPECT_EQ(c->spool.max_age, std::chrono::hours(24 * 7));
}

struct BadCase {
  const char* name;
  std::string body;
  std::string error;  // expected prefix "agent.yaml:LINE: KEY"
};

class AgentConfigErrors : public AgentConfigTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(AgentConfigErrors, NamesFileLineAndKey) {
  std::vector<std::string> errors;
  EXPECT_FALSE(load(GetParam().body, errors));
  ASSERT_FALSE(errors.empty());
  const bool named = std::any_of(errors.begin(), errors.end(), [](const std::string& e) {
    return e.rfind(GetParam().error, 0) == 0;
  });
  EXPECT_TRUE(named) << ::testing::PrintToString(errors);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AgentConfigErrors,
    ::testing::Values(
        BadCase{"missing_site", "agent: { heartbeat: 5s }\n", "agent.yaml:1: agent.site"},
        BadCase{"bad_heartbeat", "agent: { site: s, heartbeat: often }\n",
                "agent.yaml:1: agent.heartbeat"},
        BadCase{"unknown_section", base() + "alerts: {}\n", "agent.yaml:5: alerts: unknown"},
        BadCase{"plain_http_url",
                "agent: { site: s }\ncollector: { url: \"http://x:1\", ca: certs/ca.pem, "
                "cert: certs/a.pem, key: certs/a.key }\n",
                "agent.yaml:2: collector.url: expected https"},
        BadCase{"missing_key_file",
                "agent: { site: s }\ncollector: { url: \"https://x:1\", ca: certs/ca.pem, "
                "cert: certs/a.pem, key: certs/none.key }\n",
                "agent.yaml:2: collector.key: no such file"},
        BadCase{"duplicate_probe",
                base("  - { name: d, type: disk, path: / }\n"
                     "  - { name: d, type: disk, path: /tmp }\n"),
                "agent.yaml:6: probes[1].name: duplicate probe name 'd'"},
        BadCase{"unknown_type", base("  - { name: d, type: ftp }\n"),
                "agent.yaml:5: probes[0].type: unknown probe type 'ftp'"},
        BadCase{"timeout_over_interval",
                base("  - { name: d, type: disk, path: /, interval: 1s, timeout: 2s }\n"),
                "agent.yaml:5: probes[0].timeout"},
        BadCase{"probes_not_a_list", base() + "  name: x\n", "agent.yaml:5: probes"},
        BadCase{"spool_folder_missing",
                "agent: { site: s }\nspool: { path: /nonexistent/dozor/spool.db }\n",
                "agent.yaml:2: spool.path: folder /nonexistent/dozor does not exist"},
        BadCase{"yaml_syntax", "agent: { site: [\n", "agent.yaml:2"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace dozor::agent
