"""End to end: ``python -m tyk_controller`` (the image's entry point) as a subprocess, with the real
translation, against the fake Kubernetes API server and the gateway emulator.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import requests

from tests.controller.runtime_support import (
    Cluster,
    ControllerProcess,
    TcpProxy,
    ingress,
    ingress_class,
    service,
    wait_for,
)
from tests.controller.tls_fixtures import certificate, rsa_key, tls_secret
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble
from tyk_controller.translate import owner_of

PROJECT_DIR = Path(__file__).resolve().parents[2]


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

    def files() -> int:  # counted, not parsed: a file may be half-written while the batch runs
        return len(list(gateway.apps_dir.glob("*.json")))

    wait_for(lambda: files() >= 10, what="the batch under way")
    first.kill()
    written = files()
    assert written < 120, "the batch finished before the kill; slow the gateway down more"
    gateway.faults.slow_rate = 0.0
    second = ControllerProcess(api, gateway, tmp_path / "c1", "controller-1")
    processes.append(second.start())
    wait_for(lambda: len(owned(gateway)) == 120, timeout=30, what="convergence by the second controller")
    assert files() == 120  # deterministic ids: no duplicates


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


def test_tls_secret_pushed_bound_and_rotated(
    api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path, processes: list[ControllerProcess]
) -> None:
    cluster = base_cluster(api)

    def secret(cert: Any) -> dict[str, Any]:
        return tls_secret(cert, rsa_key(), metadata={"name": "shop-tls", "namespace": "default"})

    def gateway_certs() -> set[str]:
        answer = requests.get(
            f"{gateway.url}/tyk/certs",
            params={"org_id": "default"},
            headers={"X-Tyk-Authorization": gateway.secret},
            timeout=5,
        )
        return set(answer.json()["certs"])

    def bound() -> set[str]:
        return {c for a in gateway.loaded_apis.values() if owner_of(a) for c in a.get("certificates") or []}

    api.apply(secret(certificate(["shop.example.com"])))
    api.apply(ingress("shop", host="shop.example.com", tls_secret="shop-tls"))
    processes.append(ControllerProcess(api, gateway, tmp_path / "c0", "controller-0").start())
    first = wait_for(lambda: bound(), what="the API bound to its certificate")
    assert first <= gateway_certs()
    api.apply(secret(certificate(["shop.example.com"])))  # rotation: a new certificate in the same Secret
    second = wait_for(lambda: bound() - first, what="the API bound to the new certificate")
    assert second <= gateway_certs() and bound() == second
    broken = tls_secret(
        certificate(["shop.example.com"]),
        key_bytes=b"not a key",
        metadata={"name": "shop-tls", "namespace": "default"},
    )
    api.apply(broken)
    [event] = wait_for(lambda: cluster.events("shop", "TLSSecret"), what="an Event about the Secret")
    assert event["type"] == "Warning" and "shop-tls" in event["message"]
    time.sleep(0.5)
    assert bound() == second  # broken TLS is fatal: the API keeps the certificate it had


def test_kubernetes_unreachable_at_start_is_waited_for_not_a_crash(
    api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path, processes: list[ControllerProcess]
) -> None:
    base_cluster(api)
    api.apply(ingress("shop"))
    api.down = True
    controller = ControllerProcess(api, gateway, tmp_path / "c0", "controller-0").start()
    processes.append(controller)
    wait_for(lambda: controller.health("/healthz") == 200, what="alive")
    assert controller.health("/readyz") == 503
    time.sleep(1.0)
    assert controller.process is not None and controller.process.poll() is None
    api.down = False
    wait_for(lambda: len(owned(gateway)) == 1, what="served once Kubernetes answers")
    wait_for(lambda: controller.health("/readyz") == 200, what="ready")
    api.down = True
    started = time.monotonic()
    assert controller.signal(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15


def test_gateway_down_and_back(
    api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path, processes: list[ControllerProcess]
) -> None:
    cluster = base_cluster(api)
    proxy = TcpProxy(int(gateway.url.rsplit(":", 1)[1]))
    try:
        api.apply(ingress("shop"))
        controller = ControllerProcess(api, gateway, tmp_path / "c0", "controller-0", gateway_url=proxy.url)
        processes.append(controller.start())
        wait_for(
            lambda: len(owned(gateway)) == 1 and controller.health("/readyz") == 200, what="served, ready"
        )
        proxy.down()
        api.apply(ingress("second", host="second.example.com"))
        wait_for(lambda: controller.health("/readyz") == 503, what="not ready without the gateway")
        wait_for(lambda: cluster.events(reason="GatewayUnavailable"), what="the Warning Event")
        time.sleep(1.5)  # more failed attempts: still one Event, still running, still alive
        assert len(cluster.events(reason="GatewayUnavailable")) == 1
        assert controller.process is not None and controller.process.poll() is None
        assert controller.health("/healthz") == 200
        proxy.up()
        wait_for(lambda: len(owned(gateway)) == 2, what="the change made during the outage")
        wait_for(lambda: cluster.events(reason="GatewayAvailable"), what="the recovery Event")
        assert controller.signal(signal.SIGTERM) == 0
        assert gateway.secret not in controller.log.read_text()
    finally:
        proxy.close()
