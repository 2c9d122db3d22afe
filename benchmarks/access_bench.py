"""Per-call cost of the three ways to reach the control API: direct, service proxy, port-forward.

Run: ``./run bench access_bench [--calls 300] [--apis 50]``

All three end at the same gateway emulator (holding ``--apis`` APIs, so a list is a realistic
payload) and use the provider's own ``GatewayClient`` (keep-alive, one session per thread):

* **direct**: the client talks to the gateway (``access: url`` over a VPN or internal LB);
* **service proxy**: through ``tests/kube_proxy_double.py``, the API server's
  ``services/<name>:<port>/proxy`` path (one HTTP hop, bearer token checked per request);
* **port-forward**: a model of ``kubectl port-forward``: a local listener (kubectl) that, for every
  accepted connection, opens a tunnel to the API server with an HTTP Upgrade handshake and then
  relays bytes in framed chunks (one channel byte + length, as the portforward websocket protocol's
  data channel), the API server side relaying to the pod. Two relays instead of one proxy, plus
  a handshake per connection.

Every figure is from Python doubles on 127.0.0.1, so absolute times are the doubles' own; the
ratios and the per-connection setup cost are what the choice rests on (docs/api-management.md).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.gateway_cluster import GatewayCluster
from tests.kube_proxy_double import KubeProxyDouble
from tests.provider.conftest import api_definition
from tyk_gateway.client import ClientSettings, GatewayClient, Secret
from tyk_gateway.kube import KubeApi, KubeTarget, KubeTransport
from tyk_gateway.kubeconfig import ClusterCredentials

SECRET = "benchmark-secret"


def _relay(source: socket.socket, sink: socket.socket, frame: bool, unframe: bool) -> None:
    try:
        while True:
            if unframe:
                header = source.recv(5, socket.MSG_WAITALL)
                if len(header) < 5:
                    break
                _, length = struct.unpack("!BI", header)
                data = source.recv(length, socket.MSG_WAITALL)
            else:
                data = source.recv(65536)
            if not data:
                break
            sink.sendall(struct.pack("!BI", 0, len(data)) + data if frame else data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class PortForwardModel:
    """kubectl's local listener + the API server's port-forward endpoint, relaying to one pod."""

    def __init__(self, pod_host: str, pod_port: int) -> None:
        self.tunnels = 0
        self._pod_sockets: list[socket.socket] = []
        self._apiserver = socket.create_server(("127.0.0.1", 0))
        self._local = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._local.getsockname()[1]}"
        self._pod = (pod_host, pod_port)
        for server, handler in ((self._apiserver, self._apiserver_side), (self._local, self._kubectl_side)):
            threading.Thread(target=self._accept, args=(server, handler), daemon=True).start()

    @staticmethod
    def _accept(server: socket.socket, handler: Callable[[socket.socket], None]) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handler, args=(connection,), daemon=True).start()

    def _kubectl_side(self, client: socket.socket) -> None:
        tunnel = socket.create_connection(self._apiserver.getsockname())
        tunnel.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tunnel.sendall(
            b"GET /api/v1/namespaces/tyk/pods/gateway-0/portforward?ports=9696 HTTP/1.1\r\n"
            b"Host: apiserver\r\nAuthorization: Bearer token\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )
        answer = b""
        while not answer.endswith(b"\r\n\r\n"):
            answer += tunnel.recv(1)
        self.tunnels += 1
        threading.Thread(target=_relay, args=(client, tunnel, True, False), daemon=True).start()
        _relay(tunnel, client, False, True)

    def _apiserver_side(self, tunnel: socket.socket) -> None:
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += tunnel.recv(1)
        try:
            pod = socket.create_connection(self._pod)
        except OSError:
            tunnel.close()  # the pod is gone: kubectl reports "lost connection to pod"
            return
        self._pod_sockets.append(pod)
        pod.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tunnel.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        threading.Thread(target=_relay, args=(tunnel, pod, False, True), daemon=True).start()
        _relay(pod, tunnel, True, False)

    def pod_died(self) -> None:
        """A dying pod's connections are reset; kubectl's tunnels to it break."""
        for pod in self._pod_sockets:
            with contextlib.suppress(OSError):
                pod.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._local.close()
        self._apiserver.close()


def measure(clients: dict[str, GatewayClient], calls: int) -> dict[str, dict[str, float]]:
    """Median list and write latency per path; the paths take turns call by call, so load on the machine
    affects them alike."""
    lists: dict[str, list[float]] = {name: [] for name in clients}
    writes: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(calls):
        for name, client in clients.items():
            started = time.perf_counter()
            client.list_apis()
            lists[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            client.upsert_api(api_definition(f"bench-{i % 20}"))
            writes[name].append(time.perf_counter() - started)
    return {
        name: {
            "list_ms": 1000 * statistics.median(lists[name]),
            "write_ms": 1000 * statistics.median(writes[name]),
            "first_ms": 1000 * lists[name][0],
        }
        for name in clients
    }


def restart_failures(
    make: Callable[[GatewayCluster], tuple[GatewayClient, Callable[[], None]]], calls: int = 60
) -> int:
    """Failed list calls when the pod a path reached first restarts halfway (fresh 3-replica cluster)."""
    with tempfile.TemporaryDirectory() as tmp, GatewayCluster(Path(tmp), SECRET, replicas=3) as cluster:
        client, pod_died = make(cluster)
        failures = 0
        for i in range(calls):
            if i == calls // 2:
                cluster.restart(cluster.first().name)
                pod_died()
            try:
                client.list_apis()
            except Exception:
                failures += 1
        return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--apis", type=int, default=50)
    args = parser.parse_args()
    settings = ClientSettings(retries=0)
    with tempfile.TemporaryDirectory() as tmp, GatewayCluster(Path(tmp), SECRET, replicas=1) as cluster:
        gateway = cluster.first()
        seed = GatewayClient(gateway.url, Secret(SECRET), settings)
        for i in range(args.apis):
            seed.upsert_api(api_definition(f"api-{i:04d}"))
        gateway.reload_now()
        kube = KubeProxyDouble(cluster)
        transport = KubeTransport(
            ClusterCredentials(kube.url, token=lambda: kube.token, source="bench"), settings
        )
        target = KubeTarget("tyk", kube.service, kube.port)
        forward = PortForwardModel("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))
        paths = {
            "direct": GatewayClient(gateway.url, Secret(SECRET), settings),
            "service proxy": GatewayClient(
                KubeApi(transport).service_proxy_url(target), Secret(SECRET), settings, transport=transport
            ),
            "port-forward": GatewayClient(forward.url, Secret(SECRET), settings),
        }
        rows = measure(paths, args.calls)
        kube.down()
        forward.close()
    print(
        f"{'path':<14} {'list ms':>8} {'write ms':>9} {'first call ms':>14}   ({args.calls} calls each, {args.apis} APIs listed)"
    )
    for name, row in rows.items():
        print(f"{name:<14} {row['list_ms']:>8.2f} {row['write_ms']:>9.2f} {row['first_ms']:>14.2f}")
    print(
        f"\nport-forward tunnels opened: {forward.tunnels} (one per client connection; kubectl pins each to one pod)"
    )

    settings_no_retry = ClientSettings(retries=0, connect_timeout=0.5, read_timeout=0.5)
    keep: list[KubeProxyDouble | PortForwardModel] = []

    def via_service_proxy(cluster: GatewayCluster) -> tuple[GatewayClient, Callable[[], None]]:
        kube = KubeProxyDouble(cluster)
        keep.append(kube)
        credentials = ClusterCredentials(kube.url, token=lambda: kube.token, source="bench")
        transport = KubeTransport(credentials, settings_no_retry)
        url = KubeApi(transport).service_proxy_url(KubeTarget("tyk", kube.service, kube.port))
        return GatewayClient(url, Secret(SECRET), settings_no_retry, transport=transport), lambda: None

    def via_port_forward(cluster: GatewayCluster) -> tuple[GatewayClient, Callable[[], None]]:
        model = PortForwardModel("127.0.0.1", int(cluster.first().url.rsplit(":", 1)[1]))
        keep.append(model)
        return GatewayClient(model.url, Secret(SECRET), settings_no_retry), model.pod_died

    print("\nlist calls failing (of 60, no retries) when the pod reached first restarts halfway:")
    for name, make in (("service proxy", via_service_proxy), ("port-forward", via_port_forward)):
        print(f"{name:<14} {restart_failures(make):>3}")
    for item in keep:
        if isinstance(item, KubeProxyDouble):
            item.down()
        else:
            item.close()


if __name__ == "__main__":
    main()
