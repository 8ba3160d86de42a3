#include "http/steps.h"

#include <nlohmann/json.hpp>
#include <set>

namespace dozor::probes::http {
namespace {

namespace bhttp = boost::beast::http;

constexpr OptionSpec kStepOptions[] = {
    {"name", OptionKind::string, "", true, "the step's name, in metrics and the summary"},
    {"url", OptionKind::string, "", true,
     "absolute, or relative to the probe's url (/path: on its host); ${var} allowed"},
    {"method", OptionKind::string, "GET", false, "GET, HEAD, POST, PUT, PATCH or DELETE"},
    {"headers", OptionKind::string_map, "", false, "request headers; ${var} allowed"},
    {"body", OptionKind::string, "", false, "request body; ${var} allowed"},
    {"username", OptionKind::string, "", false, "user for HTTP basic authentication"},
    {"password_env", OptionKind::string, "", false,
     "environment variable holding that user's password"},
    {"expect_status", OptionKind::integer, "200", false, "status code the answer must have"},
    {"expect_body", OptionKind::string, "", false,
     "regular expression (ECMAScript) the body must contain"},
    {"expect_json", OptionKind::string_map, "", false,
     "JSON pointer -> the value it must have, e.g. {/value/0/Code: '000000001'}"},
    {"expect_header", OptionKind::string_map, "", false,
     "header -> regular expression its value must contain"},
    {"capture", OptionKind::string_map, "", false,
     "variable -> 'json:/pointer' or 'regex:...(group)...', for later steps as ${variable}"},
    {"timeout", OptionKind::duration, "", false, "this step's own bound, within the probe's"},
};

std::optional<bhttp::verb> read_method(std::string m) {
  for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (auto v : {bhttp::verb::get, bhttp::verb::head, bhttp::verb::post, bhttp::verb::put,
                 bhttp::verb::patch, bhttp::verb::delete_})
    if (bhttp::to_string(v) == m) return v;
  return std::nullopt;
}

std::shared_ptr<const std::regex> regex_of(const Options& o, const char* key,
                                           const std::string& text) {
  try {
    return std::make_shared<const std::regex>(text, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    o.error(key, "invalid regular expression '" + text + "': " + e.what());
    return nullptr;
  }
}

// The ${var} names `text` uses.
std::vector<std::string> uses(const std::string& text) {
  std::vector<std::string> out;
  for (auto at = text.find("${"); at != std::string::npos; at = text.find("${", at + 2)) {
    const auto end = text.find('}', at);
    if (end == std::string::npos) break;
    out.push_back(text.substr(at + 2, end - at - 2));
  }
  return out;
}

}  // namespace

std::vector<Step> read_steps(const Options& o) {
  std::vector<Step> out;
  const YAML::Node list = o.yaml("steps");
  if (!list.IsSequence() || list.size() == 0) {
    o.error("steps", "expected a non-empty list of steps");
    return out;
  }
  std::set<std::string> names, captured;
  for (std::size_t i = 0; i < list.size(); ++i) {
    Options so = o.nested(list[i], kStepOptions, "steps[" + std::to_string(i) + "]");
    if (!so.ok()) continue;
    Step s;
    s.name = so.string("name");
    if (s.name.empty() || !names.insert(s.name).second)
      so.error("name", s.name.empty() ? "must not be empty" : "duplicate step '" + s.name + "'");
    s.url = so.string("url");
    const auto method = read_method(so.string("method"));
    if (!method)
      so.error("method", "expected GET, HEAD, POST, PUT, PATCH or DELETE");
    else
      s.method = *method;
    if (so.has("headers"))
      for (const auto& [k, v] : so.string_map("headers")) s.headers.emplace_back(k, v);
    s.body = so.string("body");
    const std::string user = so.string("username"), env = so.string("password_env");
    if (!env.empty() && user.empty()) so.error("password_env", "needs username too");
    if (!user.empty()) {
      const char* password = env.empty() ? "" : std::getenv(env.c_str());
      if (!password)
        so.error("password_env", "environment variable " + env + " is not set");
      else
        s.authorization = "Basic " + base64(user + ":" + password);
    }
    const auto status = so.integer("expect_status");
    if (status < 100 || status > 599) so.error("expect_status", "expected 100-599");
    s.expect_status = static_cast<int>(status);
    s.expect_body_text = so.string("expect_body");
    if (!s.expect_body_text.empty())
      s.expect_body = regex_of(so, "expect_body", s.expect_body_text);
    if (so.has("expect_json")) s.expect_json = so.string_map("expect_json");
    for (const auto& [pointer, value] : s.expect_json)
      if (!pointer.empty() && pointer.front() != '/')
        so.error("expect_json", "'" + pointer + "': a JSON pointer starts with /");
    if (so.has("expect_header"))
      for (const auto& [name, re] : so.string_map("expect_header")) {
        std::string lower = name;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        s.expect_header[lower] = regex_of(so, "expect_header", re);
      }
    // What this step uses must come from an earlier step.
    std::vector<std::string> used = uses(s.url);
    for (const auto& [k, v] : s.headers)
      for (auto& u : uses(v)) used.push_back(u);
    for (auto& u : uses(s.body)) used.push_back(u);
    for (const auto& u : used)
      if (!captured.contains(u)) so.error("url", "${" + u + "} is not captured by an earlier step");
    if (so.has("capture"))
      for (const auto& [var, how] : so.string_map("capture")) {
        Capture c{var, nullptr, {}};
        if (how.starts_with("json:")) {
          c.pointer = how.substr(5);
          if (c.pointer.empty() || c.pointer.front() != '/')
            so.error("capture", "'" + var + "': a JSON pointer starts with /");
        } else if (how.starts_with("regex:")) {
          c.regex = regex_of(so, "capture", how.substr(6));
        } else {
          so.error("capture", "'" + var + "': expected 'json:/pointer' or 'regex:...'");
        }
        captured.insert(var);
        s.captures.push_back(std::move(c));
      }
    if (so.has("timeout")) s.timeout = so.duration("timeout");
    out.push_back(std::move(s));
  }
  return out;
}

bool substitute(const std::string& text, const std::map<std::string, std::string>& vars,
                std::string& out, std::string& missing) {
  out.clear();
  std::size_t at = 0;
  for (auto open = text.find("${"); open != std::string::npos; open = text.find("${", at)) {
    const auto close = text.find('}', open);
    if (close == std::string::npos) break;
    out.append(text, at, open - at);
    const auto it = vars.find(text.substr(open + 2, close - open - 2));
    if (it == vars.end()) {
      missing = text.substr(open + 2, close - open - 2);
      return false;
    }
    out += it->second;
    at = close + 1;
  }
  out.append(text, at, std::string::npos);
  return true;
}

std::string resolve_url(const HttpUrl& base, const std::string& ref) {
  if (ref.starts_with("http://") || ref.starts_with("https://")) return ref;
  const std::string origin = std::string(base.tls ? "https://" : "http://") + base.authority;
  if (ref.starts_with("/")) return origin + ref;
  std::string dir = base.target.substr(0, base.target.find('?'));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return origin + dir + ref;
}

std::optional<std::string> json_value(std::string_view body, const std::string& pointer) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  try {
    const auto& v = j.at(nlohmann::json::json_pointer(pointer));
    return v.is_string() ? v.get<std::string>() : v.dump();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

void CookieJar::take(std::string_view set_cookie) {
  const auto semi = set_cookie.find(';');
  const std::string_view pair = set_cookie.substr(0, semi);
  const auto eq = pair.find('=');
  if (eq == std::string_view::npos || eq == 0) return;
  auto trim = [](std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return std::string(s);
  };
  const std::string name = trim(pair.substr(0, eq));
  std::string attributes(semi == std::string_view::npos ? "" : set_cookie.substr(semi));
  for (auto& c : attributes) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (attributes.find("max-age=0") != std::string::npos) {
    cookies_.erase(name);
    return;
  }
  if (cookies_.size() < 64 || cookies_.count(name)) cookies_[name] = trim(pair.substr(eq + 1));
}

std::string CookieJar::header() const {
  std::string out;
  for (const auto& [k, v] : cookies_) out += (out.empty() ? "" : "; ") + k + "=" + v;
  return out;
}

}  // namespace dozor::probes::http
