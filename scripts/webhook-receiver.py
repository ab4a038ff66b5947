#!/usr/bin/env python3
"""A webhook receiver for assay's system tests, verifying every request with the official Standard Webhooks
library for Python (`standardwebhooks` on PyPI), as a shop's back end would.

    webhook-receiver.py --secret whsec_... --log FILE [--gate FILE] [--port N]

Prints "listening on PORT" once it listens, then appends one JSON line per request to FILE:
{"path", "id", "verified", "answered", "job_id", "status", "error", "at"} ("at": seconds since
the Unix epoch when it was answered). What it answers depends on the path:

    /ok      200
    /flaky   503 to the first two attempts of each webhook-id (with Retry-After: 0), then 200
    /never   holds the request without answering (the sender's timeout decides)
    /gone    410
    /gate    503 until the --gate file exists, then 200

A request whose signature does not verify is answered 401 and logged with verified false.
"""

import argparse
import http.server
import json
import os
import sys
import threading
import time

from standardwebhooks.webhooks import Webhook


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--secret", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--gate", default=None)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    hook = Webhook(args.secret)
    attempts = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            entry = {"path": self.path, "id": headers.get("webhook-id"), "verified": False}
            try:
                payload = hook.verify(body, headers)
                entry["verified"] = True
                entry["job_id"] = payload.get("job_id")
                entry["status"] = payload.get("status")
            except Exception as e:  # the library's verification error, or a body that is no JSON
                entry["error"] = f"{type(e).__name__}: {e}"
            with lock:
                n = attempts.get(entry["id"], 0) + 1
                attempts[entry["id"]] = n
            extra = {}
            if not entry["verified"]:
                code = 401
            elif self.path == "/ok":
                code = 200
            elif self.path == "/flaky":
                code = 503 if n <= 2 else 200
                extra = {"Retry-After": "0"}
            elif self.path == "/gone":
                code = 410
            elif self.path == "/gate":
                code = 200 if args.gate and os.path.exists(args.gate) else 503
            elif self.path == "/never":
                entry["answered"] = None
                self.record(entry)
                time.sleep(3600)
                return
            else:
                code = 404
            entry["answered"] = code
            self.record(entry)
            self.send_response(code)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("content-length", "0")
            self.end_headers()

        def record(self, entry):
            entry["at"] = time.time()
            with lock:
                with open(args.log, "a") as f:
                    f.write(json.dumps(entry) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
