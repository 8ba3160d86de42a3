"""The dispatcher board in a real headless browser: Debian's chromium, driven through
chromium-driver by python3-selenium, against a real collector and a real agent that probes a real
TCP service. Screenshots of the queue, a site's page and a phone-width queue are kept in
build/artifacts/board/."""
import base64
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness import (BUILD, SOURCE, Agent, Certs, Collector, IntegrationCase, Nginx, TcpService,
                     api_token_file, free_port, main, timing, wait_for)

ARTIFACTS = os.path.join(BUILD, "artifacts", "board")
SITE = "Київ-бухгалтерія"  # Ukrainian, as many of the support companies' clients are named
RULES = ("rules:\n"
         "  - { name: probe-critical, recover_for: 1s }\n"
         "  - { name: probe-warning, for: 0s, recover_for: 1s }\n")
BACKUP_WARNING = "ПОПЕРЕДЖЕННЯ - остання копія 30 год тому"
PROXY_CONF = os.path.join(SOURCE, "packaging/nginx/dozor-board.conf")


def chromium(width=1400, height=900):
    """A headless Debian chromium driven by chromium-driver; browser console messages kept."""
    if importlib.util.find_spec("selenium") is None:
        # Debian's python3-selenium, run by a Python that is not Debian's.
        sys.path.append("/usr/lib/python3/dist-packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--lang=uk-UA"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class Board(IntegrationCase):
    def setUp(self):
        super().setUp()
        os.makedirs(ARTIFACTS, exist_ok=True)
        token_path, self.token = api_token_file(self.dir)
        self.certs = certs = Certs(os.path.join(self.dir, "ca"))
        self.collector = self.start(Collector(
            self.dir, certs.collector(), extra=f"api: {{ token_file: {token_path} }}\n" + RULES))
        self.service = TcpService(accept=True)
        self.addCleanup(self.service.stop)
        self.start(Agent(self.dir, "agent-01", self.collector.url, certs.agent("agent-01"), [
            f"{{ name: erp-port, type: tcp, host: 127.0.0.1, port: {self.service.port}, "
            f"interval: 1s, timeout: 500ms, confirm: false }}",  # the board's time, unconfirmed
            f"{{ name: backup, type: command, interval: 1s, command: [/bin/sh, -c, "
            f"\"echo '{BACKUP_WARNING}'; exit 1\"] }}",
        ], site=f'"{SITE}"'))
        self.browser = chromium()
        self.addCleanup(self.browser.quit)
        self.url = f"http://127.0.0.1:{self.collector.http_port}/"

    def rows(self):
        """(class, status, summary) of each queue row, top first."""
        return self.browser.execute_script("""
            return [...document.querySelectorAll('#queue .ticket')].map(r => [
              [...r.classList].filter(c => c !== 'ticket'), r.querySelector('.what').textContent,
              r.querySelector('.countdown').textContent, r.dataset.id]);""")

    def shot(self, name):
        self.browser.save_screenshot(os.path.join(ARTIFACTS, name))

    def console_errors(self):
        return [e for e in self.browser.get_log("browser") if e["level"] == "SEVERE"]

    @timing
    def test_the_queue_live_with_ack_through_the_board(self):
        from selenium.webdriver.common.by import By
        b = self.browser
        b.get(self.url)
        wait_for("the board live", lambda: b.find_element(By.ID, "live").text == "live")
        wait_for("the backup's task ticket on the board", lambda: len(self.rows()) == 1, timeout=20)
        (classes, what, _, task_id), = self.rows()
        self.assertEqual(classes, ["task", "open"])
        self.assertIn(BACKUP_WARNING, what)
        task_row = b.find_element(By.CSS_SELECTOR, f'.ticket[data-id="{task_id}"]')

        # The service stops: the emergency is at the top within 2 s, its countdown running.
        self.service.stop()
        stopped = time.monotonic()
        wait_for("the emergency at the top", lambda: len(self.rows()) == 2 and
                 self.rows()[0][0] == ["emergency", "open"], timeout=2, interval=0.02)
        seen = time.monotonic() - stopped
        first, second = self.rows()
        self.assertEqual(second[3], task_id, "the older task ticket stays below")
        # The unchanged row is moved, not redrawn: a button under the pointer stays clickable.
        self.assertTrue(task_row.is_displayed())
        self.assertRegex(first[2], r"^\d+:\d\d\s*to react$")
        before = first[2]
        wait_for("the countdown to move", lambda: self.rows()[0][2] != before, timeout=3)
        emergency_id = int(first[3])
        api = {t["id"]: t for t in self.collector.tickets(status="active")}
        self.assertEqual(api[emergency_id]["class"], "emergency")
        self.assertEqual(api[emergency_id]["site"], SITE)
        self.shot("queue.png")
        print(f"emergency on the board {seen:.2f} s after the service stopped (probe interval 1 s)")

        # Acknowledged through the board: the token is asked for once, then the comment.
        b.find_element(By.CSS_SELECTOR, f'.ticket[data-id="{emergency_id}"] .actions button').click()
        wait_for("the sign-in dialog", lambda: b.find_element(By.ID, "login").is_displayed())
        b.find_element(By.ID, "login-name").send_keys("Оксана")
        b.find_element(By.ID, "login-token").send_keys(self.token)
        b.find_element(By.ID, "login-ok").click()
        wait_for("the acknowledge dialog", lambda: b.find_element(By.ID, "act").is_displayed())
        b.find_element(By.ID, "act-comment").send_keys("дзвоню клієнту")
        b.find_element(By.ID, "act-ok").click()
        wait_for("the ticket acknowledged in the API", lambda: self.collector.ticket(
            emergency_id)["status"] == "acknowledged")
        ticket = self.collector.ticket(emergency_id)
        self.assertEqual((ticket["acknowledged_by"], ticket["comment"]), ("Оксана", "дзвоню клієнту"))
        wait_for("the board to show it acknowledged", lambda: self.rows()[0][0] ==
                 ["emergency", "acknowledged"])
        self.assertIn("acknowledged by Оксана", self.rows()[0][1])

        # The site's page: its probes with status and values, its tickets.
        b.find_element(By.CSS_SELECTOR, ".tile").click()
        wait_for("the site's probes", lambda: len(b.find_elements(
            By.CSS_SELECTOR, "#probes tbody tr")) == 2)
        self.assertEqual(b.find_element(By.ID, "site-title").text, SITE)
        erp = b.find_element(By.CSS_SELECTOR, '#probes tr[data-probe="agent-01/erp-port"]')
        self.assertIn("critical", erp.text.lower())
        self.assertEqual(len(b.find_elements(By.CSS_SELECTOR, "#site-queue .ticket")), 2)
        self.shot("site.png")

        # A phone: one column, nothing wider than the screen.
        b.get(self.url)
        b.set_window_size(390, 844)
        wait_for("the queue at phone width", lambda: len(self.rows()) == 2)
        width = b.execute_script("return document.documentElement.scrollWidth")
        self.assertLessEqual(width, b.execute_script("return window.innerWidth"))
        self.shot("phone.png")
        b.set_window_size(1400, 900)

        # The service is back: the emergency leaves the queue by itself.
        self.service.start()
        wait_for("the emergency to leave the queue", lambda: [r[3] for r in self.rows()] ==
                 [task_id], timeout=10)
        self.assertEqual(self.collector.ticket(emergency_id)["status"], "resolved")
        self.assertEqual(self.console_errors(), [])

    def test_writes_refused_with_a_wrong_token_ask_again(self):
        from selenium.webdriver.common.by import By
        b = self.browser
        b.get(self.url)
        wait_for("the task ticket on the board", lambda: len(self.rows()) == 1, timeout=20)
        task_id = int(self.rows()[0][3])
        b.find_element(By.CSS_SELECTOR, f'.ticket[data-id="{task_id}"] .actions button').click()
        wait_for("the sign-in dialog", lambda: b.find_element(By.ID, "login").is_displayed())
        b.find_element(By.ID, "login-token").send_keys("not-the-token-0123456789")
        b.find_element(By.ID, "login-ok").click()
        wait_for("the acknowledge dialog", lambda: b.find_element(By.ID, "act").is_displayed())
        b.find_element(By.ID, "act-ok").click()
        # 401: the token is dropped and asked for again; nothing changed.
        wait_for("the sign-in dialog again", lambda: b.find_element(By.ID, "login").is_displayed())
        self.assertEqual(self.collector.ticket(task_id)["status"], "open")
        self.assertIsNone(b.execute_script("return sessionStorage.getItem('dozor.token')"))
        # The refused write is the collector's 401 in the console; nothing else went wrong.
        errors = [e["message"] for e in self.console_errors()]
        self.assertTrue(all("401" in m for m in errors), errors)

    def test_the_board_files_come_from_the_collector_alone(self):
        for path, kind in (("/", "text/html"), ("/board/board.js", "text/javascript"),
                           ("/board/board.css", "text/css"), ("/board/icon.svg", "image/svg+xml")):
            with urllib.request.urlopen(self.url.rstrip("/") + path) as r:
                self.assertTrue(r.headers["Content-Type"].startswith(kind), path)
                self.assertIn("default-src 'self'", r.headers["Content-Security-Policy"])
                etag = r.headers["ETag"]
            # Revalidated, not sent again, while the collector's copy is the same.
            req = urllib.request.Request(self.url.rstrip("/") + path,
                                         headers={"If-None-Match": etag})
            with self.assertRaises(urllib.error.HTTPError) as same:
                urllib.request.urlopen(req)
            self.assertEqual(same.exception.code, 304, path)

    def test_behind_nginx_with_tls_and_a_password(self):
        """packaging/nginx/dozor-board.conf as shipped, only its names and paths filled in."""
        nginx = self.start(Nginx(self.dir, free_port()))
        htpasswd = os.path.join(nginx.dir, "htpasswd")
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "s3cret"], check=True,
                                capture_output=True, text=True).stdout.strip()
        with open(htpasswd, "w") as f:
            f.write(f"oksana:{hashed}\n")
        files = self.certs.collector()
        with open(PROXY_CONF) as f:
            conf = f.read()
        for shipped, here in (("listen 443 ssl;", f"listen 127.0.0.1:{nginx.port} ssl;"),
                              ("/etc/ssl/certs/dozor-board.pem", files["cert"]),
                              ("/etc/ssl/private/dozor-board.key", files["key"]),
                              ("/etc/nginx/dozor.htpasswd", htpasswd),
                              ("127.0.0.1:9180", f"127.0.0.1:{self.collector.http_port}")):
            self.assertIn(shipped, conf)
            conf = conf.replace(shipped, here)
        nginx.serve(f"http {{\n  access_log off;\n  client_body_temp_path {nginx.dir}/body;\n"
                    f"  proxy_temp_path {nginx.dir}/proxy;\n{conf}\n}}")
        tls = ssl.create_default_context(cafile=files["ca"])
        base = f"https://127.0.0.1:{nginx.port}"
        password = "Basic " + base64.b64encode(b"oksana:s3cret").decode()

        def request(path, headers=None, body=None):
            req = urllib.request.Request(base + path, headers=headers or {},
                                         data=json.dumps(body).encode() if body else None)
            try:
                with urllib.request.urlopen(req, context=tls, timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        self.assertEqual(request("/")[0], 401)
        status, page = request("/", {"Authorization": password})
        self.assertEqual(status, 200)
        self.assertIn("<title>dozor board</title>", page)
        self.assertEqual(request("/metrics", {"Authorization": password})[0], 404)

        # The live stream through the proxy: a change arrives at once, not when a buffer fills.
        stream = tls.wrap_socket(socket.create_connection(("127.0.0.1", nginx.port)),
                                 server_hostname="127.0.0.1")
        self.addCleanup(stream.close)
        stream.sendall(f"GET /api/v1/board/events HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: {password}\r\n\r\n".encode())
        received = b""
        stream.settimeout(10)
        # nginx passes the stream on chunked: the snapshot is whole at its blank line.
        while b"\n\n" not in received.partition(b"event: snapshot")[2]:
            received += stream.recv(65536)
        self.assertIn(b"200 OK", received)

        silence = {"matchers": {"site": SITE}, "duration": "1h", "comment": "заміна диска"}
        # The proxy's password alone does not write: the collector wants its token too.
        status, answer = request("/api/v1/silences", {"Authorization": password,
                                                      "Content-Type": "application/json"}, silence)
        self.assertEqual((status, json.loads(answer)["reason"]), (401, "unauthorized"))
        status, _ = request("/api/v1/silences", {"Authorization": password,
                                                 "X-Dozor-Token": self.token,
                                                 "Content-Type": "application/json"}, silence)
        self.assertEqual(status, 201)
        posted = time.monotonic()
        received = b""
        stream.settimeout(2)
        while "заміна диска".encode() not in received:
            received += stream.recv(65536)
        self.assertLess(time.monotonic() - posted, 1.0)
        self.assertIn(b"event: changes", received)


if __name__ == "__main__":
    main()
