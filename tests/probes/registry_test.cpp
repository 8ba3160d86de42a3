#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "probe_runner.h"

namespace dozor::probes {
namespace {

using namespace probe_testing;

std::vector<ConfigError> errors_of(const std::string& yaml) {
  std::vector<ConfigError> errors;
  EXPECT_FALSE(build(yaml, errors)) << yaml;
  return errors;
}

TEST(Registry, TypeNamesAreUniqueAndDocumented) {
  std::set<std::string_view> names;
  for (const auto& t : probe_types()) {
    EXPECT_TRUE(names.insert(t.name).second) << "registered twice: " << t.name;
    EXPECT_FALSE(t.description.empty()) << t.name;
    EXPECT_FALSE(t.options.empty()) << t.name;
    for (const auto& o : t.options) EXPECT_FALSE(o.help.empty()) << t.name << "." << o.key;
    EXPECT_EQ(find_probe_type(t.name), &t);
  }
  EXPECT_TRUE(names.count("tcp") && names.count("http") && names.count("disk"));
  EXPECT_EQ(find_probe_type("ftp"), nullptr);
}

bool libpq_mapped() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find("/libpq.so") != std::string::npos) return true;
  return false;
}

// libpq and what it pulls in (Kerberos, LDAP, GnuTLS) cost ~3 MiB of RSS: only an agent with a
// postgres probe pays it. This executable does not link libpq, as the agent does not.
TEST(Registry, LibpqIsLoadedOnlyForAPostgresProbe) {
  std::vector<ConfigError> errors;
  ASSERT_TRUE(build("name: t\ntype: tcp\nhost: 127.0.0.1\nport: 1\n", errors));
  EXPECT_FALSE(libpq_mapped());
  ASSERT_TRUE(build("name: db\ntype: postgres\nconninfo: host=127.0.0.1 dbname=erp\n", errors));
  EXPECT_TRUE(errors.empty());
  EXPECT_TRUE(libpq_mapped());
}

TEST(Registry, UnknownTypeNamesKeyAndListsKnownTypes) {
  const auto errors = errors_of("name: x\ntype: ftp\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "probes[0].type");
  EXPECT_EQ(errors[0].line, 2);
  std::string known;
  for (const auto& t : probe_types()) known += (known.empty() ? "" : ", ") + std::string(t.name);
  EXPECT_EQ(errors[0].message, "unknown probe type 'ftp'; known: " + known);
  EXPECT_TRUE(known.starts_with("tcp, http, disk")) << known;
}

TEST(Registry, MissingType) {
  const auto errors = errors_of("{ name: x }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "probes[0].type");
  EXPECT_EQ(errors[0].message, "missing required key");
}

TEST(Registry, UnknownKeyReportedWithItsLine) {
  const auto errors = errors_of(
      "name: erp-port\n"
      "type: tcp\n"
      "host: 127.0.0.1\n"
      "port: 1541\n"
      "colour: red\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "probes[0].colour");
  EXPECT_EQ(errors[0].line, 5);
  EXPECT_TRUE(
      errors[0].message.starts_with("unknown key; known: name, type, interval, timeout, "
                                    "labels, confirm, host, port"))
      << errors[0].message;
  EXPECT_EQ(errors[0].to_string().substr(0, 29), "test.yaml:5: probes[0].colour");
}

TEST(Registry, BadDuration) {
  const auto errors = errors_of(
      "name: erp-port\n"
      "type: tcp\n"
      "host: 127.0.0.1\n"
      "port: 1541\n"
      "interval: 10 parsecs\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "probes[0].interval");
  EXPECT_EQ(errors[0].line, 5);
  EXPECT_NE(errors[0].message.find("expected a duration"), std::string::npos) << errors[0].message;
}

TEST(Registry, PortOutOfRange) {
  const auto errors = errors_of(
      "name: erp-port\n"
      "type: tcp\n"
      "host: 127.0.0.1\n"
      "port: 70000\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "probes[0].port");
  EXPECT_EQ(errors[0].line, 4);
  EXPECT_EQ(errors[0].message, "expected 1-65535");
}

TEST(Registry, CommonKeysAndDefaults) {
  std::vector<ConfigError> errors;
  auto spec = build(
      "{ name: erp-port, type: tcp, host: 127.0.0.1, port: 1541, interval: 10s, "
      "labels: { site: kazan } }",
      errors);
  ASSERT_TRUE(spec) << (errors.empty() ? "" : errors[0].to_string());
  EXPECT_EQ(spec->name, "erp-port");
  EXPECT_EQ(spec->type, "tcp");
  EXPECT_EQ(spec->interval, std::chrono::seconds(10));
  EXPECT_EQ(spec->timeout, std::chrono::seconds(5));
  EXPECT_EQ(spec->labels, (std::map<std::string, std::string>{{"site", "kazan"}}));
  EXPECT_TRUE(spec->confirm);
  ASSERT_TRUE(spec->probe);

  spec = build("{ name: fast, type: tcp, host: h, port: 1, interval: 2s }", errors);
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->timeout, std::chrono::seconds(2));  // never longer than the interval
}

TEST(Registry, TimeoutMustNotExceedInterval) {
  const auto errors =
      errors_of("{ name: x, type: tcp, host: h, port: 1, interval: 1s, timeout: 2s }");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "probes[0].timeout");
  EXPECT_EQ(errors[0].message, "must not exceed interval");
}

TEST(Registry, EventOptionsThatCannotWorkAreConfigErrors) {
  EXPECT_EQ(
      config_errors("{ name: p, type: tcp, host: h, port: 1, hold: true, send: \"PING\\r\\n\" }"),
      std::vector<std::string>{"test.yaml:1: probes[0].hold: holds the connection the check "
                               "opened: not with send, whose reply ends it"});
  EXPECT_EQ(config_errors("{ name: q, type: file, path: '/srv/*/out/*.xml', watch: true }"),
            std::vector<std::string>{"test.yaml:1: probes[0].watch: needs a path whose folders "
                                     "have no wildcards (only the file name may)"});
  EXPECT_EQ(config_errors("{ name: u, type: service, unit: a.service, bus: session }"),
            std::vector<std::string>{
                "test.yaml:1: probes[0].bus: expected system or user, got 'session'"});
  EXPECT_TRUE(config_errors("{ name: p, type: tcp, host: h, port: 1, confirm: false }").empty());
}

}  // namespace
}  // namespace dozor::probes
