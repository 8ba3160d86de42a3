"""Three collectors on one real PostgreSQL 15 behind Debian's haproxy, as a support company runs
them when one collector host must not be a single point of failure: agents report to one address
(the agent port balanced over all three, mutual TLS passing through), Prometheus, the board and
dozorctl reach the leader (haproxy routes the HTTP port by /api/v1/leader).

The leader is SIGKILLed again and again while failures and recoveries happen at the sites, an
agent falls silent, and unacknowledged tickets escalate. Afterwards: every result stored exactly
once, one ticket per incident, every notification delivered to a real webhook receiver (once per
Idempotency-Key) and to a real Alertmanager, the silent-agent and escalation timers fired once
each time, and the lead taken over within 10 s of each kill."""
import os
import signal
import time

from harness import (Agent, Alertmanager, api_token_file, Certs, Collector, Haproxy, IntegrationCase, Postgres,
                     TcpService, WebhookReceiver, http_request, main, spool_state, timing,
                     wait_for)

AGENTS = 5
KILLS = 3
ESCALATE_AFTER = 4  # seconds: the emergency reaction target, so that escalations happen


def figure(name, value):
    print(f"\nFIGURE {name}={value}", flush=True)


class Cluster(IntegrationCase):
    def setUp(self):
        super().setUp()
        self.pg = self.start(Postgres(self.dir))
        self.certs = Certs(os.path.join(self.dir, "ca"))
        self.hook = self.start(WebhookReceiver(self.dir))
        self.am = self.start(Alertmanager(self.dir))
        files = self.certs.collector()
        token_file, self.token = api_token_file(self.dir)
        extra = (f"store_password_file: {self.pg.password_file}\n"
                 f"api: {{ token_file: {token_file} }}\n"
                 "rules:\n  - { name: probe-critical, for: 0s, recover_for: 1s }\n"
                 "  - { name: agent-silent, kind: silent, priority: P1 }\n"
                 f"service: {{ targets: {{ emergency: {ESCALATE_AFTER}s }} }}\n"
                 "tickets: { reopen_within: 1h }\n"
                 "notifiers:\n"
                 f"  - {{ name: hook, type: webhook, url: \"{self.hook.url}\" }}\n"
                 f"  - {{ name: am, type: alertmanager, url: \"{self.am.url}\", resend: 2s }}\n")
        self.collectors = []
        for i in range(3):
            c = Collector(self.dir, files, store=self.pg.url, name=f"collector-{i + 1}",
                          extra=f"node: c{i + 1}\n" + extra)
            self.collectors.append(self.start(c))
        self.proxy = self.start(Haproxy(self.dir, self.collectors))
        self.services, self.agents = [], []
        for i in range(AGENTS):
            service = TcpService(accept=True)
            self.addCleanup(service.stop)
            self.services.append(service)
            name = f"agent-{i + 1:02}"
            self.agents.append(self.start(Agent(
                self.dir, name, self.proxy.url, self.certs.agent(name), [
                    f"{{ name: erp-port, type: tcp, host: 127.0.0.1, port: {service.port}, "
                    "interval: 200ms, timeout: 150ms }",
                    "{ name: tick, type: command, interval: 100ms, timeout: 90ms, "
                    "command: [/bin/true] }",
                ], site=f"site-{i % 2 + 1}", heartbeat="1s")))

    # -- what the cluster says, through its one HTTP address

    def api(self, path):
        status, body = http_request(f"http://127.0.0.1:{self.proxy.http_port}{path}")
        if status != 200:
            raise ValueError(f"{path}: {status} {body}")
        return body

    def agent_states(self):
        return {a["id"]: a for a in self.api("/api/v1/agents")}

    def tickets(self):
        return self.api("/api/v1/tickets?limit=1000")["tickets"]

    def leader(self):
        """The collector whose /api/v1/leader answers 200, if exactly one does."""
        leaders = [c for c in self.collectors
                   if c.alive() and http_request(f"http://127.0.0.1:{c.http_port}"
                                                 "/api/v1/leader", timeout=2)[0] == 200]
        return leaders[0] if len(leaders) == 1 else None

    def last_reports(self, agents):
        names = ",".join(f"'{a}'" for a in agents)
        return [float(r[0]) for r in self.sql(f"SELECT last_report FROM agents WHERE id IN ({names})")]

    def sql(self, query):
        return self.pg.psql(query)

    def check_every_result_once(self):
        """Stops the agents; every result exactly once: seqs 1..last, each counted once, whoever
        took it; what the agents still hold when they stop is the rest of their seqs."""
        for agent in self.agents:
            agent.stop()
        stored = {r[0]: int(r[1]) for r in self.sql("SELECT id, watermark FROM agents")}
        wait_for("the leader to have every report", lambda: all(
            a["last_seq"] == stored[a["id"]] for a in self.agent_states().values()))
        for agent in self.agents:
            name = os.path.basename(agent.config)[:-5]
            held, last_seq, dropped = spool_state(agent.spool)
            a = self.agent_states()[name]
            self.assertEqual(dropped, 0)
            self.assertEqual(a["results"], a["last_seq"], f"{name}: each seq exactly once")
            self.assertEqual(stored[name] + held, last_seq, f"{name}: stored or still held")
        self.assertEqual(self.sql("SELECT count(*) FROM agent_seqs"), [["0"]])

    def test_the_database_restarted_under_load_loses_nothing(self):
        wait_for("every agent reporting", lambda: len(self.agent_states()) == AGENTS, timeout=30)
        # A follower reloads its configuration as the leader does (it changes no desk rows).
        self.collectors[1].proc.send_signal(signal.SIGHUP)
        wait_for("the follower reloaded", lambda: "reloaded:" in self.collectors[1].output())
        self.services[0].stop()
        wait_for("the ticket", lambda: any(t["agent"] == "agent-01" and t["status"] == "open"
                                           for t in self.tickets()), timeout=15)
        self.pg.down()
        time.sleep(6)  # longer than the lease: nobody may act on the desk meanwhile
        self.assertIsNone(self.leader())
        self.assertTrue(all(c.alive() for c in self.collectors))
        self.pg.up()
        wait_for("a leader again", self.leader, timeout=20, interval=0.2)
        self.services[0].start()
        wait_for("the ticket resolved", lambda: all(
            t["status"] == "resolved" for t in self.tickets()), timeout=30)
        for agent in self.agents:
            wait_for("the spool to drain", lambda: spool_state(agent.spool)[0] == 0, timeout=30)
        self.check_every_result_once()
        tickets = self.tickets()
        self.assertEqual(len(tickets), 1, [(t["key"], t["status"]) for t in tickets])

    @timing
    def test_leader_killed_under_load_loses_and_doubles_nothing(self):
        wait_for("every agent reporting", lambda: len(self.agent_states()) == AGENTS and all(
            a["results"] > 20 for a in self.agent_states().values()), timeout=30)
        self.assertEqual(self.leader(), self.collectors[0])
        self.assertIn('dozor_collector_leader{node="c1"} 1', self.collectors[0].metrics())
        self.assertIn('dozor_collector_leader{node="c2"} 0', self.collectors[1].metrics())
        status, body = self.collectors[1].api("GET", "/api/v1/tickets")
        self.assertEqual((status, body["reason"]), (503, "not_leader"), body)
        self.assertIn("c1", body["error"])

        failovers, served = [], []
        for kill in range(KILLS):
            # A failure at one site, then the leader dies while it is being worked.
            failing = kill % AGENTS
            self.services[failing].stop()
            wait_for(f"the ticket for agent-{failing + 1:02}", lambda: any(
                t["agent"] == f"agent-{failing + 1:02}" and t["status"] == "open"
                for t in self.tickets()), timeout=15)
            if kill == 1:  # an agent falls silent (its process stopped, not its connection cut)
                self.agents[4].proc.send_signal(signal.SIGSTOP)
            leader = self.leader()
            self.assertIsNotNone(leader)
            killed_at = time.time()
            leader.proc.kill()
            leader.proc.wait()
            # Every agent that is running is served again, by whichever collector: those on the
            # killed one reconnect through haproxy (the store says when each was last heard).
            running = [f"agent-{i + 1:02}" for i in range(AGENTS) if not (kill == 1 and i == 4)]
            wait_for("every running agent served again", lambda: all(
                t > killed_at for t in self.last_reports(running)), timeout=20, interval=0.1)
            served.append(time.time() - killed_at)
            new = wait_for("another collector to lead", self.leader, timeout=20, interval=0.1)
            failovers.append(time.time() - killed_at)
            self.assertIsNot(new, leader)
            leader.log.close()
            leader.restart()
            self.services[failing].start()
            if kill == 1:
                wait_for("the silent-agent ticket", lambda: any(
                    t["rule"] == "agent-silent" and t["status"] == "open"
                    for t in self.tickets()), timeout=20)
                self.agents[4].proc.send_signal(signal.SIGCONT)

        # Everything recovers; the spools drain; the outbox empties.
        wait_for("every ticket resolved", lambda: all(
            t["status"] in ("resolved", "closed") for t in self.tickets()), timeout=30)
        for agent in self.agents:
            wait_for("the spool to drain", lambda: spool_state(agent.spool)[0] == 0, timeout=30)
        wait_for("the outbox delivered", lambda: self.sql("SELECT count(*) FROM outbox")
                 == [["0"]], timeout=30)

        self.check_every_result_once()

        # One ticket per incident: each key's failures fold into its one ticket (reopened).
        self.assertEqual(self.sql("SELECT key, count(*) FROM tickets GROUP BY key "
                                  "HAVING count(*) > 1"), [])
        keys = {r[0] for r in self.sql("SELECT key FROM tickets")}
        self.assertEqual(len([k for k in keys if k.endswith("/erp-port/probe-critical")]),
                         min(KILLS, AGENTS))
        self.assertEqual(len([k for k in keys if k.endswith("/agent-silent")]), 1)

        # Timers fired once: escalations of one ticket at least a reaction target apart, and
        # one silent ticket for one silence.
        events = self.sql("SELECT ticket, event, at FROM ticket_events ORDER BY ticket, id")
        escalated = {}
        for ticket, event, at in events:
            if event == "escalated":
                escalated.setdefault(ticket, []).append(float(at))
        self.assertTrue(escalated, "no ticket escalated")
        for ticket, times in escalated.items():
            gaps = [b - a for a, b in zip(times, times[1:])]
            self.assertTrue(all(g >= ESCALATE_AFTER - 0.5 for g in gaps), (ticket, gaps))

        # Every notification delivered to the webhook: each event once per Idempotency-Key; a
        # leader killed between a delivery and its record sends that one again (at most one a
        # kill), with the same key.
        ids = {r[0] for r in self.sql("SELECT id FROM ticket_events")}
        delivered = [r["idempotency_key"] for r in self.hook.accepted()]
        self.assertEqual(set(delivered), ids)
        duplicates = len(delivered) - len(set(delivered))
        self.assertLessEqual(duplicates, KILLS)
        # Alertmanager holds no alert of a resolved ticket once the leader re-sent the state.
        wait_for("Alertmanager without active alerts", lambda: not [
            a for a in self.am.alerts() if a["status"]["state"] == "active"], timeout=20)

        figure("failover_max_s", round(max(failovers), 2))
        figure("served_again_max_s", round(max(served), 2))
        figure("notification_duplicates", duplicates)
        self.assertLessEqual(max(failovers), 10)
        self.assertLessEqual(max(served), 5)


    def test_a_revocation_through_the_leader_holds_on_every_collector(self):
        wait_for("every agent reporting", lambda: len(self.agent_states()) == AGENTS, timeout=30)
        # Five agents over three collectors: some are connected to followers.
        for i in range(AGENTS):
            status, body = http_request(
                f"http://127.0.0.1:{self.proxy.http_port}/api/v1/agents/agent-{i + 1:02}/revoke",
                "POST", {"by": "duty", "comment": "machines stolen"}, self.token)
            self.assertEqual(status, 200, body)
        # A follower refuses the agent's next report (the store says it is revoked) and its
        # handshakes from then on: the agents, forgotten by the leader, stay forgotten.
        time.sleep(1)
        self.assertEqual(self.sql("SELECT count(*) FROM agents"), [["0"]])
        time.sleep(3)
        self.assertEqual(self.sql("SELECT count(*) FROM agents"), [["0"]],
                         "a revoked agent reported through a follower")
        leader = self.leader()
        self.assertTrue(any("was revoked" in c.output() or "revoked through another" in
                            c.output() for c in self.collectors if c is not leader))

if __name__ == "__main__":
    main()
