#include "dozor/collector/notify.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dozor/protocol/units.h"

namespace dozor::collector {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
using asio::ip::tcp;
using nlohmann::json;
using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string kReceiver =
    std::string(DOZOR_SOURCE_DIR) + "/tests/integration/webhook_receiver.py";

double wall_clock() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- folders, ports, processes
// -------------------------------------------------------------------

/// A directory under /tmp for one test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "dozor-notify-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return file(name);
  }

 private:
  fs::path path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A port nothing listens on (now): bound, read and released.
int free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  return a.local_endpoint().port();
}

bool port_open(int port) {
  asio::io_context io;
  tcp::socket s(io);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), static_cast<unsigned short>(port)), ec);
  return !ec;
}

/// Polls `done` until it holds or `limit` passes.
template <class F>
bool wait_until(F done, std::chrono::milliseconds limit) {
  const auto deadline = Steady::now() + limit;
  while (!done()) {
    if (Steady::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

/// A child process: stdout readable line by line, stderr to `log`; SIGTERM (then SIGKILL) at the
/// end.
class Process {
 public:
  explicit Process(const std::vector<std::string>& argv, const std::string& log = "/dev/null") {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (err >= 0) ::dup2(err, 2);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    stop();
    ::close(out_);
  }

  std::string line(std::chrono::milliseconds limit) {
    const auto deadline = Steady::now() + limit;
    std::string text;
    while (Steady::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char ch;
      if (::read(out_, &ch, 1) != 1) break;
      if (ch == '\n') return text;
      text += ch;
    }
    throw std::runtime_error("no line from the child process (got '" + text + "')");
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (!wait_until([this] { return ::waitpid(pid_, nullptr, WNOHANG) != 0; }, 5s)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

// ---- coroutines
// ----------------------------------------------------------------------------------

/// Runs `task` on `io` to its end (at most `limit`); rethrows what it threw.
void run(asio::io_context& io, asio::awaitable<void> task, std::chrono::milliseconds limit = 20s) {
  bool done = false;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  io.restart();
  const auto deadline = Steady::now() + limit;
  while (!done && Steady::now() < deadline) io.run_one_for(50ms);
  if (!done) throw std::runtime_error("still running after the test's limit");
  if (error) std::rethrow_exception(error);
}

/// What deliver threw; "" when it delivered.
std::string deliver_error(asio::io_context& io, Notifier& notifier, const Notification& n) {
  try {
    run(io, notifier.deliver(n));
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

/// Runs `io` until `done` holds (at most `limit`); false on time out.
template <class F>
bool run_until(asio::io_context& io, F done, std::chrono::milliseconds limit) {
  io.restart();
  const auto deadline = Steady::now() + limit;
  while (!done()) {
    if (Steady::now() >= deadline) return false;
    io.run_one_for(20ms);
    if (io.stopped()) io.restart();
  }
  return true;
}

void run_for(asio::io_context& io, std::chrono::milliseconds d) {
  run_until(
      io, [] { return false; }, d);
}

// ---- the data
// ------------------------------------------------------------------------------------

/// A ticket as the API shows it (timestamps RFC 3339, priority "P1").
json ticket(std::uint64_t id, const std::string& site = "acme") {
  const double now = wall_clock();
  return {{"id", id},
          {"key", site + "/agent-1/tcp_db/down"},
          {"class", "emergency"},
          {"priority", "P1"},
          {"status", "open"},
          {"summary", "connection refused"},
          {"details", "connect to 10.0.0.5:5432: Connection refused\n.hidden line\n"},
          {"site", site},
          {"agent", "agent-1"},
          {"probe", "tcp_db"},
          {"rule", "down"},
          {"opened_at", format_timestamp(now - 60)},
          {"acknowledged_at", nullptr},
          {"resolved_at", nullptr},
          {"closed_at", nullptr},
          {"deadline", format_timestamp(now + 3600)}};
}

Notification notification(std::uint64_t event_id, const std::string& event, json t) {
  Notification n;
  n.id = event_id;
  n.event = event;
  n.at = wall_clock();
  n.ticket = std::move(t);
  return n;
}

/// Stands in for the Desk's SQLite outbox with the same contract (oldest first; nothing from
/// behind a row that waits for its retry), in memory, and records the failures it is told of.
class MemoryOutbox final : public OutboxQueue {
 public:
  struct Failure {
    std::uint64_t id;
    int attempt;
    double at, retry_at;
    std::string error;
  };

  void add(const std::string& notifier, Notification n) { rows_[notifier].push_back({n, 0}); }
  std::size_t size(const std::string& notifier) { return rows_[notifier].size(); }

  std::vector<Notification> due(const std::string& notifier, double now,
                                std::size_t limit) override {
    std::vector<Notification> out;
    for (const auto& row : rows_[notifier]) {
      if (row.next_at > now || out.size() == limit) break;
      out.push_back(row.n);
    }
    return out;
  }
  void delivered(const std::string& notifier, std::uint64_t id) override {
    if (store_fails) throw std::runtime_error("disk I/O error");
    std::erase_if(rows_[notifier], [id](const Row& r) { return r.n.id == id; });
  }
  void failed(const std::string& notifier, std::uint64_t id, double retry_at,
              const std::string& error) override {
    for (auto& row : rows_[notifier]) {
      if (row.n.id != id) continue;
      row.next_at = retry_at;
      ++row.n.attempts;
      failures.push_back({id, row.n.attempts, wall_clock(), retry_at, error});
    }
  }
  std::vector<json> active_tickets() override { return active; }

  std::vector<Failure> failures;
  std::vector<json> active;
  bool store_fails = false;  // delivered() throws, as a full disk or a read-only store does

 private:
  struct Row {
    Notification n;
    double next_at;
  };
  std::map<std::string, std::vector<Row>> rows_;
};

double failed_total(Metrics& m, const std::string& notifier) {
  const std::string prefix = "dozor_notifications_failed_total{notifier=\"" + notifier + "\"} ";
  std::istringstream text(m.scrape());
  for (std::string line; std::getline(text, line);)
    if (line.starts_with(prefix)) return std::stod(line.substr(prefix.size()));
  return -1;
}

// ---- config
// --------------------------------------------------------------------------------------

std::vector<NotifierConfig> parse(const std::string& yaml, std::vector<ConfigError>& errors,
                                  const std::string& file = "/etc/dozor/collector.yaml") {
  const YAML::Node root = YAML::Load(yaml);
  return parse_notifiers(root["notifiers"], file, errors);
}

std::string joined(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

TEST(NotifyConfigTest, ReadsTheThreeTypes) {
  std::vector<ConfigError> errors;
  const auto ns = parse(R"(
notifiers:
  - name: team-hook
    type: webhook
    url: http://127.0.0.1:9000/dozor
    headers: {X-Team: duty}
    timeout: 5s
    events: [opened, escalated, reopened]
  - type: alertmanager
    url: http://127.0.0.1:9093
    resend: 2m
  - type: smtp
    server: 127.0.0.1:2525
    from: dozor@support.example
    to: [duty@support.example, boss@support.example]
)",
                        errors);
  ASSERT_TRUE(errors.empty()) << joined(errors);
  ASSERT_EQ(ns.size(), 3u);
  EXPECT_EQ(ns[0].name, "team-hook");
  EXPECT_EQ(ns[0].type, "webhook");
  EXPECT_EQ(ns[0].url, "http://127.0.0.1:9000/dozor");
  EXPECT_EQ(ns[0].headers, (std::map<std::string, std::string>{{"X-Team", "duty"}}));
  EXPECT_EQ(ns[0].timeout, 5s);
  EXPECT_EQ(ns[0].events, (std::vector<std::string>{"opened", "escalated", "reopened"}));
  EXPECT_TRUE(ns[0].wants("reopened"));
  EXPECT_FALSE(ns[0].wants("resolved"));
  EXPECT_EQ(ns[1].name, "alertmanager");  // the only one of its type
  EXPECT_EQ(ns[1].resend, 2min);
  EXPECT_EQ(ns[1].timeout, 10s);
  EXPECT_TRUE(ns[1].wants("closed"));  // no events: all
  EXPECT_EQ(ns[2].name, "smtp");
  EXPECT_EQ(ns[2].smtp_server, "127.0.0.1:2525");
  EXPECT_EQ(ns[2].from, "dozor@support.example");
  EXPECT_EQ(ns[2].to, (std::vector<std::string>{"duty@support.example", "boss@support.example"}));
  for (const auto& c : ns) EXPECT_NO_THROW(make_notifier(c)) << c.name;

  errors.clear();
  EXPECT_TRUE(parse("log: {level: info}\n", errors).empty());
  EXPECT_TRUE(errors.empty());
}

TEST(NotifyConfigTest, NamesEachMistakeWithFileLineAndKey) {
  TempDir dir;
  std::vector<ConfigError> errors;
  const auto ns = parse(R"(notifiers:
  - type: pager
  - type: webhook
    url: ftp://example.com/x
  - type: webhook
    url: http://127.0.0.1:1/
    events: [opened, exploded]
    colour: red
  - type: smtp
    from: not-an-address
  - name: a
    type: alertmanager
  - name: a
    type: webhook
    url: https://127.0.0.1/
    ca_file: missing-ca.pem
    headers: {Content-Type: text/plain}
)",
                        errors, dir.file("collector.yaml"));
  EXPECT_TRUE(ns.empty());
  const std::string text = joined(errors);
  const std::string f = dir.file("collector.yaml");
  for (const std::string& expected : {
           f + ":2: notifiers[0].type: unknown type 'pager'; known: webhook, alertmanager, smtp",
           f + ":4: notifiers[1].url: expected an http:// or https:// URL",
           f + ":3: notifiers[1].name: required: more than one notifier has type webhook",
           f + ":5: notifiers[2].name: required: more than one notifier has type webhook",
           f + ":7: notifiers[2].events: unknown event 'exploded'; known: opened, escalated, "
               "acknowledged, resolved, reopened, closed",
           f + ":8: notifiers[2].colour: unknown key; known: name, type, events, timeout, url, "
               "headers, ca_file",
           f + ":9: notifiers[3].server: missing required key",
           f + ":9: notifiers[3].to: missing required key",
           f + ":10: notifiers[3].from: expected an address such as dozor@example.com",
           f + ":11: notifiers[4].url: missing required key",
           f + ":13: notifiers[5].name: duplicate name 'a' (also notifiers[4])",
           f + ":16: notifiers[5].ca_file: cannot read " + dir.file("missing-ca.pem"),
           f + ":17: notifiers[5].headers: Content-Type is set by dozor",
       })
    EXPECT_NE(text.find(expected), std::string::npos) << "missing: " << expected << "\nin:\n"
                                                      << text;
  EXPECT_EQ(errors.size(), 13u) << text;

  errors.clear();
  parse("notifiers: {type: webhook}\n", errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].to_string(), "/etc/dozor/collector.yaml:1: notifiers: expected a list");
}

// ---- webhook
// -------------------------------------------------------------------------------------

/// tests/integration/webhook_receiver.py on 127.0.0.1.
class Receiver {
 public:
  Receiver(const TempDir& dir, std::vector<std::string> options = {}, int port = 0)
      : out_(dir.file("posts-" + std::to_string(count_++) + ".jsonl")),
        process_(argv(options, port), dir.file("receiver.log")) {
    const std::string line = process_.line(10s);
    if (!line.starts_with("PORT ")) throw std::runtime_error("receiver said '" + line + "'");
    port_ = std::stoi(line.substr(5));
  }
  int port() const { return port_; }
  std::vector<json> posts() const {
    std::vector<json> out;
    std::istringstream in(read_file(out_));
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }

 private:
  std::vector<std::string> argv(std::vector<std::string> options, int port) const {
    std::vector<std::string> a = {"python3", kReceiver, "--port", std::to_string(port),
                                  "--out",   out_};
    a.insert(a.end(), options.begin(), options.end());
    return a;
  }

  static inline int count_ = 0;
  std::string out_;
  Process process_;
  int port_ = 0;
};

NotifierConfig webhook(const std::string& url) {
  NotifierConfig c;
  c.name = "hook";
  c.type = "webhook";
  c.url = url;
  c.timeout = 5s;
  return c;
}

TEST(NotifyWebhookTest, PostsTheEventAsJsonWithAnIdempotencyKey) {
  TempDir dir;
  Receiver receiver(dir);
  auto c = webhook("http://127.0.0.1:" + std::to_string(receiver.port()) + "/dozor?team=duty");
  c.headers = {{"X-Team", "duty"}, {"Authorization", "Bearer s3cret"}};
  auto notifier = make_notifier(c);
  asio::io_context io;
  const auto n = notification(345, "opened", ticket(12));
  EXPECT_EQ(deliver_error(io, *notifier, n), "");

  const auto posts = receiver.posts();
  ASSERT_EQ(posts.size(), 1u);
  const auto& p = posts[0];
  EXPECT_EQ(p["path"], "/dozor?team=duty");
  EXPECT_EQ(p["idempotency_key"], "345");
  EXPECT_EQ(p["content_type"], "application/json");
  EXPECT_EQ(p["headers"]["X-Team"], "duty");
  EXPECT_EQ(p["headers"]["Authorization"], "Bearer s3cret");
  EXPECT_EQ(p["body"]["event"], "opened");
  EXPECT_EQ(p["body"]["event_id"], 345);
  EXPECT_DOUBLE_EQ(p["body"]["at"].get<double>(), n.at);
  EXPECT_EQ(p["body"]["ticket"], n.ticket);
}

TEST(NotifyWebhookTest, ARefusalThrowsWithItsStatusAndBody) {
  TempDir dir;
  Receiver receiver(dir, {"--fail-first", "1", "--status", "503"});
  // A chat-style webhook: its secret is in the path, and must not reach logs or the outbox.
  auto notifier = make_notifier(webhook("http://127.0.0.1:" + std::to_string(receiver.port()) +
                                        "/services/T0001/B0002/s3cr3tT0k3n?key=abc"));
  asio::io_context io;
  const auto n = notification(1, "opened", ticket(1));
  const std::string error = deliver_error(io, *notifier, n);
  EXPECT_NE(error.find("HTTP 503 Service Unavailable from http://127.0.0.1:" +
                       std::to_string(receiver.port()) + "/...:"),
            std::string::npos)
      << error;
  EXPECT_EQ(error.find("s3cr3t"), std::string::npos) << error;
  EXPECT_EQ(error.find("key=abc"), std::string::npos) << error;
  EXPECT_NE(error.find("receiver told to fail"), std::string::npos) << error;
  EXPECT_EQ(deliver_error(io, *notifier, n), "");  // the retry
  const auto posts = receiver.posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[1]["status"], 200);
  EXPECT_EQ(posts[0]["idempotency_key"], posts[1]["idempotency_key"]);
}

TEST(NotifyWebhookTest, AClosedPortOrASilentReceiverFailsWithinTheTimeout) {
  asio::io_context io;
  const int closed = free_port();
  auto notifier = make_notifier(webhook("http://127.0.0.1:" + std::to_string(closed) + "/"));
  const auto n = notification(1, "opened", ticket(1));
  std::string error = deliver_error(io, *notifier, n);
  EXPECT_NE(error.find("connect to 127.0.0.1:" + std::to_string(closed) + ": Connection refused"),
            std::string::npos)
      << error;

  // Listens, never answers: the kernel completes the connection from its backlog.
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  auto c = webhook("http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/");
  c.timeout = 300ms;
  notifier = make_notifier(c);
  const auto start = Steady::now();
  error = deliver_error(io, *notifier, n);
  EXPECT_NE(error.find("timed out after 300ms"), std::string::npos) << error;
  EXPECT_LT(Steady::now() - start, 300ms + 2s);  // given up at its timeout, not left hanging
}

TEST(NotifyWebhookTest, HttpsVerifiesTheReceiverAgainstTheCaFile) {
  TempDir dir;
  const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj /CN=dozor-test -addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Receiver receiver(dir, {"--cert", cert, "--key", key});
  const std::string port = std::to_string(receiver.port());
  asio::io_context io;
  const auto n = notification(7, "escalated", ticket(3));

  auto c = webhook("https://127.0.0.1:" + port + "/hook");
  c.ca_file = cert;
  EXPECT_EQ(deliver_error(io, *make_notifier(c), n), "");
  ASSERT_EQ(receiver.posts().size(), 1u);
  EXPECT_EQ(receiver.posts()[0]["body"]["event"], "escalated");

  // The system CAs do not know the test's certificate.
  std::string error = deliver_error(io, *make_notifier(webhook("https://127.0.0.1:" + port)), n);
  EXPECT_NE(error.find("TLS handshake with 127.0.0.1:" + port), std::string::npos) << error;
  EXPECT_NE(error.find("self-signed certificate"), std::string::npos) << error;

  // The certificate is for 127.0.0.1, not for the name used.
  c.url = "https://localhost:" + port + "/hook";
  error = deliver_error(io, *make_notifier(c), n);
  EXPECT_NE(error.find("hostname mismatch"), std::string::npos) << error;
  EXPECT_EQ(receiver.posts().size(), 1u);
}

// ---- Alertmanager
// --------------------------------------------------------------------------------

/// Debian's prometheus-alertmanager on 127.0.0.1, with a receiver that sends nothing and no
/// cluster gossip.
class AlertmanagerPeer {
 public:
  AlertmanagerPeer()
      : port_(free_port()),
        process_({"/usr/bin/prometheus-alertmanager",
                  "--config.file=" + dir_.write("alertmanager.yml",
                                                "route:\n  receiver: 'null'\n"
                                                "receivers:\n  - name: 'null'\n"),
                  "--storage.path=" + dir_.file("data"),
                  "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                  "--cluster.listen-address=", "--log.level=warn"},
                 dir_.file("alertmanager.log")) {
    if (!wait_until([this] { return get("/-/ready").first == 200; }, 20s))
      throw std::runtime_error("alertmanager did not get ready: " +
                               read_file(dir_.file("alertmanager.log")));
  }
  int port() const { return port_; }

  /// Status and body of a GET; 0 when the connection fails.
  std::pair<unsigned, std::string> get(const std::string& target) const {
    asio::io_context io;
    tcp::socket s(io);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), static_cast<unsigned short>(port_)),
              ec);
    if (ec) return {0, ""};
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(s, req, ec);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    if (!ec) http::read(s, buffer, res, ec);
    if (ec) return {0, ""};
    return {res.result_int(), res.body()};
  }

  /// The alert of dozor ticket `id` as GET /api/v2/alerts lists it; null when not listed.
  json alert(std::uint64_t id) const {
    const auto [status, body] = get("/api/v2/alerts");
    if (status != 200) return nullptr;
    for (const auto& a : json::parse(body))
      if (a["labels"].value("dozor_ticket", "") == std::to_string(id)) return a;
    return nullptr;
  }

 private:
  TempDir dir_;
  int port_;
  Process process_;
};

NotifierConfig alertmanager(int port) {
  NotifierConfig c;
  c.name = "alertmanager";
  c.type = "alertmanager";
  c.url = "http://127.0.0.1:" + std::to_string(port) + "/";  // the trailing / is joined right
  c.timeout = 5s;
  return c;
}

TEST(NotifyAlertmanagerTest, ATicketIsAnAlertUntilItsResolution) {
  AlertmanagerPeer am;
  auto notifier = make_notifier(alertmanager(am.port()));
  asio::io_context io;
  auto t = ticket(12);
  ASSERT_EQ(deliver_error(io, *notifier, notification(345, "opened", t)), "");

  json a;
  ASSERT_TRUE(wait_until(
      [&] {
        a = am.alert(12);
        return !a.is_null() && a["status"]["state"] == "active";
      },
      10s))
      << a.dump();
  EXPECT_EQ(a["labels"], (json{{"alertname", "down"},
                               {"dozor_ticket", "12"},
                               {"site", "acme"},
                               {"agent", "agent-1"},
                               {"probe", "tcp_db"},
                               {"class", "emergency"},
                               {"priority", "P1"}}));
  EXPECT_EQ(a["annotations"]["summary"], "connection refused");
  EXPECT_EQ(a["annotations"]["description"], t["details"]);
  EXPECT_EQ(a["annotations"]["deadline"], t["deadline"]);
  EXPECT_EQ(a["annotations"]["status"], "open");
  EXPECT_NEAR(*parse_timestamp(a["startsAt"].get<std::string>()),
              *parse_timestamp(t["opened_at"].get<std::string>()), 0.001);
  // Without endsAt, Alertmanager holds the alert for its resolve_timeout (5m) after each POST.
  EXPECT_GT(*parse_timestamp(a["endsAt"].get<std::string>()), wall_clock() + 60);

  t["status"] = "resolved";
  t["resolved_at"] = format_timestamp(wall_clock());
  ASSERT_EQ(deliver_error(io, *notifier, notification(346, "resolved", t)), "");
  // A resolved alert leaves GET /api/v2/alerts (also with ?active=false).
  EXPECT_TRUE(wait_until([&] { return am.alert(12).is_null(); }, 10s)) << am.alert(12).dump();
}

TEST(NotifyAlertmanagerTest, TheDispatcherResendsActiveTickets) {
  AlertmanagerPeer am;
  asio::io_context io;
  Metrics metrics;
  MemoryOutbox outbox;
  outbox.active = {ticket(21), ticket(22, "globex")};
  std::vector<std::unique_ptr<Notifier>> ns;
  ns.push_back(make_notifier(alertmanager(am.port())));
  EXPECT_TRUE(ns.back()->resends());
  Dispatcher dispatcher(io, outbox, metrics, std::move(ns), wall_clock);
  dispatcher.start();
  EXPECT_TRUE(run_until(
      io, [&] { return !am.alert(21).is_null() && !am.alert(22).is_null(); }, 10s));
  EXPECT_EQ(am.alert(22)["labels"]["site"], "globex");
  EXPECT_EQ(failed_total(metrics, "alertmanager"), 0);
  dispatcher.stop();
  run_for(io, 100ms);
}

// ---- SMTP
// ----------------------------------------------------------------------------------------

/// The Python that has Debian's python3-aiosmtpd (the PATH's may be another).
std::string aiosmtpd_python() {
  for (const char* python : {"/usr/bin/python3", "python3"})
    if (std::system((std::string(python) + " -c 'import aiosmtpd' 2>/dev/null").c_str()) == 0)
      return python;
  throw std::runtime_error("no python3 with aiosmtpd: apt-get install python3-aiosmtpd");
}

/// aiosmtpd's Mailbox handler: every message it accepts becomes a file of a Maildir.
class SmtpPeer {
 public:
  SmtpPeer()
      : port_(free_port()),
        process_(
            {aiosmtpd_python(), "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port_),
             "-c", "aiosmtpd.handlers.Mailbox", dir_.file("mail")},
            dir_.file("aiosmtpd.log")) {
    if (!wait_until([this] { return port_open(port_); }, 10s))
      throw std::runtime_error("aiosmtpd did not start: " + read_file(dir_.file("aiosmtpd.log")));
  }
  int port() const { return port_; }
  std::vector<std::string> messages() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.path() / "mail" / "new", ec))
      out.push_back(read_file(e.path().string()));
    return out;
  }

 private:
  TempDir dir_;
  int port_;
  Process process_;
};

