#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "dozor/probes/registry.h"
#include "http/steps.h"

namespace dozor::probes::http {
namespace {

TEST(HttpSteps, VariablesAreSubstitutedAndAMissingOneIsNamed) {
  std::string out, missing;
  EXPECT_TRUE(substitute("hs/orders/${order}?x=${x}", {{"order", "a1"}, {"x", "2"}}, out, missing));
  EXPECT_EQ(out, "hs/orders/a1?x=2");
  EXPECT_FALSE(substitute("${nope}", {}, out, missing));
  EXPECT_EQ(missing, "nope");
  EXPECT_TRUE(substitute("no vars, a lone ${ brace", {}, out, missing));
  EXPECT_EQ(out, "no vars, a lone ${ brace");
}

TEST(HttpSteps, UrlsResolveAgainstTheProbesUrl) {
  std::string why;
  const auto base = parse_http_url("https://erp.example:8443/erp/ru_RU/?x=1", why);
  ASSERT_TRUE(base) << why;
  EXPECT_EQ(resolve_url(*base, "/odata/x"), "https://erp.example:8443/odata/x");
  EXPECT_EQ(resolve_url(*base, "hs/ping"), "https://erp.example:8443/erp/ru_RU/hs/ping");
  EXPECT_EQ(resolve_url(*base, "http://other/"), "http://other/");
}

TEST(HttpSteps, JsonPointersReadValuesAsText) {
  const std::string body = R"({"value": [{"Code": "000000001", "Sum": 12.5, "Ok": true}]})";
  EXPECT_EQ(json_value(body, "/value/0/Code"), "000000001");
  EXPECT_EQ(json_value(body, "/value/0/Sum"), "12.5");
  EXPECT_EQ(json_value(body, "/value/0/Ok"), "true");
  EXPECT_FALSE(json_value(body, "/value/1/Code"));
  EXPECT_FALSE(json_value("<html>", "/a"));
}

TEST(HttpSteps, CookiesAreKeptAndMaxAgeZeroDeletesOne) {
  CookieJar jar;
  jar.take("ibsession=ibs-7d41; Path=/erp; HttpOnly");
  jar.take("lang=ru");
  EXPECT_EQ(jar.header(), "ibsession=ibs-7d41; lang=ru");
  jar.take("ibsession=; Path=/erp; Max-Age=0");
  EXPECT_EQ(jar.header(), "lang=ru");
  jar.take("=nameless");
  jar.take("garbage");
  EXPECT_EQ(jar.header(), "lang=ru");
}

std::vector<std::string> config_errors(const std::string& steps) {
  std::vector<ConfigError> errors;
  read_probe(
      YAML::Load("{ name: web, type: http, url: 'http://127.0.0.1:1/erp/', steps: " + steps + " }"),
      "agent.yaml", "probes[0]", errors);
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.to_string());
  return out;
}

TEST(HttpSteps, ConfigErrorsNameTheStepAndKey) {
  EXPECT_EQ(config_errors("[{ name: a, url: 'x/${later}' }, { name: b, url: y, capture: { later: "
                          "'json:/id' } }]"),
            std::vector<std::string>{"agent.yaml:1: probes[0].steps[0].url: ${later} is not "
                                     "captured by an earlier step"});
  EXPECT_EQ(config_errors("[{ name: a, url: x, capture: { v: 'xpath://a' } }]"),
            std::vector<std::string>{"agent.yaml:1: probes[0].steps[0].capture: 'v': expected "
                                     "'json:/pointer' or 'regex:...'"});
  EXPECT_EQ(config_errors("[{ name: a, url: x }, { name: a, url: y }]"),
            std::vector<std::string>{"agent.yaml:1: probes[0].steps[1].name: duplicate step 'a'"});
  EXPECT_EQ(config_errors("[{ name: a, url: x, method: TRACE }]"),
            std::vector<std::string>{
                "agent.yaml:1: probes[0].steps[0].method: expected GET, HEAD, POST, PUT, PATCH "
                "or DELETE"});
  EXPECT_EQ(config_errors("[]"),
            std::vector<std::string>{"agent.yaml:1: probes[0].steps: expected a non-empty list "
                                     "of steps"});
  EXPECT_TRUE(config_errors("[{ name: a, url: x, capture: { id: 'regex:id=(\\d+)' } }, "
                            "{ name: b, url: 'y/${id}' }]")
                  .empty());
}

}  // namespace
}  // namespace dozor::probes::http
