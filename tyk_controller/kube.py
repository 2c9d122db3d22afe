"""Kubernetes side of the runtime: the in-memory object stores, the kopf watch handlers, a small API client.

kopf does the watching (list-then-watch, bookmarks, reconnects, and a fresh list after ``410 Gone``). Its
handlers here are ``@kopf.on.event`` only: event handlers keep no progress and need no finalizers, so kopf
never writes to a watched object (``settings.persistence`` is never used; the runtime tests assert that no
request modifies an Ingress except ``/status``). Peering and cluster scanning are off, so kopf needs no
permissions beyond list/watch of the watched kinds.

kopf's relist after ``410 Gone`` replays the current objects but does not report the ones deleted while the
watch was down, so every full resync also lists each kind itself (``Store.begin_list``/``end_list``) and
drops what is gone: the stores converge even when a deletion event was lost.

``KubeClient`` is for the few calls the controller makes itself (Leases, Ingress status, Events, the publish
Service, the resync lists), with kopf's own login handlers for credentials (service account in the cluster,
``KUBECONFIG`` elsewhere).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import kopf

log = logging.getLogger("tyk_controller.kube")

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def kopf_ref(self) -> str:
        return f"{self.plural}.{self.version}.{self.group}" if self.group else f"{self.plural}.{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if sub:
            base += f"/{sub}"
        return base


INGRESSES = Kind("networking.k8s.io", "v1", "ingresses", True, "Ingress")
INGRESS_CLASSES = Kind("networking.k8s.io", "v1", "ingressclasses", False, "IngressClass")
SERVICES = Kind("", "v1", "services", True, "Service")
SECRETS = Kind("", "v1", "secrets", True, "Secret")
EVENTS = Kind("", "v1", "events", True, "Event")
PODS = Kind("", "v1", "pods", True, "Pod")
CONFIGMAPS = Kind("", "v1", "configmaps", True, "ConfigMap")
LEASES = Kind("coordination.k8s.io", "v1", "leases", True, "Lease")


def object_key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def slim_secret(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """Keep TLS Secrets only, and only what translation needs: never the rest of the cluster's secrets."""
    if body.get("type") != "kubernetes.io/tls":
        return None
    meta = body.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta},
        "type": body["type"],
        "data": dict(body.get("data") or {}),
    }


