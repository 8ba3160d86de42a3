// N simulated agents against a collector, for tests/bench/agents_load.sh: each with a certificate
// of its own (CN=load-I, clientAuth, made here and signed by the bench CA; one shared EC key), on
// its own mutual-TLS keep-alive connection, sending RESULTS results every HEARTBEAT seconds
// (spread evenly over the heartbeat), as the agent's uplink does, and reading each ack. One
// thread: C++ keeps 10,000 connections on time where one Python process could not.
//
// After every agent has connected and reported once (plus a heartbeat and two seconds), measures
// over WINDOW seconds the collector's RSS per agent connection (its processes named by --pids,
// summed), their CPU per result, results a second, and the report round trip (sent -> acked)
// median and p99. Exits 1 on any error answer or lost connection.
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dozor/protocol/codec.h"

namespace asio = boost::asio;
namespace protocol = dozor::protocol;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int port = 0;
  std::string certs;  // ca.pem, ca.key
  std::vector<int> ports;
  std::vector<std::string> pids;
  int agents = 1000, results = 3;
  double heartbeat = 5, window = 30;
  double ramp = 500;  // new connections a second at the start
};

[[noreturn]] void die(const std::string& what) {
  std::cerr << "load_agents: " << what << "\n";
  std::exit(1);
}

template <class T, auto Free>
using Owned = std::unique_ptr<T, std::integral_constant<decltype(Free), Free>>;

Owned<X509, X509_free> read_cert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) die("cannot read " + path);
  Owned<X509, X509_free> x(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!x) die("not a certificate: " + path);
  return x;
}

Owned<EVP_PKEY, EVP_PKEY_free> read_key(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) die("cannot read " + path);
  Owned<EVP_PKEY, EVP_PKEY_free> k(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!k) die("not a key: " + path);
  return k;
}

void extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (!ext) die("extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A client certificate CN=name for `key`, signed by the CA.
Owned<X509, X509_free> agent_cert(const std::string& name, EVP_PKEY* key, X509* ca,
                                  EVP_PKEY* ca_key) {
  Owned<X509, X509_free> cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[12];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  // A year, as enrollment issues: one expiring within the certificate rule's horizon (7 days)
  // would open a ticket for every agent.
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365 * 86400);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca));
  X509_set_pubkey(cert.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca, cert.get(), nullptr, nullptr, 0);
  extension(cert.get(), &ctx, NID_basic_constraints, "CA:FALSE");
  extension(cert.get(), &ctx, NID_key_usage, "digitalSignature");
  extension(cert.get(), &ctx, NID_ext_key_usage, "clientAuth");
  if (!X509_sign(cert.get(), ca_key, EVP_sha256())) die("signing");
  return cert;
}

std::size_t proc_kib(const std::string& pid, const char* field) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stoul(line.substr(std::strlen(field)));
  return 0;
}

double proc_cpu(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), {});
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::string field;
  double user = 0, sys = 0;
  for (int i = 3; rest >> field; ++i) {
    if (i == 14) user = std::stod(field);
    if (i == 15) {
      sys = std::stod(field);
      break;
    }
  }
  return (user + sys) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Shared {
  int connected = 0, reported = 0;
  bool measuring = false;
  std::vector<double> rtts;
  std::uint64_t results = 0;
};

