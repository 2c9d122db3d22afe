"""Two meshed services end to end: the webhook's patched pods, the reconciler's routes ConfigMap, and sidecars that
route like the gateway, over real HTTP on 127.0.0.1.

Each sidecar is a small HTTP server per listener that loads what kubelet would project into its apps folder
(the pod's inbound-API annotation and the routes ConfigMap) and routes with `tests.gateway_routing.Gateway`
(the gateway's request matching, written from its source) configured from the sidecar's own tyk.conf.
Pod networking is modelled honestly: each pod has its own port space (a map from the pod's ports to real ones),
`hostAliases` resolve `mesh`, and a Service resolves its `targetPort` by name against the pod's container ports.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonpatch
import kopf
import pytest

from tests.controller.mesh_fixtures import (
    MESH,
    NAMESPACE,
    LoopThread,
    app_pod,
)
from tests.gateway_emulator import GatewayEmulator
from tests.gateway_routing import Gateway, GatewayConfig
from tests.kube_api_double import Identity, KubeApiDouble
from tyk_controller.kube import KubeClient
from tyk_controller.mesh.config import (
    APPS_DIR,
    CLUSTER_RULES,
    GATEWAY_CONFIG_ANNOTATION,
    INBOUND_API_ANNOTATION,
    ROUTES_CONFIG_MAP,
    SIDECAR_NAME,
)
from tyk_controller.mesh.reconciler import MeshReconciler
from tyk_controller.mesh.sidecar import plan_injection
from tyk_gateway.client import ClientSettings, GatewayClient, Secret


def sidecar_gateway(apis: list[dict[str, Any]], config: dict[str, Any]) -> Gateway:
    """The routing table the sidecar builds from its apps folder, with its tyk.conf's routing settings."""
    whitelist = {protocol: frozenset(v["ports"]) for protocol, v in config["ports_whitelist"].items()}
    return Gateway(
        apis,
        GatewayConfig(
            enable_custom_domains=bool(config.get("enable_custom_domains")),
            enable_strict_routes=bool((config.get("http_server_options") or {}).get("enable_strict_routes")),
            listen_port=config["listen_port"],
            disable_ports_whitelist=bool(config.get("disable_ports_whitelist")),
            ports_whitelist=whitelist,
        ),
    )


@dataclass
class Pod:
    """A running pod: its spec as admitted, and its own port space mapped onto real 127.0.0.1 ports."""

    spec: dict[str, Any]
    ports: dict[int, int] = field(default_factory=dict)  # pod port -> real port
    servers: list[ThreadingHTTPServer] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec["metadata"]["name"])

    def container_port(self, name: str) -> int:
        spec = self.spec["spec"]
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            for port in container.get("ports") or []:
                if port.get("name") == name:
                    return int(port["containerPort"])
        raise LookupError(name)


