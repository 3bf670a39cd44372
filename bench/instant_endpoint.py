"""`python -m bench.instant_endpoint PORT`: a SageMaker Runtime endpoint that answers at once.

InvokeEndpoint on any endpoint name returns the same ten articles with no model work and no
latency, so a client replaying against it spends CPU only on its own side of each call: the
replay benchmark measures the client's per-call cost with it. The standard library's server is
enough here (one small fixed answer); headers and body go out in one write (no Nagle delay).
"""

from __future__ import annotations

import json
import sys
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

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


def main() -> None:
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), InstantEndpoint).serve_forever()


if __name__ == "__main__":
    main()
