"""The runtime against the fake Kubernetes API server and the gateway emulator, in-process.

Translation here is the small contract implementation of ``contract_translator``; the end-to-end tests
(``test_runtime_e2e.py``) run ``python -m tyk_controller`` with the real one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.controller.contract_translator import owner_of, translate_ingress
from tests.controller.runtime_support import (
    FAST_TIMINGS,
    Cluster,
    InProcessController,
    TcpProxy,
    free_port,
    ingress,
    ingress_class,
    service,
    wait_for,
)
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble
from tyk_controller.config import ControllerConfig


def make_config(gateway: GatewayEmulator, **overrides: object) -> ControllerConfig:
    values: dict[str, object] = {"gateway_url": gateway.url, **FAST_TIMINGS, "health_port": free_port()}
    values.update(overrides)
    return ControllerConfig.model_validate(values)


@contextlib.contextmanager
def running(config: ControllerConfig, gateway: GatewayEmulator) -> Iterator[InProcessController]:
    controller = InProcessController(config, gateway.secret).start()
    try:
        yield controller
    finally:
        controller.stop()
    assert controller.error is None, controller.error


def setup_cluster(
    api: KubeApiDouble, watch_namespaces: list[str] | None = None, omit: tuple[str, ...] = ()
) -> Cluster:
    cluster = Cluster(api, watch_namespaces or [])
    cluster.grant(omit)
    api.apply(ingress_class())
    api.apply(service("gateway", "tyk", load_balancer_ip="20.1.2.3"))
    api.apply(service("web"))
    return cluster


def readyz(config: ControllerConfig) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{config.health_port}/readyz", timeout=2).status_code
    except requests.RequestException:
        return 0


def owned(gateway: GatewayEmulator) -> dict[str, tuple[str, str]]:
    return {a["api_id"]: owner for a in gateway.loaded_apis.values() if (owner := owner_of(a)) is not None}


def test_apply_edit_delete(api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path) -> None:
    cluster = Cluster(api)
    cluster.grant()
    api.apply(ingress_class())
    api.apply(service("gateway", "tyk", load_balancer_ip="20.1.2.3"))
    api.apply(service("web"))
    api.apply(ingress("shop", paths=("/a", "/b")))
    api.apply(ingress("other-class", class_name="nginx"))
    controller = InProcessController(make_config(gateway), gateway.secret).start()
    try:
        wait_for(lambda: len(owned(gateway)) == 2, what="two APIs of Ingress shop")
        assert set(owned(gateway).values()) == {("default", "shop")}
        wait_for(
            lambda: (
                (api.get("networking.k8s.io/v1", "Ingress", "default", "shop") or {}).get("status")
                == {"loadBalancer": {"ingress": [{"ip": "20.1.2.3"}]}}
            ),
            what="status",
        )
        api.apply(ingress("shop", paths=("/a", "/c", "/d")))
        wait_for(lambda: len(owned(gateway)) == 3, what="three APIs after the edit")
        api.apply(
            ingress("shop", paths=("/a", "/c", "/d"), class_name="nginx")
        )  # handed to another controller
        wait_for(lambda: not owned(gateway), what="APIs removed when the class changed")
        wait_for(
            lambda: (
                (api.get("networking.k8s.io/v1", "Ingress", "default", "shop") or {}).get("status")
                == {"loadBalancer": {}}
            ),
            what="the address removed from the status",
        )
        assert not (api.get("networking.k8s.io/v1", "Ingress", "default", "other-class") or {}).get("status")
        assert not cluster.writes_to_ingresses()[1:] or all(
            r.resource == "ingresses/status" for r in cluster.writes_to_ingresses()
        )
    finally:
        controller.stop()
    assert controller.error is None


def test_no_op_resync_makes_no_writes_and_at_most_two_list_calls(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api)
    for i in range(5):
        api.apply(ingress(f"app-{i}", host=f"app-{i}.example.com", paths=("/", "/api")))
    config = make_config(gateway, resync_seconds=0.5)
    with running(config, gateway) as controller:
        # The memory of recent writes must not be what keeps a resync from writing: keep it short.
        controller.controller.reconciler.pending_grace = 0.3
        wait_for(lambda: len(owned(gateway)) == 10, what="ten APIs")
        time.sleep(1.0)  # let the writes' reload land and one confirming pass run
        gateway.reset_stats()
        events_before = len(api.list_objects("v1", "Event"))
        started = time.monotonic()
        time.sleep(2.6)
        resyncs = (time.monotonic() - started) / config.resync_seconds
        stats = gateway.stats
        assert stats.count("POST /tyk/apis", "DELETE /tyk/apis/{id}", "PUT /tyk/apis/{id}") == 0, stats.calls
        assert stats.count("GET /tyk/reload/group") == 0, stats.calls
        lists = stats.count("GET /tyk/apis")
        assert 1 <= lists <= 2 * (resyncs + 1), (lists, resyncs)
        assert len(api.list_objects("v1", "Event")) == events_before, "a resync posted Events again"
        assert controller.controller.is_leader


def test_fatal_problem_keeps_apis_and_events_are_posted_once(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api)
    api.apply(ingress("shop", paths=("/a", "/b")))
    with running(make_config(gateway, resync_seconds=0.3), gateway):
        wait_for(lambda: len(owned(gateway)) == 2, what="two APIs")
        before = {k: v for k, v in gateway.loaded_apis.items() if k in owned(gateway)}
        broken = ingress("shop", paths=("/a",), annotations={"test.tyk-aks.io/fatal": "bad auth annotation"})
        api.apply(broken)
        cluster = Cluster(api)
        wait_for(lambda: cluster.events("shop", "InvalidAnnotation"), what="the Warning Event")
        time.sleep(1.2)  # several resyncs
        assert {k: v for k, v in gateway.loaded_apis.items() if k in owned(gateway)} == before
        [event] = cluster.events("shop", "InvalidAnnotation")
        assert event["type"] == "Warning"
        assert event["message"] == "metadata.annotations[test.tyk-aks.io/fatal]: bad auth annotation"
        assert event["involvedObject"]["kind"] == "Ingress"
        stored = api.get("networking.k8s.io/v1", "Ingress", "default", "shop")
        assert stored is not None and event["involvedObject"]["uid"] == stored["metadata"]["uid"]
        api.apply(ingress("shop", paths=("/a",)))  # fixed: the removed path goes now
        wait_for(lambda: len(owned(gateway)) == 1, what="one API after the fix")


def test_apis_it_does_not_own_are_never_touched(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api)
    hand_made = {
        "api_id": "hand-made",
        "name": "hand made",
        "org_id": "default",
        "use_keyless": True,
        "active": True,
        "proxy": {"listen_path": "/hand/", "target_url": "http://example.org"},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }
    requests.post(
        f"{gateway.url}/tyk/apis", json=hand_made, headers={"X-Tyk-Authorization": gateway.secret}, timeout=5
    )
    gateway.reload_now()
    api.apply(ingress("shop"))
    with running(make_config(gateway, resync_seconds=0.3), gateway):
        wait_for(lambda: len(owned(gateway)) == 1, what="the Ingress API")
        api.delete("networking.k8s.io/v1", "Ingress", "default", "shop")
        wait_for(lambda: not owned(gateway), what="the Ingress API deleted")
        time.sleep(0.8)
    assert "hand-made" in gateway.loaded_apis
    assert gateway.stats.count("DELETE /tyk/apis/{id}") == 1


def test_gateway_down_warns_once_stays_up_and_converges_when_back(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    cluster = setup_cluster(api)
    proxy = TcpProxy(int(gateway.url.rsplit(":", 1)[1]))
    api.apply(ingress("shop"))
    config = make_config(gateway, gateway_url=proxy.url, resync_seconds=0.5)
    try:
        with running(config, gateway) as controller:
            wait_for(lambda: len(owned(gateway)) == 1, what="the first API")
            wait_for(lambda: readyz(config) == 200, what="ready")
            proxy.down()
            api.apply(ingress("shop", paths=("/", "/new")))
            api.apply(ingress("second"))
            wait_for(lambda: cluster.events(reason="GatewayUnavailable"), what="the Warning Event")
            wait_for(lambda: readyz(config) == 503, what="not ready while the gateway is unreachable")
            time.sleep(2.0)  # several failed attempts with backoff
            assert len(cluster.events(reason="GatewayUnavailable")) == 1
            [warning] = cluster.events(reason="GatewayUnavailable")
            assert warning["involvedObject"] == {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": "controller-0",
                "namespace": "tyk",
            }
            assert gateway.secret not in warning["message"]
            assert controller.controller.alive()
            proxy.up()
            wait_for(lambda: len(owned(gateway)) == 3, what="convergence after the gateway came back")
            wait_for(lambda: cluster.events(reason="GatewayAvailable"), what="the recovery Event")
            wait_for(lambda: readyz(config) == 200, what="ready again")
    finally:
        proxy.close()


def test_watch_expiry_relists_and_a_delete_lost_in_the_gap_still_converges(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api)
    api.apply(ingress("kept"))
    api.apply(ingress("gone"))
    with running(make_config(gateway, resync_seconds=1.5), gateway):
        wait_for(
            lambda: set(owned(gateway).values()) == {("default", "kept"), ("default", "gone")}, what="two"
        )
        api.partition()
        api.apply(ingress("added-in-gap"))
        api.delete_while_disconnected("networking.k8s.io/v1", "Ingress", "default", "gone")
        marker = len(api.requests)
        api.heal()
        wait_for(
            lambda: set(owned(gateway).values()) == {("default", "kept"), ("default", "added-in-gap")},
            what="convergence after 410 Gone",
        )
        after = api.requests[marker:]
        # kopf resumed from its last resourceVersion, was told 410 Gone, and listed again:
        assert any(
            r.verb == "watch" and r.resource == "ingresses" and r.query.get("resourceVersion") for r in after
        )
        assert any(r.verb == "list" and r.resource == "ingresses" and "limit" not in r.query for r in after)


def test_runs_within_its_rbac_and_writes_only_ingress_status(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    cluster = setup_cluster(api)
    api.apply(ingress("shop", annotations={"test.tyk-aks.io/warn": "something unsupported"}))
    with running(make_config(gateway), gateway):
        wait_for(lambda: owned(gateway) and cluster.events("shop", "Unsupported"), what="API and Event")
        wait_for(
            lambda: (api.get("networking.k8s.io/v1", "Ingress", "default", "shop") or {}).get("status"),
            what="status",
        )
        stored = api.get("networking.k8s.io/v1", "Ingress", "default", "shop")
        assert stored is not None and "finalizers" not in stored["metadata"]
        assert stored["metadata"]["annotations"] == {"test.tyk-aks.io/warn": "something unsupported"}
        assert stored["spec"] == ingress("shop")["spec"]
        api.apply(ingress("shop", paths=("/", "/x")))
        wait_for(lambda: len(owned(gateway)) == 2, what="edit")
        api.delete("networking.k8s.io/v1", "Ingress", "default", "shop")
        wait_for(lambda: not owned(gateway), what="delete")
    forbidden = [r for r in api.requests if r.status == 403]
    assert not forbidden, [(r.method, r.path) for r in forbidden]
    writes = cluster.writes_to_ingresses()
    assert writes and all(r.method == "PATCH" and r.resource == "ingresses/status" for r in writes)
    assert all(set(r.body) == {"status"} for r in writes)
    final = [r for r in api.requests if r.verb in ("create", "update", "patch", "delete")]
    assert {(r.resource, r.verb) for r in final} <= {
        ("ingresses/status", "patch"),
        ("events", "create"),
        ("leases", "create"),
        ("leases", "update"),
    }


def test_without_secrets_access_it_reports_and_serves_the_rest(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    cluster = setup_cluster(api, omit=("secrets",))
    api.apply(ingress("plain"))
    api.apply(ingress("secure", host="secure.example.com", tls_secret="secure-tls"))
    with running(make_config(gateway), gateway) as controller:
        wait_for(
            lambda: set(owned(gateway).values()) == {("default", "plain")}, what="the plain Ingress served"
        )
        wait_for(lambda: cluster.events(reason="SecretsForbidden"), what="the Warning Event")
        wait_for(lambda: cluster.events("secure", "TLSSecret"), what="the Ingress's own Event")
        assert controller.controller.alive()
        [event] = cluster.events(reason="SecretsForbidden")
        assert "cannot list Secrets in the cluster (Forbidden)" in event["message"]
    assert not [r for r in api.requests if r.resource == "secrets" and r.verb == "watch"]


def test_watch_namespaces_use_namespaced_access_only(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api, watch_namespaces=["team-a", "team-b"])
    other_install = translate_ingress(
        ingress("c", namespace="team-c"),
        services={},
        tls_secrets={},
        templates={},
        config=make_config(gateway),
    )
    for definition in other_install.apis.values():
        requests.post(
            f"{gateway.url}/tyk/apis",
            json=definition,
            headers={"X-Tyk-Authorization": gateway.secret},
            timeout=5,
        )
    gateway.reload_now()
    api.apply(service("web", "team-a"))
    api.apply(ingress("a", namespace="team-a"))
    api.apply(ingress("b", namespace="team-b"))
    api.apply(ingress("elsewhere", namespace="default"))
    with running(make_config(gateway, watch_namespaces=["team-a", "team-b"]), gateway):
        wait_for(
            lambda: set(owned(gateway).values()) == {("team-a", "a"), ("team-b", "b"), ("team-c", "c")},
            what="watched namespaces served, another install's APIs left alone",
        )
        time.sleep(0.5)
        assert ("team-c", "c") in set(owned(gateway).values())
    assert not [r for r in api.requests if r.status == 403]
    cluster_wide = {r.resource for r in api.requests if r.verb and r.namespace is None}
    assert cluster_wide == {"ingressclasses"}, cluster_wide
    assert {r.namespace for r in api.requests if r.resource == "secrets"} == {"team-a", "team-b"}


def test_a_definition_the_gateway_refuses_is_reported_and_the_others_are_written(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    cluster = setup_cluster(api)
    api.apply(ingress("good", host="good.example.com"))
    api.apply(
        ingress(
            "bad", host="bad.example.com", annotations={"test.tyk-aks.io/allowed-ips": "10.0.0.1,not-an-ip"}
        )
    )
    with running(make_config(gateway, resync_seconds=0.3), gateway) as controller:
        wait_for(
            lambda: set(owned(gateway).values()) == {("default", "good")}, what="the good Ingress served"
        )
        [event] = wait_for(lambda: cluster.events("bad", "GatewayRejected"), what="the Warning Event")
        assert 'invalid IP/CIDR "not-an-ip"' in event["message"]
        gateway.reset_stats()
        time.sleep(1.0)  # resyncs: the refused definition is not sent again, the Event not repeated
        assert gateway.stats.count("POST /tyk/apis", "GET /tyk/reload/group") == 0, gateway.stats.calls
        assert len(cluster.events("bad", "GatewayRejected")) == 1
        api.apply(
            ingress("bad", host="bad.example.com", annotations={"test.tyk-aks.io/allowed-ips": "10.0.0.1"})
        )
        wait_for(
            lambda: set(owned(gateway).values()) == {("default", "good"), ("default", "bad")}, what="fixed"
        )
        assert not cluster.events(reason="GatewayUnavailable")
        assert controller.controller.alive()


def test_resync_repairs_changes_made_behind_its_back(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api)
    api.apply(ingress("shop", paths=("/a", "/b")))
    with running(make_config(gateway, resync_seconds=0.5), gateway) as controller:
        controller.controller.reconciler.pending_grace = 0.3
        wait_for(lambda: len(owned(gateway)) == 2, what="two APIs")
        edited, removed = sorted(owned(gateway))
        original = dict(gateway.loaded_apis[edited])
        gateway.edit_file(
            "api", edited, lambda api_def: api_def["proxy"].update(target_url="http://evil.example")
        )
        gateway.remove_file("api", removed)
        gateway.reload_now()
        assert removed not in gateway.loaded_apis
        wait_for(lambda: len(owned(gateway)) == 2, what="the removed API written again")
        wait_for(
            lambda: gateway.loaded_apis[edited]["proxy"]["target_url"] == original["proxy"]["target_url"],
            what="the edited API restored",
        )


def test_an_address_given_to_the_entry_service_later_reaches_the_ingresses_before_a_resync(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tyk_controller import runtime

    monkeypatch.setattr(runtime, "PUBLISH_CHECK_SECONDS", 0.2)
    Cluster(api).grant()
    api.apply(ingress_class())
    api.apply(service("gateway", "tyk"))  # no address yet
    api.apply(service("web"))
    api.apply(ingress("shop"))
    with running(make_config(gateway, resync_seconds=60), gateway):
        wait_for(lambda: len(owned(gateway)) == 1, what="served")
        time.sleep(0.5)
        assert not (api.get("networking.k8s.io/v1", "Ingress", "default", "shop") or {}).get("status")
        api.apply(service("gateway", "tyk", load_balancer_ip="20.9.9.9"))
        wait_for(
            lambda: (
                (api.get("networking.k8s.io/v1", "Ingress", "default", "shop") or {}).get("status")
                == {"loadBalancer": {"ingress": [{"ip": "20.9.9.9"}]}}
            ),
            timeout=5,
            what="the new address on the Ingress",
        )
