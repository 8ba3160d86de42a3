"""Starts the real dozor binaries and their real peers on 127.0.0.1 for integration tests.

Everything a test starts is stopped by its cleanup; every wait polls a condition with a deadline.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

BUILD = os.environ.get("DOZOR_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
AGENT = os.path.join(BUILD, "agent/dozor-agent")
COLLECTOR = os.path.join(BUILD, "server/dozor-collector")
CERTS = os.path.join(SOURCE, "certs/dozor-certs")
DOZORCTL = os.path.join(BUILD, "server/dozorctl")
WEBHOOK_RECEIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "webhook_receiver.py")
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-aiosmtpd
NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
PG_CLUSTER = os.path.join(SOURCE, "tests/postgres/cluster.sh")


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


def http_request(url, method="GET", body=None, token=None, timeout=5):
    """(status, parsed JSON body, or text) of one HTTP request; an error status is returned, not
    raised. body: a dict sent as JSON. token: sent as Authorization: Bearer."""
    import urllib.error
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    with contextlib.suppress(ValueError):
        return status, json.loads(text)
    return status, text


def parse_time(text):
    """Unix seconds of an RFC 3339 time as the collector writes it (2026-01-02T03:04:05.678Z)."""
    import datetime
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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

    def agent(self, name, site=None):
        subprocess.run([CERTS, "agent", self.dir, name] + (["--site", site] if site else []),
                       check=True, capture_output=True)
        return self.files(name)

    def files(self, name):
        return {"ca": f"{self.dir}/ca.pem", "cert": f"{self.dir}/{name}.pem",
                "key": f"{self.dir}/{name}.key"}


class Process:
    def __init__(self, argv, log_path, env=None):
        """env: variables added to this process's environment."""
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **env} if env else None)

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
    def __init__(self, workdir, certs_files, agents_port=None, http_port=None, extra="",
                 store="sqlite:collector.db", env=None, name="collector"):
        """name: of its config and log files, for several collectors in one folder."""
        self.agents_port = agents_port or free_port()
        self.http_port = http_port or free_port()
        self.name = name
        self.config = os.path.join(workdir, f"{name}.yaml")
        with open(self.config, "w") as f:
            f.write(f'listen: {{ agents: "127.0.0.1:{self.agents_port}", '
                    f'http: "127.0.0.1:{self.http_port}" }}\n'
                    f'tls: {{ ca: {certs_files["ca"]}, cert: {certs_files["cert"]}, '
                    f'key: {certs_files["key"]} }}\n'
                    f'store: {store}\n{extra}')
        self.workdir = workdir
        self.env = env
        self.restart()

    def restart(self):
        """Starts (again) on the same ports and store, and waits until it answers."""
        super().__init__([COLLECTOR, "--config", self.config],
                         os.path.join(self.workdir, f"{self.name}.log"), self.env)
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

    def api(self, method, path, body=None, token=None):
        """(status, parsed JSON answer) of one request to the HTTP API; token: Bearer token."""
        return http_request(f"http://127.0.0.1:{self.http_port}{path}", method, body, token)

    def tickets(self, status=None, site=None):
        """GET /api/v1/tickets with its filters: the list of tickets, newest first."""
        from urllib.parse import urlencode
        query = {k: v for k, v in (("status", status), ("site", site)) if v}
        path = "/api/v1/tickets" + ("?" + urlencode(query) if query else "")
        return json.loads(self.get(path))["tickets"]

    def ticket(self, ticket_id):
        """GET /api/v1/tickets/{id}: the ticket with its events."""
        return json.loads(self.get(f"/api/v1/tickets/{ticket_id}"))


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
    """A real TCP listener a probe can connect to; stop() makes the port refuse, start() opens
    the same port again (a service restarted)."""

    def __init__(self, accept=False):
        """accept=True also accepts (and closes) connections, so that a probe connecting often
        for a long time never fills the listen backlog."""
        self.sock = None
        self.port = 0
        self.accept = accept
        self.start()

    def start(self):
        if self.sock is not None:
            return self
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        if self.accept:
            import threading
            threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()
        return self

    @staticmethod
    def _accept(sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self):
        if self.sock is not None:
            if self.accept:  # wakes the accepting thread, which would keep the socket open
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None


class WebPublication:
    """A web publication on 127.0.0.1 answering each request with the next code of `codes`, the
    last one for ever (assign `codes` to change course); `served` holds (monotonic time, code)
    of each answer."""

    def __init__(self, codes=(200,)):
        import http.server
        import threading
        self.codes = list(codes)
        self.served = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                code = outer.codes.pop(0) if len(outer.codes) > 1 else outer.codes[0]
                outer.served.append((time.monotonic(), code))
                body = b"ok" if code == 200 else b"error"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first(self, code):
        """When `code` was first answered, or None."""
        return next((t for t, c in self.served if c == code), None)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# A TCP service in a process of its own that keeps every connection open, as a database or an
