"""The Grafana dashboards in packaging/grafana: each is checked for what Grafana needs to load it,
and every panel's query runs against Debian's real Prometheus scraping a real collector whose
agent probes a TCP service, a Modbus server (tests/bench/modbus_server, libmodbus) and a 1C
cluster (the fake rac: no 1C:Enterprise cluster can run here). Grafana itself is not in Debian."""
import glob
import json
import os
import re
import socket
import time

from harness import (BUILD, SOURCE, Agent, Certs, Collector, IntegrationCase, Process, Prometheus,
                     TcpService, free_port, main, wait_for)
from test_prometheus import fake_rac

DASHBOARDS = sorted(glob.glob(os.path.join(SOURCE, "packaging/grafana/dashboards/*.json")))
MODBUS_SERVER = os.path.join(BUILD, "tests/bench/modbus_server")


def targets(dashboard):
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            yield panel, t


class GrafanaDashboards(IntegrationCase):
    def test_dashboards_have_what_grafana_needs(self):
        self.assertEqual([os.path.basename(p) for p in DASHBOARDS],
                         ["dozor-1c.json", "dozor-fleet.json", "dozor-modbus.json",
                          "dozor-site.json"])
        uids = set()
        for path in DASHBOARDS:
            with open(path) as f:
                d = json.load(f)
            name = os.path.basename(path)
            self.assertTrue(d.get("uid") and d["uid"] not in uids, name)
            uids.add(d["uid"])
            self.assertTrue(d.get("title"), name)
            self.assertGreaterEqual(d.get("schemaVersion", 0), 36, name)
            variables = {v["name"]: v for v in d["templating"]["list"]}
            self.assertEqual(variables["datasource"]["type"], "datasource", name)
            self.assertEqual(variables["datasource"]["query"], "prometheus", name)
            ids = [p["id"] for p in d["panels"]]
            self.assertEqual(len(ids), len(set(ids)), f"{name}: panel ids repeat")
            for panel, t in targets(d):
                self.assertIn("gridPos", panel)
                self.assertEqual(t["datasource"]["uid"], "${datasource}", f"{name}: {panel['title']}")
                self.assertTrue(t.get("expr") and t.get("refId"), f"{name}: {panel['title']}")
                for var in re.findall(r"\$(\w+)", t["expr"]):
                    self.assertTrue(var in variables or var.startswith("__"),
                                    f"{name}: {panel['title']}: ${var} is not a variable")

    def test_every_panel_query_returns_data(self):
        certs = Certs(os.path.join(self.dir, "ca"))
        collector = self.start(Collector(self.dir, certs.collector()))
        service = TcpService()
        self.addCleanup(service.stop)
        modbus_port = free_port()
        self.start(Process([MODBUS_SERVER, str(modbus_port)], os.path.join(self.dir, "modbus.log")))
        wait_for("the Modbus server", lambda: socket.create_connection(
            ("127.0.0.1", modbus_port), timeout=1).close() or True)
        self.start(Agent(self.dir, "agent-01", collector.url, certs.agent("agent-01"), [
            f"{{ name: erp-port, type: tcp, host: 127.0.0.1, port: {service.port}, interval: 1s }}",
            f"{{ name: gone, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 1s }}",
            f"{{ name: erp, type: bas, rac: '{fake_rac(self.dir)}', interval: 1s, timeout: 1s }}",
            f"{{ name: meter, type: modbus, link: 'tcp://127.0.0.1:{modbus_port}', interval: 1s, "
            f"timeout: 500ms, points: [{{ name: voltage, register: input, address: 0, "
            f"labels: {{ phase: L1 }} }}, {{ name: energy, register: holding, address: 1 }}] }}",
        ]))
        prometheus = self.start(Prometheus(self.dir, [f"127.0.0.1:{collector.http_port}"]))
        query = prometheus.query

        # The failing probe's ticket, and enough samples for a rate over 10 s.
        wait_for("data of every probe and a ticket", lambda: len(query(
            'dozor_probe_status{agent="agent-01"}')) == 4 and query("dozor_tickets_open"),
                 timeout=60, interval=0.5)
        time.sleep(11)
        values = {"site": "acme-kyiv", "agent": "agent-01", "__rate_interval": "10s"}
        for path in DASHBOARDS:
            with open(path) as f:
                d = json.load(f)
            variables = {v["name"]: v for v in d["templating"]["list"]}
            if "probe" in variables:  # the device or cluster variable: its own query's first value
                q = variables["probe"]["query"]["query"]
                selector = re.match(r"label_values\((.*), probe\)", q).group(1)
                found = query(selector.replace("$site", values["site"]))
                self.assertTrue(found, f"{os.path.basename(path)}: {q}")
                values["probe"] = found[0]["metric"]["probe"]
            for panel, t in targets(d):
                expr = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], t["expr"])
                self.assertTrue(query(expr),
                                f"{os.path.basename(path)}: '{panel['title']}': {expr} is empty")
            values.pop("probe", None)


if __name__ == "__main__":
    main()
