"""The egress-routes reconciler against the fake Kubernetes API server over HTTP: routes follow the meshed
pods (scaling never duplicates, deleting removes), a restart converges with no writes, problems become Events,
and every request stays within the mesh's RBAC rules."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import jsonpatch
import kopf
import pytest

from tests.controller.mesh_fixtures import (
    MESH,
    NAMESPACE,
    LoopThread,
    app_pod,
)
from tests.kube_api_double import Identity, KubeApiDouble
from tyk_controller.kube import KubeClient
from tyk_controller.mesh.config import (
    CLUSTER_RULES,
    NAMESPACE_SECRET,
    REDIS_PASSWORD_KEY,
    ROUTES_CONFIG_MAP,
    SIDECAR_SECRET_KEY,
)
from tyk_controller.mesh.reconciler import MeshReconciler
from tyk_controller.mesh.routes import Target, egress_api, plan_routes
from tyk_controller.mesh.sidecar import plan_injection
from tyk_gateway.models import ApiDefinition

TOKEN = "mesh-controller-token"
REDIS_PASSWORD = "redis-pw"


def running(pod: dict[str, Any], name: str) -> dict[str, Any]:
    """The pod as stored after admission (injected) and scheduling."""
    injection = plan_injection(pod, NAMESPACE, MESH)
    stored = jsonpatch.apply_patch(pod, injection.patch) if injection.patch else copy.deepcopy(pod)
    stored["metadata"]["name"] = name
    stored["metadata"]["uid"] = str(uuid.uuid4())
    stored["status"] = {"phase": "Running"}
    return stored


def service(name: str, app: str, target_port: int | str = "http", port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": str(uuid.uuid4())},
        "spec": {
            "selector": {"app": app},
            "ports": [{"name": "http", "port": port, "targetPort": target_port}],
        },
    }


@pytest.fixture
def api() -> Iterator[KubeApiDouble]:
    with KubeApiDouble() as double:
        double.grant(
            TOKEN, Identity(user="system:serviceaccount:tyk:tyk-controller", cluster_rules=CLUSTER_RULES)
        )
        yield double


class Reloads:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def background_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture
def kube(api: KubeApiDouble, background_loop: LoopThread) -> Iterator[KubeClient]:
    client = KubeClient(lambda: kopf.ConnectionInfo(server=api.url, token=TOKEN))
    yield client
    background_loop.run(client.close())


def reconciler(kube: KubeClient, reloads: Reloads) -> MeshReconciler:
    mesh = MESH.model_copy(update={"reload_delay_seconds": 0.0})
    return MeshReconciler(
        kube, mesh, redis_password=REDIS_PASSWORD, reload=reloads, controller_namespace="tyk"
    )


def routes(api: KubeApiDouble) -> dict[str, dict[str, Any]]:
    config_map = api.get("v1", "ConfigMap", NAMESPACE, ROUTES_CONFIG_MAP)
    assert config_map is not None
    return {key: json.loads(value) for key, value in (config_map.get("data") or {}).items()}


def writes(api: KubeApiDouble) -> list[Any]:
    return [
        r
        for r in api.requests
        if r.verb in ("create", "update", "patch", "delete") and r.resource != "events"
    ]


def two_services(api: KubeApiDouble) -> None:
    api.apply(running(app_pod("orders"), "orders-1"))
    api.apply(service("orders", "orders"))
    api.apply(running(app_pod("web", annotations={"injector.tyk.io/route": "/shop/web"}), "web-1"))
    api.apply(service("web", "web"))


def test_routes_follow_the_meshed_workloads(
    api: KubeApiDouble, kube: KubeClient, background_loop: LoopThread
) -> None:
    run = background_loop.run
    reloads = Reloads()
    mesh = reconciler(kube, reloads)
    two_services(api)
    run(mesh.reconcile())
    assert set(routes(api)) == {"orders.route.json", "shop.web.route.json"}
    orders = routes(api)["orders.route.json"]
    ApiDefinition.model_validate(orders)
    assert orders["domain"] == "mesh"
    assert orders["proxy"]["listen_path"] == "/orders/"
    assert orders["proxy"]["target_url"] == f"http://orders.{NAMESPACE}.svc:80"
    assert run(mesh.reload_if_due()) and reloads.count == 1

    # Scaling up: same route, no write at all, no reload.
    before = len(writes(api))
    api.apply(running(app_pod("orders"), "orders-2"))
    result = run(mesh.reconcile())
    assert (result.writes, len(writes(api)) - before) == (0, 0)
    assert not run(mesh.reload_if_due())

    # Deleting the workload removes its route (and only its route).
    api.delete("v1", "Pod", NAMESPACE, "orders-1")
    api.delete("v1", "Pod", NAMESPACE, "orders-2")
    run(mesh.reconcile())
    assert set(routes(api)) == {"shop.web.route.json"}
    assert run(mesh.reload_if_due()) and reloads.count == 2

    # The last meshed pod gone: the namespace's ConfigMap and Secret go too.
    api.delete("v1", "Pod", NAMESPACE, "web-1")
    run(mesh.reconcile())
    assert api.get("v1", "ConfigMap", NAMESPACE, ROUTES_CONFIG_MAP) is None
    assert api.get("v1", "Secret", NAMESPACE, NAMESPACE_SECRET) is None


def test_a_restarted_controller_converges_without_writes(
    api: KubeApiDouble, kube: KubeClient, background_loop: LoopThread
) -> None:
    run = background_loop.run
    two_services(api)
    run(reconciler(kube, Reloads()).reconcile())
    secret = api.get("v1", "Secret", NAMESPACE, NAMESPACE_SECRET)
    assert secret is not None
    assert base64.b64decode(secret["data"][REDIS_PASSWORD_KEY]).decode() == REDIS_PASSWORD
    sidecar_secret = secret["data"][SIDECAR_SECRET_KEY]
    assert len(base64.b64decode(sidecar_secret)) >= 32

    before = len(writes(api))
    restarted = reconciler(kube, Reloads())
    result = run(restarted.reconcile())
    assert (result.writes, result.deletes, len(writes(api)) - before) == (0, 0, 0)
    assert restarted.reload_due is None
    kept = api.get("v1", "Secret", NAMESPACE, NAMESPACE_SECRET)
    assert kept is not None and kept["data"][SIDECAR_SECRET_KEY] == sidecar_secret  # generated once, kept


def test_requests_stay_within_the_mesh_rbac(
    api: KubeApiDouble, kube: KubeClient, background_loop: LoopThread
) -> None:
    run = background_loop.run
    two_services(api)
    api.apply(service("orders-by-number", "orders", target_port=8080))
    mesh = reconciler(kube, Reloads())
    run(mesh.reconcile())
    api.delete("v1", "Pod", NAMESPACE, "orders-1")
    api.delete("v1", "Pod", NAMESPACE, "web-1")
    run(mesh.reconcile())
    assert all(r.status < 400 or r.status == 404 for r in api.requests), [
        (r.method, r.path, r.status) for r in api.requests if r.status >= 400
    ]
    for request in api.requests:
        if request.resource == "secrets":
            assert request.verb != "list" and request.verb != "watch"
            # Allowed by a rule whose resourceNames (if any) include the object's name.
            assert any(
                rule.allows("", "secrets", request.verb)
                and (not rule.resource_names or request.name in rule.resource_names)
                for rule in CLUSTER_RULES
            ), (request.method, request.path)


def test_problems_become_events_once(
    api: KubeApiDouble, kube: KubeClient, background_loop: LoopThread
) -> None:
    run = background_loop.run
    two_services(api)
    api.apply(service("orders-by-number", "orders", target_port=8080))
    # Opted in but created while the webhook was unavailable (failurePolicy Ignore): no sidecar.
    plain = app_pod("billing")
    plain["metadata"].update(name="billing-1", uid=str(uuid.uuid4()))
    plain["status"] = {"phase": "Running"}
    api.apply(plain)
    # Opted in with an annotation the webhook refused.
    bad = running(app_pod("stock", annotations={"injector.tyk.io/port": "grpc"}), "stock-1")
    api.apply(bad)
    mesh = reconciler(kube, Reloads())
    run(mesh.reconcile())
    run(mesh.reconcile())
    events = api.list_objects("v1", "Event")
    by_reason = {(e["involvedObject"]["kind"], e["involvedObject"]["name"], e["reason"]) for e in events}
    assert by_reason == {
        ("Service", "orders-by-number", "MeshBypassed"),
        ("Pod", "billing-1", "NotInjected"),
        ("Pod", "stock-1", "PortNotFound"),
    }
    assert len(events) == 3  # reported once, not on every pass
    assert all(e["type"] == "Warning" for e in events)
    [stock] = [e for e in events if e["involvedObject"]["name"] == "stock-1"]
    assert "'grpc'" in stock["message"]
    assert set(routes(api)) == {"orders.route.json", "shop.web.route.json"}


def test_two_workloads_claiming_one_route_resolve_deterministically() -> None:
    pods = [
        running(app_pod("orders"), "orders-1"),
        running(app_pod("orders-v2", annotations={"injector.tyk.io/route": "/orders"}), "orders-v2-1"),
    ]
    services = [service("orders", "orders"), service("orders-v2", "orders-v2")]
    for order in (pods, list(reversed(pods))):
        plan = plan_routes(NAMESPACE, order, list(reversed(services)), MESH)
        assert plan.routes["/orders"].service == "orders"
        [conflict] = plan.problems
        assert (conflict.name, conflict.problem.reason) == ("orders-v2-1", "RouteConflict")


def test_terminating_and_finished_pods_serve_no_route() -> None:
    terminating = running(app_pod("orders"), "orders-1")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    finished = running(app_pod("web"), "web-1")
    finished["status"]["phase"] = "Succeeded"
    plan = plan_routes(
        NAMESPACE, [terminating, finished], [service("orders", "orders"), service("web", "web")], MESH
    )
    assert plan.data == {} and plan.problems == []


def test_egress_route_paths_never_overlap_by_prefix() -> None:
    short = egress_api(NAMESPACE, "/orders", Target("orders", 80), MESH)
    assert short["proxy"]["listen_path"] == "/orders/"
    assert not "/orders-v2/x".startswith(short["proxy"]["listen_path"])


def test_refused_opt_ins_get_events_but_no_copy_of_the_redis_password(
    api: KubeApiDouble, kube: KubeClient, background_loop: LoopThread
) -> None:
    run = background_loop.run
    refused = app_pod("orders", annotations={"injector.tyk.io/port": "grpc"})
    refused["metadata"].update(name="orders-1", uid=str(uuid.uuid4()))
    refused["status"] = {"phase": "Running"}
    api.apply(refused)
    system = running(app_pod("dns"), "dns-1")
    system["metadata"]["namespace"] = "kube-system"
    api.apply(system)
    run(reconciler(kube, Reloads()).reconcile())
    assert api.get("v1", "Secret", NAMESPACE, NAMESPACE_SECRET) is None
    assert api.get("v1", "ConfigMap", NAMESPACE, ROUTES_CONFIG_MAP) is None
    assert api.get("v1", "Secret", "kube-system", NAMESPACE_SECRET) is None
    [event] = api.list_objects("v1", "Event")
    assert (event["involvedObject"]["name"], event["reason"]) == ("orders-1", "PortNotFound")