class Network:
    """Cluster DNS and Services over the pods."""

    def __init__(self) -> None:
        self.pods: list[Pod] = []
        self.services: list[dict[str, Any]] = []

    def resolve(self, url: str, caller: Pod) -> str:
        """The real URL a pod's request reaches (hostAliases, Service DNS + targetPort by name)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        for alias in caller.spec["spec"].get("hostAliases") or []:
            if host in alias["hostnames"] and alias["ip"] == "127.0.0.1":
                return f"http://127.0.0.1:{caller.ports[port]}{parts.path}"
        match = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc", host)
        assert match, f"unresolvable host {host}"
        [service] = [s for s in self.services if s["metadata"]["name"] == match.group(1)]
        [service_port] = [p for p in service["spec"]["ports"] if p["port"] == port]
        selector = service["spec"]["selector"]
        [pod] = [p for p in self.pods if selector.items() <= p.spec["metadata"]["labels"].items()][:1]
        target = service_port["targetPort"]
        pod_port = pod.container_port(target) if isinstance(target, str) else int(target)
        return f"http://127.0.0.1:{pod.ports[pod_port]}{parts.path}"


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_app(pod: Pod, app: str, network: Network) -> None:
    """The app: answers who it is; `GET /call?url=...` makes an outbound call from inside the pod."""

    class App(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/call?url="):
                target = self.path.removeprefix("/call?url=")
                outbound = urllib.request.Request(
                    network.resolve(target, pod), headers={"Host": urlsplit(target).netloc}
                )
                with urllib.request.urlopen(outbound, timeout=5) as answer:
                    body = answer.read()
            else:
                body = json.dumps({"app": app, "path": self.path, "host": self.headers["Host"]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = serve(App)
    number = int(pod.spec["metadata"]["annotations"]["mesh.tyk.io/app-port"].partition("/")[0])
    pod.ports[number] = server.server_address[1]
    pod.servers.append(server)


def start_sidecar(pod: Pod, routes_data: dict[str, str], network: Network) -> None:
    """The sidecar: loads exactly the files projected into its apps folder and its tyk.conf."""
    annotations = pod.spec["metadata"]["annotations"]
    config = json.loads(annotations[GATEWAY_CONFIG_ANNOTATION])
    assert config["app_path"] == APPS_DIR
    files = {"inbound.json": annotations[INBOUND_API_ANNOTATION], **routes_data}
    apis = [json.loads(text) for name, text in files.items() if name.endswith(".json")]
    gateway = sidecar_gateway(apis, config)
    assert gateway.refused == {}, gateway.refused
    [sidecar] = [c for c in pod.spec["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    listen_ports = {config["listen_port"], *config["ports_whitelist"]["http"]["ports"]}
    assert listen_ports <= {p["containerPort"] for p in sidecar["ports"]}
    for pod_port in listen_ports:

        class Listener(BaseHTTPRequestHandler):
            port = pod_port

            def do_GET(self) -> None:
                answer = gateway.request(f"http://{self.headers['Host']}{self.path}", port=self.port)
                upstream = answer.upstream if answer.status == 200 else None
                if upstream is None:
                    body, status = b'{"error":"Not Found"}', 404
                else:
                    # 127.0.0.1 inside the pod is the pod's own port space.
                    parts = urlsplit(upstream)
                    if parts.hostname == "127.0.0.1":  # the inbound API (preserve_host_header)
                        real = f"http://127.0.0.1:{pod.ports[parts.port or 80]}{parts.path}"
                        host = self.headers["Host"]
                    else:
                        real, host = network.resolve(upstream, pod), parts.netloc
                    request = urllib.request.Request(real, headers={"Host": host})
                    with urllib.request.urlopen(request, timeout=5) as answer:
                        body, status = answer.read(), answer.status
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = serve(Listener)
        pod.ports[pod_port] = server.server_address[1]
        pod.servers.append(server)


def admitted(app: str, **kwargs: Any) -> dict[str, Any]:
    pod = app_pod(app, **kwargs)
    injection = plan_injection(pod, NAMESPACE, MESH)
    assert injection.patch, injection.problems
    stored = jsonpatch.apply_patch(pod, injection.patch)
    stored["metadata"].update(name=f"{app}-1", uid=str(uuid.uuid4()))
    stored["status"] = {"phase": "Running"}
    return stored


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


@pytest.fixture
def mesh_network(tmp_path: Path) -> Iterator[tuple[Network, KubeApiDouble]]:
    network = Network()
    with KubeApiDouble() as api:
        api.grant("t", Identity(user="controller", cluster_rules=CLUSTER_RULES))
        for app, extra in (
            ("orders", {}),
            ("web", {"annotations": {"injector.tyk.io/route": "/storefront"}}),
        ):
            spec = admitted(app, **extra)
            api.apply(spec)
            api.apply(service(app))
            network.pods.append(Pod(spec))
            network.services.append(service(app))
        yield network, api
        for pod in network.pods:
            for server in pod.servers:
                server.shutdown()
                server.server_close()


def get(url: str, host: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def reconciled(api: KubeApiDouble) -> dict[str, str]:
    """One pass of the routes reconciler; the routes ConfigMap's data."""

    async def no_reload() -> None:
        return None

    async def one_pass() -> None:
        kube = KubeClient(lambda: kopf.ConnectionInfo(server=api.url, token="t"))
        try:
            await MeshReconciler(kube, MESH, redis_password="pw", reload=no_reload).reconcile()
        finally:
            await kube.close()

    loop = LoopThread()
    try:
        loop.run(one_pass())
    finally:
        loop.close()
    config_map = api.get("v1", "ConfigMap", NAMESPACE, ROUTES_CONFIG_MAP)
    assert config_map is not None
    return dict(config_map["data"])


