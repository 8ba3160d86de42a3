"""A small stand-in for a 1C:Enterprise web publication, behind Debian's nginx in the tests: a
start page with a login form (a CSRF token in it), a form login that sets a session cookie, a JSON
HTTP service that needs the cookie, the OData interface (behind nginx's basic auth), a logout.
Run as: web_publication.py PORT"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

CSRF = "c5f1e2a9"
SESSION = "ibs-7d41"
ORDERS = {"value": [{"Ref_Key": "0b5e8a3c-5d1f-11ee-8c90-0242ac120002", "Code": "000000001",
                     "Description": "Заказ покупателя"}]}


class Publication(BaseHTTPRequestHandler):
    def answer(self, status, body, content_type="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def logged_in(self):
        return f"ibsession={SESSION}" in self.headers.get("Cookie", "")

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/erp/":
            return self.answer(200, f'<html><title>1С:Предприятие</title><form action="login">'
                                    f'<input name="csrf" value="{CSRF}"></form></html>',
                               "text/html; charset=utf-8")
        if url.path == "/erp/hs/orders/list":
            if not self.logged_in():
                return self.answer(401, '{"error": "not logged in"}')
            return self.answer(200, json.dumps(ORDERS, ensure_ascii=False))
        if url.path.startswith("/erp/hs/orders/"):
            if not self.logged_in():
                return self.answer(401, '{"error": "not logged in"}')
            ref = url.path.rsplit("/", 1)[1]
            order = next((o for o in ORDERS["value"] if o["Ref_Key"] == ref), None)
            return self.answer(200 if order else 404, json.dumps(order or {}, ensure_ascii=False))
        if url.path == "/erp/odata/standard.odata/$metadata":
            return self.answer(200, '<?xml version="1.0"?><edmx:Edmx Version="1.0">'
                                    '<EntityType Name="Catalog_Контрагенты"/></edmx:Edmx>',
                               "application/xml")
        if url.path.startswith("/erp/odata/standard.odata/Catalog_"):
            top = parse_qs(url.query).get("$top", ["0"])[0]
            return self.answer(200, json.dumps({"odata.metadata": "...", "value": [
                {"Ref_Key": "e1b2", "Description": "ООО Ромашка"}][:int(top)]},
                ensure_ascii=False))
        return self.answer(404, '{"error": "no such page"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        if self.path == "/erp/login":
            if form.get("csrf") != [CSRF] or form.get("user") != ["Оператор"]:
                return self.answer(403, '{"error": "bad login"}')
            return self.answer(200, '{"ok": true}', headers=[
                ("Set-Cookie", f"ibsession={SESSION}; Path=/erp; HttpOnly")])
        if self.path == "/erp/logout":
            return self.answer(200, '{"ok": true}', headers=[
                ("Set-Cookie", "ibsession=; Path=/erp; Max-Age=0")])
        return self.answer(404, '{"error": "no such page"}')

    def log_message(self, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Publication).serve_forever()
