#include "dozor/server/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "dozor/collector/report.h"

namespace dozor::server {
namespace {

namespace fs = std::filesystem;

constexpr OptionSpec kListen[] = {
    {"agents", OptionKind::string, "127.0.0.1:7443", false, "mutual-TLS listener for agents"},
    {"http", OptionKind::string, "127.0.0.1:9180", false, "/metrics, /healthz and the API"},
};
constexpr OptionSpec kTls[] = {
    {"ca", OptionKind::string, "", true, "CA whose agent certificates are accepted"},
    {"cert", OptionKind::string, "", true, "collector certificate (PEM)"},
    {"key", OptionKind::string, "", true, "collector private key (PEM)"},
};
constexpr OptionSpec kLimits[] = {
    {"max_body", OptionKind::size, "4MiB", false, "largest report body accepted"},
    {"read_timeout", OptionKind::duration, "10s", false, "time allowed to send one request"},
    {"idle_timeout", OptionKind::duration, "60s", false, "keep-alive connection without request"},
    {"handshake_timeout", OptionKind::duration, "3s", false,
     "time from accept to a completed TLS handshake"},
    {"max_connections", OptionKind::integer, "4096", false,
     "concurrent connections of agents that completed the handshake"},
    {"pending_per_source", OptionKind::integer, "16", false,
     "connections still before or in their handshake, from one address"},
    {"pending_total", OptionKind::integer, "512", false,
     "connections still before or in their handshake, from all addresses"},
    {"http_connections", OptionKind::integer, "512", false,
     "concurrent connections of the HTTP port (the longest idle one makes room)"},
    {"http_per_source", OptionKind::integer, "64", false,
     "concurrent connections of the HTTP port from one address (a reverse proxy is one)"},
    {"probes_per_agent", OptionKind::integer, "1000", false, "probes one agent may have"},
    {"metrics_per_result", OptionKind::integer, "200", false, "metrics in one result"},
    {"series_per_agent", OptionKind::integer, "10000", false,
     "(probe, metric) series one agent may hold"},
    {"name_length", OptionKind::integer, "128", false,
     "bytes of a probe or metric name, a label name or value"},
    {"reports_per_second", OptionKind::integer, "20", false,
     "reports one agent may send a second (bursts of as many); more get 429"},
    {"forget_after", OptionKind::duration, "7d", false,
     "a probe (or an agent) not reported for this long is forgotten"},
};

constexpr OptionSpec kApi[] = {
    {"token_file", OptionKind::string, "", false,
     "file holding the bearer token that ack, close and silences need"},
    {"token", OptionKind::string, "", false, "the token itself (prefer token_file)"},
};

constexpr OptionSpec kEnroll[] = {
    {"ca_cert", OptionKind::string, "", false,
     "issuing CA certificate (then its chain to tls.ca) that signs enrolled agents"},
    {"ca_key", OptionKind::string, "", false, "its private key"},
    {"cert_lifetime", OptionKind::duration, "30d", false,
     "validity of the certificates it issues; agents renew at 2/3 of it"},
    {"token_ttl", OptionKind::duration, "30m", false,
     "lifetime of an enrollment token unless dozorctl enroll create --ttl says otherwise"},
    {"per_source", OptionKind::integer, "10", false,
     "enrollment requests a minute from one address; more get 429"},
    {"per_minute", OptionKind::integer, "120", false,
     "enrollment requests a minute from all addresses"},
};

constexpr OptionSpec kReport[] = {
    {"company", OptionKind::string, "", false, "the support company's name, on every report"},
    {"clients", OptionKind::string_map, "", false,
     "site -> the client's name as the report shows it"},
    {"zone", OptionKind::string, "UTC", false,
     "time zone of a month for sites served 24x7 (others use their calendar's)"},
    {"notice_within", OptionKind::duration, "10m", false,
     "a failure restored this soon after it began counts as unnoticed by the client"},
    {"keep", OptionKind::duration, "400d", false,
     "history kept for the reports (state changes, closed tickets); at least 13 months"},
};

constexpr OptionSpec kTop[] = {
    {"store", OptionKind::string, "sqlite:/var/lib/dozor/collector.db", false,
     "where state, tickets and history are kept: sqlite:PATH, or postgres://USER@HOST/DB for "
     "several collectors sharing one PostgreSQL"},
    {"store_password_file", OptionKind::string, "", false,
     "a file with the PostgreSQL password (else libpq's PGPASSWORD or ~/.pgpass)"},
    {"node", OptionKind::string, "", false,
     "this collector's name among several on one PostgreSQL store (default: HOSTNAME:AGENT_PORT)"},
};

struct Section {
  std::string_view name;
  std::span<const OptionSpec> specs;
  bool required;
};
const Section kSections[] = {{"listen", kListen, false}, {"tls", kTls, true},
                             {"limits", kLimits, false}, {"log", log_options(), false},
                             {"api", kApi, false},       {"enroll", kEnroll, false},
                             {"report", kReport, false}};
// Sections the desk reads (collector::parse_desk_config).
constexpr std::string_view kDeskSections[] = {"rules", "calendars", "service", "tickets",
                                              "notifiers"};

}  // namespace

std::optional<Endpoint> parse_endpoint(const std::string& text, std::string& message) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    message = "expected host:port, got '" + text + "'";
    return std::nullopt;
  }
  Endpoint ep;
  ep.host = text.substr(0, colon);
  if (ep.host.size() >= 2 && ep.host.front() == '[' && ep.host.back() == ']')
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  if (ep.host.empty()) ep.host = "0.0.0.0";
  try {
    std::size_t pos = 0;
    int port = std::stoi(text.substr(colon + 1), &pos);
    if (pos != text.size() - colon - 1 || port < 0 || port > 65535) throw std::out_of_range("port");
    ep.port = static_cast<std::uint16_t>(port);
  } catch (...) {
    message = "port must be 0-65535 in '" + text + "'";
    return std::nullopt;
  }
  return ep;
}