def slim(kind: Kind, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The object as stored: without ``managedFields``, and always with ``apiVersion``/``kind`` (the items
    of a list response carry neither; watch events do)."""
    if kind is SECRETS:
        return slim_secret(body)
    out = {k: v for k, v in body.items() if k != "metadata"}
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    out["apiVersion"], out["kind"] = kind.api_version, kind.kind
    return out


def _significant(body: Mapping[str, Any]) -> Any:
    """What a reconcile depends on: not the status (ours, mostly) nor the bookkeeping metadata.

    The status this controller writes comes back as a watch event; it must not cost another pass.
    """
    meta = {
        k: v for k, v in (body.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")
    }
    return {k: v for k, v in body.items() if k not in ("status", "metadata")} | {"metadata": meta}


class Store:
    """The current objects of one kind, fed by watch events and corrected by full lists."""

    def __init__(self, kind: Kind, on_change: Callable[[], None]) -> None:
        self.kind = kind
        self.items: dict[Key, dict[str, Any]] = {}
        self.generation = 0  # bumped on every change
        self._on_change = on_change
        self._listing = False
        self._touched: set[Key] = set()  # keys changed by events while a list was in flight

    def apply_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = object_key(body)
        if self._listing:
            self._touched.add(key)
        changed = self.items.pop(key, None) is not None if event_type == "DELETED" else self._keep(key, body)
        if changed:
            self._changed()

    def _keep(self, key: Key, body: Mapping[str, Any]) -> bool:
        """Store the object as kept (or drop it when nothing is kept, e.g. a Secret that stopped being a TLS
        Secret); True when a reconcile depends on the difference."""
        kept = slim(self.kind, body)
        if kept is None:
            return self.items.pop(key, None) is not None
        previous = self.items.get(key)
        if previous == kept:
            return False
        self.items[key] = kept
        return previous is None or _significant(previous) != _significant(kept)

    def begin_list(self) -> None:
        self._listing = True
        self._touched = set()

    def end_list(self, listed: Sequence[Mapping[str, Any]]) -> None:
        """Adopt a full list: add what events missed, drop what is gone; events during the list win."""
        self._listing = False
        seen: set[Key] = set()
        changed = False
        for body in listed:
            key = object_key(body)
            seen.add(key)
            if key not in self._touched:
                changed |= self._keep(key, body)
        for key in list(self.items):
            if key not in seen and key not in self._touched:
                del self.items[key]
                changed = True
        self._touched = set()
        if changed:
            self._changed()

    def abort_list(self) -> None:
        self._listing = False
        self._touched = set()

    def _changed(self) -> None:
        self.generation += 1
        self._on_change()


@dataclass
class ClusterState:
    """Everything the controller knows about the cluster, in memory."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stores: dict[str, Store] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in (INGRESSES, INGRESS_CLASSES, SERVICES, SECRETS):
            self.stores[kind.plural] = Store(kind, self.changed.set)

    @property
    def ingresses(self) -> Store:
        return self.stores["ingresses"]

    @property
    def ingress_classes(self) -> Store:
        return self.stores["ingressclasses"]

    @property
    def services(self) -> Store:
        return self.stores["services"]

    @property
    def secrets(self) -> Store:
        return self.stores["secrets"]


def build_registry(
    state: ClusterState, kinds: list[Kind], login: Callable[..., Any]
) -> kopf.OperatorRegistry:
    """A kopf registry with one event handler per watched kind (and the login handler); nothing else."""
    registry = kopf.OperatorRegistry()

    def feeder(store: Store) -> Callable[..., None]:
        def on_event(event: Mapping[str, Any], **_: Any) -> None:
            store.apply_event(event.get("type"), event.get("object") or {})

        return on_event

    for kind in kinds:
        kopf.on.event(kind.group, kind.version, kind.plural, registry=registry, id=f"store-{kind.plural}")(
            feeder(state.stores[kind.plural])
        )
    kopf.on.login(registry=registry, id="login")(login)
    return registry


class _Forever:
    """kopf retries a failed API request once per element: never give up, back off up to a cap."""

    def __init__(self, steps: tuple[float, ...]) -> None:
        self.steps = steps

    def __iter__(self) -> Iterator[float]:
        return itertools.chain(self.steps, itertools.repeat(self.steps[-1]))


def kopf_settings(settings: kopf.OperatorSettings) -> kopf.OperatorSettings:
    settings.peering.standalone = True  # leader election is ours (a Lease); no KopfPeering CRD
    settings.scanning.disabled = True  # no CRD/namespace watching: namespaces are fixed in the config
    settings.posting.enabled = False  # kopf's own log lines must not become Events on users' Ingresses
    settings.networking.error_backoffs = _Forever((1, 2, 4, 8, 15))
    settings.watching.server_timeout = 300  # the API server closes each watch after 5 min; kopf resumes
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    return settings


def login_handler(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, then ``KUBECONFIG`` (tests, local runs)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


class KubeError(Exception):
    def __init__(self, method: str, path: str, status: int | None, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"Kubernetes {method} {path}: {status or 'unreachable'} {reason}: {message}")


class KubeClient:
    """The controller's own Kubernetes calls (JSON over aiohttp), with kopf's credentials."""

    def __init__(self, login: Callable[[], kopf.ConnectionInfo | None], timeout: float = 10.0) -> None:
        self._login = login
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _connect(self) -> tuple[aiohttp.ClientSession, kopf.ConnectionInfo]:
        if self._session is None or self._info is None:
            info = self._login()
            if info is None:
                raise KubeError(
                    "LOGIN", "", None, "NoCredentials", "no service account token and no KUBECONFIG"
                )
            context: ssl.SSLContext | bool = False
            if info.server.startswith("https"):
                context = ssl.create_default_context(
                    cafile=str(info.ca_path) if info.ca_path else None,
                    cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
                )
                if info.insecure:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if info.certificate_path and info.private_key_path:
                    context.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
            headers = {"Accept": "application/json"}
            if info.token:
                headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=context)
            )
            self._info = info
        return self._session, self._info

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        for attempt in (1, 2):
            session, info = self._connect()
            url = info.server.rstrip("/") + path + (f"?{urlencode(params)}" if params else "")
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": content_type} if data is not None else {}
            try:
                async with session.request(method, url, data=data, headers=headers) as response:
                    text = await response.text()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                raise KubeError(method, path, None, type(error).__name__, str(error) or "no answer") from None
            if status == 401 and attempt == 1:  # rotated service-account token: log in again
                await self.close()
                continue
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            if status >= 400:
                reason = parsed.get("reason", "") if isinstance(parsed, dict) else ""
                message = parsed.get("message", text[:200]) if isinstance(parsed, dict) else text[:200]
                raise KubeError(method, path, status, reason, message)
            return parsed
        raise AssertionError("unreachable")

    async def list(self, kind: Kind, namespace: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"limit": "500"} | ({"continue": token} if token else {})
            answer = await self.request("GET", kind.path(namespace), params=params)
            items.extend(answer.get("items") or [])
            token = (answer.get("metadata") or {}).get("continue") or ""
            if not token:
                return items
