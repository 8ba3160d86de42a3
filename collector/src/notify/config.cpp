// The `notifiers:` list of collector.yaml.

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <map>
#include <system_error>

#include "dozor/collector/notify.h"
#include "transport.h"

namespace dozor::collector {
namespace {

constexpr std::array<std::string_view, 6> kEvents = {"opened",   "escalated", "acknowledged",
                                                     "resolved", "reopened",  "closed"};
constexpr std::array<std::string_view, 3> kTypes = {"webhook", "alertmanager", "smtp"};

constexpr OptionSpec kCommon[] = {
    {"name", OptionKind::string, "", false,
     "unique name (outbox, metrics); default: the type, when only one notifier has it"},
    {"type", OptionKind::string, "", true, "webhook, alertmanager or smtp"},
    {"events", OptionKind::yaml, "", false,
     "list of ticket events to send (opened, escalated, acknowledged, resolved, reopened, "
     "closed); default: all"},
    {"timeout", OptionKind::duration, "10s", false, "bound of one delivery attempt"},
};
constexpr OptionSpec kWebhook[] = {
    {"url", OptionKind::string, "", true, "http:// or https:// URL the events are POSTed to"},
    {"headers", OptionKind::string_map, "", false, "extra HTTP headers, e.g. Authorization"},
    {"ca_file", OptionKind::string, "", false, "PEM file of CAs for https; default: system CAs"},
};
constexpr OptionSpec kAlertmanager[] = {
    {"url", OptionKind::string, "", true,
     "Alertmanager's base URL, e.g. http://127.0.0.1:9093 (alerts go to /api/v2/alerts)"},
    {"resend", OptionKind::duration, "1m", false,
     "re-send active tickets this often; keep it below Alertmanager's resolve_timeout"},
    {"headers", OptionKind::string_map, "", false, "extra HTTP headers, e.g. Authorization"},
    {"ca_file", OptionKind::string, "", false, "PEM file of CAs for https; default: system CAs"},
};
constexpr OptionSpec kSmtp[] = {
    {"server", OptionKind::string, "", true, "SMTP relay as host:port (port 25 if omitted)"},
    {"from", OptionKind::string, "", true, "envelope and header sender address"},
    {"to", OptionKind::yaml, "", true, "recipient address or list of addresses"},
};

// The headers dozor sets itself; a second value would make the request ambiguous.
constexpr std::array<std::string_view, 6> kReservedHeaders = {
    "host", "content-length", "transfer-encoding", "connection", "content-type", "idempotency-key"};

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

template <std::size_t N>
std::string join(const std::array<std::string_view, N>& items) {
  std::string out;
  for (auto item : items) out += (out.empty() ? "" : ", ") + std::string(item);
  return out;
}

std::vector<OptionSpec> specs_of(std::string_view type) {
  std::vector<OptionSpec> out(std::begin(kCommon), std::end(kCommon));
  if (type == "webhook") out.insert(out.end(), std::begin(kWebhook), std::end(kWebhook));
  if (type == "alertmanager")
    out.insert(out.end(), std::begin(kAlertmanager), std::end(kAlertmanager));
  if (type == "smtp") out.insert(out.end(), std::begin(kSmtp), std::end(kSmtp));
  return out;
}

int line_of(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

// A scalar or a list of scalars, as strings; false after reporting when it is neither.
bool string_list(const Options& o, std::string_view key, std::vector<std::string>& out) {
  const YAML::Node node = o.yaml(key);
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
    return true;
  }
  if (!node.IsSequence()) {
    o.error(key, "expected a list of strings");
    return false;
  }
  for (const auto& item : node) {
    if (!item.IsScalar()) {
      o.error(key, "expected a list of strings");
      return false;
    }
    out.push_back(item.Scalar());
  }
  return true;
}

// A bare addr-spec (user@host): it goes into SMTP commands and headers, so no spaces, angle
// brackets or line breaks.
bool is_mail_address(const std::string& a) {
  const std::size_t at = a.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == a.size()) return false;
  return std::none_of(a.begin(), a.end(), [](unsigned char ch) {
    return ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>' || ch == ',' || ch == '"';
  });
}

bool is_header_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char ch) {
    return std::isalnum(ch) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(ch)) !=
                                   std::string_view::npos;
  });
}

bool is_name(const std::string& name) {
  return std::all_of(name.begin(), name.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
  });
}

