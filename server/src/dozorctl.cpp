// dozorctl: the support team's command line over dozor-collector's HTTP API (/api/v1): agents,
// tickets (list, show, acknowledge, close), silences, enrollment tokens, certificates and the CRL.
#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ctl_format.h"
#include "ctl_http.h"
#include "dozor/protocol/units.h"
#include "dozor/protocol/version.h"

namespace {

using namespace dozor;
using namespace dozor::ctl;
// Ordered, so that --json shows the fields in the collector's order.
using json = nlohmann::ordered_json;
using boost::beast::http::verb;

// Ends the run with exit status 1 after "dozorctl: <what>" on stderr.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- Reading answers. Tolerant: a field the collector leaves out shows as "-", it is no reason
// to abort a listing.

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}

bool flag(const json& j, const char* key) {
  if (!j.is_object()) return false;
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

const json& list(const json& j, const char* key) {
  static const json kEmpty = json::array();
  if (!j.is_object()) return kEmpty;
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

std::optional<TimePoint> when(const json& j, const char* key) { return parse_time(str(j, key)); }

std::string dash(std::string s) { return s.empty() ? "-" : s; }

std::string age(const json& j, const char* key, TimePoint now) {
  const auto t = when(j, key);
  return t ? relative(*t, now) : "-";
}

// "2026-11-23 14:05:01 UTC (12m ago)", or "" when the field is null.
std::string moment(const json& j, const char* key, TimePoint now) {
  const auto t = when(j, key);
  return t ? absolute(*t) + " (" + relative(*t, now) + ")" : "";
}

std::string join(const json& names, const char* sep) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += sep;
    out += n.is_string() ? n.get<std::string>() : n.dump();
  }
  return out;
}

// ---- The API.

class Api {
 public:
  Api(Url url, std::string token, std::chrono::milliseconds timeout)
      : url_(std::move(url)), token_(std::move(token)), timeout_(timeout) {}

  json get(const std::string& target) { return call(verb::get, target, nullptr); }
  /// A body that is not JSON (a PEM CRL), as {"text": body}.
  json get_text(const std::string& target) { return call(verb::get, target, nullptr, true); }
  /// A page outside /api/v1 (the HTML report), as {"text": body}.
  json get_page(const std::string& path) { return call(verb::get, path, nullptr, true, ""); }
  json post(const std::string& target, const json& body) { return call(verb::post, target, &body); }
  json del(const std::string& target) { return call(verb::delete_, target, nullptr); }

 private:
  json call(verb method, const std::string& target, const json* body, bool text_body = false,
            const std::string& prefix = "/api/v1") {
    const std::string text = body ? body->dump() : std::string();
    Reply reply;
    try {
      reply = fetch(url_, method, prefix + target, token_, body ? &text : nullptr, timeout_);
    } catch (const TransportError& e) {
      throw Failure("cannot reach " + url_.text + ": " + e.what());
    }
    json j = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
    if (reply.status >= 300) {
      std::string message = str(j, "error");
      if (message.empty()) message = reply.reason;
      if (reply.status == 401 && token_.empty())
        message += " (no token given: use --token-file, --token or DOZOR_TOKEN)";
      throw Failure(std::to_string(reply.status) + " " + message);
    }
    if (text_body) return json{{"text", reply.body}};
    if (j.is_discarded())
      throw Failure(url_.text + " answered " + target + " with something other than JSON" +
                    " (is that a dozor-collector?)");
    return j;
  }

  Url url_;
  std::string token_;
  std::chrono::milliseconds timeout_;
};

// ---- Showing answers to a person.

std::string percent(const json& v) {
  if (!v.is_number()) return "-";
  char out[32];
  std::snprintf(out, sizeof out, "%.3f %%", v.get<double>() * 100);
  return out;
}

