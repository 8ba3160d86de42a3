"""Starts the real dozor binaries and their real peers on 127.0.0.1 for integration tests.

Everything a test starts is stopped by its cleanup; every wait polls a condition with a deadline.
"""
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

BUILD = os.environ.get("DOZOR_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
AGENT = os.path.join(BUILD, "agent/dozor-agent")
COLLECTOR = os.path.join(BUILD, "server/dozor-collector")
CERTS = os.path.join(SOURCE, "certs/dozor-certs")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=15.0, interval=0.05):
    """Polls check() until it returns something truthy; fails the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, ValueError) as e:  # not up yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric_samples(text, name):
    """{frozenset(labels.items()): value} for one metric name in Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)', line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[frozenset(labels.items())] = float(m.group(4))
    return out


def sample(text, name, **labels):
    for key, value in metric_samples(text, name).items():
        if all((k, v) in key for k, v in labels.items()):
            return value
    return None


class Certs:
    """A CA and certificates made with certs/dozor-certs, as an operator would."""

    def __init__(self, folder):
        self.dir = folder
        subprocess.run([CERTS, "ca", folder], check=True, capture_output=True)

    def collector(self, name="collector"):
        subprocess.run([CERTS, "collector", self.dir, name, "127.0.0.1", "localhost"],
                       check=True, capture_output=True)
        return self.files(name)

    def agent(self, name):
        subprocess.run([CERTS, "agent", self.dir, name], check=True, capture_output=True)
        return self.files(name)

    def files(self, name):
        return {"ca": f"{self.dir}/ca.pem", "cert": f"{self.dir}/{name}.pem",
                "key": f"{self.dir}/{name}.key"}


class Process:
    def __init__(self, argv, log_path):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class Collector(Process):
    def __init__(self, workdir, certs_files, agents_port=None, http_port=None, extra=""):
        self.agents_port = agents_port or free_port()
        self.http_port = http_port or free_port()
        self.config = os.path.join(workdir, "collector.yaml")
        with open(self.config, "w") as f:
            f.write(f'listen: {{ agents: "127.0.0.1:{self.agents_port}", '
                    f'http: "127.0.0.1:{self.http_port}" }}\n'
                    f'tls: {{ ca: {certs_files["ca"]}, cert: {certs_files["cert"]}, '
                    f'key: {certs_files["key"]} }}\n'
                    f'store: sqlite:collector.db\n{extra}')
        self.workdir = workdir
        self.restart()

    def restart(self):
        """Starts (again) on the same ports and store, and waits until it answers."""
        super().__init__([COLLECTOR, "--config", self.config],
                         os.path.join(self.workdir, "collector.log"))
        wait_for("collector /healthz", lambda: self.alive() and self.get("/healthz") == "ok\n")
        return self

    @property
    def url(self):
        return f"https://127.0.0.1:{self.agents_port}"

    def get(self, path):
        return http_get(f"http://127.0.0.1:{self.http_port}{path}")

    def metrics(self):
        return self.get("/metrics")

    def agents(self):
        return {a["id"]: a for a in json.loads(self.get("/api/v1/agents"))}


def agent_config(path, url, files, probes, site="acme-kyiv", heartbeat="1s", spool=""):
    spool_path = os.path.splitext(path)[0] + ".spool.db"
    lines = [f"agent: {{ site: {site}, heartbeat: {heartbeat} }}",
             f'collector: {{ url: "{url}", ca: {files["ca"]}, cert: {files["cert"]}, '
             f'key: {files["key"]} }}',
             f"spool: {{ path: {spool_path}{', ' + spool if spool else ''} }}",
             "probes:"] + [f"  - {p}" for p in probes]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Agent(Process):
    def __init__(self, workdir, name, url, files, probes, **kw):
        self.config = agent_config(os.path.join(workdir, f"{name}.yaml"), url, files, probes, **kw)
        self.spool = os.path.splitext(self.config)[0] + ".spool.db"
        self.log_name = os.path.join(workdir, f"{name}.log")
        self.restart()

    def restart(self):
        super().__init__([AGENT, "--config", self.config], self.log_name)
        return self


class TcpService:
    """A real TCP listener a probe can connect to; stop() makes the port refuse."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def stop(self):
        self.sock.close()


def tls_client(files, server_port):
    """An HTTPS connection presenting `files` as the client certificate."""
    ctx = ssl.create_default_context(cafile=files["ca"])
    if files.get("cert"):
        ctx.load_cert_chain(files["cert"], files["key"])
    raw = socket.create_connection(("127.0.0.1", server_port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def post_raw(sock, path, body, content_type="application/json"):
    """Sends one HTTP/1.1 POST over `sock`; returns (status, parsed JSON body or text)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    header, _, rest = data.partition(b"\r\n\r\n")
    status = int(header.split()[1])
    length = int(re.search(rb"(?i)content-length: (\d+)", header).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
    text = rest[:length].decode()
    with contextlib.suppress(ValueError):
        return status, json.loads(text)
    return status, text


class IntegrationCase(unittest.TestCase):
    """Gives each test a temporary folder and stops what it started, printing logs on failure."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="dozor-it-")
        self.dir = self.tmp.name
        self.processes = []

    def start(self, process):
        self.processes.append(process)
        return process

    def tearDown(self):
        failed = not self._outcome.success
        for p in reversed(self.processes):
            p.stop(signal.SIGKILL if p.alive() and failed else signal.SIGTERM)
            if failed:
                print(f"--- {os.path.basename(p.log_path)} ---\n{p.output()[-4000:]}")
        self.tmp.cleanup()


class LinkProxy:
    """A TCP proxy between agent and collector that the test can cut and restore, as a site's
    internet link goes down and comes back."""

    def __init__(self, target_port):
        import threading
        self.target_port = target_port
        self.port = free_port()
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None
        self.restore()

    def restore(self):
        import threading
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self):
        """Closes the listener and every open connection: the link is down."""
        self.listener.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self.conns.clear()

    def _accept(self, listener):
        import threading
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def spool_state(path):
    """(results still held, last seq assigned, dropped not yet reported) of an agent's spool."""
    import sqlite3
    db = sqlite3.connect(path)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return 0, 0, 0  # not created yet
        held, max_seq = db.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM results").fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return held, max(max_seq, int(meta.get("floor", 0))), int(meta.get("dropped", 0))
    finally:
        db.close()
