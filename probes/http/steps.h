#pragma once

// A web publication checked the way a client goes through it: `steps:` of the http probe, each
// a request whose answer is checked, and from which values are captured for the later steps;
// cookies are kept across steps, as a browser keeps them.
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/protocol/options.h"
#include "dozor/protocol/url.h"

namespace dozor::probes::http {

struct Capture {
  std::string var;
  std::shared_ptr<const std::regex> regex;  // group 1 (or the whole match), or:
  std::string pointer;                      // a JSON pointer into the body
};

struct Step {
  std::string name;
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string url;  // ${var} allowed; absolute, or relative to the probe's url
  std::vector<std::pair<std::string, std::string>> headers;  // ${var} allowed
  std::string body;                                          // ${var} allowed
  std::string authorization;                                 // "Basic ..." or empty
  int expect_status = 200;
  std::shared_ptr<const std::regex> expect_body;
  std::string expect_body_text;
  std::map<std::string, std::string> expect_json;  // JSON pointer -> the value as text
  std::map<std::string, std::shared_ptr<const std::regex>> expect_header;  // lower-case name
  std::vector<Capture> captures;
  std::optional<std::chrono::milliseconds> timeout;
};

/// Reads `steps:` (a list); every problem goes to `o`'s errors with file, line and key. A
/// ${var} must be captured by an earlier step.
std::vector<Step> read_steps(const Options& o);

/// `text` with each ${var} replaced by its value; false (and `missing` named) when one has none.
bool substitute(const std::string& text, const std::map<std::string, std::string>& vars,
                std::string& out, std::string& missing);

/// `ref` resolved against `base`: absolute http(s) URLs as they are, "/path" on base's host,
/// anything else beside base's path.
std::string resolve_url(const HttpUrl& base, const std::string& ref);

/// The value at `pointer` in the JSON `body` as text (a string as it is, anything else as JSON);
/// nullopt when the body is not JSON or has nothing there.
std::optional<std::string> json_value(std::string_view body, const std::string& pointer);

/// Cookies by name, from Set-Cookie headers (Max-Age=0 deletes), sent back as one Cookie header.
class CookieJar {
 public:
  void take(std::string_view set_cookie);
  std::string header() const;  // "a=1; b=2", or empty
 private:
  std::map<std::string, std::string> cookies_;
};

}  // namespace dozor::probes::http
