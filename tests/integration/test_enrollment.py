"""Enrollment with one-time tokens, renewal of short-lived certificates, revocation and the CRL:
the real dozor-agent, dozor-collector and dozorctl, real openssl, on 127.0.0.1."""
import glob
import json
import os
import socket
import ssl
import stat
import subprocess
import time

from harness import (AGENT, COLLECTOR, DOZORCTL, Agent, Certs, Collector, CollectorCase,
                     api_token_file, main, post_raw, sample, spool_state, timing, tls_client,
                     wait_for)

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
PROBE = "{ name: disk, type: disk, path: /, interval: 500ms }"


class EnrollmentCase(CollectorCase):
    """A collector that enrolls agents (its issuing CA is the CA of self.certs), under
    libfaketime so that a test can move its wall clock (FAKETIME_TIMESTAMP_FILE)."""

    lifetime = "30d"

    def setUp(self):
        super().setUp()
        self.token_file, _ = api_token_file(self.dir)
        self.clock = os.path.join(self.dir, "faketime")
        self.set_clock("+0")
        self.collector.stop()
        self.collector = self.start(Collector(
            self.dir, self.certs.files("collector"),
            extra=f"api: {{ token_file: {self.token_file} }}\n"
                  f"enroll: {{ ca_cert: {self.certs.dir}/ca.pem, ca_key: {self.certs.dir}/ca.key,"
                  f" cert_lifetime: {self.lifetime}, per_source: 40 }}\n",
            env={"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": self.clock,
                 "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}))

    def set_clock(self, offset):
        with open(self.clock, "w") as f:
            f.write(offset + "\n")

    def ctl(self, *args, check=True):
        out = subprocess.run([DOZORCTL, "--url", f"http://127.0.0.1:{self.collector.http_port}",
                              "--token-file", self.token_file, *args],
                             capture_output=True, text=True, timeout=20)
        if check:
            self.assertEqual(out.returncode, 0, out.stderr)
        return out

    def token(self, agent, site="acme-kyiv", *args):
        return self.ctl("enroll", "create", "--agent", agent, "--site", site, *args).stdout.strip()

    def site(self, name, config_site="acme-kyiv"):
        """A site machine's folder with an agent.yaml whose certificate files do not exist yet."""
        folder = os.path.join(self.dir, name)
        os.makedirs(folder, exist_ok=True)
        files = {k: os.path.join(folder, f) for k, f in
                 (("ca", "ca.pem"), ("cert", "agent.pem"), ("key", "agent.key"))}
        return folder, files

    def enroll(self, folder, files, token, *args):
        config = os.path.join(folder, "enroll.yaml")
        with open(config, "w") as f:
            f.write(f'agent: {{ site: acme-kyiv }}\ncollector: {{ url: "{self.collector.url}", '
                    f'ca: {files["ca"]}, cert: {files["cert"]}, key: {files["key"]} }}\n')
        return subprocess.run([AGENT, "enroll", "--config", config, "--token", token, *args],
                              capture_output=True, text=True, timeout=30)

    def enrollments(self, result):
        return sample(self.collector.metrics(), "dozor_enrollments_total", result=result) or 0


class EnrollmentTest(EnrollmentCase):
    def test_a_fresh_agent_enrolls_reports_and_every_wrong_token_is_refused(self):
        folder, files = self.site("erp-01")
        token = self.token("erp-01")
        self.assertRegex(token, r"^dz1\.[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{22}$")
        out = self.enroll(folder, files, token)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("enrolled as agent erp-01 at site acme-kyiv", out.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(files["key"]).st_mode), 0o640)
        subject = subprocess.run(["openssl", "x509", "-in", files["cert"], "-noout", "-subject"],
                                 capture_output=True, text=True, check=True).stdout
        self.assertIn("CN = erp-01, OU = acme-kyiv", subject)
        verify = subprocess.run(["openssl", "verify", "-CAfile", files["ca"], files["cert"]],
                                capture_output=True, text=True)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

        # The agent reports with the token's site, whatever its config says.
        agent = self.start(Agent(self.dir, "erp-01", self.collector.url, files, [PROBE],
                                 site="somewhere-else"))
        wait_for("erp-01 reporting", lambda: (self.agent_state("erp-01") or {}).get("results"))
        self.assertEqual(self.agent_state("erp-01")["site"], "acme-kyiv")

        # The key was made at the site and never reached the collector: not in its folder, its
        # store or its log.
        with open(files["key"]) as f:
            body = "".join(line for line in f.read().splitlines() if "PRIVATE KEY" not in line)
        for path in glob.glob(os.path.join(self.dir, "**"), recursive=True):
            if os.path.isfile(path) and not path.startswith(folder + os.sep):
                with open(path, "rb") as f:
                    self.assertNotIn(body.encode(), f.read(), path)

        # A machine with a certificate is not enrolled over it by mistake: nothing is sent.
        again_here = self.enroll(folder, files, "dz1." + "A" * 32 + "." + "A" * 22)
        self.assertEqual(again_here.returncode, 1)
        self.assertIn("exists: this machine has a certificate already", again_here.stderr)

        # The same token again: used.
        again = self.enroll(*self.site("thief"), token)
        self.assertEqual(again.returncode, 1)
        self.assertIn("was already used (1 of 1 uses)", again.stderr)
        self.assertEqual(self.enrollments("token_used"), 1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "thief", "agent.key")))

        # A token for erp-02 presented for another id: refused; then good for erp-02 itself.
        token2 = self.token("erp-02")
        other = self.enroll(*self.site("erp-02"), token2, "--agent", "erp-03")
        self.assertEqual(other.returncode, 1)
        self.assertIn("is not for agent id 'erp-03'", other.stderr)
        self.assertEqual(self.enrollments("token_other_agent"), 1)

        # Expired: the collector restarted with its clock 2 minutes past a 1-minute token (a
        # running collector slews a clock step in slowly).
        short = self.token("erp-04", "acme-kyiv", "--ttl", "1m")
        self.set_clock("+120")
        self.collector.stop()
        self.collector.restart()
        expired = self.enroll(*self.site("erp-04"), short)
        self.assertEqual(expired.returncode, 1)
        self.assertIn("expired at", expired.stderr)
        self.assertEqual(self.enrollments("token_expired"), 1)

        # Revoked before use.
        token5 = self.token("erp-05")
        tokens = json.loads(self.ctl("--json", "enroll", "list").stdout)["tokens"]
        token5_id = next(t["id"] for t in tokens if t["agent"] == "erp-05")
        self.ctl("enroll", "revoke", token5_id)
        revoked = self.enroll(*self.site("erp-05"), token5)
        self.assertIn("was revoked at", revoked.stderr)
        # Unknown (a secret mistyped), the same answer whatever id it was meant for.
        mangled = token5[:5] + ("A" if token5[5] != "A" else "B") + token5[6:]
        unknown = self.enroll(*self.site("erp-06"), mangled)
        self.assertIn("token not known to this collector", unknown.stderr)
        self.assertEqual(self.enrollments("token_unknown"), 1)

        # A token whose pin is not this collector's CA: the agent sends nothing.
        before = self.collector.output().count("enrollment from")
        wrong_pin = token2[:-22] + "A" * 22
        pinned = self.enroll(*self.site("erp-07"), wrong_pin)
        self.assertEqual(pinned.returncode, 1)
        self.assertIn("does not match the token's pin", pinned.stderr)
        self.assertIn("Nothing was sent", pinned.stderr)
        self.assertEqual(self.collector.output().count("enrollment from"), before)

        # Every refusal is logged at the collector, with where it came from.
        self.assertRegex(self.collector.output(), r"enrollment from 127\.0\.0\.1 refused: token \w+ "
                                                  r"was already used")
        status, listing = self.collector.api("GET", "/api/v1/enroll/tokens")
        states = {t["agent"]: t["state"] for t in listing["tokens"]}
        self.assertEqual(states["erp-01"], "used")
        self.assertEqual(states["erp-05"], "revoked")
        self.assertNotIn("token", listing["tokens"][0])  # the secret is shown once, at create
        self.assertNotIn(token.split(".")[1], json.dumps(listing))

        # Without a certificate only enrollment is served.
        raw = tls_client({"ca": files["ca"]}, self.collector.agents_port)
        status, body = post_raw(raw, "/v1/report", b"{}")
        self.assertEqual((status, body["reason"]), (403, "no_certificate"))
        agent.stop()

    def test_one_id_one_machine_unless_replaced_and_revocation_reaches_every_certificate(self):
        folder, files = self.site("old-machine")
        self.assertEqual(self.enroll(folder, files, self.token("erp-01")).returncode, 0)
        old = self.start(Agent(self.dir, "old", self.collector.url, files, [PROBE]))
        wait_for("old machine reporting", lambda: self.agent_state("erp-01"))

        # A second token for an id in use is refused (Wazuh's two agents deleting each other's
        # keys), unless the id moves to a new machine with --replace.
        dup = self.ctl("enroll", "create", "--agent", "erp-01", "--site", "acme-kyiv", check=False)
        self.assertEqual(dup.returncode, 1)
        self.assertIn("already has a certificate in use", dup.stderr)
        new_folder, new_files = self.site("new-machine")
        replaced = self.enroll(new_folder, new_files, self.token("erp-01", "acme-kyiv", "--replace"))
        self.assertEqual(replaced.returncode, 0, replaced.stderr)
        wait_for("the old machine cut off", lambda: "revoked" in self.collector.output() and
                 (sample(self.collector.metrics(), "dozor_ingest_rejected_total",
                         reason="revoked") or 0) >= 1)
        new = self.start(Agent(self.dir, "new", self.collector.url, new_files, [PROBE]))
        new_serial = subprocess.run(["openssl", "x509", "-in", new_files["cert"], "-noout",
                                     "-serial"], capture_output=True, text=True,
                                    check=True).stdout.strip().split("=")[1]
        wait_for("the new machine reporting as erp-01", lambda: self.agent_state("erp-01").get(
            "certificate", {}).get("serial") == new_serial)
        self.assertIn("replaced by an enrollment with token", self.collector.output())

        # Revoking the agent revokes every certificate it may still use, and its tokens.
        pending = self.token("erp-01", "acme-kyiv", "--replace")
        out = self.ctl("agents", "revoke", "erp-01", "--comment", "client left")
        self.assertIn("agent erp-01 revoked", out.stdout)
        late = self.enroll(*self.site("late"), pending)
        self.assertIn("was revoked at", late.stderr)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            s = tls_client(new_files, self.collector.agents_port)
            post_raw(s, "/v1/renew", b"")

        # The CRL, signed by the issuing CA, lists both certificates; openssl refuses them by it.
        crl = os.path.join(self.dir, "crl.pem")
        self.ctl("crl", "-o", crl)
        listed = subprocess.run(["openssl", "crl", "-in", crl, "-CAfile", files["ca"], "-noout",
                                 "-text"], capture_output=True, text=True)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("verify OK", listed.stderr + listed.stdout)
        for f in (files["cert"], new_files["cert"]):
            serial = subprocess.run(["openssl", "x509", "-in", f, "-noout", "-serial"],
                                    capture_output=True, text=True, check=True).stdout
            self.assertIn(serial.strip().split("=")[1], listed.stdout)
            check = subprocess.run(["openssl", "verify", "-crl_check", "-CRLfile", crl, "-CAfile",
                                    files["ca"], f], capture_output=True, text=True)
            self.assertNotEqual(check.returncode, 0)
            self.assertIn("certificate revoked", check.stdout + check.stderr)
        old.stop()
        new.stop()

    def test_check_config_refuses_an_issuing_key_that_is_not_the_cas(self):
        other = Certs(os.path.join(self.dir, "other-ca"))
        with open(self.collector.config) as f:
            config = f.read().replace(f"{self.certs.dir}/ca.key", f"{other.dir}/ca.key")
        bad = os.path.join(self.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write(config)
        out = subprocess.run([COLLECTOR, "--config", bad, "--check-config"], capture_output=True,
                             text=True, timeout=20)
        self.assertEqual(out.returncode, 2)
        self.assertIn(f"enroll: enroll.ca_key {other.dir}/ca.key is not the key of", out.stderr)

    def test_the_enrollment_endpoint_is_rate_limited_per_address(self):
        ctx = ssl.create_default_context(cafile=self.certs.files("collector")["ca"])

        def ask():
            with socket.create_connection(("127.0.0.1", self.collector.agents_port)) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET /v1/enroll/ca HTTP/1.1\r\nHost: x\r\n\r\n")
                    return int(s.recv(4096).split()[1])
        start = time.monotonic()
        answers = [ask() for _ in range(45)]
        # per_source: 40 a minute, a bucket that refills meanwhile (40/60 a second)
        refilled = int((time.monotonic() - start) * 40 / 60)
        self.assertEqual(answers[:40], [200] * 40)
        self.assertIn(answers.count(200), range(40, 41 + refilled))
        self.assertIn(429, answers[40:])
        self.assertEqual(self.enrollments("rate_limited"), answers.count(429))

    def test_an_intermediate_ca_signs_while_the_root_key_stays_offline(self):
        ca = self.certs.dir
        inter = os.path.join(self.dir, "issuing")
        os.makedirs(inter)
        ext = os.path.join(inter, "ext.cnf")
        with open(ext, "w") as f:
            f.write("[v3]\nbasicConstraints = critical,CA:TRUE,pathlen:0\n"
                    "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid:always\n")
        for argv in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", f"{inter}/issuing.key"],
                     ["req", "-new", "-key", f"{inter}/issuing.key", "-subj",
                      "/CN=dozor issuing CA", "-out", f"{inter}/issuing.csr"],
                     ["x509", "-req", "-in", f"{inter}/issuing.csr", "-CA", f"{ca}/ca.pem",
                      "-CAkey", f"{ca}/ca.key", "-set_serial", "0x1234", "-days", "30",
                      "-extfile", ext, "-extensions", "v3", "-out", f"{inter}/issuing.pem"]):
            subprocess.run(["openssl", *argv], check=True, capture_output=True)
        os.remove(f"{ca}/ca.key")  # offline from here on
        self.collector.stop()
        self.collector = self.start(Collector(
            self.dir, self.certs.files("collector"),
            extra=f"api: {{ token_file: {self.token_file} }}\n"
                  f"enroll: {{ ca_cert: {inter}/issuing.pem, ca_key: {inter}/issuing.key }}\n"))
        folder, files = self.site("erp-01")
        out = self.enroll(folder, files, self.token("erp-01"))
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(files["cert"]) as f:
            self.assertEqual(f.read().count("BEGIN CERTIFICATE"), 2)  # the agent's, the issuer's
        verify = subprocess.run(["openssl", "verify", "-CAfile", files["ca"], "-untrusted",
                                 files["cert"], files["cert"]], capture_output=True, text=True)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        agent = self.start(Agent(self.dir, "erp-01", self.collector.url, files, [PROBE]))
        wait_for("erp-01 reporting", lambda: (self.agent_state("erp-01") or {}).get("results"))
        agent.stop()

    @timing
    def test_enrollment_to_first_report_takes_under_2_seconds(self):
        folder, files = self.site("erp-01")
        token = self.token("erp-01")
        start = time.time()
        self.assertEqual(self.enroll(folder, files, token).returncode, 0)
        enrolled = time.time() - start
        self.start(Agent(self.dir, "erp-01", self.collector.url, files, [PROBE]))
        first = wait_for("first report", lambda: (self.agent_state("erp-01") or {}).get(
            "first_seen"))
        from harness import parse_time
        took = parse_time(first) - start
        print(f"\n  enrollment: dozor-agent enroll {enrolled * 1000:.0f} ms, "
              f"to the first report {took * 1000:.0f} ms")
        self.assertLess(took, 2.0)


