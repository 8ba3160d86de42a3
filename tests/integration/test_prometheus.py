"""Debian's real Prometheus scrapes a real collector and answers a query for the agent's probes."""
import json
import os
import shutil
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Agent, Certs, Collector, IntegrationCase, Process, TcpService, free_port,
                     http_get, main, wait_for)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class PrometheusScrape(IntegrationCase):
    def test_prometheus_answers_dozor_probe_status(self):
        certs = Certs(os.path.join(self.dir, "ca"))
        collector = self.start(Collector(self.dir, certs.collector()))
        service = TcpService()
        self.addCleanup(service.stop)
        self.start(Agent(self.dir, "agent-01", collector.url, certs.agent("agent-01"), [
            f"{{ name: erp-port, type: tcp, host: 127.0.0.1, port: {service.port}, interval: 1s }}",
            f"{{ name: gone, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 1s }}",
        ]))

        port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
                    "scrape_configs:\n"
                    "  - job_name: dozor\n"
                    f"    static_configs: [ {{ targets: ['127.0.0.1:{collector.http_port}'] }} ]\n")
        self.start(Process([PROMETHEUS, f"--config.file={config}",
                            f"--storage.tsdb.path={self.dir}/tsdb",
                            f"--web.listen-address=127.0.0.1:{port}"],
                           os.path.join(self.dir, "prometheus.log")))

        def query(q):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
            body = json.loads(http_get(url))
            self.assertEqual(body["status"], "success")
            return {r["metric"]["probe"]: float(r["value"][1]) for r in body["data"]["result"]}

        got = wait_for("Prometheus to have both probes",
                       lambda: (lambda r: r if len(r) == 2 else None)(
                           query('dozor_probe_status{agent="agent-01",site="acme-kyiv"}')),
                       timeout=60, interval=0.5)
        self.assertEqual(got, {"erp-port": 0.0, "gone": 2.0})
        up = json.loads(http_get(f"http://127.0.0.1:{port}/api/v1/query?query=up"))
        self.assertEqual(up["data"]["result"][0]["value"][1], "1")  # the scrape itself succeeded


if __name__ == "__main__":
    main()
