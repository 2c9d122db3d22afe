"""Admission latency of the mesh webhook: p50/p99 over N AdmissionReviews sent over HTTPS to the running server.

    ./run bench admission_bench [N]      # default 1000

Three figures: reviews on one kept-alive TLS connection (what the API server does), reviews each on a new
connection (TLS handshake included, with the certificate-change check that runs on every handshake), and the
handler alone (build the patch, no network). The goal is p99 < 20 ms on the kept-alive path.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.controller.mesh_fixtures import MESH, SERVICE_DNS, admission_review, app_pod, make_pki
from tyk_controller.config import WebhookServer
from tyk_controller.mesh.server import AdmissionServer, review_response


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(label: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"{label:<34} n={len(ms):>5}  p50={percentile(ms, 0.50):7.2f} ms  p99={percentile(ms, 0.99):7.2f} ms"
        f"  max={max(ms):7.2f} ms  mean={statistics.fmean(ms):6.2f} ms"
    )


def connect(port: int, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    # With its own context: HTTPSConnection would otherwise load the system CA store (~100 ms) every time.
    connection = http.client.HTTPSConnection(SERVICE_DNS, port, timeout=10, context=context)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    # Go's net package (the API server's client) sets TCP_NODELAY on every connection; without it Nagle plus
    # delayed ACKs add ~40 ms to each request that http.client writes in two pieces.
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sock = context.wrap_socket(raw, server_hostname=SERVICE_DNS)
    return connection


def one(connection: http.client.HTTPSConnection, body: bytes) -> float:
    start = time.perf_counter()
    connection.request("POST", "/mutate-pods", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    elapsed = time.perf_counter() - start
    assert response.status == 200 and answer["response"]["patchType"] == "JSONPatch"
    return elapsed


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = WebhookServer(port=port, cert_file=str(pki.cert_file), key_file=str(pki.key_file))
        loop = asyncio.new_event_loop()
        server = AdmissionServer(settings, MESH, host="127.0.0.1")
        loop.run_until_complete(server.start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            context = ssl.create_default_context(cadata=pki.ca_pem.decode())
            bodies = [json.dumps(admission_review(app_pod(f"app{i % 50}"))).encode() for i in range(n)]
            connection = connect(port, context)
            for body in bodies[:20]:  # warm-up
                one(connection, body)
            kept_alive = [one(connection, body) for body in bodies]
            connection.close()

            fresh = []
            for body in bodies[: max(1, n // 5)]:
                start = time.perf_counter()
                connection = connect(port, context)
                one(connection, body)
                fresh.append(time.perf_counter() - start)
                connection.close()

            reviews = [json.loads(body) for body in bodies]
            handler = []
            for review in reviews:
                start = time.perf_counter()
                answer, _ = review_response(review, MESH)
                json.dumps(answer)
                handler.append(time.perf_counter() - start)
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
    print(f"admission webhook, {n} AdmissionReview v1 requests (Pod CREATE, opted in, patched)")
    report("HTTPS, one kept-alive connection", kept_alive)
    report("HTTPS, new connection each", fresh)
    report("handler only (no network)", handler)
    size = len(bodies[0])
    print(
        f"request body {size} bytes; p99 goal 20 ms (kept-alive): {'met' if percentile(kept_alive, 0.99) < 0.02 else 'MISSED'}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