// A site report in a few lines, or the fleet's sites worst first.
std::string report_summary(const json& r) {
  std::ostringstream o;
  if (r.contains("sites")) {
    o << "sites from " << str(r, "from") << " to " << str(r, "to") << ", worst first:\n";
    Table table({"SITE", "AVAILABILITY", "DOWN (SERVICE)", "INCIDENTS", "MISSED"});
    for (const auto& s : r["sites"])
      table.add({str(s, "site"), percent(s["availability"]),
                 format_duration(std::chrono::milliseconds(
                     static_cast<std::int64_t>(s["down_service_seconds"].get<double>() * 1000))),
                 std::to_string(s["incidents"].get<int>()),
                 std::to_string(s["deadlines_missed"].get<int>())});
    table.print(o);
    return o.str();
  }
  const json& t = r["totals"];
  o << str(r, "client") << " (" << str(r, "name") << "), " << str(r, "from") << " to "
    << str(r, "to") << (r.value("complete", true) ? "" : " (so far)") << "\n"
    << "  availability: " << percent(r["site"]["service_hours"]["availability"])
    << " in service hours, " << percent(r["site"]["around_the_clock"]["availability"])
    << " around the clock\n"
    << "  incidents: " << t["incidents"].get<int>() << "; deadlines kept "
    << t["deadlines_kept"].get<int>() << ", missed " << t["deadlines_missed"].get<int>()
    << "; resolved before the client could notice " << t["unnoticed"].get<int>() << "\n";
  return o.str();
}

// Prints `html` to an A4 PDF with a headless Chromium, if this machine has one.
void write_pdf(const std::string& html, const std::string& out) {
  std::string browser;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    const std::string path = std::string("/usr/bin/") + name;
    if (::access(path.c_str(), X_OK) == 0) {
      browser = path;
      break;
    }
  }
  if (browser.empty())
    throw Failure(
        "a PDF needs a headless Chromium, and none is installed (Debian: apt install "
        "chromium); --format html gives the page to print from any browser");
  char folder[] = "/tmp/dozorctl-report-XXXXXX";
  if (!::mkdtemp(folder)) throw Failure("cannot make a temporary folder");
  const std::string page = std::string(folder) + "/report.html";
  std::ofstream(page, std::ios::binary) << html;
  // As root Chromium runs only without its sandbox; the page is our own, from the collector.
  const std::string profile = "--user-data-dir=" + std::string(folder) + "/profile",
                    target = "--print-to-pdf=" + out, url = "file://" + page;
  std::vector<const char*> argv = {
      browser.c_str(), "--headless",   "--disable-gpu", "--no-sandbox", "--no-pdf-header-footer",
      profile.c_str(), target.c_str(), url.c_str(),     nullptr};
  int rc = -1;
  if (const pid_t pid = ::fork(); pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(argv[0], const_cast<char* const*>(argv.data()));
    ::_exit(127);
  } else if (pid > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::filesystem::remove_all(folder);
  std::ifstream made(out);
  if (rc != 0 || !made) throw Failure("Chromium could not print the report to " + out);
  std::cerr << "wrote " << out << "\n";
}

void show_agents(const json& agents) {
  if (!agents.is_array() || agents.empty()) {
    std::cerr << "no agent has reported yet\n";
    return;
  }
  const auto t = now();
  Table table({"AGENT", "SITE", "STATE", "LAST REPORT", "FAILING"});
  for (const auto& a : agents) {
    std::string state = "up";
    if (!flag(a, "up")) {
      const auto since = when(a, "down_since");
      state = since ? "DOWN for " + span(t - *since) : "DOWN";
    }
    std::size_t total = 0, bad = 0;
    std::string failing;
    for (const auto& p : list(a, "probes")) {
      ++total;
      const auto status = str(p, "status");
      if (status == "ok") continue;
      ++bad;
      failing += (failing.empty() ? " " : ", ") + str(p, "name") + " (" + status + ")";
    }
    table.add({str(a, "id"), dash(str(a, "site")), state, age(a, "last_report", t),
               total ? std::to_string(bad) + "/" + std::to_string(total) + failing : "-"});
  }
  table.print(std::cout);
}

bool is_active(const json& ticket) {
  const auto s = str(ticket, "status");
  return s == "open" || s == "acknowledged";
}

// A deadline still to be met is what the team acts on; a missed one is shouted.
std::string deadline(const json& ticket, TimePoint now) {
  const auto d = when(ticket, "deadline");
  if (!d) return "";
  if (is_active(ticket) && *d < now) return "OVERDUE " + span(now - *d);
  return relative(*d, now);
}

// "agent/probe"; a site-wide ticket has no agent and names its probes.
std::string subject(const json& ticket) {
  std::string probe = str(ticket, "probe");
  if (probe.empty()) probe = join(list(ticket, "probes"), ",");
  std::string agent = str(ticket, "agent");
  if (agent.empty() && probe.empty()) return "-";
  return (agent.empty() ? "*" : agent) + "/" + (probe.empty() ? "*" : probe);
}