std::optional<ServerConfig> load_server_config(const std::string& file,
                                               std::vector<ConfigError>& errors) {
  YAML::Node root;
  if (!load_yaml_file(file, root, errors)) return std::nullopt;
  const std::size_t errors_before = errors.size();

  YAML::Node top(YAML::NodeType::Map);  // the scalar keys at the top level
  for (const auto& kv : root) {
    bool section = false, scalar = false;
    for (const auto& s : kSections) section = section || s.name == kv.first.Scalar();
    for (const auto& s : kTop) scalar = scalar || s.key == kv.first.Scalar();
    for (auto name : kDeskSections) section = section || name == kv.first.Scalar();
    if (scalar)
      top[kv.first] = kv.second;
    else if (!section)
      errors.push_back({file, kv.first.Mark().line + 1, kv.first.Scalar(),
                        "unknown key; known: store, listen, tls, limits, log, api, enroll, report, "
                        "rules, calendars, service, tickets, notifiers"});
  }
  Options top_options = read_options(top, kTop, file, "", errors);
  auto section = [&](const Section& s) {
    YAML::Node n = root[std::string(s.name)];
    if (!n && s.required)
      errors.push_back({file, 1, std::string(s.name), "missing required section"});
    return read_options(n && !n.IsNull() ? n : YAML::Node(YAML::NodeType::Map), s.specs, file,
                        std::string(s.name), errors);
  };
  Options listen = section(kSections[0]);
  Options tls = section(kSections[1]);
  Options limits = section(kSections[2]);
  Options log = section(kSections[3]);
  Options api = section(kSections[4]);
  Options enroll = section(kSections[5]);
  Options report = section(kSections[6]);

  ServerConfig c;
  std::string message;
  for (auto [key, ep] : {std::pair{"agents", &c.agents}, std::pair{"http", &c.http}}) {
    if (auto parsed = parse_endpoint(listen.string(key), message))
      *ep = *parsed;
    else
      listen.error(key, message);
  }
  c.tls_ca = resolve_path(file, tls.string("ca"));
  c.tls_cert = resolve_path(file, tls.string("cert"));
  c.tls_key = resolve_path(file, tls.string("key"));
  for (auto [key, path] :
       {std::pair{"ca", &c.tls_ca}, std::pair{"cert", &c.tls_cert}, std::pair{"key", &c.tls_key}}) {
    if (tls.has(key) && !fs::exists(*path)) tls.error(key, "no such file: " + *path);
  }
  const std::string store = top_options.string("store");
  if (store.starts_with("postgres://") || store.starts_with("postgresql://")) {
    c.store.url = store;
  } else if (!store.starts_with("sqlite:") || store.size() == 7) {
    top_options.error("store", "expected sqlite:PATH or postgres://USER@HOST[:PORT]/DATABASE");
  } else {
    const std::string path = resolve_path(file, store.substr(7));
    c.store.url = "sqlite:" + path;
    auto folder = fs::path(path).parent_path();
    if (!folder.empty() && !fs::is_directory(folder))
      top_options.error("store", "folder " + folder.string() + " does not exist");
  }
  if (top_options.has("store_password_file")) {
    c.store.password_file = resolve_path(file, top_options.string("store_password_file"));
    if (c.store.url.starts_with("sqlite:"))
      top_options.error("store_password_file", "only for a postgres:// store");
    else if (!fs::exists(c.store.password_file))
      top_options.error("store_password_file", "no such file: " + c.store.password_file);
  }
  c.node = top_options.string("node");
  if (c.node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    c.node = std::string(host) + ":" + std::to_string(c.agents.port);
  } else if (c.node.size() > 128 || c.node.find_first_of(" \t\r\n") != std::string::npos) {
    top_options.error("node", "a name of at most 128 characters without spaces");
  }
  c.max_body = limits.size("max_body");
  c.read_timeout = limits.duration("read_timeout");
  c.idle_timeout = limits.duration("idle_timeout");
  c.handshake_timeout = limits.duration("handshake_timeout");
  auto count = [&limits](const char* key) {
    const auto n = limits.integer(key);
    if (n < 1 || n > 1'000'000) limits.error(key, "expected 1-1000000");
    return static_cast<std::size_t>(std::clamp<std::int64_t>(n, 1, 1'000'000));
  };
  c.max_connections = count("max_connections");
  c.pending_per_source = count("pending_per_source");
  c.pending_total = count("pending_total");
  if (c.pending_per_source > c.pending_total)
    limits.error("pending_per_source", "must not exceed pending_total");
  c.http_connections = count("http_connections");
  c.http_per_source = count("http_per_source");
  if (c.http_per_source > c.http_connections)
    limits.error("http_per_source", "must not exceed http_connections");
  c.agent_limits.probes_per_agent = count("probes_per_agent");
  c.agent_limits.metrics_per_result = count("metrics_per_result");
  c.agent_limits.series_per_agent = count("series_per_agent");
  c.agent_limits.name_length = count("name_length");
  c.reports_per_second = count("reports_per_second");
  c.agent_limits.forget_after =
      std::chrono::duration<double>(limits.duration("forget_after")).count();
  if (c.agent_limits.forget_after < 3600) limits.error("forget_after", "must be at least 1h");
  c.log_level = log.string("level");
  check_log_level(log);
  if (api.has("token_file") && api.has("token"))
    api.error("token", "give token or token_file, not both");
  if (api.has("token_file")) {
    const std::string path = resolve_path(file, api.string("token_file"));
    std::ifstream in(path);
    std::getline(in, c.api_token);
    while (!c.api_token.empty() && std::isspace(static_cast<unsigned char>(c.api_token.back())))
      c.api_token.pop_back();
    if (!in && c.api_token.empty())
      api.error("token_file", "cannot read " + path);
    else if (c.api_token.size() < 16)
      api.error("token_file", "the token in " + path + " is shorter than 16 characters");
  } else if (api.has("token")) {
    c.api_token = api.string("token");
    if (c.api_token.size() < 16) api.error("token", "shorter than 16 characters");
  }
  if (enroll.has("ca_cert") != enroll.has("ca_key"))
    enroll.error(enroll.has("ca_cert") ? "ca_key" : "ca_cert", "give both ca_cert and ca_key");
  for (auto [key, path] :
       {std::pair{"ca_cert", &c.enroll.ca_cert}, std::pair{"ca_key", &c.enroll.ca_key}}) {
    if (!enroll.has(key)) continue;
    *path = resolve_path(file, enroll.string(key));
    if (!fs::exists(*path)) enroll.error(key, "no such file: " + *path);
  }
  c.enroll.cert_lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(enroll.duration("cert_lifetime"));
  if (c.enroll.cert_lifetime < std::chrono::seconds(30) ||
      c.enroll.cert_lifetime > std::chrono::seconds(825 * 86400))
    enroll.error("cert_lifetime", "expected 30s-825d");
  c.enroll.token_ttl =
      std::chrono::duration_cast<std::chrono::seconds>(enroll.duration("token_ttl"));
  if (c.enroll.token_ttl < std::chrono::seconds(60) ||
      c.enroll.token_ttl > std::chrono::seconds(30 * 86400))
    enroll.error("token_ttl", "expected 1m-30d");
  auto per_minute = [&enroll](const char* key) {
    const auto n = enroll.integer(key);
    if (n < 1 || n > 100'000) enroll.error(key, "expected 1-100000");
    return static_cast<std::size_t>(std::clamp<std::int64_t>(n, 1, 100'000));
  };
  c.enroll.per_source = per_minute("per_source");
  c.enroll.per_minute = per_minute("per_minute");
  c.desk = collector::parse_desk_config(root, file, errors);
  c.report.company = report.string("company");
  c.report.clients = report.string_map("clients");
  c.report.zone = report.string("zone");
  std::string zone_error;
  if (!collector::month_in_zone("2026-01", c.report.zone, zone_error))
    report.error("zone", zone_error);
  c.report.notice_within = std::chrono::duration<double>(report.duration("notice_within")).count();
  c.agent_limits.history_keep = std::chrono::duration<double>(report.duration("keep")).count();
  if (c.agent_limits.history_keep < 396 * 86400.0)
    report.error("keep", "must be at least 396d (13 months)");

  if (errors.size() != errors_before) return std::nullopt;
  return c;
}

}  // namespace dozor::server
