"""The http probe's steps against a real web server: Debian's nginx with basic auth in front of
a small web publication (web_publication.py) that needs a form login, sets a cookie and serves
JSON, as a 1C publication's client goes through it. The real dozor-agent --once runs them."""
import json
import os
import subprocess
import sys

from harness import AGENT, IntegrationCase, Nginx, Process, free_port, main, wait_for

BACKEND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_publication.py")


class WebSteps(IntegrationCase):
    def setUp(self):
        super().setUp()
        backend_port = free_port()
        self.start(Process([sys.executable, BACKEND, str(backend_port)],
                           os.path.join(self.dir, "backend.log")))
        users = os.path.join(self.dir, "odata.users")
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "odata-secret"], check=True,
                                capture_output=True, text=True).stdout.strip()
        with open(users, "w") as f:
            f.write(f"odata:{hashed}\n")
        self.nginx = self.start(Nginx(self.dir, free_port()))
        proxy = f"proxy_pass http://127.0.0.1:{backend_port}; proxy_set_header Host $host;"
        self.nginx.serve(f"""http {{
  access_log off;
  client_body_temp_path {self.nginx.dir}/body;
  proxy_temp_path {self.nginx.dir}/proxy;
  server {{
    listen 127.0.0.1:{self.nginx.port};
    location /erp/odata/ {{ auth_basic "1C OData"; auth_basic_user_file {users}; {proxy} }}
    location / {{ {proxy} }}
  }}
}}""")
        wait_for("the publication", lambda: "200" in subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
             f"http://127.0.0.1:{self.nginx.port}/erp/"], capture_output=True, text=True).stdout)

    def run_steps(self, steps, password="odata-secret"):
        config = os.path.join(self.dir, "agent.yaml")
        with open(config, "w") as f:
            f.write("agent: { site: acme-kyiv }\n"
                    'collector: { url: "https://127.0.0.1:1", ca: x, cert: x, key: x }\n'
                    "probes:\n"
                    f"  - name: erp-web\n    type: http\n"
                    f"    url: http://127.0.0.1:{self.nginx.port}/erp/\n"
                    f"    timeout: 10s\n    interval: 30s\n    steps:\n" + steps)
        out = subprocess.run([AGENT, "--once", "--format", "json", "--config", config],
                             capture_output=True, text=True, timeout=30,
                             env={**os.environ, "ODATA_PASSWORD": password})
        self.assertEqual(out.stderr, "")
        return json.loads(out.stdout)[0]

    STEPS = """\
      - { name: start, url: /erp/, expect_body: '1С:Предприятие', capture: { csrf: 'regex:name="csrf" value="([^"]+)"' } }
      - name: login
        method: POST
        url: login
        headers: { Content-Type: application/x-www-form-urlencoded }
        body: user=Оператор&csrf=${csrf}
        expect_header: { Set-Cookie: ibsession= }
      - { name: orders, url: hs/orders/list, capture: { order: 'json:/value/0/Ref_Key' } }
      - { name: order, url: 'hs/orders/${order}', expect_json: { /Code: '000000001' } }
      - { name: odata-metadata, url: 'odata/standard.odata/$metadata', username: odata, password_env: ODATA_PASSWORD, expect_body: 'Catalog_Контрагенты' }
      - { name: odata-catalog, url: 'odata/standard.odata/Catalog_Контрагенты?$top=1&$format=json', username: odata, password_env: ODATA_PASSWORD, expect_json: { /value/0/Description: ООО Ромашка } }
      - { name: logout, method: POST, url: /erp/logout, timeout: 2s }
"""

    def test_every_step_of_a_publication_passes_with_captures_and_the_cookie(self):
        r = self.run_steps(self.STEPS)
        self.assertEqual(r["status"], "ok", r["summary"])
        self.assertRegex(r["summary"], r"^7 steps passed in ")
        steps = [m["labels"]["step"] for m in r["metrics"] if m["name"] == "step_seconds"]
        self.assertEqual(steps, ["start", "login", "orders", "order", "odata-metadata",
                                 "odata-catalog", "logout"])
        codes = {m["labels"]["step"]: m["value"] for m in r["metrics"]
                 if m["name"] == "step_status_code"}
        self.assertEqual(set(codes.values()), {200.0})
        self.assertIn({"name": "steps_passed", "value": 7.0}, r["metrics"])

    def test_the_first_failing_step_is_named_and_the_rest_do_not_run(self):
        r = self.run_steps(self.STEPS, password="wrong")
        self.assertEqual(r["status"], "critical")
        self.assertEqual(r["summary"], "step 5/7 'odata-metadata': HTTP 401, expected 200")
        steps = [m["labels"]["step"] for m in r["metrics"] if m["name"] == "step_seconds"]
        self.assertEqual(steps[-1], "odata-metadata")  # the catalogue and logout never ran
        self.assertIn({"name": "steps_passed", "value": 4.0}, r["metrics"])

        # Without the login step the cookie is missing: the HTTP service refuses.
        no_login = "\n".join(line for i, line in enumerate(self.STEPS.splitlines())
                             if not (1 <= i <= 6)) + "\n"
        r = self.run_steps(no_login)
        self.assertEqual(r["summary"], "step 2/6 'orders': HTTP 401, expected 200")

        wrong = self.STEPS.replace("/Code: '000000001'", "/Code: '000000002'")
        r = self.run_steps(wrong)
        self.assertEqual(r["summary"],
                         "step 4/7 'order': /Code is '000000001', expected '000000002'")


if __name__ == "__main__":
    main()