void show_tickets(const json& answer, const std::string& filter) {
  const json& tickets = list(answer, "tickets");
  if (tickets.empty()) {
    std::cerr << "no tickets" << filter << "\n";
    return;
  }
  const auto t = now();
  Table table({"ID", "STATUS", "CLASS/PRIO", "SITE", "AGENT/PROBE", "AGE", "DEADLINE", "SUMMARY"});
  for (const auto& k : tickets) {
    table.add({str(k, "id"), str(k, "status"), str(k, "class") + "/" + str(k, "priority"),
               dash(str(k, "site")), subject(k), age(k, "opened_at", t), dash(deadline(k, t)),
               (flag(k, "flapping") ? "(flapping) " : "") + str(k, "summary")});
  }
  table.print(std::cout);
}

void show_ticket(const json& k) {
  const auto t = now();
  std::cout << "ticket " << str(k, "id") << ": " << printable(str(k, "summary"), false) << "\n";
  Table fields;
  auto field = [&](const char* name, const std::string& value) {
    if (!value.empty()) fields.add({name, value});
  };
  field("key", str(k, "key"));
  field("status", str(k, "status") + (flag(k, "flapping") ? " (flapping)" : ""));
  field("class", str(k, "class") + ", priority " + str(k, "priority"));
  field("site", str(k, "site"));
  field("agent", str(k, "agent"));
  field("probe", str(k, "probe"));
  field("probes", join(list(k, "probes"), ", "));
  field("rule", str(k, "rule"));
  field("opened", moment(k, "opened_at", t));
  field("acknowledged", moment(k, "acknowledged_at", t));
  field("acknowledged by", str(k, "acknowledged_by"));
  field("resolved", moment(k, "resolved_at", t));
  field("closed", moment(k, "closed_at", t));
  field("updated", moment(k, "updated_at", t));
  if (const auto d = when(k, "deadline"))
    field("deadline", absolute(*d) + " (" + deadline(k, t) + ")");
  field("escalations", str(k, "escalations"));
  field("occurrences", str(k, "occurrences"));
  field("comment", str(k, "comment"));
  fields.print(std::cout, "  ");

  if (const auto details = str(k, "details"); !details.empty()) {
    std::cout << "\ndetails:\n";
    std::istringstream lines(printable(details, true));
    for (std::string line; std::getline(lines, line);) std::cout << "  " << line << "\n";
  }
  const json& events = list(k, "events");
  if (!events.empty()) {
    std::cout << "\nevents:\n";
    Table table;
    for (const auto& e : events) {
      const auto at = when(e, "at");
      table.add(
          {at ? absolute(*at) : "-", at ? relative(*at, t) : "-", str(e, "event"), str(e, "text")});
    }
    table.print(std::cout, "  ");
  }
}

void show_changed_ticket(const json& k) {
  std::cout << "ticket " << str(k, "id") << " " << str(k, "status") << ": "
            << printable(str(k, "summary"), false) << "\n";
}

// "site=romashka probe=db"; a matcher left at "*" matches anything and is not worth a word.
std::string matchers(const json& silence) {
  std::string out;
  const json& m = silence.contains("matchers") ? silence["matchers"] : json::object();
  for (const char* key : {"site", "agent", "probe", "rule"}) {
    const auto glob = str(m, key);
    if (glob.empty() || glob == "*") continue;
    out += (out.empty() ? "" : " ") + std::string(key) + "=" + glob;
  }
  return out.empty() ? "* (everything)" : out;
}

void show_silences(const json& answer) {
  const json& silences = list(answer, "silences");
  if (silences.empty()) {
    std::cerr << "no silences\n";
    return;
  }
  const auto t = now();
  Table table({"ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT"});
  for (const auto& s : silences) {
    const auto starts = when(s, "starts_at");
    const char* state = flag(s, "active")       ? "active"
                        : starts && *starts > t ? "pending"
                                                : "expired";
    table.add({str(s, "id"), state, matchers(s), age(s, "starts_at", t), age(s, "ends_at", t),
               dash(str(s, "created_by")), str(s, "comment")});
  }
  table.print(std::cout);
}

void show_new_silence(const json& s) {
  std::cout << "silence " << str(s, "id") << " created: " << matchers(s);
  if (const auto ends = when(s, "ends_at"))
    std::cout << ", until " << absolute(*ends) << " (" << relative(*ends, now()) << ")";
  std::cout << "\n";
}

