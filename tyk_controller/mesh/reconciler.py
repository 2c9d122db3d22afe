"""Keeps every meshed namespace's routes ConfigMap and Secret in step with its opted-in pods (level-triggered).

One pass (`MeshReconciler.reconcile`) lists what is there now, computes what should be, and writes only the
differences; it runs at start, periodically, and whenever a watch pokes it, so a restarted controller
converges and a missed event costs one resync period at most.

- Routes ConfigMap `tyk-mesh-routes` per namespace with meshed pods; deleted with the last of them.
- Secret `tyk-mesh` per such namespace: the gateways' Redis password (the sidecar's gateway refuses to run
  without Redis) and the sidecars' own admin secret, generated once and kept.
- After a routes change, one gateway group reload (Redis pub/sub reaches every gateway and sidecar on that
  Redis), delayed by `reloadDelaySeconds` because kubelet refreshes a projected ConfigMap on its next pod sync,
  not at once; changes within the delay share one reload.
- Problems (a Service that bypasses the sidecar, a bad opt-in, a route conflict) become Warning Events, once
  per object and message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from tyk_controller.kube import CONFIGMAPS, EVENTS, PODS, SECRETS, SERVICES, Kind, KubeError
from tyk_controller.mesh.config import (
    FIELD_MANAGER,
    INJECT_LABEL,
    NAMESPACE_SECRET,
    REDIS_PASSWORD_KEY,
    ROUTES_CONFIG_MAP,
    SIDECAR_SECRET_KEY,
    SYSTEM_NAMESPACES,
    MeshConfig,
)
from tyk_controller.mesh.routes import ObjectProblem, plan_routes
from tyk_controller.mesh.sidecar import Customise, is_injected

log = logging.getLogger("tyk_controller.mesh")

MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED_VALUE = FIELD_MANAGER
COMPONENT = "tyk-mesh-controller"


class Kube(Protocol):
    """What the reconciler needs of a Kubernetes client (`tyk_controller.kube.KubeClient` is one)."""

    async def request(self, method: str, path: str, body: Any = None) -> Any: ...


def _selector(label: str, value: str) -> str:
    return "labelSelector=" + quote(f"{label}={value}", safe="")


@dataclass
class PassResult:
    namespaces: int = 0
    writes: int = 0
    deletes: int = 0
    events: int = 0
    routes_changed: list[str] = field(default_factory=list)


class MeshReconciler:
    def __init__(
        self,
        kube: Kube,
        mesh: MeshConfig,
        *,
        redis_password: str,
        reload: Callable[[], Awaitable[None]],
        controller_namespace: str = "",
        clock: Callable[[], float] = time.monotonic,
        customise: Customise | None = None,
    ) -> None:
        self.customise = customise
        self.kube = kube
        self.mesh = mesh
        self.redis_password = redis_password
        self.reload = reload
        self.controller_namespace = controller_namespace
        self.clock = clock
        self.reload_due: float | None = None
        self.reloads = 0
        self._reported: set[tuple[str, str, str]] = set()
        self._lock = asyncio.Lock()
        self._poked = asyncio.Event()

    def _labels(self) -> dict[str, str]:
        return {MANAGED_LABEL: MANAGED_VALUE}

    async def reconcile(self) -> PassResult:
        """One level-triggered pass over every meshed namespace."""
        async with self._lock:
            return await self._reconcile()

    async def _reconcile(self) -> PassResult:
        result = PassResult()
        pods = await self._list(PODS, INJECT_LABEL, "true")
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            namespace = pod["metadata"]["namespace"]
            # The webhook never applies there (its namespaceSelector): nothing to route or report.
            if namespace != self.controller_namespace and namespace not in SYSTEM_NAMESPACES:
                by_namespace.setdefault(namespace, []).append(pod)
        managed = await self._list(CONFIGMAPS, MANAGED_LABEL, MANAGED_VALUE)
        managed_maps = {
            cm["metadata"]["namespace"]: cm for cm in managed if cm["metadata"]["name"] == ROUTES_CONFIG_MAP
        }
        meshed: set[str] = set()
        for namespace in sorted(by_namespace):
            services = (await self.kube.request("GET", SERVICES.path(namespace)))["items"]
            plan = plan_routes(namespace, by_namespace[namespace], services, self.mesh, self.customise)
            for problem in plan.problems:
                result.events += await self._report(problem)
            if not any(is_injected(pod) for pod in by_namespace[namespace]):
                continue  # only refused opt-ins here: no sidecar needs the Redis password
            meshed.add(namespace)
            result.namespaces += 1
            result.writes += await self._ensure_secret(namespace)
            current = managed_maps.get(namespace)
            if current is None or (current.get("data") or {}) != plan.data:
                await self._put_config_map(namespace, plan.data, current)
                result.writes += 1
                result.routes_changed.append(namespace)
        for namespace in sorted(set(managed_maps) - meshed):
            # The last meshed pod is gone: its routes (and the copied Redis password) go too.
            await self._delete(CONFIGMAPS.path(namespace, ROUTES_CONFIG_MAP))
            await self._delete(SECRETS.path(namespace, NAMESPACE_SECRET))
            result.deletes += 2
            result.routes_changed.append(namespace)
        if result.routes_changed:
            self.reload_due = self.clock() + self.mesh.reload_delay_seconds
        return result

    async def _list(self, kind: Kind, label: str, value: str) -> list[dict[str, Any]]:
        answer = await self.kube.request("GET", f"{kind.path()}?{_selector(label, value)}")
        # Filtered here as well: correct whatever the server did with the selector.
        return [
            item
            for item in answer.get("items") or []
            if ((item.get("metadata") or {}).get("labels") or {}).get(label) == value
        ]

    async def _put_config_map(
        self, namespace: str, data: dict[str, str], current: Mapping[str, Any] | None
    ) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ROUTES_CONFIG_MAP, "namespace": namespace, "labels": self._labels()},
            "data": data,
        }
        if current is None:
            try:
                await self.kube.request("POST", CONFIGMAPS.path(namespace), body)
                return
            except KubeError as error:
                if error.status != 409:
                    raise
                current = await self.kube.request("GET", CONFIGMAPS.path(namespace, ROUTES_CONFIG_MAP))
        assert current is not None
        body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        await self.kube.request("PUT", CONFIGMAPS.path(namespace, ROUTES_CONFIG_MAP), body)

    async def _ensure_secret(self, namespace: str) -> int:
        path = SECRETS.path(namespace, NAMESPACE_SECRET)
        try:
            current = await self.kube.request("GET", path)
        except KubeError as error:
            if error.status != 404:
                raise
            current = None
        data = dict((current or {}).get("data") or {})
        wanted = dict(data)
        wanted[REDIS_PASSWORD_KEY] = base64.b64encode(self.redis_password.encode()).decode()
        if not wanted.get(SIDECAR_SECRET_KEY):
            wanted[SIDECAR_SECRET_KEY] = base64.b64encode(secrets.token_hex(24).encode()).decode()
        if current is not None and wanted == data:
            return 0
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": NAMESPACE_SECRET, "namespace": namespace, "labels": self._labels()},
            "data": wanted,
        }
        if current is None:
            await self.kube.request("POST", SECRETS.path(namespace), body)
        else:
            body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
            await self.kube.request("PUT", path, body)
        return 1

    async def _delete(self, path: str) -> None:
        try:
            await self.kube.request("DELETE", path)
        except KubeError as error:
            if error.status != 404:
                raise

    async def _report(self, item: ObjectProblem) -> int:
        key = (
            item.uid or f"{item.kind}/{item.namespace}/{item.name}",
            item.problem.reason,
            item.problem.message,
        )
        if key in self._reported:
            return 0
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{item.name or item.kind.lower()}.", "namespace": item.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": item.kind,
                "namespace": item.namespace,
                "name": item.name,
                "uid": item.uid,
                "fieldPath": item.problem.field,
            },
            "reason": item.problem.reason,
            # The API server refuses an Event message over 1024 characters.
            "message": item.problem.message
            if len(item.problem.message) <= 1024
            else item.problem.message[:1023] + "…",
            "type": "Warning",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": os.environ.get("POD_NAME", COMPONENT),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.request("POST", EVENTS.path(item.namespace), event)
        except KubeError as error:
            log.warning(
                "event %s on %s/%s not recorded: %s", item.problem.reason, item.namespace, item.name, error
            )
            return 0
        self._reported.add(key)
        return 1

    async def reload_if_due(self) -> bool:
        if self.reload_due is None or self.clock() < self.reload_due:
            return False
        self.reload_due = None
        try:
            await self.reload()
        except Exception as error:  # the gateway is down: try again on the next tick
            log.warning("mesh routes changed but the group reload failed (retrying): %s", error)
            self.reload_due = self.clock() + min(30.0, self.mesh.reload_delay_seconds or 1.0)
            return False
        self.reloads += 1
        log.info("mesh routes changed: gateway group reload requested")
        return True

    def poke(self) -> None:
        """Something meshed changed (a watch event): reconcile soon."""
        self._poked.set()

    async def run(
        self,
        *,
        resync_seconds: float = 30.0,
        tick: float = 1.0,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        """Reconcile at start, on every poke (coalesced) and every resync period, while leader; fire due
        reloads. Standby replicas only serve admission reviews."""
        last = float("-inf")
        while True:
            if not is_leader():
                last = float("-inf")  # a new leader starts with a full pass
            elif self._poked.is_set() or self.clock() - last >= resync_seconds:
                self._poked.clear()
                try:
                    await self.reconcile()
                except KubeError as error:
                    log.warning("mesh reconcile failed (retrying): %s", error)
                last = self.clock()
            await self.reload_if_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), timeout=tick)