# application server does with an idle client: SIGKILL closes them all, as a crash does.
# Run as [sys.executable, "-c", HOLDING_SERVICE, port].
HOLDING_SERVICE = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
kept = []
while True:
    c, _ = s.accept()
    kept.append(c)
"""


def listening(port):
    """Whether something accepts connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


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


def timing(test):
    """Marks a test whose pass mark is a duration: ctest runs those alone (RUN_SERIAL), so that a
    loaded machine does not decide it (tests/CMakeLists.txt)."""
    test.dozor_timing = True
    return test


def main():
    """Runs the calling module's tests (or those named on the command line). DOZOR_TIMING=1 runs
    only the @timing ones, DOZOR_TIMING=0 all others. A skipped test fails the run: scripts/setup
    --test installs everything a test needs."""
    which = os.environ.get("DOZOR_TIMING")
    loader = unittest.TestLoader()
    module = sys.modules["__main__"]
    suite = (loader.loadTestsFromNames(sys.argv[1:], module) if len(sys.argv) > 1
             else loader.loadTestsFromModule(module))

    def flat(s):
        for t in s:
            yield from (flat(t) if isinstance(t, unittest.TestSuite) else [t])

    def is_timing(t):
        return getattr(getattr(t, t._testMethodName), "dozor_timing", False)

    tests = [t for t in flat(suite) if which is None or is_timing(t) == (which == "1")]
    result = unittest.TextTestRunner(verbosity=2).run(unittest.TestSuite(tests))
    if result.skipped:
        print(f"{len(result.skipped)} test(s) skipped: a skip is a failure here", file=sys.stderr)
    sys.exit(0 if tests and result.wasSuccessful() and not result.skipped else 1)