void show_tokens(const json& answer) {
  const json& tokens = list(answer, "tokens");
  if (tokens.empty()) {
    std::cerr << "no enrollment tokens\n";
    return;
  }
  const auto t = now();
  Table table({"ID", "AGENT", "SITE", "STATE", "USED", "EXPIRES", "BY", "COMMENT"});
  for (const auto& k : tokens)
    table.add({str(k, "id"), str(k, "agent"), str(k, "site"),
               str(k, "state") + (flag(k, "replace") ? " (replace)" : ""),
               str(k, "used") + "/" + str(k, "uses"), age(k, "expires_at", t), dash(str(k, "by")),
               str(k, "comment")});
  table.print(std::cout);
}

// The token alone on stdout (for a script: TOKEN=$(dozorctl enroll create ...)); what to do
// with it on stderr.
void show_new_token(const json& k) {
  std::cout << str(k, "token") << "\n";
  const auto expires = when(k, "expires_at");
  std::cerr << "token " << str(k, "id") << " for agent " << str(k, "agent") << " at site "
            << str(k, "site") << ": " << str(k, "uses") << " use(s)"
            << (expires ? ", expires " + absolute(*expires) + " (" + relative(*expires, now()) + ")"
                        : "")
            << (flag(k, "replace") ? "; enrolling revokes the agent's current certificate" : "")
            << "\nAt the site, as root:\n  dozor-agent enroll --collector https://COLLECTOR:7443 "
               "--token "
            << str(k, "token") << "\n";
}

void show_certificates(const json& answer) {
  const json& certs = list(answer, "certificates");
  if (certs.empty()) {
    std::cerr << "no certificates issued by this collector\n";
    return;
  }
  const auto t = now();
  Table table({"SERIAL", "AGENT", "SITE", "ISSUED", "EXPIRES", "HOW", "FROM"});
  for (const auto& c : certs)
    table.add({str(c, "serial"), str(c, "agent"), str(c, "site"), age(c, "issued_at", t),
               age(c, "not_after", t), str(c, "how"), dash(str(c, "source"))});
  table.print(std::cout);
}

// ---- The command line.

// Every command is one request, and a way to show its answer when --json does not ask for it raw.
struct Command {
  std::function<json(Api&)> request;
  std::function<void(const json&)> show;
};

CLI::Validator checker(std::function<std::string(const std::string&)> check, std::string name) {
  return CLI::Validator([check](std::string& s) { return check(s); }, name);
}

const CLI::Validator kDuration = checker(
    [](const std::string& s) -> std::string {
      const auto d = parse_duration(s);
      return d && d->count() > 0 ? "" : "expected a duration such as 30s, 5m, 2h or 1h30m";
    },
    "DURATION");

const CLI::Validator kTime = checker(
    [](const std::string& s) -> std::string {
      return parse_time(s) ? "" : "expected an RFC3339 time such as 2026-11-23T18:00:00Z";
    },
    "RFC3339");

const CLI::Validator kUrl = checker(
    [](const std::string& s) {
      std::string error;
      parse_url(s, error);
      return error;
    },
    "URL");

// CLI::PositiveNumber's message prints the whole range of a double.
const CLI::Validator kId = checker(
    [](const std::string& s) -> std::string {
      std::uint64_t v = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      return ec == std::errc() && end == s.data() + s.size() && v > 0
                 ? ""
                 : "expected an id (a positive whole number), got \"" + s + "\"";
    },
    "ID");