class RenewalTest(EnrollmentCase):
    lifetime = "30s"

    def test_short_certificates_renew_themselves_while_results_flow(self):
        folder, files = self.site("erp-01")
        self.assertEqual(self.enroll(folder, files, self.token("erp-01")).returncode, 0)
        agent = self.start(Agent(self.dir, "erp-01", self.collector.url, files, [PROBE]))

        def renewals():
            status, body = self.collector.api("GET", "/api/v1/certificates?agent=erp-01")
            return [c for c in body["certificates"] if c["how"].startswith("renew ")]
        # Each renewal at 2/3 of 30 s (less up to 1.5 s of jitter): 3 within ~60 s.
        wait_for("three renewals", lambda: len(renewals()) >= 3, timeout=75, interval=0.5)
        time.sleep(1)
        serials = [c["serial"] for c in renewals()]
        self.assertEqual(len(set(serials)), len(serials))
        # Every renewal names the certificate it replaced: a chain, not a storm.
        chain = [c["how"].split()[1] for c in renewals()]
        status, body = self.collector.api("GET", "/api/v1/certificates?agent=erp-01")
        every = [c["serial"] for c in body["certificates"]]
        self.assertEqual(chain, every[:len(chain)])
        # One reconnect per renewal, no more.
        connections = sample(self.collector.metrics(), "dozor_agent_connections_total",
                             agent="erp-01")
        self.assertLessEqual(connections, len(every) + 1)
        # The certificate in use is the newest; nothing lost or refused meanwhile.
        state = self.agent_state("erp-01")
        self.assertEqual(state["certificate"]["serial"], every[-1])
        self.assertTrue(agent.alive())
        agent.stop()
        held, _, _ = spool_state(agent.spool)
        state = self.agent_state("erp-01")
        self.assertEqual(held, 0)
        self.assertEqual(state["dropped"], 0)
        self.assertEqual(state["results"], state["last_seq"])
        self.assertGreater(state["results"], 100)
        self.assertNotIn("renewal refused", agent.output())


if __name__ == "__main__":
    main()
