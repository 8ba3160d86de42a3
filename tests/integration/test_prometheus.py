"""Debian's real Prometheus scrapes a real collector and answers queries for the agent's probes,
labelled metrics included; promtool checks the exposition."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Agent, Certs, Collector, IntegrationCase, Prometheus, TcpService, free_port,
                     main, wait_for)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
BAS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../probes/bas")


def fake_rac(folder, case="healthy"):
    """An executable `rac` answering from tests/probes/bas/testdata/CASE: no 1C:Enterprise
    cluster can run here (tests/probes/bas/fake_rac.sh says how it answers)."""
    path = os.path.join(folder, "rac")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nexec /bin/sh '{BAS_DIR}/fake_rac.sh' '{BAS_DIR}/testdata/{case}' "
                f"'{folder}/rac.log' \"$@\"\n")
    os.chmod(path, 0o755)
    return path


class PrometheusScrape(IntegrationCase):
    def test_prometheus_answers_dozor_probe_status(self):
        certs = Certs(os.path.join(self.dir, "ca"))
        collector = self.start(Collector(self.dir, certs.collector()))
        service = TcpService()
        self.addCleanup(service.stop)
        self.start(Agent(self.dir, "agent-01", collector.url, certs.agent("agent-01"), [
            f"{{ name: erp-port, type: tcp, host: 127.0.0.1, port: {service.port}, interval: 1s }}",
            f"{{ name: gone, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 1s }}",
            f"{{ name: erp, type: bas, rac: '{fake_rac(self.dir)}', interval: 1s, timeout: 1s }}",
        ]))

        prometheus = self.start(Prometheus(self.dir, [f"127.0.0.1:{collector.http_port}"]))

        def query(q):
            return {r["metric"]["probe"]: float(r["value"][1]) for r in prometheus.query(q)}

        got = wait_for("Prometheus to have every probe",
                       lambda: (lambda r: r if len(r) == 3 else None)(
                           query('dozor_probe_status{agent="agent-01",site="acme-kyiv"}')),
                       timeout=60, interval=0.5)
        self.assertEqual(got, {"erp-port": 0.0, "gone": 2.0, "erp": 0.0})
        self.assertEqual(prometheus.query("up")[0]["value"][1], "1")  # the scrape itself succeeded

        # Metric labels are Prometheus labels: sessions per infobase, summed over kinds.
        def by_infobase():
            rows = prometheus.query('sum by (infobase) (dozor_probe_value{metric="sessions"})')
            return {r["metric"]["infobase"]: float(r["value"][1]) for r in rows}
        sessions = wait_for("sessions by infobase", by_infobase, timeout=30, interval=0.5)
        self.assertEqual(set(sessions), {"acc", "zup", "trade"})
        self.assertEqual(sessions["acc"], 5.0)  # thin 3, background 1, designer 1
        self.assertEqual(sum(sessions.values()), 10.0)

        # The API shows them too.
        erp = next(p for p in collector.agents()["agent-01"]["probes"] if p["name"] == "erp")
        self.assertIn({"name": "sessions", "value": 3.0, "labels": {"infobase": "acc",
                                                                   "kind": "thin"}},
                      erp["metrics"])

        # The exposition passes promtool's check (format and naming lint).
        exposition = collector.metrics()
        self.assertIn('infobase="acc"', exposition)
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


if __name__ == "__main__":
    main()
