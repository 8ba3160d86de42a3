#!/usr/bin/env python3
"""A webhook receiver for tests (Python standard library only).

    webhook_receiver.py --port 0 --out FILE.jsonl [--fail-first N] [--status 500]
                        [--cert CERT.pem --key KEY.pem]

Listens on 127.0.0.1 (HTTPS with --cert and --key) and prints "PORT <n>" as the first line of
stdout once it accepts connections. Every POST is appended to FILE as one JSON line:
{"path", "idempotency_key", "content_type", "headers", "status", "body"}, where status is what
the receiver answered and body is the parsed JSON (or the raw text when it is not JSON). The first N POSTs get
--status; the others 200.
"""
import argparse
import http.server
import json
import ssl
import sys
import threading


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--out", required=True, help="JSON lines file the requests are appended to")
    p.add_argument("--fail-first", type=int, default=0, help="answer --status to the first N")
    p.add_argument("--status", type=int, default=500, help="the failure status (default 500)")
    p.add_argument("--cert", help="PEM certificate: serve HTTPS")
    p.add_argument("--key", help="PEM private key of --cert")
    args = p.parse_args()
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")

    lock = threading.Lock()
    seen = {"posts": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with lock:
                seen["posts"] += 1
                status = args.status if seen["posts"] <= args.fail_first else 200
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                record = {
                    "path": self.path,
                    "idempotency_key": self.headers.get("Idempotency-Key"),
                    "content_type": self.headers.get("Content-Type"),
                    "headers": dict(self.headers.items()),
                    "status": status,
                    "body": body,
                }
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            reply = b'{"ok":true}\n' if status == 200 else b'{"error":"receiver told to fail"}\n'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply)
            self.close_connection = True

        def log_message(self, format, *a):  # the test reads the file, not a log
            pass

    server = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