NotifierConfig smtp(int port) {
  NotifierConfig c;
  c.name = "mail";
  c.type = "smtp";
  c.smtp_server = "127.0.0.1:" + std::to_string(port);
  c.from = "dozor@support.example";
  c.to = {"duty@support.example", "boss@support.example"};
  c.timeout = 5s;
  return c;
}

/// The value of header `name`, unfolded.
std::string header(const std::string& message, const std::string& name) {
  const std::size_t at = message.find("\n" + name + ": ");
  if (at == std::string::npos) return "";
  std::string value;
  for (std::size_t i = at + name.size() + 3; i < message.size(); ++i) {
    if (message[i] == '\n' && i + 1 < message.size() && message[i + 1] != ' ' &&
        message[i + 1] != '\t')
      break;
    if (message[i] != '\n' && message[i] != '\r') value += message[i];
  }
  return value;
}

/// RFC 2047 B encoded-words (as the notifier writes them) back to text.
std::string decode_words(const std::string& value) {
  std::string out;
  for (std::size_t at = 0; (at = value.find("=?UTF-8?B?", at)) != std::string::npos;) {
    at += 10;
    const std::size_t end = value.find("?=", at);
    const std::string b64 = value.substr(at, end - at);
    std::string raw(b64.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
    const std::size_t pad = std::count(b64.end() - 2, b64.end(), '=');
    out += raw.substr(0, static_cast<std::size_t>(n) - pad);
    at = end + 2;
  }
  return out;
}

TEST(NotifySmtpTest, SendsOneMailToAllRecipients) {
  SmtpPeer peer;
  auto notifier = make_notifier(smtp(peer.port()));
  asio::io_context io;
  ASSERT_EQ(deliver_error(io, *notifier, notification(345, "opened", ticket(12))), "");
  ASSERT_TRUE(wait_until([&] { return peer.messages().size() == 1; }, 5s));
  const std::string m = "\n" + peer.messages()[0];
  EXPECT_EQ(header(m, "Subject"),
            "[dozor] EMERGENCY P1 opened #12: acme/agent-1 tcp_db: connection refused");
  EXPECT_EQ(header(m, "From"), "dozor@support.example");
  EXPECT_EQ(header(m, "To"), "duty@support.example, boss@support.example");
  EXPECT_EQ(header(m, "X-MailFrom"), "dozor@support.example");  // the envelope, per aiosmtpd
  EXPECT_EQ(header(m, "X-RcptTo"), "duty@support.example, boss@support.example");
  EXPECT_EQ(header(m, "Message-ID"), "<345.12@dozor>");
  EXPECT_EQ(header(m, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(header(m, "Auto-Submitted"), "auto-generated");
  EXPECT_NE(header(m, "Date").find(" +0000"), std::string::npos);
  EXPECT_NE(m.find("\nSummary:  connection refused\n"), std::string::npos) << m;
  EXPECT_NE(m.find("\nSite:     acme\n"), std::string::npos) << m;
  // Dot-stuffed on the wire, restored by the server.
  EXPECT_NE(m.find("\nconnect to 10.0.0.5:5432: Connection refused\n.hidden line\n"),
            std::string::npos)
      << m;
}

TEST(NotifySmtpTest, ControlCharactersFromAnAgentNeverReachData) {
  SmtpPeer peer;
  auto notifier = make_notifier(smtp(peer.port()));
  asio::io_context io;
  auto t = ticket(14);
  // A plugin's output, quoted in the details: a bare CR (an old-Mac line end, or a smuggling
  // attempt: "\r.\r" ends DATA on lenient servers), a NUL, an escape sequence.
  t["details"] = std::string("line one\r.\rRCPT TO:<x@evil>\nnul\0here \x1b[31mred\ttab\n", 50);
  ASSERT_EQ(deliver_error(io, *notifier, notification(347, "opened", t)), "");
  ASSERT_TRUE(wait_until([&] { return peer.messages().size() == 1; }, 5s));
  const std::string m = peer.messages()[0];
  EXPECT_NE(m.find("\nline one.RCPT TO:<x@evil>\nnulhere [31mred\ttab\n"), std::string::npos) << m;
  EXPECT_EQ(m.find('\r'), std::string::npos);
  EXPECT_EQ(m.find('\0'), std::string::npos);
  EXPECT_EQ(header("\n" + m, "X-RcptTo"), "duty@support.example, boss@support.example");
}

TEST(NotifySmtpTest, ASubjectInUkrainianIsEncoded) {
  SmtpPeer peer;
  auto notifier = make_notifier(smtp(peer.port()));
  asio::io_context io;
  auto t = ticket(13, "Київ-склад");
  t["summary"] = "немає зв'язку з базою даних обліку, і це вже надовго";
  ASSERT_EQ(deliver_error(io, *notifier, notification(346, "escalated", t)), "");
  ASSERT_TRUE(wait_until([&] { return peer.messages().size() == 1; }, 5s));
  const std::string m = "\n" + peer.messages()[0];
  const std::string subject = header(m, "Subject");
  EXPECT_TRUE(subject.starts_with("=?UTF-8?B?")) << subject;
  EXPECT_EQ(decode_words(subject),
            "[dozor] EMERGENCY P1 escalated #13: Київ-склад/agent-1 tcp_db: "
            "немає зв'язку з базою даних обліку, і це вже надовго");
  EXPECT_NE(m.find("\nSite:     Київ-склад\n"), std::string::npos) << m;
}

TEST(NotifySmtpTest, ARefusingOrAbsentServerThrows) {
  asio::io_context io;
  const auto n = notification(1, "opened", ticket(1));
  const int closed = free_port();
  std::string error = deliver_error(io, *make_notifier(smtp(closed)), n);
  EXPECT_NE(error.find("connect to 127.0.0.1:" + std::to_string(closed)), std::string::npos)
      << error;

  // A server that turns everyone away in its greeting (RFC 5321 3.1). Written here because
  // aiosmtpd cannot play it: its SMTP._handle_client always sends "220 <host> <ident>" before
  // any handler hook runs (aiosmtpd 1.4.3, smtp.py), so a 554 greeting needs its own socket.
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const int port = acceptor.local_endpoint().port();
  asio::co_spawn(
      io,
      [&acceptor]() -> asio::awaitable<void> {
        auto s = co_await acceptor.async_accept(asio::use_awaitable);
        static const std::string greeting = "554-5.3.2 no service here\r\n554 try later\r\n";
        co_await asio::async_write(s, asio::buffer(greeting), asio::use_awaitable);
        char ch;
        boost::system::error_code ec;
        co_await s.async_read_some(asio::buffer(&ch, 1),
                                   asio::redirect_error(asio::use_awaitable, ec));
      },
      asio::detached);
  error = deliver_error(io, *make_notifier(smtp(port)), n);
  EXPECT_EQ(error, "smtp 127.0.0.1:" + std::to_string(port) +
                       " (greeting): SMTP 554 5.3.2 no service here try later");
}

// ---- the dispatcher
// ------------------------------------------------------------------------------

TEST(NotifyDispatcherTest, DeliversEverythingInOrderOnceTheReceiverComesUp) {
  TempDir dir;
  const int port = free_port();  // nothing listens there yet
  asio::io_context io;
  Metrics metrics;
  MemoryOutbox outbox;
  for (std::uint64_t id = 1; id <= 20; ++id)
    outbox.add("hook", notification(id, "opened", ticket(100 + id)));
  auto c = webhook("http://127.0.0.1:" + std::to_string(port) + "/hook");
  c.retry_base = 100ms;
  c.retry_max = 400ms;
  std::vector<std::unique_ptr<Notifier>> ns;
  ns.push_back(make_notifier(c));
  // Polled once a minute: only the retry timers and stop() can move it within the test.
  Dispatcher dispatcher(io, outbox, metrics, std::move(ns), wall_clock, 60s);
  EXPECT_EQ(failed_total(metrics, "hook"), 0);  // listed before any failure
  dispatcher.start();

  run_for(io, 1200ms);  // attempts at about 0, 0.1, 0.3, 0.7 and 1.1 s
  EXPECT_EQ(outbox.size("hook"), 20u);
  ASSERT_GE(outbox.failures.size(), 3u);

  Receiver receiver(dir, {}, port);
  ASSERT_TRUE(run_until(
      io, [&] { return outbox.size("hook") == 0; }, 10s));
  dispatcher.stop();
  const auto stopping = Steady::now();
  io.restart();
  io.run_for(30s);  // returns once the coroutines have ended: stop() cut the minute's sleep
  EXPECT_LT(Steady::now() - stopping, 3s);

  const auto posts = receiver.posts();
  ASSERT_EQ(posts.size(), 20u);
  for (std::size_t i = 0; i < posts.size(); ++i) {
    EXPECT_EQ(posts[i]["status"], 200);
    EXPECT_EQ(posts[i]["body"]["event_id"], i + 1);
    EXPECT_EQ(posts[i]["body"]["ticket"]["id"], 101 + i);
  }
  // Only the oldest row was tried while the receiver was down, each time later.
  EXPECT_EQ(failed_total(metrics, "hook"), static_cast<double>(outbox.failures.size()));
  for (std::size_t k = 0; k < outbox.failures.size(); ++k) {
    const auto& f = outbox.failures[k];
    EXPECT_EQ(f.id, 1u);
    EXPECT_EQ(f.attempt, static_cast<int>(k) + 1);
    EXPECT_NE(f.error.find("Connection refused"), std::string::npos) << f.error;
    const double expected = std::min(0.1 * std::pow(2.0, static_cast<double>(k)), 0.4);
    EXPECT_GE(f.retry_at - f.at, 0.8 * expected - 0.002) << "attempt " << f.attempt;
    EXPECT_LE(f.retry_at - f.at, 1.2 * expected + 0.002) << "attempt " << f.attempt;
    if (k > 0) {
      EXPECT_GE(f.at, outbox.failures[k - 1].retry_at - 0.002);  // not before its time
    }
  }
}

TEST(NotifyDispatcherTest, AStoreThatCannotRecordADeliveryNeverCausesARepeat) {
  TempDir dir;
  Receiver receiver(dir);
  asio::io_context io;
  Metrics metrics;
  MemoryOutbox outbox;
  outbox.store_fails = true;
  outbox.add("hook", notification(1, "opened", ticket(1)));
  std::vector<std::unique_ptr<Notifier>> ns;
  ns.push_back(make_notifier(webhook("http://127.0.0.1:" + std::to_string(receiver.port()) + "/")));
  Dispatcher dispatcher(io, outbox, metrics, std::move(ns), wall_clock, 50ms);
  dispatcher.start();
  run_for(io, 600ms);  // a dozen polls while the store cannot record the delivery
  EXPECT_EQ(outbox.size("hook"), 1u);
  outbox.store_fails = false;
  ASSERT_TRUE(run_until(
      io, [&] { return outbox.size("hook") == 0; }, 5s));
  dispatcher.stop();
  io.restart();
  io.run_for(2s);
  EXPECT_EQ(receiver.posts().size(), 1u);  // delivered once, recorded when the store came back
}

TEST(NotifyDispatcherTest, WakeDeliversAtOnceAndSkipsUnwantedEvents) {
  TempDir dir;
  Receiver receiver(dir);
  asio::io_context io;
  Metrics metrics;
  MemoryOutbox outbox;
  auto c = webhook("http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook");
  c.events = {"opened"};
  std::vector<std::unique_ptr<Notifier>> ns;
  ns.push_back(make_notifier(c));
  Dispatcher dispatcher(io, outbox, metrics, std::move(ns), wall_clock, 60s);
  dispatcher.start();
  run_for(io, 200ms);  // the first round found nothing; the next poll is a minute away

  outbox.add("hook", notification(1, "opened", ticket(1)));
  outbox.add("hook", notification(2, "resolved", ticket(1)));
  outbox.add("hook", notification(3, "opened", ticket(2)));
  std::thread([&dispatcher] { dispatcher.wake(); }).join();  // from another thread
  // Well before the poll: only the wake can have delivered them.
  ASSERT_TRUE(run_until(
      io, [&] { return outbox.size("hook") == 0; }, 10s));

  const auto posts = receiver.posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0]["body"]["event_id"], 1);
  EXPECT_EQ(posts[1]["body"]["event_id"], 3);
  dispatcher.stop();
  run_for(io, 100ms);
}

}  // namespace
}  // namespace dozor::collector
