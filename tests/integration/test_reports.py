"""The service report from the real collector, its clock moved through March 2027 by Debian's
libfaketime while a simulated agent (real certificate, mutual TLS) reports a probe of a client in
Kyiv served daily 08:00-22:00; then the report as JSON, CSV and a PDF printed by Debian's
headless chromium, read back with poppler's pdftotext and rendered with pdftoppm (the first
page is kept in build/artifacts/reports/)."""
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

from harness import (BUILD, DOZORCTL, Certs, Collector, IntegrationCase, api_token_file, main,
                     wait_for)

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
ARTIFACTS = os.path.join(BUILD, "artifacts", "reports")
CONFIG = """calendars:
  office: { zone: Europe/Kyiv, hours: daily 08:00-22:00 }
service: { calendar: office, targets: { emergency: 2h } }
report: { company: "Сервіс-Плюс", clients: { acme-kyiv: "ТОВ «Акме»" } }
"""


def at(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class SimAgent:
    """One agent's mutual-TLS connection, sending results dated as the test says."""

    def __init__(self, port, files):
        ctx = ssl.create_default_context(cafile=files["ca"])
        ctx.load_cert_chain(files["cert"], files["key"])
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                    server_hostname="127.0.0.1")
        self.seq = 0

    def report(self, ts, status):
        self.seq += 1
        body = json.dumps({"agent": {"version": "0.1.0", "hostname": "erp", "site": "acme-kyiv",
                                     "started_at": ts - 60, "heartbeat": 40 * 86400,
                                     "spool_id": "s1", "sent_at": ts},
                           "results": [{"seq": self.seq, "probe": "erp", "type": "http",
                                        "ts": ts, "duration": 0.05, "status": status,
                                        "summary": f"ERP {status}", "metrics": []}]}).encode()
        self.sock.sendall(b"POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(65536)
        head, rest = answer.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head


class Reports(IntegrationCase):
    def setUp(self):
        super().setUp()
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.token_file, self.token = api_token_file(self.dir)
        self.clock = os.path.join(self.dir, "faketime")
        self.move_to("2027-02-28T20:00:00Z")
        certs = Certs(os.path.join(self.dir, "ca"))
        self.collector = self.start(Collector(
            self.dir, certs.collector(), extra=f"api: {{ token_file: {self.token_file} }}\n" +
            CONFIG, env={"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": self.clock,
                         "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}))
        self.agent = SimAgent(self.collector.agents_port, certs.agent("erp-01"))

    def move_to(self, when):
        """Sets the collector's wall clock to `when` (an offset from the real clock)."""
        self.now = at(when)
        with open(self.clock, "w") as f:
            f.write(f"{self.now - time.time():+.3f}\n")

    def send(self, when, status):
        self.move_to(when)
        self.agent.report(self.now, status)

    def ack(self, when):
        self.move_to(when)
        ticket = self.collector.tickets(status="active")[0]
        status, _ = self.collector.api("POST", f"/api/v1/tickets/{ticket['id']}/ack",
                                       {"by": "Оксана", "comment": "працюю"}, self.token)
        self.assertEqual(status, 200)

    def outage(self, down, up, ack=None):
        self.send(down, "critical")
        wait_for("the ticket", lambda: self.collector.tickets(status="active"))
        if ack:
            self.ack(ack)
        self.send(up, "ok")
        # Resolved at the collector's next tick (ok held for over a minute), then closed at the
        # tick after the next move (past reopen_within).
        self.move_to(datetime.fromtimestamp(self.now + 3601, timezone.utc).isoformat())
        wait_for("the ticket resolved", lambda: not self.collector.tickets(status="active"))
        self.move_to(datetime.fromtimestamp(self.now + 3601, timezone.utc).isoformat())
        wait_for("the ticket closed", lambda: not self.collector.tickets(status="resolved"))

    def test_a_month_from_the_real_collector_to_a_pdf(self):
        # Kyiv is UTC+2 until 2027-03-28 03:00 local (01:00Z), then UTC+3 (the night of the 27th
        # is an hour shorter). Service hours: 31 x 14 h = 1,562,400 s of the month's 2,674,800.
        # Reaction target: 2 h of service time. The clock moves at least an hour at a time: the
        # collector slews smaller steps of the system clock (collector/src/clock.cpp).
        self.send("2027-02-28T20:00:00Z", "ok")
        # In service hours, acknowledged after 1.5 h: kept. 3 h down.
        self.outage("2027-03-05T08:00:00Z", "2027-03-05T11:00:00Z", ack="2027-03-05T09:30:00Z")
        # At night: over long before the deadline (10:00), nobody at the client saw it. 2 h down.
        self.outage("2027-03-10T21:00:00Z", "2027-03-10T23:00:00Z")
        # 21:30 local: due at 09:30 next morning; acknowledged 10:30: missed by 1 h, 3 h of
        # service time to react. 14.5 h down, 4.5 h of it in service hours.
        self.outage("2027-03-15T19:30:00Z", "2027-03-16T10:00:00Z", ack="2027-03-16T08:30:00Z")
        # Across the night the clocks go forward: 21:00 to 10:00 local is 12 h, 3 h in service.
        self.outage("2027-03-27T19:00:00Z", "2027-03-28T07:00:00Z", ack="2027-03-27T20:30:00Z")
        # Planned work 12:00-14:00 local with an hour down inside it: no ticket, not counted.
        self.move_to("2027-03-19T12:00:00Z")
        status, _ = self.collector.api("POST", "/api/v1/silences", {
            "matchers": {"site": "acme-kyiv"}, "starts_at": "2027-03-20T10:00:00Z",
            "ends_at": "2027-03-20T12:00:00Z", "comment": "оновлення ERP"}, self.token)
        self.assertEqual(status, 201)
        self.send("2027-03-20T10:29:00Z", "critical")
        self.send("2027-03-20T11:30:00Z", "ok")
        self.move_to("2027-04-02T09:00:00Z")

        def get(path):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.collector.http_port}{path}") as r:
                return r.read().decode()

        report = json.loads(get("/api/v1/reports/acme-kyiv?month=2027-03"))
        self.assertEqual(json.loads(get("/api/v1/reports/acme-kyiv")), report,
                         "the last complete month by default")
        self.assertEqual((report["client"], report["company"]), ("ТОВ «Акме»", "Сервіс-Плюс"))
        self.assertEqual(report["from"], "2027-02-28T22:00:00.000Z")
        self.assertEqual(report["to"], "2027-03-31T21:00:00.000Z")
        down_all = 10800 + 7200 + 52200 + 43200
        down_service = 10800 + 0 + 16200 + 10800
        # To the second: a result may be dated on receipt, microseconds after the clock moved.
        seconds = self.assertAlmostEqual
        seconds(report["site"]["around_the_clock"]["down"], down_all, delta=1)
        seconds(report["site"]["around_the_clock"]["silenced"], 7200, delta=1)
        seconds(report["site"]["around_the_clock"]["ok"], 2674800 - down_all - 7200, delta=1)
        seconds(report["site"]["service_hours"]["down"], down_service, delta=1)
        seconds(report["site"]["service_hours"]["ok"], 1562400 - down_service - 7200, delta=1)
        incidents = report["incidents"]
        self.assertEqual([i["deadline"] for i in incidents],
                         ["kept", "not_needed", "missed", "kept"])
        self.assertEqual([round(i["react_service_seconds"]) if "react_service_seconds" in i
                          else None for i in incidents], [5400, None, 10800, 3600])
        self.assertEqual(round(incidents[2]["missed_by_service_seconds"]), 3600)
        self.assertEqual([round(i["restore_seconds"]) for i in incidents],
                         [10800, 7200, 52200, 43200])
        self.assertEqual([i["unnoticed"] for i in incidents], [False, True, False, False])
        self.assertEqual([i["acknowledged_by"] for i in incidents],
                         ["Оксана", None, "Оксана", "Оксана"])
        totals = report["totals"]
        self.assertEqual((totals["deadlines_kept"], totals["deadlines_missed"]), (2, 1))
        self.assertEqual(report["silences"][0]["comment"], "оновлення ERP")

        for path, status in (("/api/v1/reports/nowhere?month=2027-03", 404),
                             ("/report/acme-kyiv?lang=fr", 400),
                             ("/api/v1/reports/acme-kyiv?month=2027-13", 400)):
            with self.assertRaises(urllib.error.HTTPError) as refused:
                get(path)
            self.assertEqual(refused.exception.code, status, path)
        csv = get("/api/v1/reports/acme-kyiv/incidents.csv?month=2027-03")
        self.assertEqual(len(csv.strip().split("\r\n")), 5)

        # The PDF, as a support company sends it to its client.
        pdf = os.path.join(self.dir, "report.pdf")
        out = subprocess.run([DOZORCTL, "--url", f"http://127.0.0.1:{self.collector.http_port}",
                              "report", "--site", "acme-kyiv", "--month", "2027-03", "--lang",
                              "uk", "--format", "pdf", "-o", pdf],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        text = subprocess.run(["pdftotext", "-layout", pdf, "-"], capture_output=True,
                              text=True, check=True).stdout
        for expected in ("Звіт про обслуговування", "ТОВ «Акме»", "acme-kyiv", "Сервіс-Плюс",
                         "2027-03", "97.569 %", "дотримано термінів реакції", "2 / 3",
                         "оновлення ERP"):
            self.assertIn(expected, text)
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", pdf,
                        os.path.join(ARTIFACTS, "report")], check=True)
        self.assertTrue(any(f.startswith("report") for f in os.listdir(ARTIFACTS)))

        summary = subprocess.run([DOZORCTL, "--url",
                                  f"http://127.0.0.1:{self.collector.http_port}", "report",
                                  "--site", "acme-kyiv", "--month", "2027-03"],
                                 capture_output=True, text=True, timeout=20)
        self.assertEqual(summary.returncode, 0, summary.stderr)
        self.assertIn("deadlines kept 2, missed 1", summary.stdout)


if __name__ == "__main__":
    main()
