#include "dozor/protocol/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

namespace dozor {
namespace {

using std::chrono::milliseconds;
using testing::HasSubstr;

// Shaped like a tcp probe's table, with one option of every kind.
constexpr OptionSpec kSpecs[] = {
    {"name", OptionKind::string, "", true, "probe name, unique per agent"},
    {"type", OptionKind::string, "", true, "probe type"},
    {"host", OptionKind::string, "127.0.0.1", false, "host to connect to"},
    {"port", OptionKind::integer, "", true, "TCP port"},
    {"interval", OptionKind::duration, "10s", false, "time between runs"},
    {"timeout", OptionKind::duration, "2s", false, "give up after"},
    {"ratio", OptionKind::number, "0.5", false, "a fraction"},
    {"tls", OptionKind::boolean, "false", false, "use TLS"},
    {"max_body", OptionKind::size, "64KiB", false, "largest body read"},
    {"labels", OptionKind::string_map, "", false, "extra labels"},
};

struct Read {
  std::vector<ConfigError> errors;
  Options opts{"", "", &errors};
};

// Reads `yaml` (a mapping) against kSpecs as if it were at `path` in agent.yaml.
Read read(const std::string& yaml, const std::string& path = "probes[0]") {
  Read r;
  r.opts = read_options(YAML::Load(yaml), kSpecs, "agent.yaml", path, r.errors);
  return r;
}

std::string describe(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

TEST(Options, DefaultsAreFilled) {
  auto r = read("name: erp-port\ntype: tcp\nport: 1541\n");
  ASSERT_TRUE(r.errors.empty()) << describe(r.errors);
  EXPECT_TRUE(r.opts.ok());
  EXPECT_EQ(r.opts.path(), "probes[0]");
  EXPECT_EQ(r.opts.string("name"), "erp-port");
  EXPECT_EQ(r.opts.integer("port"), 1541);
  EXPECT_TRUE(r.opts.has("host"));
  EXPECT_EQ(r.opts.string("host"), "127.0.0.1");
  EXPECT_EQ(r.opts.duration("interval"), milliseconds(10'000));
  EXPECT_EQ(r.opts.duration("timeout"), milliseconds(2'000));
  EXPECT_DOUBLE_EQ(r.opts.number("ratio"), 0.5);
  EXPECT_TRUE(r.opts.has("tls"));
  EXPECT_FALSE(r.opts.boolean("tls"));
  EXPECT_EQ(r.opts.size("max_body"), 64u * 1024);
  // No default and not given.
  EXPECT_FALSE(r.opts.has("labels"));
  EXPECT_TRUE(r.opts.string_map("labels").empty());
}

TEST(Options, GivenValuesOverrideDefaults) {
  auto r = read(R"(
name: erp-web
type: http
host: erp.acme.local
port: 8443
interval: 1m30s
timeout: 500ms
ratio: 1
tls: yes
max_body: 1MiB
labels: {room: server, rack: '3'}
)");
  ASSERT_TRUE(r.errors.empty()) << describe(r.errors);
  EXPECT_EQ(r.opts.string("host"), "erp.acme.local");
  EXPECT_EQ(r.opts.integer("port"), 8443);
  EXPECT_EQ(r.opts.duration("interval"), milliseconds(90'000));
  EXPECT_EQ(r.opts.duration("timeout"), milliseconds(500));
  EXPECT_DOUBLE_EQ(r.opts.number("ratio"), 1.0);
  EXPECT_TRUE(r.opts.boolean("tls"));
  EXPECT_EQ(r.opts.size("max_body"), 1u << 20);
  EXPECT_EQ(r.opts.string_map("labels"), (Options::StringMap{{"room", "server"}, {"rack", "3"}}));
}

TEST(Options, FlowMappingFromTheIssueReads) {
  auto r = read(
      "{ name: erp-port, type: tcp, host: 127.0.0.1, port: 1541, interval: 10s, "
      "timeout: 2s }");
  ASSERT_TRUE(r.errors.empty()) << describe(r.errors);
  EXPECT_EQ(r.opts.integer("port"), 1541);
}

TEST(Options, MissingRequiredKeyNamesItsPath) {
  // Line 1 is "probes:"; the probe's mapping starts on line 2.
  YAML::Node doc = YAML::Load("probes:\n  - name: erp-port\n    type: tcp\n");
  std::vector<ConfigError> errors;
  Options opts = read_options(doc["probes"][0], kSpecs, "agent.yaml", "probes[0]", errors);
  EXPECT_FALSE(opts.ok());
  ASSERT_EQ(errors.size(), 1u) << describe(errors);
  EXPECT_EQ(errors[0].file, "agent.yaml");
  EXPECT_EQ(errors[0].key, "probes[0].port");
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_EQ(errors[0].message, "missing required key");
  EXPECT_EQ(errors[0].to_string(), "agent.yaml:2: probes[0].port: missing required key");
}

TEST(Options, EveryMissingRequiredKeyIsReported) {
  auto r = read("host: h\n");
  ASSERT_EQ(r.errors.size(), 3u) << describe(r.errors);
  EXPECT_EQ(r.errors[0].key, "probes[0].name");
  EXPECT_EQ(r.errors[1].key, "probes[0].type");
  EXPECT_EQ(r.errors[2].key, "probes[0].port");
}

TEST(Options, UnknownKeyHasItsLineAndTheKnownKeys) {
  auto r = read("name: a\ntype: tcp\nport: 1\n\nprot: 2\n");
  ASSERT_EQ(r.errors.size(), 1u) << describe(r.errors);
  const ConfigError& e = r.errors[0];
  EXPECT_EQ(e.key, "probes[0].prot");
  EXPECT_EQ(e.line, 5);
  EXPECT_THAT(e.message, HasSubstr("unknown key"));
  EXPECT_THAT(e.message, HasSubstr("name, type, host, port, interval, timeout, ratio, tls, "
                                   "max_body, labels"));
  EXPECT_FALSE(r.opts.ok());
  EXPECT_FALSE(r.opts.has("prot"));
}

TEST(Options, TopLevelPathHasNoLeadingDot) {
  auto r = read("name: a\ntype: tcp\nport: 1\nextra: x\n", "");
  ASSERT_EQ(r.errors.size(), 1u) << describe(r.errors);
  EXPECT_EQ(r.errors[0].key, "extra");
}

TEST(Options, WrongKindReportsTheValuesLine) {
  // The value sits on the line after its key, so the two lines differ.
  auto r = read("name: a\ntype: tcp\nport: 1\ninterval:\n  abc\n");
  ASSERT_EQ(r.errors.size(), 1u) << describe(r.errors);
  EXPECT_EQ(r.errors[0].key, "probes[0].interval");
  EXPECT_EQ(r.errors[0].line, 5);
  EXPECT_THAT(r.errors[0].message, HasSubstr("duration"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("'abc'"));
  EXPECT_FALSE(r.opts.ok());
}

struct WrongKind {
  const char* name;
  const char* yaml;  // one "key: value" line, appended after the required keys (line 4)
  const char* key;
  const char* message_part;
};

void PrintTo(const WrongKind& c, std::ostream* os) { *os << c.name; }

class OptionsWrongKind : public testing::TestWithParam<WrongKind> {};

TEST_P(OptionsWrongKind, IsReportedWithKeyAndLine) {
  const WrongKind& c = GetParam();
  auto r = read(std::string("name: a\ntype: tcp\nport: 1\n") + c.yaml + "\n");
  ASSERT_EQ(r.errors.size(), 1u) << c.name << "\n" << describe(r.errors);
  EXPECT_EQ(r.errors[0].key, std::string("probes[0].") + c.key);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_THAT(r.errors[0].message, HasSubstr(c.message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Options, OptionsWrongKind,
    testing::Values(WrongKind{"duration_no_unit", "timeout: 10", "timeout", "duration"},
                    WrongKind{"duration_negative", "timeout: -1s", "timeout", "duration"},
                    WrongKind{"integer_word", "ratio: abc", "ratio", "number"},
                    WrongKind{"number_nan", "ratio: nan", "ratio", "number"},
                    WrongKind{"number_inf", "ratio: inf", "ratio", "number"},
                    WrongKind{"boolean_maybe", "tls: maybe", "tls", "true or false"},
                    WrongKind{"size_fraction", "max_body: 1.5MiB", "max_body", "size"},
                    WrongKind{"map_scalar", "labels: room", "labels", "mapping"},
                    WrongKind{"map_nested", "labels: {room: [a, b]}", "labels", "room"},
                    WrongKind{"string_list", "host: [a, b]", "host", "string"},
                    // An empty value has no line of its own; the key's line is reported.
                    WrongKind{"string_null", "host:", "host", "string"},
                    WrongKind{"integer_null", "ratio: ~", "ratio", "number"}),
    [](const testing::TestParamInfo<WrongKind>& info) { return std::string(info.param.name); });

// A required key given with a bad value is one mistake: no second "missing required key".
TEST(Options, WrongIntegerReportsTheValue) {
  for (const char* bad : {"x", "15.5", "1e3", "99999999999999999999", "0x10"}) {
    auto r = read(std::string("name: a\ntype: tcp\nport: ") + bad + "\n");
    ASSERT_EQ(r.errors.size(), 1u) << bad << "\n" << describe(r.errors);
    EXPECT_EQ(r.errors[0].key, "probes[0].port") << bad;
    EXPECT_EQ(r.errors[0].line, 3) << bad;
    EXPECT_THAT(r.errors[0].message, HasSubstr(std::string("'") + bad + "'"));
  }
}

TEST(Options, NotAMappingIsAnError) {
  auto r = read("- a\n- b\n");
  ASSERT_EQ(r.errors.size(), 1u) << describe(r.errors);
  EXPECT_EQ(r.errors[0].key, "probes[0]");
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_FALSE(r.opts.ok());
}

TEST(Options, ErrorUsesTheKeysLine) {
  auto r = read("name: a\ntype: tcp\n\nport: 70000\n");
  ASSERT_TRUE(r.errors.empty()) << describe(r.errors);
  EXPECT_TRUE(r.opts.ok());
  r.opts.error("port", "must be between 1 and 65535");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].key, "probes[0].port");
  EXPECT_EQ(r.errors[0].to_string(), "agent.yaml:4: probes[0].port: must be between 1 and 65535");
  EXPECT_FALSE(r.opts.ok());
}

TEST(Options, ErrorOnADefaultedKeyUsesTheMappingsLine) {
  YAML::Node doc =
      YAML::Load("agent: {site: x}\nprobes:\n  - name: a\n    type: tcp\n    port: 1\n");
  std::vector<ConfigError> errors;
  Options opts = read_options(doc["probes"][0], kSpecs, "agent.yaml", "probes[0]", errors);
  ASSERT_TRUE(errors.empty()) << describe(errors);
  opts.error("timeout", "must be shorter than interval");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_EQ(errors[0].key, "probes[0].timeout");
}

TEST(Options, OkCountsOnlyItsOwnErrors) {
  std::vector<ConfigError> errors = {{"agent.yaml", 1, "agent.site", "earlier mistake"}};
  Options opts = read_options(YAML::Load("name: a\ntype: tcp\nport: 1\n"), kSpecs, "agent.yaml",
                              "probes[0]", errors);
  EXPECT_TRUE(opts.ok());
  EXPECT_EQ(errors.size(), 1u);
}

TEST(Options, ConfigErrorToString) {
  EXPECT_EQ((ConfigError{"agent.yaml", 7, "probes[1].port", "bad"}).to_string(),
            "agent.yaml:7: probes[1].port: bad");
  EXPECT_EQ((ConfigError{"agent.yaml", 0, "", "cannot open file"}).to_string(),
            "agent.yaml: cannot open file");
}

TEST(Options, ParseOptionValueBooleans) {
  for (const char* yes : {"true", "yes", "on"}) {
    Options::Value v;
    std::string message;
    ASSERT_TRUE(parse_option_value(OptionKind::boolean, YAML::Node(yes), v, message)) << yes;
    EXPECT_EQ(std::get<bool>(v), true) << yes;
  }
  for (const char* no : {"false", "no", "off"}) {
    Options::Value v;
    std::string message;
    ASSERT_TRUE(parse_option_value(OptionKind::boolean, YAML::Node(no), v, message)) << no;
    EXPECT_EQ(std::get<bool>(v), false) << no;
  }
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    path_ = testing::TempDir() + "dozor_options_test_" +
            testing::UnitTest::GetInstance()->current_test_info()->name() + ".yaml";
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(LoadYamlFile, ReadsAMapping) {
  TempFile f("agent: {site: acme-kyiv, heartbeat: 5s}\n");
  YAML::Node node;
  std::vector<ConfigError> errors;
  ASSERT_TRUE(load_yaml_file(f.path(), node, errors)) << describe(errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(node["agent"]["site"].as<std::string>(), "acme-kyiv");
}

TEST(LoadYamlFile, SyntaxErrorHasItsLine) {
  TempFile f("agent:\n  site: acme-kyiv\n  heartbeat: [5s\nprobes: []\n");
  YAML::Node node;
  std::vector<ConfigError> errors;
  EXPECT_FALSE(load_yaml_file(f.path(), node, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].file, f.path());
  EXPECT_GE(errors[0].line, 3) << errors[0].to_string();
  EXPECT_LE(errors[0].line, 4) << errors[0].to_string();
  EXPECT_FALSE(errors[0].message.empty());
}

TEST(LoadYamlFile, BadIndentationHasItsLine) {
  TempFile f("agent:\n  site: acme-kyiv\n heartbeat: 5s\n");
  YAML::Node node;
  std::vector<ConfigError> errors;
  EXPECT_FALSE(load_yaml_file(f.path(), node, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 3) << errors[0].to_string();
}

TEST(LoadYamlFile, MissingFile) {
  YAML::Node node;
  std::vector<ConfigError> errors;
  const std::string path = testing::TempDir() + "dozor_options_test_does_not_exist.yaml";
  EXPECT_FALSE(load_yaml_file(path, node, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].file, path);
  EXPECT_EQ(errors[0].line, 0);
  EXPECT_THAT(errors[0].message, HasSubstr("cannot open"));
}

TEST(LoadYamlFile, TopLevelMustBeAMapping) {
  for (const char* text : {"", "- a\n- b\n", "just a string\n"}) {
    TempFile f(text);
    YAML::Node node;
    std::vector<ConfigError> errors;
    EXPECT_FALSE(load_yaml_file(f.path(), node, errors)) << "'" << text << "'";
    ASSERT_EQ(errors.size(), 1u) << "'" << text << "'";
    EXPECT_THAT(errors[0].message, HasSubstr("mapping"));
  }
}

}  // namespace
}  // namespace dozor