def test_inbound_and_egress_between_two_meshed_services(
    mesh_network: tuple[Network, KubeApiDouble],
) -> None:
    network, api = mesh_network
    routes_data = reconciled(api)
    for pod in network.pods:
        start_app(pod, pod.spec["metadata"]["labels"]["app"], network)
        start_sidecar(pod, routes_data, network)
    orders, web = network.pods

    # Inbound: the Service (targetPort: http, by name) reaches the callee's sidecar, which proxies to the app.
    status, body = get(network.resolve("http://orders.shop.svc:80/items/7", web))
    assert (status, body["app"], body["path"]) == (200, "orders", "/items/7")
    sidecar_port = orders.container_port("http")
    assert sidecar_port == MESH.inbound_port and orders.ports[sidecar_port] != orders.ports[8080]

    # Egress: the caller's app calls http://mesh/orders/... through its own sidecar to the callee.
    status, body = get(f"http://127.0.0.1:{web.ports[8080]}/call?url=http://mesh/orders/items/7")
    assert (status, body["app"], body["path"]) == (200, "orders", "/items/7")
    status, body = get(f"http://127.0.0.1:{orders.ports[8080]}/call?url=http://mesh/storefront/cart")
    assert (status, body["app"], body["path"]) == (200, "web", "/cart")

    # Only the `mesh` host is routed on the egress port, and unknown routes are the gateway's 404.
    assert get(f"http://127.0.0.1:{web.ports[80]}/orders/items", host="example.com")[0] == 404
    assert get(f"http://127.0.0.1:{web.ports[80]}/billing/x", host="mesh")[0] == 404


def test_mesh_routes_are_never_served_by_the_public_gateways(
    mesh_network: tuple[Network, KubeApiDouble], tmp_path: Path
) -> None:
    _, api = mesh_network
    routes_data = reconciled(api)
    assert routes_data
    with GatewayEmulator(tmp_path / "public", reload_interval=0.02) as public:
        client = GatewayClient(public.url, Secret(public.secret), ClientSettings())
        client.upsert_api(
            {
                "api_id": "shop",
                "name": "shop",
                "org_id": "default",
                "active": True,
                "use_keyless": True,
                "proxy": {
                    "listen_path": "/shop/",
                    "target_url": "http://shop.shop.svc:80",
                    "strip_listen_path": True,
                },
                "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
            }
        )
        client.reload_group()
        public.reload_now()
        # The public gateways load every file of their own folder, and the mesh's files are never in it.
        assert not any(path.name.endswith(".route.json") for path in public.apps_dir.iterdir())
        loaded = list(public.loaded_apis.values())
        assert [a["api_id"] for a in loaded] == ["shop"]
        public_gateway = Gateway(loaded)  # the tyk-oss chart's routing settings
        assert public_gateway.request("http://mesh/orders/items").status == 404
        assert public_gateway.request("http://api.example.com/orders/items").status == 404
        shop = public_gateway.request("http://api.example.com/shop/x")
        assert (shop.status, shop.upstream) == (200, "http://shop.shop.svc:80/x")
    # And were a mesh file copied into a public folder, `domain: mesh` still keeps it off public hostnames.
    copied = Gateway([json.loads(text) for text in routes_data.values()])
    assert copied.request("http://api.example.com/orders/x").status == 404
    assert copied.request("http://mesh/orders/x").status == 200  # hence: never in the public folder either
