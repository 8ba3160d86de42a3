"""A hostile, broken world between the agent and the collector: a reverse proxy that refuses,
a certificate renewed under the same path. Real binaries, real TLS, Debian's nginx."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from harness import (Agent, Certs, Collector, IntegrationCase, Process, main, sample, spool_state,
                     wait_for)

NGINX = "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
MAKE_BACKLOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../bench/make_backlog.py")


class Nginx(Process):
    """Debian's nginx on 127.0.0.1:port, in the foreground, with a config of the test's."""

    def __init__(self, workdir, port):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port
        self.conf = os.path.join(self.dir, "nginx.conf")

    def serve(self, body):
        """(Re)starts nginx with `body` as its http or stream block."""
        with open(self.conf, "w") as f:
            # As root the workers would run as nobody, who cannot read the test's 0700 folder.
            f.write(f"load_module {STREAM_MODULE};\n" if body.startswith("stream") else "")
            f.write(f"user root;\ndaemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\n"
                    f"error_log stderr warn;\nevents {{ worker_connections 64; }}\n{body}\n")
        super().__init__([NGINX, "-p", self.dir, "-c", self.conf], os.path.join(self.dir, "log"))
        wait_for("nginx listening", self.listening)
        return self

    def listening(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def refusing(self, status, headers="", certs=None):
        """An HTTPS front that answers every request `status` itself, as a misconfigured proxy,
        a WAF or an overloaded balancer does."""
        return self.serve(f"""http {{
  access_log off;
  client_body_temp_path {self.dir}/body;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {certs['cert']};
    ssl_certificate_key {certs['key']};
    location / {{ {headers} return {status} "<html><body>{status} from nginx</body></html>"; }}
  }}
}}""")

    def passing(self, upstream_port):
        """TLS passed through to the collector (ngx_stream), so that mutual TLS still holds."""
        return self.serve(f"""stream {{
  server {{ listen 127.0.0.1:{self.port}; proxy_pass 127.0.0.1:{upstream_port}; }}
}}""")


class Hostile(IntegrationCase):
    def setUp(self):
        super().setUp()
        self.certs = Certs(os.path.join(self.dir, "ca"))
        self.collector = self.start(Collector(self.dir, self.certs.collector()))

    def agent_state(self, name="agent-01"):
        return self.collector.agents().get(name)

    def test_proxy_refusals_lose_nothing(self):
        # The agent reports through nginx, which first refuses (403, 429 with Retry-After, 502)
        # and then passes TLS through to the collector: every result arrives, none is dropped.
        from harness import free_port
        proxy = Nginx(self.dir, free_port())
        collector_files = self.certs.files("collector")
        front = self.start(proxy.refusing(403, certs=collector_files))
        agent = self.start(Agent(self.dir, "agent-01", f"https://127.0.0.1:{proxy.port}",
                                 self.certs.agent("agent-01"),
                                 ["{ name: disk, type: disk, path: /, interval: 200ms }"]))
        for status, headers in ((403, ""), (429, "add_header Retry-After 1 always;"), (502, "")):
            if status != 403:
                front.stop()
                front = self.start(proxy.refusing(status, headers, collector_files))
            wait_for(f"the agent to meet {status}",
                     lambda: f"report answered {status}" in agent.output(), timeout=15)
            time.sleep(1.5)
        held, last_seq, _ = spool_state(agent.spool)
        self.assertGreater(last_seq, 10)
        self.assertEqual(held, last_seq)  # nothing left the spool, nothing was dropped
        self.assertIsNone(self.agent_state())

        front.stop()
        self.start(proxy.passing(self.collector.agents_port))
        wait_for("the backlog delivered", lambda: (self.agent_state() or {}).get("results", 0)
                 >= last_seq, timeout=30)
        a = self.agent_state()
        self.assertEqual(a["dropped"], 0)
        self.assertEqual(sample(self.collector.metrics(), "dozor_agent_spool_dropped_total",
                                agent="agent-01"), None)
        self.assertEqual(agent.stop(signal.SIGTERM), 0)
        held, last_seq, _ = spool_state(agent.spool)
        self.assertEqual(held, 0)
        self.assertEqual(self.agent_state()["results"], last_seq)  # every seq, once

    def test_an_invalid_result_is_dropped_alone(self):
        # A result the collector cannot take (here written into the spool by hand: a metric
        # value that is not a number) is refused by name; the agent drops that one only.
        spool = os.path.join(self.dir, "agent-01.spool.db")
        subprocess.run([sys.executable, MAKE_BACKLOG, spool, "20"], check=True)
        db = sqlite3.connect(spool)
        body = json.loads(db.execute("SELECT body FROM results WHERE seq = 7").fetchone()[0])
        body["metrics"][0]["value"] = "high"
        db.execute("UPDATE results SET body = ? WHERE seq = 7", (json.dumps(body),))
        db.commit()
        db.close()
        agent = self.start(Agent(self.dir, "agent-01", self.collector.url,
                                 self.certs.agent("agent-01"),
                                 ["{ name: disk, type: disk, path: /, interval: 1h }"]))
        # 20 in the backlog, one of them bad, and the disk probe's first result.
        wait_for("the backlog but one delivered",
                 lambda: (self.agent_state() or {}).get("results", 0) >= 20)
        wait_for("the spool empty", lambda: spool_state(agent.spool)[0] == 0)
        a = self.agent_state()
        self.assertEqual((a["results"], a["dropped"]), (20, 1))
        self.assertIn("refused result seq 7 as invalid", agent.output())
        self.assertIn("results[6].metrics[0].value", agent.output())
        self.assertEqual(sample(self.collector.metrics(), "dozor_ingest_rejected_total",
                                reason="invalid_report"), 1)

    def test_renewed_certificate_is_presented_after_sighup(self):
        files = self.certs.agent("agent-01")
        agent = self.start(Agent(self.dir, "agent-01", self.collector.url, files,
                                 ["{ name: disk, type: disk, path: /, interval: 500ms }"]))
        wait_for("agent reporting", lambda: (self.agent_state() or {}).get("results", 0) > 0)
        first = self.agent_state()["certificate"]["serial"]
        # Renewed in place, as certs/README tells: the same file names, a new certificate.
        self.certs.agent("agent-01")
        agent.proc.send_signal(signal.SIGHUP)
        wait_for("the new certificate at the collector",
                 lambda: self.agent_state()["certificate"]["serial"] != first, timeout=15)
        results = self.agent_state()["results"]
        wait_for("reports go on", lambda: self.agent_state()["results"] > results)
        held, _, _ = spool_state(agent.spool)
        self.assertLess(held, 50)


if __name__ == "__main__":
    main()
