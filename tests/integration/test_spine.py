"""The spine, end to end: real dozor-agent and dozor-collector binaries, certificates made by
certs/dozor-certs, results seen in /metrics and /api/v1/agents; strangers refused."""
import json
import re
import os
import signal
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (AGENT, COLLECTOR, Agent, Certs, Collector, IntegrationCase, TcpService,
                     free_port, main, post_raw, sample, tls_client, wait_for)


class Spine(IntegrationCase):
    def setUp(self):
        super().setUp()
        self.certs = Certs(os.path.join(self.dir, "ca"))
        self.collector = self.start(Collector(self.dir, self.certs.collector()))

    def test_agent_results_reach_metrics_and_api(self):
        service = TcpService()
        self.addCleanup(service.stop)
        probes = [
            f"{{ name: erp-port, type: tcp, host: 127.0.0.1, port: {service.port}, interval: 1s, timeout: 1s }}",
            f"{{ name: closed-port, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 1s, timeout: 1s }}",
            f'{{ name: collector-health, type: http, url: "http://127.0.0.1:{self.collector.http_port}/healthz", interval: 1s, timeout: 1s }}',
            "{ name: root-disk, type: disk, path: /, interval: 1s }",
        ]
        self.start(Agent(self.dir, "agent-01", self.collector.url, self.certs.agent("agent-01"), probes))

        def all_probes_in_metrics():
            text = self.collector.metrics()
            got = {p: sample(text, "dozor_probe_status", agent="agent-01", site="acme-kyiv", probe=p)
                   for p in ("erp-port", "closed-port", "collector-health", "root-disk")}
            return got if None not in got.values() else None

        status = wait_for("every probe's status in /metrics", all_probes_in_metrics)
        self.assertEqual(status["erp-port"], 0)
        self.assertEqual(status["closed-port"], 2)
        self.assertEqual(status["collector-health"], 0)
        self.assertIn(status["root-disk"], (0, 1, 2))  # depends on this machine's disk

        text = self.collector.metrics()
        self.assertEqual(sample(text, "dozor_agent_up", agent="agent-01", site="acme-kyiv"), 1)
        connect = sample(text, "dozor_probe_value", agent="agent-01", probe="erp-port",
                         metric="connect_seconds")
        self.assertTrue(0 < connect < 1, connect)
        self.assertGreater(sample(text, "dozor_probe_value", probe="collector-health",
                                  metric="status_code"), 199)
        self.assertIsNotNone(sample(text, "dozor_probe_duration_seconds", probe="root-disk"))
        self.assertGreater(sample(text, "dozor_ingest_results_total"), 3)

        agents = self.collector.agents()
        a = agents["agent-01"]
        self.assertEqual(a["site"], "acme-kyiv")
        self.assertTrue(a["up"])
        self.assertIsNone(a["down_since"])
        self.assertRegex(a["version"], r"^\d+\.\d+\.\d+")
        self.assertGreaterEqual(a["last_seq"], 4)
        self.assertEqual({p["name"] for p in a["probes"]},
                         {"erp-port", "closed-port", "collector-health", "root-disk"})
        # Certificate expiry, the agent's and the collector's own (dozor-certs: 825 days),
        # as a board's "renews soon" panel reads them.
        from harness import parse_time
        self.assertEqual(sample(text, "dozor_agent_cert_expiry_timestamp_seconds",
                                agent="agent-01"), parse_time(a["certificate"]["not_after"]))
        own = sample(text, "dozor_collector_cert_expiry_timestamp_seconds")
        self.assertAlmostEqual(own - time.time(), 825 * 86400, delta=2 * 86400)

        # The service goes away: the next run says so.
        service.stop()
        wait_for("erp-port critical", lambda: sample(self.collector.metrics(), "dozor_probe_status",
                                                     probe="erp-port") == 2)

    def test_agent_from_another_ca_is_refused_and_never_appears(self):
        stranger_ca = Certs(os.path.join(self.dir, "other-ca"))
        files = stranger_ca.agent("intruder")
        files["ca"] = self.certs.files("collector")["ca"]  # it trusts our collector all right
        self.start(Agent(self.dir, "intruder", self.collector.url, files,
                         ["{ name: disk, type: disk, path: /, interval: 1s }"]))
        wait_for("a refused TLS handshake counted",
                 lambda: (sample(self.collector.metrics(), "dozor_ingest_rejected_total",
                                 reason="tls_handshake") or 0) >= 2)
        self.assertNotIn("intruder", self.collector.agents())
        self.assertIsNone(sample(self.collector.metrics(), "dozor_agent_up", agent="intruder"))

        # No certificate at all: the handshake fails too.
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            s = tls_client({"ca": files["ca"]}, self.collector.agents_port)
            post_raw(s, "/v1/report", b"{}")

    def test_a_plain_tcp_check_of_the_agent_port_is_not_a_refusal(self):
        import socket
        for _ in range(3):
            socket.create_connection(("127.0.0.1", self.collector.agents_port), timeout=5).close()
        s = tls_client(self.certs.agent("agent-03"), self.collector.agents_port)  # then a real one
        s.close()
        wait_for("the agent's connection counted", lambda: sample(
            self.collector.metrics(), "dozor_agent_connections_total", agent="agent-03") == 1)
        self.assertIsNone(sample(self.collector.metrics(), "dozor_ingest_rejected_total",
                                 reason="tls_handshake"))

    def test_the_certificates_site_wins_over_the_reports(self):
        # agent-04's certificate names site acme-kyiv; its config (copied from another client's)
        # says acme-lviv.
        files = self.certs.agent("agent-04", site="acme-kyiv")
        self.start(Agent(self.dir, "agent-04", self.collector.url, files,
                         ["{ name: disk, type: disk, path: /, interval: 1s }"], site="acme-lviv"))
        wait_for("agent-04 reporting", lambda: self.collector.agents().get("agent-04"))
        a = self.collector.agents()["agent-04"]
        self.assertEqual((a["site"], a["certificate"]["site"]), ("acme-kyiv", "acme-kyiv"))
        metrics = self.collector.metrics()
        self.assertEqual(sample(metrics, "dozor_agent_up", agent="agent-04", site="acme-kyiv"), 1)
        self.assertIsNone(sample(metrics, "dozor_agent_up", agent="agent-04", site="acme-lviv"))
        self.assertGreaterEqual(sample(metrics, "dozor_ingest_rejected_total",
                                       reason="site_claimed"), 1)
        # A certificate without a site (made before sites were in certificates): the report's.
        self.start(Agent(self.dir, "agent-05", self.collector.url, self.certs.agent("agent-05"),
                         ["{ name: disk, type: disk, path: /, interval: 1s }"], site="acme-lviv"))
        wait_for("agent-05 reporting", lambda: self.collector.agents().get("agent-05"))
        b = self.collector.agents()["agent-05"]
        self.assertEqual((b["site"], b["certificate"]["site"]), ("acme-lviv", ""))

    def test_bad_reports_get_a_named_error_and_are_counted(self):
        s = tls_client(self.certs.agent("agent-02"), self.collector.agents_port)
        status, body = post_raw(s, "/v1/report", b"{not json")
        self.assertEqual(status, 400)
        self.assertEqual(body["reason"], "bad_json")

        s = tls_client(self.certs.files("agent-02"), self.collector.agents_port)
        report = {"agent": {"version": "1", "hostname": "h", "site": "s", "started_at": 1},
                  "results": [{"seq": 1, "probe": "p", "type": "tcp", "ts": 1, "status": "ok",
                               "summary": "", "metrics": [{"name": "x", "value": "high"}]}]}
        status, body = post_raw(s, "/v1/report", json.dumps(report).encode())
        self.assertEqual(status, 400)
        self.assertEqual(body["reason"], "invalid_report")
        self.assertIn("results[0].metrics[0].value", body["error"])

        # The same connection still serves a good report.
        report["results"][0]["metrics"][0]["value"] = 1.5
        status, body = post_raw(s, "/v1/report", json.dumps(report).encode())
        self.assertEqual((status, body), (200, {"acked_seq": 1}))

        # A body over the limit is refused from its Content-Length, before it is read.
        s = tls_client(self.certs.files("agent-02"), self.collector.agents_port)
        s.sendall(b"POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Length: 5242880\r\n\r\n")
        self.assertRegex(s.recv(65536).decode(), r"^HTTP/1.1 413 ")

        text = self.collector.metrics()
        for reason in ("bad_json", "invalid_report", "too_large"):
            self.assertEqual(sample(text, "dozor_ingest_rejected_total", reason=reason), 1, reason)
        # The id comes from the certificate, whatever the body says.
        self.assertIn("agent-02", self.collector.agents())

    def test_sigterm_exits_cleanly(self):
        started = time.monotonic()
        self.assertEqual(self.collector.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - started, 6)