class IntegrationCase(unittest.TestCase):
    """Gives each test a temporary folder and stops what it started, printing logs on failure."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="dozor-it-")
        self.dir = self.tmp.name
        self.processes = []

    def start(self, process):
        self.processes.append(process)
        return process

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        # Python 3.11 records a failure in the result at once and runs tearDown with
        # outcome.success reset to True; older versions keep it False until the end.
        result = getattr(outcome, "result", None)
        for test, _ in list(getattr(result, "failures", [])) + list(getattr(result, "errors", [])):
            if test is self:
                return True
        return not outcome.success

    def tearDown(self):
        failed = self._failed()
        for p in reversed(self.processes):
            p.stop(signal.SIGKILL if p.alive() and failed else signal.SIGTERM)
            if failed:
                print(f"--- {os.path.basename(p.log_path)} ---\n{p.output()[-4000:]}")
        self.tmp.cleanup()


class CollectorCase(IntegrationCase):
    """An IntegrationCase with a CA (self.certs) and a running collector (self.collector)."""

    def setUp(self):
        super().setUp()
        self.certs = Certs(os.path.join(self.dir, "ca"))
        self.collector = self.start(Collector(self.dir, self.certs.collector()))

    def agent_state(self, name="agent-01"):
        return self.collector.agents().get(name)


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


class Haproxy(Process):
    """Debian's haproxy in front of several collectors, as one address: the agent port balanced
    over every collector that accepts connections (TCP, TLS passes through), the HTTP port sent to
    the one whose /api/v1/leader answers 200 (the leader). Checks every 300 ms."""

    def __init__(self, workdir, collectors):
        self.agents_port, self.http_port = free_port(), free_port()
        config = os.path.join(workdir, "haproxy.cfg")
        agents = "".join(f"  server {c.name} 127.0.0.1:{c.agents_port} check inter 300ms "
                         "fall 1 rise 1\n" for c in collectors)
        http = "".join(f"  server {c.name} 127.0.0.1:{c.http_port} check inter 300ms "
                       "fall 1 rise 1\n" for c in collectors)
        with open(config, "w") as f:
            f.write("global\n  maxconn 4000\n"
                    "defaults\n  timeout connect 2s\n  timeout client 120s\n"
                    "  timeout server 120s\n  timeout check 1s\n"
                    f"frontend agents\n  bind 127.0.0.1:{self.agents_port}\n  mode tcp\n"
                    "  default_backend collectors\n"
                    "backend collectors\n  mode tcp\n  balance roundrobin\n"
                    "  option redispatch\n  retries 3\n" + agents +
                    f"frontend http\n  bind 127.0.0.1:{self.http_port}\n  mode http\n"
                    "  default_backend leader\n"
                    "backend leader\n  mode http\n  option httpchk GET /api/v1/leader\n"
                    "  http-check expect status 200\n" + http)
        super().__init__([HAPROXY, "-f", config, "-db"], os.path.join(workdir, "haproxy.log"))
        wait_for("haproxy listening", lambda: self.alive() and self._listens())

    def _listens(self):
        with contextlib.closing(socket.socket()) as s:
            return s.connect_ex(("127.0.0.1", self.http_port)) == 0

    @property
    def url(self):
        return f"https://127.0.0.1:{self.agents_port}"

    def get(self, path):
        return http_get(f"http://127.0.0.1:{self.http_port}{path}")


class Postgres:
    """A real PostgreSQL on 127.0.0.1 (tests/postgres/cluster.sh): a database for the collectors,
    reached as the role dozor with the password in password_file. down() stops it at once, as a
    crash of the database host does; up() brings it back on the same port with its data."""

    def __init__(self, workdir, database="dozor"):
        # Not in workdir: as root the server runs as the postgres user, who may not enter it.
        self.parent = tempfile.mkdtemp(prefix="dozor-pg-")
        os.chmod(self.parent, 0o711)
        self.dir = os.path.join(self.parent, "cluster")
        self._run("start")
        with open(os.path.join(self.dir, "url")) as f:
            admin = f.read().strip()
        self.password_file = os.path.join(self.dir, "password")
        self.url = admin.rsplit("/", 1)[0] + "/" + database
        port = admin.rsplit(":", 1)[1].split("/")[0]
        self.admin_socket = f"postgresql://dozor@/postgres?host={self.dir}&port={port}"
        self.psql(f"CREATE DATABASE {database}", admin)

    def _run(self, what):
        subprocess.run([PG_CLUSTER, what, self.dir], check=True, stdout=subprocess.DEVNULL)

    def psql(self, sql, url=None):
        """Runs sql through psql; its rows as lists of strings."""
        with open(self.password_file) as f:
            env = {**os.environ, "PGPASSWORD": f.read().strip()}
        out = subprocess.run(["psql", url or self.url, "-XAtq", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              "-c", sql], env=env, check=True, capture_output=True,
                             text=True).stdout
        return [line.split("\t") for line in out.splitlines()]

    def require_tls(self, cert, key):
        """Serves TLS with cert/key and refuses connections over TCP without it (pg_hba)."""
        import pwd
        for name, src in (("server.crt", cert), ("server.key", key)):
            dst = os.path.join(self.dir, name)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)  # PostgreSQL refuses a key others can read
            if os.geteuid() == 0:
                user = pwd.getpwnam("postgres")
                os.chown(dst, user.pw_uid, user.pw_gid)
        with open(os.path.join(self.dir, "data", "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "hostssl all all 127.0.0.1/32 scram-sha-256\n"
                    "hostnossl all all 127.0.0.1/32 reject\n")
        for setting in (f"ssl_cert_file = '{self.dir}/server.crt'",
                        f"ssl_key_file = '{self.dir}/server.key'", "ssl = on"):
            self.psql(f"ALTER SYSTEM SET {setting}", self.admin_socket)
        self.psql("SELECT pg_reload_conf()", self.admin_socket)

    def down(self):
        self._run("down")

    def up(self):
        self._run("up")

    def alive(self):
        return os.path.exists(os.path.join(self.dir, "data", "postmaster.pid"))

    def stop(self, sig=None):
        self.log = self.output()  # the folder goes with the cluster
        self._run("stop")
        shutil.rmtree(self.parent, ignore_errors=True)

    def output(self):
        with contextlib.suppress(OSError), open(os.path.join(self.dir, "server.log")) as f:
            return f.read()
        return getattr(self, "log", "")

    log_path = "postgresql.log"


def spool_state(path):
    """(results still held, last seq assigned, dropped not yet reported) of an agent's spool."""
    import sqlite3
    db = sqlite3.connect(path)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return 0, 0, 0  # not created yet
        held, max_seq = db.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM results").fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        last = max(max_seq, int(meta.get("floor", 0)), int(meta.get("rejected", 0)))
        return held, last, int(meta.get("dropped", 0))
    finally:
        db.close()


def api_token_file(workdir, token="it-secret-token-0123456789"):
    """Writes the collector's API token file; returns (path, token)."""
    path = os.path.join(workdir, "api.token")
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path, token


