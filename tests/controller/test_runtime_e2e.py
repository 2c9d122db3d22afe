"""End to end: ``python -m tyk_controller`` (the image's entry point) as a subprocess, with the real
translation, against the fake Kubernetes API server and the gateway emulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.controller.runtime_support import (
    CONTROLLER_NAMESPACE,
    Cluster,
    ingress,
    ingress_class,
    service,
    wait_for,
)
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble, controller_identity
from tyk_controller import rbac
from tyk_controller.config import ControllerConfig
from tyk_controller.translate import owner_of

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def api() -> Iterator[KubeApiDouble]:
    with KubeApiDouble(bookmark_interval=0.5) as server:
        yield server


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayEmulator]:
    with GatewayEmulator(tmp_path / "gateway", reload_interval=0.05) as emulator:
        yield emulator


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
            "publish_service": "tyk/gateway",
            "resync_seconds": 2.0,
            "debounce_seconds": 0.05,
            "min_reload_interval_seconds": 0.2,
            "retry_backoff_max_seconds": 0.5,
            "probe_interval_seconds": 0.2,
            "health_port": free_port(),
            "leader_election": {
                "leaseDurationSeconds": 2,
                "renewDeadlineSeconds": 1.5,
                "retryPeriodSeconds": 0.2,
            },
            "gateway_client": {"retries": 1, "backoffFactor": 0.01, "connectTimeout": 1, "readTimeout": 5},
            "templates_dir": str(folder / "templates"),
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


@pytest.fixture
def processes() -> Iterator[list[ControllerProcess]]:
    started: list[ControllerProcess] = []
    yield started
    for p in started:
        if p.process is not None and p.process.poll() is None:
            p.process.kill()
            p.process.wait()


def owned(gateway: GatewayEmulator) -> dict[str, tuple[str, str]]:
    return {a["api_id"]: owner for a in gateway.loaded_apis.values() if (owner := owner_of(a)) is not None}


def base_cluster(api: KubeApiDouble) -> Cluster:
    api.apply(ingress_class())
    api.apply(service("gateway", "tyk", load_balancer_ip="20.1.2.3"))
    api.apply(service("web"))
    return Cluster(api)


def test_apply_edit_delete_restart_and_watch_expiry(
    api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path, processes: list[ControllerProcess]
) -> None:
    cluster = base_cluster(api)
    api.apply(ingress("shop", host="shop.example.com", paths=("/cart", "/pay")))
    api.apply(ingress("nginx-one", class_name="nginx"))
    controller = ControllerProcess(api, gateway, tmp_path / "c0", "controller-0")
    processes.append(controller.start())

    wait_for(lambda: len(owned(gateway)) == 2, what="the two APIs of shop")
    assert set(owned(gateway).values()) == {("default", "shop")}
    domains = {a["domain"] for a in gateway.loaded_apis.values()}
    assert domains == {"shop.example.com"}
    wait_for(
        lambda: (
            (api.get("networking.k8s.io/v1", "Ingress", "default", "shop") or {}).get("status")
            == {"loadBalancer": {"ingress": [{"ip": "20.1.2.3"}]}}
        ),
        what="the Ingress status",
    )
    wait_for(lambda: controller.health("/readyz") == 200, what="ready")
    assert controller.health("/healthz") == 200

    api.apply(ingress("shop", host="shop.example.com", paths=("/cart", "/pay", "/help")))
    wait_for(lambda: len(owned(gateway)) == 3, what="three APIs after the edit")
    wait_for(lambda: cluster.events("shop", "Sync"), what="a Sync Event")

    # Restart: the new process finds everything in place and writes nothing.
    assert controller.signal(signal.SIGTERM) == 0
    lease = api.get("coordination.k8s.io/v1", "Lease", "tyk", "tyk-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == ""  # released on shutdown
    time.sleep(0.5)
    gateway.reset_stats()
    before = dict(gateway.loaded_apis)
    restarted = ControllerProcess(api, gateway, tmp_path / "c1", "controller-1")
    processes.append(restarted.start())
    wait_for(lambda: restarted.health("/readyz") == 200, what="restarted and ready")
    wait_for(lambda: gateway.stats.count("GET /tyk/apis") >= 2, what="two passes")
    assert gateway.stats.count("POST /tyk/apis", "DELETE /tyk/apis/{id}", "GET /tyk/reload/group") == 0
    assert gateway.loaded_apis == before

    # Watch expiry: a delete lost with the compacted history, an add that only the relist shows.
    api.partition()
    api.apply(ingress("late", host="late.example.com"))
    api.delete_while_disconnected("networking.k8s.io/v1", "Ingress", "default", "shop")
    api.heal()
    wait_for(lambda: set(owned(gateway).values()) == {("default", "late")}, what="convergence after 410")

    api.delete("networking.k8s.io/v1", "Ingress", "default", "late")
    wait_for(lambda: not owned(gateway), what="every API removed")
    assert not (api.get("networking.k8s.io/v1", "Ingress", "default", "nginx-one") or {}).get("status")
    assert restarted.signal(signal.SIGTERM) == 0
    text = "\n".join(p.log.read_text() for p in (controller, restarted))
    assert gateway.secret not in text
    assert any(line.get("message", "").startswith("wrote API") for line in controller.lines())


def test_a_controller_killed_mid_batch_is_finished_by_the_next_one(
    api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path, processes: list[ControllerProcess]
) -> None:
    base_cluster(api)
    for i in range(60):
        api.apply(ingress(f"app-{i}", host=f"app-{i}.example.com", paths=("/a", "/b")))
    gateway.faults.slow_rate = 1.0
    gateway.faults.slow_seconds = 0.05
    first = ControllerProcess(api, gateway, tmp_path / "c0", "controller-0")
    processes.append(first.start())
    wait_for(lambda: len(gateway.disk_apis()) >= 10, what="the batch under way")
    first.kill()
    written = len(gateway.disk_apis())
    assert written < 120, "the batch finished before the kill; slow the gateway down more"
    gateway.faults.slow_rate = 0.0
    second = ControllerProcess(api, gateway, tmp_path / "c1", "controller-1")
    processes.append(second.start())
    wait_for(lambda: len(owned(gateway)) == 120, timeout=30, what="convergence by the second controller")
    assert len(gateway.disk_apis()) == 120  # deterministic ids: no duplicates


def test_two_replicas_only_the_leader_writes(
    api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path, processes: list[ControllerProcess]
) -> None:
    base_cluster(api)
    api.apply(ingress("shop"))
    a = ControllerProcess(api, gateway, tmp_path / "a", "controller-a").start()
    b = ControllerProcess(api, gateway, tmp_path / "b", "controller-b").start()
    processes += [a, b]
    wait_for(lambda: len(owned(gateway)) == 1, what="the API")
    wait_for(lambda: a.health("/readyz") == 200 and b.health("/readyz") == 200, what="both replicas ready")
    lease = api.get("coordination.k8s.io/v1", "Lease", "tyk", "tyk-controller")
    assert lease is not None
    leader, standby = (a, b) if lease["spec"]["holderIdentity"] == "controller-a" else (b, a)
    api.apply(ingress("second", host="second.example.com"))
    wait_for(lambda: len(owned(gateway)) == 2, what="the second Ingress served")
    writers = {
        r.user
        for r in api.requests
        if r.verb in ("patch", "create") and r.resource in ("ingresses/status", "events")
    }
    assert writers == {leader.user}

    leader.kill()  # no release: the standby waits for the lease to expire
    api.apply(ingress("third", host="third.example.com"))
    wait_for(lambda: len(owned(gateway)) == 3, timeout=20, what="the standby took over")
    lease = api.get("coordination.k8s.io/v1", "Lease", "tyk", "tyk-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == standby.pod
    assert lease["spec"]["leaseTransitions"] == 1