class CommandLine(IntegrationCase):
    def test_version_and_help(self):
        for binary in (AGENT, COLLECTOR):
            out = subprocess.run([binary, "--version"], capture_output=True, text=True)
            self.assertEqual(out.returncode, 0)
            self.assertRegex(out.stdout, r"^dozor-(agent|collector) \d+\.\d+\.\d+")
            out = subprocess.run([binary, "--help"], capture_output=True, text=True)
            self.assertEqual(out.returncode, 0)
            self.assertIn("--config", out.stdout)
            out = subprocess.run([binary, "--no-such-flag"], capture_output=True, text=True)
            self.assertEqual(out.returncode, 2)

    def test_config_errors_name_file_line_and_key(self):
        certs = Certs(os.path.join(self.dir, "ca"))
        files = certs.agent("agent-01")
        path = os.path.join(self.dir, "agent.yaml")
        with open(path, "w") as f:
            f.write("agent: { site: acme, heartbeat: 5s }\n"
                    f'collector: {{ url: "https://127.0.0.1:1", ca: {files["ca"]}, '
                    f'cert: {files["cert"]}, key: {files["key"]} }}\n'
                    "probes:\n"
                    "  - { name: a, type: tcp, host: 127.0.0.1, port: 99999 }\n"
                    "  - { name: b, type: ftp }\n"
                    "  - { name: c, type: disk, path: /, interval: soon }\n")
        out = subprocess.run([AGENT, "--config", path, "--check-config"], capture_output=True,
                             text=True)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn(f"{path}:4: probes[0].port", out.stderr)
        self.assertIn(f"{path}:5: probes[1].type: unknown probe type 'ftp'; known: tcp, http, disk",
                      out.stderr)
        self.assertIn(f"{path}:6: probes[2].interval", out.stderr)

        col = os.path.join(self.dir, "collector.yaml")
        with open(col, "w") as f:
            f.write('listen: { agents: "127.0.0.1:notaport" }\ntls: { ca: /nonexistent.pem }\n'
                    'limits: { http_connections: 10, http_per_source: 20 }\n'
                    'report: { zone: Mars/Olympus, keep: 30d }\n'
                    'node: "two words"\n')
        out = subprocess.run([COLLECTOR, "--config", col, "--check-config"], capture_output=True,
                             text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn(f"{col}:1: listen.agents", out.stderr)
        self.assertIn(f"{col}:2: tls.cert: missing required key", out.stderr)
        self.assertIn("tls.ca: no such file", out.stderr)
        self.assertIn(f"{col}:3: limits.http_per_source: must not exceed http_connections",
                      out.stderr)
        self.assertIn(f"{col}:4: report.zone: unknown time zone Mars/Olympus", out.stderr)
        self.assertIn(f"{col}:4: report.keep: must be at least 396d (13 months)", out.stderr)
        self.assertIn(f"{col}:5: node: a name of at most 128 characters without spaces",
                      out.stderr)

    def test_once_prints_results_as_json(self):
        certs = Certs(os.path.join(self.dir, "ca"))
        service = TcpService()
        self.addCleanup(service.stop)
        from harness import agent_config
        path = agent_config(os.path.join(self.dir, "once.yaml"), "https://127.0.0.1:1",
                            certs.agent("agent-01"),
                            [f"{{ name: svc, type: tcp, host: 127.0.0.1, port: {service.port} }}",
                             "{ name: disk, type: disk, path: / }"])
        # A first try on a laptop: the spool's folder (/var/lib/dozor in the package's config)
        # need not exist for --once.
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r"spool: \{ path: [^ ,}]+", "spool: { path: /nonexistent/dozor/spool.db",
                           text))
        out = subprocess.run([AGENT, "--config", path, "--once", "--format", "json"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        results = json.loads(out.stdout)
        self.assertEqual([r["probe"] for r in results], ["svc", "disk"])
        self.assertEqual(results[0]["status"], "ok")
        self.assertEqual(results[0]["type"], "tcp")
        self.assertEqual(results[0]["metrics"][0]["name"], "connect_seconds")
        out = subprocess.run([AGENT, "--config", path, "--once"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"(?m)^svc\s+tcp\s+ok\s")


if __name__ == "__main__":
    main()
