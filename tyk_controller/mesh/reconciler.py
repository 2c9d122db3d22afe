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
import datetime
import logging
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from tyk_controller.mesh.config import (
    FIELD_MANAGER,
    INJECT_LABEL,
    NAMESPACE_SECRET,
    REDIS_PASSWORD_KEY,
    ROUTES_CONFIG_MAP,
    SIDECAR_SECRET_KEY,
    MeshConfig,
)
from tyk_controller.mesh.routes import ObjectProblem, plan_routes

log = logging.getLogger("tyk_controller.mesh")

MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED_VALUE = FIELD_MANAGER
COMPONENT = "tyk-mesh-controller"

# RBAC the reconciler uses (the controller's ClusterRole must grant exactly these): (apiGroups, resources,
# verbs, resourceNames). Secrets: create anywhere (a create can't be limited by name), but read, update and
# delete only the one named tyk-mesh, and never list them.
RBAC_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (("",), ("pods", "services"), ("list", "watch"), ()),
    (("",), ("configmaps",), ("get", "list", "watch", "create", "update", "delete"), ()),
    (("",), ("secrets",), ("create",), ()),
    (("",), ("secrets",), ("get", "update", "delete"), (NAMESPACE_SECRET,)),
    (("",), ("events",), ("create",), ()),
)


class KubeError(Exception):
    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status


class Kube(Protocol):
    async def request(self, method: str, path: str, body: Any = None) -> Any: ...


class HttpKube:
    """The few Kubernetes REST calls the reconciler makes, over aiohttp (in-cluster credentials by default)."""

    TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

    def __init__(self, base_url: str | None = None, *, token_file: str | None = None, ca_file: str | None = None):
        if base_url is None:
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            base_url = f"https://{host}:{port}"
            token_file, ca_file = token_file or self.TOKEN_FILE, ca_file or self.CA_FILE
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self.ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token_file:
            # Bound service account tokens rotate: read the file on every call (it is tiny and cached by the OS).
            with open(self.token_file, encoding="utf-8") as handle:
                headers["Authorization"] = f"Bearer {handle.read().strip()}"
        return headers

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        async with self._session.request(
            method, self.base_url + path, json=body, headers=self._headers(), ssl=self.ssl
        ) as response:
            payload = await response.json(content_type=None) if response.content_length != 0 else None
            if response.status >= 400:
                message = (payload or {}).get("message", "") if isinstance(payload, dict) else ""
                raise KubeError(method, path, response.status, message)
            return payload

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _path(kind: str, namespace: str | None = None, name: str | None = None, query: str = "") -> str:
    path = "/api/v1" + (f"/namespaces/{namespace}" if namespace else "") + f"/{kind}"
    if name:
        path += f"/{name}"
    return path + (f"?{query}" if query else "")


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
    ) -> None:
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
        pods = (await self.kube.request("GET", _path("pods", query=_selector(INJECT_LABEL, "true"))))["items"]
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            namespace = pod["metadata"]["namespace"]
            if namespace != self.controller_namespace:
                by_namespace.setdefault(namespace, []).append(pod)
        managed = (
            await self.kube.request("GET", _path("configmaps", query=_selector(MANAGED_LABEL, MANAGED_VALUE)))
        )["items"]
        managed_maps = {
            cm["metadata"]["namespace"]: cm for cm in managed if cm["metadata"]["name"] == ROUTES_CONFIG_MAP
        }
        for namespace in sorted(by_namespace):
            result.namespaces += 1
            services = (await self.kube.request("GET", _path("services", namespace)))["items"]
            plan = plan_routes(namespace, by_namespace[namespace], services, self.mesh)
            result.writes += await self._ensure_secret(namespace)
            current = managed_maps.get(namespace)
            if current is None or (current.get("data") or {}) != plan.data:
                await self._put_config_map(namespace, plan.data, current)
                result.writes += 1
                result.routes_changed.append(namespace)
            for problem in plan.problems:
                result.events += await self._report(problem)
        for namespace in sorted(set(managed_maps) - set(by_namespace)):
            # The last meshed pod is gone: its routes (and the copied Redis password) go too.
            await self._delete(_path("configmaps", namespace, ROUTES_CONFIG_MAP))
            await self._delete(_path("secrets", namespace, NAMESPACE_SECRET))
            result.deletes += 2
            result.routes_changed.append(namespace)
        if result.routes_changed:
            self.reload_due = self.clock() + self.mesh.reload_delay_seconds
        return result

    async def _put_config_map(self, namespace: str, data: dict[str, str], current: Mapping[str, Any] | None) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ROUTES_CONFIG_MAP, "namespace": namespace, "labels": self._labels()},
            "data": data,
        }
        if current is None:
            try:
                await self.kube.request("POST", _path("configmaps", namespace), body)
                return
            except KubeError as error:
                if error.status != 409:
                    raise
                current = await self.kube.request("GET", _path("configmaps", namespace, ROUTES_CONFIG_MAP))
        assert current is not None
        body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        await self.kube.request("PUT", _path("configmaps", namespace, ROUTES_CONFIG_MAP), body)

    async def _ensure_secret(self, namespace: str) -> int:
        path = _path("secrets", namespace, NAMESPACE_SECRET)
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
            await self.kube.request("POST", _path("secrets", namespace), body)
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
        key = (item.uid or f"{item.kind}/{item.namespace}/{item.name}", item.problem.reason, item.problem.message)
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
            "message": item.problem.message,
            "type": "Warning",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": os.environ.get("POD_NAME", COMPONENT),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.request("POST", _path("events", item.namespace), event)
        except KubeError as error:
            log.warning("event %s on %s/%s not recorded: %s", item.problem.reason, item.namespace, item.name, error)
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

    async def run(self, *, resync_seconds: float = 30.0, tick: float = 1.0) -> None:
        """Reconcile at start, on every poke (coalesced) and every resync period; fire due reloads."""
        last = float("-inf")
        while True:
            if self._poked.is_set() or self.clock() - last >= resync_seconds:
                self._poked.clear()
                try:
                    await self.reconcile()
                except (KubeError, aiohttp.ClientError, asyncio.TimeoutError) as error:
                    log.warning("mesh reconcile failed (retrying): %s", error)
                last = self.clock()
            await self.reload_if_due()
            try:
                await asyncio.wait_for(self._poked.wait(), timeout=tick)
            except TimeoutError:
                pass
