"""The collector on a real PostgreSQL 15 (Debian's, started by the test on 127.0.0.1) instead of
its SQLite file: `store: postgres://...` with the password in a file, as a support company runs it
when several collectors share one database. The database crashes under load and comes back: the
collector answers 503 meanwhile, the agent keeps its results in its spool, and afterwards every
result is stored exactly once and the incident is still one ticket."""
import os

from harness import (Agent, Certs, Collector, IntegrationCase, Postgres, TcpService, main,
                     spool_state, wait_for)

RULES = "rules:\n  - { name: probe-critical, for: 0s, recover_for: 1s }\n"


class PostgresStore(IntegrationCase):
    def setUp(self):
        super().setUp()
        self.pg = self.start(Postgres(self.dir))
        self.certs = Certs(os.path.join(self.dir, "ca"))
        self.collector = self.start(Collector(
            self.dir, self.certs.collector(), store=self.pg.url,
            extra=f"store_password_file: {self.pg.password_file}\n" + RULES))
        self.service = TcpService(accept=True)
        self.addCleanup(self.service.stop)
        self.agent = self.start(Agent(self.dir, "agent-01", self.collector.url,
                                      self.certs.agent("agent-01"), [
            f"{{ name: erp-port, type: tcp, host: 127.0.0.1, port: {self.service.port}, "
            f"interval: 200ms, timeout: 150ms }}",
            "{ name: heartbeat-file, type: command, interval: 200ms, timeout: 150ms, command: [/bin/true] }",
        ], heartbeat="1s"))  # silent after 3 s: well within the agent's backoff

    def state(self):
        return self.collector.agents().get("agent-01") or {}

    def test_every_result_once_and_one_ticket_through_a_database_crash(self):
        wait_for("results in PostgreSQL", lambda: self.state().get("results", 0) > 20)
        self.service.stop()
        wait_for("the emergency", lambda: len(self.collector.tickets(status="active")) == 1)

        # The database host crashes for a few seconds while results keep coming.
        self.pg.down()
        wait_for("the collector to notice", lambda: "503" in self._healthz())
        held_while_down = spool_state(self.agent.spool)[0]
        wait_for("results to pile up in the spool",
                 lambda: spool_state(self.agent.spool)[0] > held_while_down + 20)
        self.assertTrue(self.collector.alive())
        self.pg.up()

        # Back: the spool drains, every seq stored once, the incident still one ticket.
        wait_for("the spool to drain", lambda: spool_state(self.agent.spool)[0] == 0, timeout=30)
        wait_for("/healthz ok again", lambda: self._healthz() == "ok\n")
        _, last_seq, dropped = spool_state(self.agent.spool)
        a = self.state()
        self.assertEqual(dropped, 0)
        self.assertGreaterEqual(a["last_seq"], last_seq - 20)  # the newest may be on the way
        wait_for("the last results", lambda: self.state()["last_seq"] >= last_seq)
        a = self.state()
        self.assertEqual(a["results"], a["last_seq"], "each seq 1..last exactly once")
        stored = int(self.pg.psql("SELECT watermark FROM agents WHERE id = 'agent-01'")[0][0])
        self.assertGreaterEqual(stored, last_seq)
        active = self.collector.tickets(status="active")
        self.assertEqual(len(active), 1, active)
        rows = self.pg.psql("SELECT id, status FROM tickets WHERE probe = 'erp-port'")
        self.assertEqual(rows, [[str(active[0]["id"]), "open"]])

        # The same collector, without a restart, resolves the same ticket when the port is back;
        # a restart then reads it all back from PostgreSQL.
        self.service.start()
        wait_for("the ticket resolved", lambda: self.collector.ticket(active[0]["id"])["status"]
                 == "resolved", timeout=10)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM tickets"), [["1"]])
        self.collector.stop()
        self.collector.restart()
        self.assertGreaterEqual(self.state()["results"], a["results"])  # and counting
        self.assertEqual(self.collector.ticket(active[0]["id"])["status"], "resolved")

    def test_a_wrong_password_or_a_newer_schema_is_a_clear_refusal(self):
        self.collector.stop()
        with open(self.pg.password_file) as f:
            password = f.read()
        wrong = os.path.join(self.dir, "wrong-password")
        with open(wrong, "w") as f:
            f.write("not-" + password)
        code, log = self._run_collector(f"store_password_file: {wrong}\n")
        self.assertEqual(code, 1)
        self.assertIn("password authentication failed", log)
        self.assertNotIn(password.strip(), log)

        self.pg.psql("INSERT INTO dozor_schema VALUES (999, now())")
        code, log = self._run_collector(f"store_password_file: {self.pg.password_file}\n")
        self.assertEqual(code, 1)
        self.assertIn("schema version 999, newer than this dozor-collector knows", log)

    def test_the_database_over_verified_tls(self):
        """TLS to the database by libpq's own URI parameters, the server's name checked against
        the CA given; a database that takes TLS only refuses the same URI without it."""
        self.collector.stop()
        files = self.certs.collector()  # its SAN is 127.0.0.1: good for the database server too
        self.pg.require_tls(files["cert"], files["key"])
        tls = f"{self.pg.url}?sslmode=verify-full&sslrootcert={files['ca']}"
        code, log = self._run_collector(f"store_password_file: {self.pg.password_file}\n",
                                        store=f"{self.pg.url}?sslmode=disable")
        self.assertEqual(code, 1)
        self.assertIn("no encryption", log)
        other_ca = Certs(os.path.join(self.dir, "other-ca")).collector()["ca"]
        code, log = self._run_collector(
            f"store_password_file: {self.pg.password_file}\n",
            store=f"{self.pg.url}?sslmode=verify-full&sslrootcert={other_ca}")
        self.assertEqual(code, 1)
        self.assertIn("certificate verify failed", log)

        # The same ports: the agent reports to it as before.
        self.collector = self.start(Collector(
            self.dir, files, self.collector.agents_port, self.collector.http_port,
            store=f'"{tls}"', extra=f"store_password_file: {self.pg.password_file}\n" + RULES))
        before = self.state().get("results", 0)
        wait_for("results over TLS", lambda: self.state().get("results", 0) > before + 5,
                 timeout=20)
        # Both of its connections (the store's and the desk lease's) encrypted.
        ssl_rows = self.pg.psql("SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_ssl s "
                                "JOIN pg_stat_activity a USING (pid) "
                                "WHERE a.application_name = 'dozor-collector'",
                                self.pg.admin_socket)
        self.assertEqual(ssl_rows, [["2", "2"]])

    def _healthz(self):
        import urllib.error
        try:
            return self.collector.get("/healthz")
        except urllib.error.HTTPError as e:
            return f"{e.code} {e.read().decode()}"

    def _run_collector(self, extra, store=None):
        """Runs a collector on the same store (or `store`) with `extra` config; (exit code, its
        log)."""
        import subprocess
        from harness import COLLECTOR, free_port
        config = os.path.join(self.dir, "refused.yaml")
        files = self.certs.collector()
        with open(config, "w") as f:
            f.write(f'listen: {{ agents: "127.0.0.1:{free_port()}", http: "127.0.0.1:{free_port()}" }}\n'
                    f'tls: {{ ca: {files["ca"]}, cert: {files["cert"]}, key: {files["key"]} }}\n'
                    f'store: "{store or self.pg.url}"\n{extra}')
        p = subprocess.run([COLLECTOR, "--config", config], capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout + p.stderr


if __name__ == "__main__":
    main()