void read_http(const Options& o, const std::string& file, NotifierConfig& c) {
  c.url = o.string("url");
  std::string why;
  const auto url = parse_http_url(c.url, why);
  if (!url) {
    if (o.has("url")) o.error("url", why);
    return;
  }
  if (c.type == "alertmanager" && url->target.find('?') != std::string::npos)
    o.error("url", "expected Alertmanager's base URL, without a query");

  for (const auto& [name, value] : o.string_map("headers")) {
    if (!is_header_name(name))
      o.error("headers", "'" + name + "' is not a valid header name");
    else if (std::find(kReservedHeaders.begin(), kReservedHeaders.end(), lower(name)) !=
             kReservedHeaders.end())
      o.error("headers", name + " is set by dozor");
    else if (value.find_first_of("\r\n") != std::string::npos)
      o.error("headers", "the value of " + name + " must be one line");
  }
  c.headers = o.string_map("headers");

  if (o.string("ca_file").empty()) return;
  if (!url->tls) {
    o.error("ca_file", "only used with https:// URLs");
    return;
  }
  c.ca_file = resolve_path(file, o.string("ca_file"));
  if (std::ifstream in(c.ca_file); !in)
    o.error("ca_file", "cannot read " + c.ca_file + ": " + std::generic_category().message(errno));
}

void read_smtp(const Options& o, NotifierConfig& c) {
  c.smtp_server = o.string("server");
  std::string why;
  if (o.has("server") && !parse_host_port(c.smtp_server, "25", why)) o.error("server", why);
  c.from = o.string("from");
  if (o.has("from") && !is_mail_address(c.from))
    o.error("from", "expected an address such as dozor@example.com, got '" + c.from + "'");
  if (!o.has("to") || !string_list(o, "to", c.to)) return;
  if (c.to.empty()) o.error("to", "needs at least one address");
  for (const auto& to : c.to)
    if (!is_mail_address(to))
      o.error("to", "expected an address such as duty@example.com, got '" + to + "'");
}

void read_events(const Options& o, NotifierConfig& c) {
  if (!o.has("events") || !string_list(o, "events", c.events)) return;
  if (c.events.empty()) o.error("events", "list at least one event, or leave events out for all");
  for (const auto& e : c.events)
    if (std::find(kEvents.begin(), kEvents.end(), e) == kEvents.end())
      o.error("events", "unknown event '" + e + "'; known: " + join(kEvents));
}

}  // namespace

std::vector<NotifierConfig> parse_notifiers(const YAML::Node& node, const std::string& file,
                                            std::vector<ConfigError>& errors) {
  std::vector<NotifierConfig> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsSequence()) {
    errors.push_back({file, line_of(node), "notifiers", "expected a list"});
    return out;
  }
  struct Entry {
    NotifierConfig config;
    Options options;
    bool named = false;
  };
  std::vector<Entry> entries;
  const std::size_t errors_before = errors.size();
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    const std::string path = "notifiers[" + std::to_string(i) + "]";
    // The type picks the table, so that an unknown key lists the keys of that type.
    const YAML::Node type_node = item.IsMap() ? item["type"] : YAML::Node();
    const std::string type = type_node && type_node.IsScalar() ? type_node.Scalar() : "";
    const bool known = std::find(kTypes.begin(), kTypes.end(), type) != kTypes.end();
    Options o = read_options(item, specs_of(known ? type : ""), file, path, errors);
    if (!known) {
      if (o.has("type")) o.error("type", "unknown type '" + type + "'; known: " + join(kTypes));
      continue;
    }
    NotifierConfig c;
    c.type = type;
    c.name = o.has("name") ? o.string("name") : type;
    if (c.name.empty() || !is_name(c.name))
      o.error("name", "use letters, digits, '-', '_' and '.'");
    c.timeout = o.duration("timeout");
    if (c.timeout.count() <= 0) o.error("timeout", "must be positive");
    read_events(o, c);
    if (type == "smtp") {
      read_smtp(o, c);
    } else {
      read_http(o, file, c);
    }
    if (type == "alertmanager") {
      c.resend = o.duration("resend");
      if (c.resend.count() <= 0) o.error("resend", "must be positive");
    }
    const bool named = o.has("name");
    entries.push_back({std::move(c), std::move(o), named});
  }

  std::map<std::string, std::size_t> per_type;
  for (const auto& e : entries) ++per_type[e.config.type];
  std::map<std::string, std::string> names;  // name -> path of its first use
  for (const auto& e : entries) {
    if (!e.named && per_type[e.config.type] > 1) {
      e.options.error("name", "required: more than one notifier has type " + e.config.type);
      continue;
    }
    auto [it, fresh] = names.emplace(e.config.name, e.options.path());
    if (!fresh)
      e.options.error("name", "duplicate name '" + e.config.name + "' (also " + it->second + ")");
  }
  if (errors.size() != errors_before) return {};
  for (auto& e : entries) out.push_back(std::move(e.config));
  return out;
}

}  // namespace dozor::collector
