#include "dozor/agent/config.h"

#include <algorithm>
#include <filesystem>
#include <set>

namespace dozor::agent {
namespace {

namespace fs = std::filesystem;

constexpr OptionSpec kAgent[] = {
    {"site", OptionKind::string, "", true, "client site this agent watches, e.g. acme-kyiv"},
    {"heartbeat", OptionKind::duration, "5s", false, "report at least this often"},
};
constexpr OptionSpec kCollector[] = {
    {"url", OptionKind::string, "", true, "collector address, https://host:port"},
    {"ca", OptionKind::string, "", true, "CA that signed the collector's certificate"},
    {"cert", OptionKind::string, "", true, "this agent's certificate; its CN is the agent id"},
    {"key", OptionKind::string, "", true, "this agent's private key"},
};
constexpr OptionSpec kSpool[] = {
    {"path", OptionKind::string, "/var/lib/dozor/spool.db", false,
     "SQLite file keeping results until the collector acks them"},
    {"max_size", OptionKind::size, "256MiB", false, "past this the oldest results are dropped"},
    {"max_age", OptionKind::duration, "7d", false, "older results are dropped"},
};

}  // namespace

bool parse_collector_url(const std::string& url, CollectorLink& out, std::string& message) {
  const std::string scheme = "https://";
  if (url.rfind(scheme, 0) != 0) {
    message = "expected https://host:port (reports travel over mutual TLS only)";
    return false;
  }
  std::string rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  out.path_prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.path_prefix.empty() && out.path_prefix.back() == '/') out.path_prefix.pop_back();
  std::string host = authority, port = "443";
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) {
      message = "unclosed [ in IPv6 address";
      return false;
    }
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    message = "missing host";
    return false;
  }
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) == 0 || std::stoul(port) > 65535) {
    message = "port must be 1-65535";
    return false;
  }
  out.url = url;
  out.host = host;
  out.port = port;
  return true;
}

std::optional<AgentConfig> load_agent_config(const std::string& file,
                                             std::vector<ConfigError>& errors, bool need_files) {
  YAML::Node root;
  if (!load_yaml_file(file, root, errors)) return std::nullopt;
  const std::size_t errors_before = errors.size();

  for (const auto& kv : root) {
    const std::string& key = kv.first.Scalar();
    if (key != "agent" && key != "collector" && key != "spool" && key != "probes" && key != "log")
      errors.push_back({file, kv.first.Mark().line + 1, key,
                        "unknown section; known: agent, collector, spool, probes, log"});
  }
  auto section = [&](const char* name, std::span<const OptionSpec> specs) {
    YAML::Node n = root[name];
    if (!n) errors.push_back({file, 1, name, "missing required section"});
    return read_options(n ? n : YAML::Node(YAML::NodeType::Map), specs, file, name, errors);
  };
  Options agent = section("agent", kAgent);
  Options collector = section("collector", kCollector);
  auto optional_section = [&](const char* name, std::span<const OptionSpec> specs) {
    YAML::Node n = root[name];
    return read_options(n ? n : YAML::Node(YAML::NodeType::Map), specs, file, name, errors);
  };
  Options spool = optional_section("spool", kSpool);
  Options log = optional_section("log", log_options());

  AgentConfig c;
  c.site = agent.string("site");
  c.heartbeat = agent.duration("heartbeat");
  if (agent.has("site") && c.site.empty()) agent.error("site", "must not be empty");
  if (c.heartbeat < std::chrono::milliseconds(100))
    agent.error("heartbeat", "must be at least 100ms");

  std::string message;
  if (collector.has("url") && !parse_collector_url(collector.string("url"), c.collector, message))
    collector.error("url", message);
  c.collector.ca = resolve_path(file, collector.string("ca"));
  c.collector.cert = resolve_path(file, collector.string("cert"));
  c.collector.key = resolve_path(file, collector.string("key"));
  for (auto [key, path] : {std::pair{"ca", &c.collector.ca}, std::pair{"cert", &c.collector.cert},
                           std::pair{"key", &c.collector.key}}) {
    if (need_files && collector.has(key) && !fs::exists(*path))
      collector.error(key, "no such file: " + *path);
  }
  c.spool.path = resolve_path(file, spool.string("path"));
  c.spool.max_size = spool.size("max_size");
  c.spool.max_age = spool.duration("max_age");
  if (auto folder = fs::path(c.spool.path).parent_path();
      need_files && !folder.empty() && !fs::is_directory(folder))
    spool.error("path", "folder " + folder.string() + " does not exist");
  if (c.spool.max_size < (64u << 10)) spool.error("max_size", "must be at least 64KiB");
  c.log_level = log.string("level");
  check_log_level(log);

  YAML::Node list = root["probes"];
  if (list && !list.IsSequence()) {
    errors.push_back({file, list.Mark().line + 1, "probes", "expected a list of probes"});
  } else if (list) {
    std::set<std::string> names;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string path = "probes[" + std::to_string(i) + "]";
      auto spec = probes::read_probe(list[i], file, path, errors);
      if (!spec) continue;
      if (!names.insert(spec->name).second) {
        errors.push_back({file, list[i]["name"].Mark().line + 1, path + ".name",
                          "duplicate probe name '" + spec->name + "'"});
        continue;
      }
      c.probes.push_back(std::move(*spec));
    }
  }
  if (errors.size() != errors_before) return std::nullopt;
  return c;
}

}  // namespace dozor::agent
