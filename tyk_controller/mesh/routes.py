"""A namespace's egress routes, computed from what is there now (level-triggered, pure).

Input: the namespace's opted-in pods and its Services. Output: the data of the routes ConfigMap (one egress
API definition per route, projected into every sidecar's apps folder) and the problems to report as Events.

- A route exists while at least one running, injected pod serves it: scaling never duplicates it (one file per
  route), deleting the workload removes it.
- Its target is the Service that selects those pods *and* targets the sidecar by the app port's name; a Service
  that targets the app's port by number bypasses the sidecar, which is reported, not silently accepted.
- Two workloads claiming one route: the Service whose name sorts first wins, every pod of the others gets an
  Event (deterministic, so two controllers or a restart agree).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tyk_controller.mesh.config import (
    APP_PORT_ANNOTATION,
    INJECT_LABEL,
    MESH_HOST,
    ROUTE_FILE_SUFFIX,
    ROUTE_STATUS_ANNOTATION,
    MeshConfig,
)
from tyk_controller.mesh.sidecar import Customise, Problem, is_injected, opted_out, plan_injection, route_slug


@dataclass(frozen=True)
class ObjectProblem:
    """A problem about one object: a Warning Event on it."""

    kind: str
    namespace: str
    name: str
    uid: str
    problem: Problem


@dataclass(frozen=True)
class Target:
    service: str
    port: int


@dataclass
class RoutesPlan:
    data: dict[str, str]
    """The routes ConfigMap's data: `<slug>.route.json` -> egress API definition (JSON)."""
    routes: dict[str, Target] = field(default_factory=dict)
    problems: list[ObjectProblem] = field(default_factory=list)


def egress_api(namespace: str, route: str, target: Target, mesh: MeshConfig) -> dict[str, Any]:
    """`http://mesh/<route>/...` on the caller's sidecar -> the target Service (and so the callee's sidecar)."""
    return {
        "api_id": f"mesh-out.{namespace}.{route_slug(route)}",
        "name": f"mesh route {namespace}{route} -> {target.service}",
        "org_id": mesh.org_id,
        "active": True,
        "use_keyless": True,  # the callee's sidecar applies the callee's auth and limits
        "domain": MESH_HOST,
        "proxy": {
            # With the trailing slash, /orders never also matches /orders-v2 (the router matches prefixes).
            "listen_path": f"{route}/",
            "target_url": f"http://{target.service}.{namespace}.svc:{target.port}",
            "strip_listen_path": True,
        },
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "tags": ["mesh"],
    }


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _running(pod: Mapping[str, Any]) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return _meta(pod).get("deletionTimestamp") is None and phase not in ("Succeeded", "Failed")


def _selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = _meta(pod).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _problem(kind: str, obj: Mapping[str, Any], problem: Problem) -> ObjectProblem:
    meta = _meta(obj)
    return ObjectProblem(kind, meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""), problem)


def plan_routes(
    namespace: str,
    pods: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    mesh: MeshConfig,
    customise: Customise | None = None,
) -> RoutesPlan:
    services = sorted(services, key=lambda s: _meta(s).get("name", ""))
    claims: dict[str, dict[Target, list[Mapping[str, Any]]]] = {}
    problems: list[ObjectProblem] = []
    for pod in sorted(pods, key=lambda p: _meta(p).get("name", "")):
        labels = _meta(pod).get("labels") or {}
        if labels.get(INJECT_LABEL) != "true" or not _running(pod) or opted_out(pod):
            continue
        if not is_injected(pod):
            reasons = plan_injection(pod, namespace, mesh, customise).problems
            problems += [_problem("Pod", pod, p) for p in reasons] or [
                _problem(
                    "Pod",
                    pod,
                    Problem(
                        "metadata",
                        "NotInjected",
                        "opted in but created without the sidecar (webhook unavailable at creation?); "
                        "restart the workload to inject it",
                    ),
                )
            ]
            continue
        annotations = _meta(pod).get("annotations") or {}
        route = annotations.get(ROUTE_STATUS_ANNOTATION)
        number, _, port_name = (annotations.get(APP_PORT_ANNOTATION) or "").partition("/")
        if not route or not port_name:
            continue
        targets = []
        for service in services:
            if not _selects(service, pod):
                continue
            for port in (service.get("spec") or {}).get("ports") or []:
                target_port = port.get("targetPort", port.get("port"))
                if str(target_port) == port_name:
                    targets.append(Target(_meta(service)["name"], int(port["port"])))
                elif str(target_port) == number:
                    problems.append(
                        _problem(
                            "Service",
                            service,
                            Problem(
                                f"spec.ports[{port.get('name') or port.get('port')}].targetPort",
                                "MeshBypassed",
                                f"targetPort {target_port} reaches the app of meshed pod "
                                f"{_meta(pod).get('name')} directly; target the port by name "
                                f"({port_name!r}) to go through its sidecar",
                            ),
                        )
                    )
        if not targets:
            problems.append(
                _problem(
                    "Pod",
                    pod,
                    Problem(
                        "metadata.labels",
                        "NoMeshService",
                        f"no Service selects this pod with targetPort {port_name!r}: route {route} "
                        "is not served",
                    ),
                )
            )
            continue
        claims.setdefault(route, {}).setdefault(targets[0], []).append(pod)

    plan = RoutesPlan({})
    for route in sorted(claims):
        by_target = claims[route]
        winner = min(by_target, key=lambda t: (t.service, t.port))
        plan.routes[route] = winner
        plan.data[f"{route_slug(route)}{ROUTE_FILE_SUFFIX}"] = json.dumps(
            egress_api(namespace, route, winner, mesh), sort_keys=True, separators=(",", ":")
        )
        for target, losers in by_target.items():
            if target == winner:
                continue
            problems += [
                _problem(
                    "Pod",
                    pod,
                    Problem(
                        f"metadata.annotations[{ROUTE_STATUS_ANNOTATION}]",
                        "RouteConflict",
                        f"route {route} is already served by Service {winner.service}; "
                        f"this pod's Service {target.service} is not routed",
                    ),
                )
                for pod in losers
            ]
    plan.problems = problems
    return plan
