"""`python -m bench.instant_endpoint PORT [LATENCY_MS]`: a SageMaker Runtime endpoint that does no work.

InvokeEndpoint on any endpoint name returns the same ten articles with no model work, after
LATENCY_MS (default 0) of sleep. At 0 a client replaying against it spends CPU only on its own side
of each call: the replay benchmark measures the client's per-call cost with it. With a latency it
stands for a remote endpoint, whose work is not on the replaying machine. The standard library's server is
enough here (one small fixed answer); headers and body go out in one write (no Nagle delay).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = json.dumps({"recommendations": [{"article_id": f"a{i:05d}"} for i in range(10)]}).encode()


class InstantEndpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as SageMaker Runtime
    wbufsize = 1 << 16  # buffered: the whole answer leaves in one send at the handler's flush
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # /ping: ready
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    latency = 0.0  # seconds, set by main()

    def do_POST(self) -> None:
        if self.latency:
            time.sleep(self.latency)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args) -> None:
        pass


def main() -> None:
    InstantEndpoint.latency = float(sys.argv[2]) / 1000.0 if len(sys.argv) > 2 else 0.0
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), InstantEndpoint).serve_forever()


if __name__ == "__main__":
    main()