const CLI::Validator kStatus = checker(
    [](const std::string& s) -> std::string {
      if (s == "all") return "";
      std::istringstream words(s);
      for (std::string w; std::getline(words, w, ',');)
        if (w != "open" && w != "acknowledged" && w != "resolved" && w != "closed" && w != "active")
          return "\"" + w + "\" is none of open, acknowledged, resolved, closed, active, all";
      return "";
    },
    "STATUS[,STATUS]");

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Who runs dozorctl, for --by: $USER, else $LOGNAME, else the account (cron and sudo -i may set
// neither variable).
std::string user() {
  for (const char* name : {"USER", "LOGNAME"})
    if (auto v = env(name); !v.empty()) return v;
  const passwd* pw = getpwuid(getuid());
  return pw ? pw->pw_name : "";
}

std::string trim(std::string s) {
  const auto* ws = " \t\r\n";
  s.erase(s.find_last_not_of(ws) + 1);
  s.erase(0, s.find_first_not_of(ws));
  return s;
}

// --by and --comment: who did it and why, as the history of the ticket or silence will say.
void add_actor(CLI::App* sub, std::string& by, std::string& comment, bool comment_required) {
  sub->add_option("--by", by, "who does it (default: $USER)");
  sub->add_option("--comment", comment, "why; others will read it")->required(comment_required);
}

json actor(const std::string& by, const std::string& comment) {
  json body = json::object();
  if (!by.empty()) body["by"] = by;
  if (!comment.empty()) body["comment"] = comment;
  return body;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dozorctl: the support team's command line over dozor-collector's HTTP API.\n"
      "Exit status: 0 done, 1 the collector refused or could not be reached, 2 usage error.",
      "dozorctl"};
  // Global options may also follow the command: `dozorctl tickets --json`.
  app.fallthrough();
  app.require_subcommand(1);

  std::string url = "http://127.0.0.1:9180", token, token_file, timeout = "10s";
  bool raw = false;
  app.add_option("--url", url, "the collector's API")
      ->envname("DOZOR_URL")
      ->capture_default_str()
      ->check(kUrl);
  auto* token_opt = app.add_option(
      "--token", token,
      "API token, needed by ack, close and silence add/rm (else $DOZOR_TOKEN); prefer "
      "--token-file, since any user of the host can read a command line");
  app.add_option("--token-file", token_file, "file holding the API token")->excludes(token_opt);
  app.add_flag("--json", raw, "print the API's JSON answer instead of a table");
  app.add_option("--timeout", timeout, "give up on the collector after this long")
      ->capture_default_str()
      ->check(kDuration);
  app.set_version_flag("--version", std::string("dozorctl ") + kVersion);

  Command command;
  std::uint64_t id = 0;
  std::string by = user(), comment;

  std::string agent_id;
  auto* agents =
      app.add_subcommand("agents", "every agent: up or DOWN, last report, failing probes");
  auto* forget = agents->add_subcommand(
      "forget",
      "remove an agent (a client that left, a machine renamed): its state, series, "
      "incidents; it comes back if it reports again");
  forget->add_option("id", agent_id, "agent id (its certificate's CN)")->required();
  auto* revoke = agents->add_subcommand(
      "revoke",
      "revoke every certificate of an agent (a client that left, a stolen machine): its "
      "connections are closed at once, every new handshake with it fails, its enrollment tokens "
      "and renewals are refused, it is forgotten");
  revoke->add_option("id", agent_id, "agent id (its certificate's CN)")->required();
  add_actor(revoke, by, comment, true);
  agents->callback([&] {
    if (forget->parsed()) {
      command = {[&](Api& api) { return api.del("/agents/" + query_escape(agent_id)); },
                 [&](const json&) { std::cout << "agent " << agent_id << " forgotten\n"; }};
      return;
    }
    if (revoke->parsed()) {
      command = {[&](Api& api) {
                   return api.post("/agents/" + query_escape(agent_id) + "/revoke",
                                   actor(by, comment));
                 },
                 [&](const json& j) {
                   std::cout << "agent " << agent_id << " revoked: certificate serial(s) "
                             << join(j.value("serials", json::array()), ", ") << ", "
                             << j.value("connections_closed", 0) << " connection(s) closed\n";
                 }};
      return;
    }
    command = {[](Api& api) { return api.get("/agents"); }, show_agents};
  });

  auto* enroll = app.add_subcommand(
      "enroll", "one-time tokens with which an agent gets its certificate (dozor-agent enroll)");
  enroll->require_subcommand(1);
  std::string enroll_agent, enroll_site, ttl, token_id;
  int uses = 1;
  bool replace = false;
  auto* create = enroll->add_subcommand(
      "create", "make a token for one agent id at one site; prints it (only this once)");
  create->add_option("--agent", enroll_agent, "the agent id the certificate will name (its CN)")
      ->required();
  create->add_option("--site", enroll_site, "the client site it will name (its OU)")->required();
  create->add_option("--ttl", ttl, "how long the token is good (default: enroll.token_ttl, 30m)")
      ->check(kDuration);
  create->add_option("--uses", uses, "how many enrollments it allows")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  create->add_flag("--replace", replace,
                   "the agent id is in use and moves to a new machine: enrolling revokes its "
                   "current certificate");
  add_actor(create, by, comment, false);
  create->callback([&] {
    json body = actor(by, comment);
    body["agent"] = enroll_agent;
    body["site"] = enroll_site;
    body["uses"] = uses;
    body["replace"] = replace;
    if (!ttl.empty()) body["ttl"] = ttl;
    command = {[body](Api& api) { return api.post("/enroll/tokens", body); }, show_new_token};
  });
  enroll->add_subcommand("list", "every token: active, used, expired or revoked")->callback([&] {
    command = {[](Api& api) { return api.get("/enroll/tokens"); }, show_tokens};
  });
  auto* revoke_token = enroll->add_subcommand("revoke", "revoke a token that was not used yet");
  revoke_token->add_option("id", token_id, "token id (dozorctl enroll list)")->required();
  revoke_token->callback([&] {
    command = {[&](Api& api) {
                 return api.post("/enroll/tokens/" + query_escape(token_id) + "/revoke",
                                 json::object());
               },
               [&](const json&) { std::cout << "token " << token_id << " revoked\n"; }};
  });

  auto* certificates = app.add_subcommand(
      "certificates", "certificates this collector issued: enrollments and renewals");
  certificates->add_option("--agent", agent_id, "only this agent's");
  certificates->callback([&] {
    command = {[&](Api& api) {
                 return api.get("/certificates" +
                                (agent_id.empty() ? "" : "?agent=" + query_escape(agent_id)));
               },
               show_certificates};
  });

  std::string crl_out;
  auto* crl = app.add_subcommand(
      "crl", "the revoked certificates as a CRL (PEM) signed by the issuing CA, for others");
  crl->add_option("-o,--output", crl_out, "write it to this file instead of stdout");
  crl->callback([&] {
    command = {[](Api& api) { return api.get_text("/crl"); },
               [&](const json& j) {
                 const std::string pem = str(j, "text");
                 if (crl_out.empty()) {
                   std::cout << pem;
                   return;
                 }
                 std::ofstream out(crl_out, std::ios::binary | std::ios::trunc);
                 if (!(out << pem) || !out.flush()) throw Failure("cannot write " + crl_out);
                 std::cerr << "wrote " << crl_out << "\n";
               }};
  });

  std::string report_site, month, from, to, format = "text", lang = "en", report_out;
  auto* report = app.add_subcommand(
      "report", "a site's service report: availability in service hours, incidents, reaction kept");
  report->add_option("--site", report_site, "the site (as in agent.yaml); without it, every site");
  report->add_option("--month", month, "YYYY-MM in the site's time zone (default: the last one)");
  report->add_option("--from", from, "instead of --month: from this RFC 3339 time ...");
  report->add_option("--to", to, "... to this one");
  report->add_option("--format", format, "text, json, csv (incidents), html or pdf")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json", "csv", "html", "pdf"}));
  report->add_option("--lang", lang, "language of the html and pdf labels: en or uk")
      ->capture_default_str()
      ->check(CLI::IsMember({"en", "uk"}));
  report->add_option("-o,--output", report_out, "write to this file (pdf: required)");
  report->callback([&] {
    if (format == "pdf" && report_out.empty())
      throw CLI::ValidationError("--format pdf needs -o FILE");
    if (report_site.empty() && format != "text" && format != "json")
      throw CLI::ValidationError("--format " + format + " needs --site");
    std::string query = "?lang=" + lang;
    if (!month.empty()) query += "&month=" + query_escape(month);
    if (!from.empty()) query += "&from=" + query_escape(from);
    if (!to.empty()) query += "&to=" + query_escape(to);
    const std::string site = query_escape(report_site);
    command = {
        [=](Api& api) -> json {
          if (format == "html" || format == "pdf") return api.get_page("/report/" + site + query);
          if (format == "csv") return api.get_text("/reports/" + site + "/incidents.csv" + query);
          return api.get(report_site.empty() ? "/reports" + query : "/reports/" + site + query);
        },
        [=](const json& j) {
          if (format == "pdf") return write_pdf(str(j, "text"), report_out);
          const std::string text = format == "text"   ? report_summary(j)
                                   : format == "json" ? j.dump(2) + "\n"
                                                      : str(j, "text");
          if (report_out.empty()) {
            std::cout << text;
            return;
          }
          std::ofstream out(report_out, std::ios::binary | std::ios::trunc);
          if (!(out << text) || !out.flush()) throw Failure("cannot write " + report_out);
          std::cerr << "wrote " << report_out << "\n";
        }};
  });

  std::string status = "active", site;
  auto* tickets = app.add_subcommand("tickets", "tickets, newest first (default: active ones)");
  tickets
      ->add_option("--status", status,
                   "open, acknowledged, resolved, closed, active (open and acknowledged) or all; "
                   "several comma-separated")
      ->capture_default_str()
      ->check(kStatus);
  tickets->add_option("--site", site, "only this site's tickets");
  tickets->callback([&] {
    std::string query, filter;
    if (status != "all") {
      query = "?status=" + status;  // a comma is legal in a query and the words need no escape
      filter = " with status " + status;
    }
    if (!site.empty()) {
      query += (query.empty() ? "?site=" : "&site=") + query_escape(site);
      filter += " at site " + site;
    }
    command = {[query](Api& api) { return api.get("/tickets" + query); },
               [filter](const json& j) { show_tickets(j, filter); }};
  });

  auto* ticket = app.add_subcommand("ticket", "one ticket in full, with its history");
  ticket->add_option("id", id, "ticket id")->required()->check(kId);
  ticket->callback([&] {
    command = {[&](Api& api) { return api.get("/tickets/" + std::to_string(id)); }, show_ticket};
  });

  for (const char* action : {"ack", "close"}) {
    auto* sub = app.add_subcommand(action, std::string(action) == "ack"
                                               ? "acknowledge a ticket: someone is on it"
                                               : "close a ticket: nothing more to do");
    sub->add_option("id", id, "ticket id")->required()->check(kId);
    add_actor(sub, by, comment, false);
    sub->callback([&, action] {
      command = {[&, action](Api& api) {
                   return api.post("/tickets/" + std::to_string(id) + "/" + action,
                                   actor(by, comment));
                 },
                 show_changed_ticket};
    });
  }

  auto* silence = app.add_subcommand("silence", "silences: no tickets for what they match");
  silence->require_subcommand(1);
  std::map<std::string, std::string> globs;
  std::string for_text, until;
  auto* add = silence->add_subcommand("add", "silence what the matchers match, for a while");
  auto* match = add->add_option_group(
      "matchers", "at least one; each a glob (* any text, ? one character); '*' matches anything");
  for (const char* key : {"site", "agent", "probe", "rule"})
    match->add_option(std::string("--") + key, globs[key], std::string("the ") + key);
  match->require_option(1, 0);
  auto* end = add->add_option_group("end", "exactly one");
  end->add_option("--for", for_text, "how long, e.g. 2h or 1h30m")->check(kDuration);
  end->add_option("--until", until, "when it ends, RFC3339")->check(kTime);
  end->require_option(1);
  add_actor(add, by, comment, true);
  add->callback([&] {
    json body{{"comment", comment}};
    json& m = body["matchers"] = json::object();
    for (const auto& [key, glob] : globs) m[key] = glob.empty() ? "*" : glob;
    if (!for_text.empty())
      body["duration"] = format_duration(*parse_duration(for_text));
    else
      body["ends_at"] = until;
    if (!by.empty()) body["created_by"] = by;
    command = {[body](Api& api) { return api.post("/silences", body); }, show_new_silence};
  });
  silence->add_subcommand("list", "every silence: active, pending or expired")->callback([&] {
    command = {[](Api& api) { return api.get("/silences"); }, show_silences};
  });
  auto* rm = silence->add_subcommand("rm", "delete a silence");
  rm->add_option("id", id, "silence id")->required()->check(kId);
  rm->callback([&] {
    command = {[&](Api& api) { return api.del("/silences/" + std::to_string(id)); },
               [&](const json&) { std::cout << "silence " << id << " deleted\n"; }};
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (token.empty() && !token_file.empty()) {
    std::ifstream in(token_file);
    std::stringstream content;
    if (!(in && content << in.rdbuf())) {
      std::cerr << "dozorctl: cannot read the token file " << token_file << "\n";
      return 2;
    }
    token = trim(content.str());
  }
  if (token.empty() && token_file.empty()) token = trim(env("DOZOR_TOKEN"));

  std::string error;
  Api api(*parse_url(url, error), token, *parse_duration(timeout));
  try {
    const json answer = command.request(api);
    if (raw)
      std::cout << answer.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      command.show(answer);
  } catch (const std::exception& e) {
    std::cerr << "dozorctl: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