class WebhookReceiver(Process):
    """tests/integration/webhook_receiver.py on 127.0.0.1:port: every POST is one JSON line in
    `out` (kept across restarts on the same port, so a test sees every delivery)."""

    def __init__(self, workdir, port=None, name="webhook", fail_first=0, status=500):
        self.port = port or free_port()
        self.out = os.path.join(workdir, f"{name}.jsonl")
        argv = [sys.executable, WEBHOOK_RECEIVER, "--port", str(self.port), "--out", self.out]
        if fail_first:
            argv += ["--fail-first", str(fail_first), "--status", str(status)]
        super().__init__(argv, os.path.join(workdir, f"{name}.log"))
        wait_for("webhook receiver listening",
                 lambda: self.alive() and f"PORT {self.port}" in self.output())

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def records(self):
        """Every POST received so far: {path, idempotency_key, status, body, ...}."""
        if not os.path.exists(self.out):
            return []
        with open(self.out, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def accepted(self):
        """The POSTs answered 200: the deliveries that count."""
        return [r for r in self.records() if r["status"] == 200]


class Alertmanager(Process):
    """Debian's prometheus-alertmanager, alone (no cluster), routing everything to a receiver
    that sends nothing: the test reads what it holds through its API v2."""

    CONFIG = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"

    def __init__(self, workdir):
        self.port = free_port()
        config = os.path.join(workdir, "alertmanager.yml")
        with open(config, "w") as f:
            f.write(self.CONFIG)
        storage = os.path.join(workdir, "alertmanager-data")
        os.makedirs(storage, exist_ok=True)
        super().__init__([ALERTMANAGER, f"--config.file={config}", f"--storage.path={storage}",
                          f"--web.listen-address=127.0.0.1:{self.port}",
                          "--cluster.listen-address="],
                         os.path.join(workdir, "alertmanager.log"))
        wait_for("alertmanager ready",
                 lambda: self.alive() and http_get(f"{self.url}/-/ready") is not None,
                 timeout=20)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def alerts(self):
        """GET /api/v2/alerts: the alerts Alertmanager holds (active ones by default)."""
        return json.loads(http_get(f"{self.url}/api/v2/alerts"))


class SmtpSink(Process):
    """Debian's aiosmtpd as a plain SMTP server that stores every message in a Maildir."""

    def __init__(self, workdir):
        import smtplib
        self.port = free_port()
        self.maildir = os.path.join(workdir, "maildir")
        super().__init__([SYSTEM_PYTHON, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
                          "-c", "aiosmtpd.handlers.Mailbox", self.maildir],
                         os.path.join(workdir, "smtp.log"))

        def answers():
            if not self.alive():
                raise AssertionError(f"aiosmtpd exited:\n{self.output()}")
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as smtp:
                return smtp.noop()[0] == 250

        wait_for("SMTP server answering", answers, timeout=20, interval=0.1)

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def messages(self):
        """The e-mails received so far (email.message.Message objects)."""
        import mailbox
        if not os.path.isdir(os.path.join(self.maildir, "new")):
            return []
        return list(mailbox.Maildir(self.maildir, create=False))


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
            # One process (no master, no workers left behind by a killed master); as root it
            # would serve as nobody, who cannot read the test's 0700 folder.
            f.write(f"load_module {STREAM_MODULE};\n" if body.startswith("stream") else "")
            f.write(f"user root;\ndaemon off;\nmaster_process off;\npid {self.dir}/nginx.pid;\n"
                    f"error_log stderr warn;\nevents {{ worker_connections 64; }}\n{body}\n")
        super().__init__([NGINX, "-p", self.dir, "-c", self.conf], os.path.join(self.dir, "log"))
        wait_for("nginx listening", self.listening)
        return self

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False


class Prometheus(Process):
    """Debian's real Prometheus on 127.0.0.1, scraping `targets` (host:port) every second as job
    dozor."""

    def __init__(self, workdir, targets):
        self.port = free_port()
        config = os.path.join(workdir, "prometheus.yml")
        listed = ", ".join(f"'{t}'" for t in targets)
        with open(config, "w") as f:
            f.write("global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
                    "scrape_configs:\n  - job_name: dozor\n"
                    f"    static_configs: [ {{ targets: [{listed}] }} ]\n")
        super().__init__([PROMETHEUS, f"--config.file={config}",
                          f"--storage.tsdb.path={workdir}/tsdb",
                          f"--web.listen-address=127.0.0.1:{self.port}"],
                         os.path.join(workdir, "prometheus.log"))

    def query(self, expr):
        """The result vector of an instant query; raises when Prometheus refuses the query."""
        from urllib.parse import urlencode
        body = json.loads(http_get(f"http://127.0.0.1:{self.port}/api/v1/query?" +
                                   urlencode({"query": expr})))
        if body["status"] != "success":
            raise AssertionError(f"{expr}: {body}")
        return body["data"]["result"]
