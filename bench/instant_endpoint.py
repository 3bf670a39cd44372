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
# The SageMaker control plane's two reads a run makes (which config serves the endpoint), so a
# whole run pointed here (AWS_ENDPOINT_URL_SAGEMAKER) records its serving without another server.
CONTROL_PLANE = {
    "SageMaker.DescribeEndpoint": {
        "EndpointName": "bench", "EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/bench",
        "EndpointConfigName": "bench-config", "EndpointStatus": "InService",
        "CreationTime": 1.8e9, "LastModifiedTime": 1.8e9},
    "SageMaker.DescribeEndpointConfig": {
        "EndpointConfigName": "bench-config",
        "EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/bench-config",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "bench-model"}], "CreationTime": 1.8e9},
}


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
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = self.headers.get("X-Amz-Target")
        if target is not None:
            self._answer(json.dumps(CONTROL_PLANE.get(target, {})).encode(), "application/x-amz-json-1.1")
            return
        if self.latency:
            time.sleep(self.latency)
        self._answer(ANSWER, "application/json")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


def main() -> None:
    InstantEndpoint.latency = float(sys.argv[2]) / 1000.0 if len(sys.argv) > 2 else 0.0
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), InstantEndpoint).serve_forever()


if __name__ == "__main__":
    main()