awaitable<void> agent(int i, const Options& o, ssl::context& ctx, X509* cert, EVP_PKEY* key,
                      Clock::time_point start_at, Shared& shared) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  timer.expires_at(start_at);
  co_await timer.async_wait(use_awaitable);
  ssl::stream<asio::ip::tcp::socket> stream(ex, ctx);
  SSL_use_certificate(stream.native_handle(), cert);
  SSL_use_PrivateKey(stream.native_handle(), key);
  const int port = o.ports[static_cast<std::size_t>(i) % o.ports.size()];
  co_await stream.next_layer().async_connect(
      {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}, use_awaitable);
  co_await stream.async_handshake(ssl::stream_base::client, use_awaitable);
  ++shared.connected;
  protocol::Report report;
  report.agent = {"load",      "h" + std::to_string(i), "site-" + std::to_string(i % 200), 1,
                  o.heartbeat, "s" + std::to_string(i)};
  std::uint64_t seq = 0;
  boost::beast::flat_buffer buffer;
  bool first = true;
  auto next = Clock::now();
  for (;;) {
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    report.agent.sent_at = now;
    report.results.clear();
    for (int p = 0; p < o.results; ++p) {
      protocol::Result r;
      r.seq = ++seq;
      r.probe = "probe-" + std::to_string(p);
      r.type = "tcp";
      r.ts = now;
      r.duration = 0.002;
      r.status = protocol::Status::ok;
      r.summary = "connected";
      r.metrics = {{"connect_seconds", 0.002, "s"}};
      report.results.push_back(std::move(r));
    }
    http::request<http::string_body> req{http::verb::post, "/v1/report", 11};
    req.set(http::field::host, "collector");
    req.set(http::field::content_type, "application/json");
    req.body() = protocol::encode(report);
    req.prepare_payload();
    const auto t0 = Clock::now();
    co_await http::async_write(stream, req, use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, use_awaitable);
    if (res.result() != http::status::ok)
      die("agent " + std::to_string(i) + ": " + std::to_string(res.result_int()) + " " +
          res.body());
    if (first) ++shared.reported, first = false;
    if (shared.measuring) {
      shared.rtts.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      shared.results += static_cast<std::uint64_t>(o.results);
    }
    buffer.shrink_to_fit();
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.heartbeat));
    timer.expires_at(next);
    co_await timer.async_wait(use_awaitable);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto value = [&](std::size_t& k) -> const std::string& {
    if (k + 1 >= args.size()) die("missing value for " + args[k]);
    return args[++k];
  };
  for (std::size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--ports") {
      std::istringstream in(value(k));
      for (int p; in >> p;) o.ports.push_back(p);
    } else if (a == "--pids") {
      std::istringstream in(value(k));
      for (std::string p; in >> p;) o.pids.push_back(p);
    } else if (a == "--certs") {
      o.certs = value(k);
    } else if (a == "--agents") {
      o.agents = std::stoi(value(k));
    } else if (a == "--results") {
      o.results = std::stoi(value(k));
    } else if (a == "--heartbeat") {
      o.heartbeat = std::stod(value(k));
    } else if (a == "--ramp") {
      o.ramp = std::stod(value(k));
    } else if (a == "--window") {
      o.window = std::stod(value(k));
    } else {
      die("usage: load_agents --ports 'P...' --pids 'PID...' --certs DIR [--agents N] "
          "[--results R] [--heartbeat S] [--window S] [--ramp PER_SECOND]");
    }
  }
  if (o.ports.empty() || o.pids.empty() || o.certs.empty()) die("--ports, --pids and --certs");

  auto ca = read_cert(o.certs + "/ca.pem");
  auto ca_key = read_key(o.certs + "/ca.key");
  Owned<EVP_PKEY, EVP_PKEY_free> key(EVP_EC_gen("P-256"));
  std::vector<Owned<X509, X509_free>> certs;
  for (int i = 1; i <= o.agents; ++i)
    certs.push_back(agent_cert("load-" + std::to_string(i), key.get(), ca.get(), ca_key.get()));

  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(o.certs + "/ca.pem");
  ctx.set_verify_mode(ssl::verify_peer);
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_NO_AUTO_CHAIN);  // as the agent's uplink
  asio::io_context io(1);
  Shared shared;
  std::size_t base_rss = 0;
  for (const auto& pid : o.pids) base_rss += proc_kib(pid, "VmRSS:");
  // Connections open over a few seconds, as a fleet reconnecting after a restart would: at most
  // --ramp handshakes a second (500: what the collector serves on one core next to SQLite).
  const double ramp = std::max(std::min(o.heartbeat, 5.0), o.agents / o.ramp);
  const auto t = Clock::now();
  for (int i = 1; i <= o.agents; ++i) {
    const auto at = t + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>((i - 1) * ramp / o.agents));
    asio::co_spawn(
        io, agent(i, o, ctx, certs[static_cast<std::size_t>(i - 1)].get(), key.get(), at, shared),
        [i](std::exception_ptr e) {
          if (!e) return;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            die("agent " + std::to_string(i) + ": " + x.what());
          }
        });
  }
  // The measurement, on the same thread: it only reads /proc between the agents' turns.
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        asio::steady_timer timer(io);
        while (shared.reported < o.agents) {
          timer.expires_after(std::chrono::milliseconds(200));
          co_await timer.async_wait(use_awaitable);
        }
        timer.expires_after(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(o.heartbeat + 2)));  // a trim has run
        co_await timer.async_wait(use_awaitable);
        std::size_t rss = 0;
        double cpu0 = 0;
        for (const auto& pid : o.pids) rss += proc_kib(pid, "VmRSS:"), cpu0 += proc_cpu(pid);
        shared.measuring = true;
        const auto m0 = Clock::now();
        timer.expires_after(
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.window)));
        co_await timer.async_wait(use_awaitable);
        double cpu1 = 0;
        for (const auto& pid : o.pids) cpu1 += proc_cpu(pid);
        const double elapsed = std::chrono::duration<double>(Clock::now() - m0).count();
        shared.measuring = false;
        auto& r = shared.rtts;
        std::sort(r.begin(), r.end());
        const double used = cpu1 - cpu0;
        std::printf("  collector RSS %.1f MiB -> %.1f MiB: %.1f KiB per agent connection\n",
                    base_rss / 1024.0, rss / 1024.0,
                    (static_cast<double>(rss) - static_cast<double>(base_rss)) / o.agents);
        std::printf("  %.0f results/s, CPU %.1f %% of a core, %.0f us per result\n",
                    shared.results / elapsed, used / elapsed * 100,
                    used / std::max<double>(1, static_cast<double>(shared.results)) * 1e6);
        if (!r.empty())
          std::printf("  report round trip: median %.1f ms, p99 %.1f ms over %zu reports\n",
                      r[r.size() / 2] * 1000, r[r.size() * 99 / 100] * 1000, r.size());
        std::fflush(stdout);
        std::exit(0);
      },
      asio::detached);
  io.run();
}
