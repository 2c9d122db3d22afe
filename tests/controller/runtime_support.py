"""Shared fixtures of the runtime tests: the fake API server, the gateway emulator, objects, waiting."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble, controller_identity
from tyk_controller import rbac
from tyk_controller.config import ControllerConfig

PROJECT_DIR = Path(__file__).resolve().parents[2]

CONTROLLER_TOKEN = "controller-token"
FAST_TIMINGS: dict[str, Any] = {
    "publish_service": "tyk/gateway",
    "resync_seconds": 2.0,
    "debounce_seconds": 0.05,
    "min_reload_interval_seconds": 0.2,
    "retry_backoff_max_seconds": 0.5,
    "probe_interval_seconds": 0.2,
    "leader_election": {"leaseDurationSeconds": 2, "renewDeadlineSeconds": 1.5, "retryPeriodSeconds": 0.2},
    "gateway_client": {"retries": 1, "backoffFactor": 0.01, "connectTimeout": 1, "readTimeout": 5},
}
"""Controller settings that make the tests take seconds: short resyncs, leases and retries."""
CONTROLLER_NAMESPACE = "tyk"
CONTROLLER_USER = "system:serviceaccount:tyk:tyk-controller"


def wait_for(check: Callable[[], Any], timeout: float = 45.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last value {last!r})")


def ingress(
    name: str,
    namespace: str = "default",
    host: str = "example.com",
    paths: tuple[str, ...] = ("/",),
    service: str = "web",
    port: int = 80,
    class_name: str | None = "tyk",
    annotations: Mapping[str, str] | None = None,
    tls_secret: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": path,
                            "pathType": "Prefix",
                            "backend": {"service": {"name": service, "port": {"number": port}}},
                        }
                        for path in paths
                    ]
                },
            }
        ]
    }
    if class_name:
        spec["ingressClassName"] = class_name
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
        "spec": spec,
    }


def service(
    name: str, namespace: str = "default", port: int = 80, load_balancer_ip: str | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]},
    }
    if load_balancer_ip:
        obj["spec"]["type"] = "LoadBalancer"
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": load_balancer_ip}]}}
    return obj


def ingress_class(name: str = "tyk", controller: str = "tyk-aks.io/ingress-controller") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name},
        "spec": {"controller": controller},
    }


@dataclass
class Cluster:
    """The fake API server with the controller's identity granted as the deployment would."""

    api: KubeApiDouble
    watch_namespaces: list[str] = field(default_factory=list)

    def grant(self, omit: tuple[str, ...] = ()) -> None:
        self.api.grant(
            CONTROLLER_TOKEN,
            controller_identity(CONTROLLER_USER, CONTROLLER_NAMESPACE, self.watch_namespaces, rbac, omit),
        )

    def writes_to_ingresses(self) -> list[Any]:
        return [
            r
            for r in self.api.requests
            if r.resource.startswith("ingresses") and r.verb in ("create", "update", "patch", "delete")
        ]

    def events(self, name: str | None = None, reason: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.api.list_objects("v1", "Event")
            if (name is None or e["involvedObject"]["name"] == name)
            and (reason is None or e["reason"] == reason)
        ]


class InProcessController:
    """``tyk_controller.runtime.Controller`` on its own event-loop thread (with the contract translator)."""

    def __init__(
        self, config: Any, gateway_secret: str, pod_name: str = "controller-0", translator: Any = None
    ) -> None:
        from tests.controller import contract_translator
        from tyk_controller.runtime import Controller, Translator
        from tyk_gateway.client import GatewayClient, Secret

        translator = translator or Translator(
            translate=contract_translator.translate_ingress,
            owner_of=contract_translator.owner_of,
            ingress_handled=contract_translator.ingress_handled,
            templates={},
        )
        gateway = GatewayClient(config.gateway_url, Secret(gateway_secret), config.gateway_client)
        self.controller = Controller(config, gateway, translator, pod_name, CONTROLLER_NAMESPACE)
        self.loop: Any = None
        self.error: BaseException | None = None
        self._thread: Any = None

    def start(self) -> InProcessController:
        import asyncio
        import threading

        started = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            started.set()
            try:
                self.loop.run_until_complete(self.controller.run())
            except BaseException as error:
                self.error = error
            finally:
                self.loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(5)
        return self

    def stop(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.controller.stop.set)
        if self._thread is not None:
            self._thread.join(timeout=15)


class TcpProxy:
    """127.0.0.1 TCP forwarder in front of a server; ``down()`` drops every connection and refuses new ones.

    That is what a client sees when the gateway's pods are gone (connection refused/reset), unlike a 5xx.
    """

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._up = True
        self._closed = False
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def down(self) -> None:
        import socket

        self._up = False
        with self._lock:
            connections, self._connections = self._connections, []
        for s in connections:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def up(self) -> None:
        self._up = True

    def close(self) -> None:
        self._closed = True
        self.down()
        self._listener.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ControllerProcess:
    """One controller replica: its own service-account token, config file and health port."""

    def __init__(
        self, api: KubeApiDouble, gateway: GatewayEmulator, folder: Path, pod: str, **config: Any
    ) -> None:
        self.pod = pod
        self.user = f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{pod}"
        token = f"token-{pod}"
        api.grant(
            token,
            controller_identity(self.user, CONTROLLER_NAMESPACE, config.get("watch_namespaces", []), rbac),
        )
        folder.mkdir(parents=True, exist_ok=True)
        kubeconfig = folder / "kubeconfig"
        kubeconfig.write_text(json.dumps(api.kubeconfig(token)))
        values: dict[str, Any] = {
            "gateway_url": gateway.url,
            **FAST_TIMINGS,
            "health_port": free_port(),
            "templates_dir": str(PROJECT_DIR / "ingress_templates"),
        } | config
        self.config = ControllerConfig.model_validate(values)
        config_file = folder / "config.json"
        config_file.write_text(self.config.model_dump_json(by_alias=True))
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "TYK_CONTROLLER_CONFIG": str(config_file),
            "TYK_CONTROLLER_GATEWAY_SECRET": gateway.secret,
            "POD_NAME": pod,
            "POD_NAMESPACE": CONTROLLER_NAMESPACE,
            "KUBECONFIG": str(kubeconfig),
            "PYTHONPATH": str(PROJECT_DIR),
        }
        self.log = folder / "controller.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tyk_controller"],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=PROJECT_DIR,
            )
        return self

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=20)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (no Lease release, a batch cut short)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def health(self, path: str) -> int:
        try:
            return requests.get(f"http://127.0.0.1:{self.config.health_port}{path}", timeout=2).status_code
        except requests.RequestException:
            return 0

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]
