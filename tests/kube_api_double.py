"""A fake Kubernetes API server over real HTTP on 127.0.0.1, for the controller's tests and benchmarks.

Written from the Kubernetes API conventions and the API server's behaviour (kubernetes/kubernetes
``staging/src/k8s.io/apiserver``: ``endpoints/handlers`` for get/list/watch/create/update/patch,
``storage/cacher`` for watch semantics, ``apimachinery/pkg/api/errors`` for Status bodies), not from what the
controller sends:

* discovery: ``/version``, ``/api`` (APIVersions), ``/apis`` (APIGroupList), ``/api/v1`` and
  ``/apis/<group>/<version>`` (APIResourceList, with subresources such as ``ingresses/status``);
* one global, monotonically increasing ``resourceVersion`` shared by every object (etcd's revision);
* list: ``{"kind": "<Kind>List", "metadata": {"resourceVersion": ...}, "items": [...]}``; the items carry
  ``kind``/``apiVersion`` only in watch events and single gets (as the real server encodes them);
* watch (``?watch=true``): newline-delimited ``{"type", "object"}`` frames; no ``resourceVersion`` (or
  ``"0"``) starts with synthetic ``ADDED`` events for the current objects; a ``resourceVersion`` older than
  the compaction floor answers one ``ERROR`` frame carrying a ``Status`` with code 410 (``Expired``, "too old
  resource version") and closes; ``allowWatchBookmarks=true`` gets periodic ``BOOKMARK`` frames;
  ``timeoutSeconds`` closes the stream;
* create (``POST``): ``generateName``, ``uid``, ``creationTimestamp``, 409 ``AlreadyExists``;
* update (``PUT``): optimistic concurrency, a stale ``metadata.resourceVersion`` is 409 ``Conflict``;
* patch (``PATCH``, ``application/merge-patch+json`` per RFC 7386): on the main resource the ``status`` is
  ignored, on the ``/status`` subresource only the ``status`` changes (the status strategy);
* authorization: a bearer token maps to RBAC rules (``tyk_controller.rbac.Rule``) per namespace plus
  cluster-wide; a request they don't allow answers 403 with the API server's ``Forbidden`` Status. Discovery
  is open to every authenticated client (``system:discovery``); a missing/wrong token is 401.

Every request is recorded (method, path, query, verb, resource, namespace, body) for assertions, and
``down`` makes the server answer 503 (an unavailable API server behind its load balancer).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tyk_controller.rbac import Rule


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, subresources=("status",)),
    ResourceType("", "v1", "services", "Service", True, subresources=("status",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "configmaps", "ConfigMap", True),
    ResourceType("", "v1", "pods", "Pod", True, subresources=("status",)),
    ResourceType("", "v1", "events", "Event", True),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, subresources=("status",)),
    ResourceType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("events.k8s.io", "v1", "events", "Event", True),
)


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``metav1.Status`` as the API server writes it for a failed request."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _label_selector(text: str) -> dict[str, str]:
    """Equality-based label selectors (``a=b,c==d``), as ``labels.Parse`` reads them; sets are not needed."""
    selector = {}
    for requirement in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = requirement.replace("==", "=").partition("=")
        selector[key.strip()] = value.strip()
    return selector


def legacy_event_problems(event: Mapping[str, Any], namespace: str) -> list[str]:
    """core/v1 Event validation (``legacyValidateEvent`` in kubernetes ``pkg/apis/core/validation/events.go``)."""
    involved = str((event.get("involvedObject") or {}).get("namespace") or "")
    problems = []
    if not event.get("eventTime"):
        if not involved and namespace not in ("", "default"):
            problems.append(
                f'involvedObject.namespace: Invalid value: "{involved}": does not match event.namespace'
            )
        if involved and involved != namespace:
            problems.append(
                f'involvedObject.namespace: Invalid value: "{involved}": does not match event.namespace'
            )
        return problems
    if not involved and namespace not in ("default", "kube-system"):
        problems.append(
            f'involvedObject.namespace: Invalid value: "{involved}": does not match event.namespace'
        )
    for required in ("reportingController", "reportingInstance", "action", "reason"):
        if not event.get(required):
            problems.append(f"{required}: Required value")
    if len(str(event.get("reason") or "")) > 128:
        problems.append("reason: Invalid value: can have at most 128 characters")
    if len(str(event.get("message") or "")) > 1024:
        problems.append("message: Invalid value: can have at most 1024 characters")
    return problems


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    verb: str  # RBAC verb ("" for discovery)
    group: str
    resource: str  # with "/subresource"
    namespace: str | None
    name: str | None
    body: Any
    status: int = 0
    user: str = ""


@dataclass
class Identity:
    user: str
    namespace_rules: dict[str, tuple[Rule, ...]] = field(default_factory=dict)  # namespace -> rules (Role)
    cluster_rules: tuple[Rule, ...] = ()  # ClusterRole bound cluster-wide

    def allows(
        self, verb: str, group: str, resource: str, namespace: str | None, name: str | None = None
    ) -> bool:
        def granted(rule: Rule) -> bool:
            # RBAC's resourceNames match only requests that name the object (never list/watch/create).
            names_ok = not rule.resource_names or (name is not None and name in rule.resource_names)
            return rule.allows(group, resource, verb) and names_ok

        if any(granted(rule) for rule in self.cluster_rules):
            return True
        if namespace is None:
            return False
        return any(granted(rule) for rule in self.namespace_rules.get(namespace, ()))


class _Watch:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()


class KubeApiDouble:
    """The server. Thread-safe mutators for tests; the HTTP side runs on its own event loop thread."""

    def __init__(self, bookmark_interval: float = 1.0) -> None:
        self.bookmark_interval = bookmark_interval
        self.types = {(t.group, t.plural): t for t in RESOURCE_TYPES}
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {
            k: {} for k in self.types
        }
        self.history: list[tuple[int, tuple[str, str], str, dict[str, Any]]] = []  # rv, type key, event, obj
        self.compacted_rv = 0  # watches from a resourceVersion below this are 410 Gone
        self.revision = 100
        self.identities: dict[str, Identity] = {}
        self.requests: list[RecordedRequest] = []
        self.down = False
        self.partitioned = False
        self._lock = threading.RLock()
        self._watches: dict[tuple[str, str], list[tuple[str | None, _Watch]]] = {k: [] for k in self.types}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._started = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KubeApiDouble:
        self._thread = threading.Thread(target=self._run, daemon=True, name="kube-api-double")
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the fake Kubernetes API server did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self.expire_watches(compact=False)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> KubeApiDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, token: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "double", "user": {"token": token}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "double"}}],
        }

    def grant(self, token: str, identity: Identity) -> None:
        self.identities[token] = identity

    # --- test-side mutators (thread-safe) -----------------------------------------------------------

    def _type_of(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        for rtype in self.types.values():
            if rtype.group == group and rtype.version == version and rtype.kind == kind:
                return rtype
        raise KeyError(f"unknown type {api_version} {kind}")

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an object as a user would (``kubectl apply`` of the whole object)."""
        rtype = self._type_of(obj["apiVersion"], obj["kind"])
        with self._lock:
            key = (rtype.group, rtype.plural)
            namespace = obj["metadata"].get("namespace", "default") if rtype.namespaced else ""
            name = obj["metadata"]["name"]
            existing = self.objects[key].get((namespace, name))
            stored = copy.deepcopy(dict(obj))
            stored["metadata"] = dict(stored["metadata"])
            if rtype.namespaced:
                stored["metadata"]["namespace"] = namespace
            if existing is None:
                return self._create(rtype, stored)
            stored["metadata"]["uid"] = existing["metadata"]["uid"]
            stored["metadata"]["creationTimestamp"] = existing["metadata"]["creationTimestamp"]
            if "status" not in obj and "status" in existing:
                stored["status"] = existing["status"]
            return self._store(rtype, stored, "MODIFIED")

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        rtype = self._type_of(api_version, kind)
        with self._lock:
            key = (rtype.group, rtype.plural)
            obj = self.objects[key].pop((namespace if rtype.namespaced else "", name))
            self.revision += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.revision)
            self._publish(rtype, "DELETED", obj)

    def delete_while_disconnected(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete an object as if it happened while every watch was down and its event is compacted away.

        Only a fresh list can tell a client the object is gone (the watch resumes into 410 Gone).
        """
        rtype = self._type_of(api_version, kind)
        with self._lock:
            self.objects[(rtype.group, rtype.plural)].pop((namespace if rtype.namespaced else "", name))
            self.expire_watches(compact=True)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        rtype = self._type_of(api_version, kind)
        with self._lock:
            found = self.objects[(rtype.group, rtype.plural)].get(
                (namespace if rtype.namespaced else "", name)
            )
            return copy.deepcopy(found) if found is not None else None

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rtype = self._type_of(api_version, kind)
        with self._lock:
            return [
                copy.deepcopy(o)
                for (ns, _), o in self.objects[(rtype.group, rtype.plural)].items()
                if namespace is None or ns == namespace
            ]

    def expire_watches(self, compact: bool = True) -> None:
        """Close every open watch; with ``compact``, forget history so a resumed watch gets 410 Gone.

        That is what a client sees after being disconnected for longer than the API server's watch cache
        keeps events (etcd compaction): it must list again.
        """
        with self._lock:
            if compact:
                self.history.clear()
                self.revision += 1
                self.compacted_rv = self.revision
            watches = [w for lst in self._watches.values() for _, w in lst]
        for watch in watches:
            watch.loop.call_soon_threadsafe(watch.queue.put_nowait, None)

    # --- storage -----------------------------------------------------------------------------------

    def _create(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return self._store(rtype, obj, "ADDED")

    def _store(self, rtype: ResourceType, obj: dict[str, Any], event: str) -> dict[str, Any]:
        self.revision += 1
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        obj["metadata"]["resourceVersion"] = str(self.revision)
        obj["metadata"].setdefault("generation", 1)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        self.objects[(rtype.group, rtype.plural)][key] = obj
        self._publish(rtype, event, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _publish(self, rtype: ResourceType, event: str, obj: dict[str, Any]) -> None:
        key = (rtype.group, rtype.plural)
        self.history.append((self.revision, key, event, obj))
        namespace = obj["metadata"].get("namespace")
        for watch_ns, watch in self._watches[key]:
            if watch_ns is None or watch_ns == namespace:
                watch.loop.call_soon_threadsafe(watch.queue.put_nowait, {"type": event, "object": obj})

    # --- HTTP ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        query = dict(request.query)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(request.method, path, query, "", "", "", None, None, body)
        with self._lock:
            self.requests.append(record)
        response = await self._dispatch(request, path, query, body, record)
        record.status = response.status
        return response

    def _json(self, status: int, obj: Any) -> web.Response:
        return web.Response(status=status, text=json.dumps(obj), content_type="application/json")

    def _fail(self, code: int, reason: str, message: str, **details: Any) -> web.Response:
        return self._json(code, status_body(code, reason, message, details or None))

    def partition(self) -> None:
        """Cut the clients off: open watches close, new watches wait, other requests answer 503."""
        self.partitioned = True
        self.expire_watches(compact=False)

    def heal(self) -> None:
        """Reconnect, with the events of the partition compacted away: resumed watches get 410 Gone."""
        with self._lock:
            self.history.clear()
            self.revision += 1
            self.compacted_rv = self.revision
            self.partitioned = False

    async def _dispatch(
        self, request: web.Request, path: str, query: dict[str, str], body: Any, record: RecordedRequest
    ) -> web.StreamResponse:
        while self.partitioned and query.get("watch") in ("true", "1"):
            await asyncio.sleep(0.02)
        if self.down or self.partitioned:
            return self._fail(
                503, "ServiceUnavailable", "the server is currently unable to handle the request"
            )
        auth = request.headers.get("Authorization", "")
        identity = self.identities.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if identity is None:
            return self._fail(401, "Unauthorized", "Unauthorized")
        record.user = identity.user
        parts = [p for p in path.split("/") if p]
        discovery = self._discovery(parts)
        if discovery is not None:
            return (
                self._json(200, discovery)
                if request.method == "GET"
                else self._fail(405, "MethodNotAllowed", "")
            )
        parsed = self._parse(parts)
        if parsed is None:
            return self._fail(404, "NotFound", "the server could not find the requested resource")
        rtype, namespace, name, subresource = parsed
        watch = query.get("watch") in ("true", "1")
        verb = {
            "GET": "watch" if watch else ("get" if name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(request.method, "")
        resource = rtype.plural + (f"/{subresource}" if subresource else "")
        record.verb, record.group, record.resource = verb, rtype.group, resource
        record.namespace, record.name = namespace, name
        if not identity.allows(verb, rtype.group, resource, namespace, name):
            group_part = f'in API group "{rtype.group}"'
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            qualified = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
            shown = f' "{name}"' if name else ""
            return self._fail(
                403,
                "Forbidden",
                f'{qualified}{shown} is forbidden: User "{identity.user}" cannot {verb} resource '
                f'"{resource}" {group_part}{where}',
                group=rtype.group,
                kind=rtype.plural,
                **({"name": name} if name else {}),
            )
        if watch:
            return await self._watch(request, rtype, namespace, query)
        with self._lock:
            return self._crud(request.method, rtype, namespace, name, subresource, body, request)

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        if parts == ["version"]:
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"}
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for rtype in self.types.values():
                if rtype.group:
                    groups.setdefault(rtype.group, [])
                    if rtype.version not in groups[rtype.group]:
                        groups[rtype.group].append(rtype.version)
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                        "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                    }
                    for g, vs in groups.items()
                ],
            }
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if len(parts) == 3 and parts[0] == "apis":
            return self._resource_list(parts[1], parts[2])
        return None

    def _resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        found = [t for t in self.types.values() if t.group == group and t.version == version]
        if not found:
            return None
        resources: list[dict[str, Any]] = []
        for t in found:
            resources.append(
                {
                    "name": t.plural,
                    "singularName": t.kind.lower(),
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": list(t.verbs),
                }
            )
            resources.extend(
                {
                    "name": f"{t.plural}/{sub}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }
                for sub in t.subresources
            )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def _parse(self, parts: list[str]) -> tuple[ResourceType, str | None, str | None, str | None] | None:
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, rest = parts[1], parts[3:]
            if not any(t.group == group and t.version == parts[2] for t in self.types.values()):
                return None
        else:
            return None
        namespace: str | None = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rtype = self.types.get((group, rest[0]))
        if rtype is None or (namespace is not None and not rtype.namespaced):
            return None
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) == 3 else None
        if subresource is not None and subresource not in rtype.subresources:
            return None
        return rtype, namespace, name, subresource

    def _crud(
        self,
        method: str,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
        body: Any,
        request: web.Request,
    ) -> web.Response:
        key = (rtype.group, rtype.plural)
        store = self.objects[key]
        qualified = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
        ns = namespace or ""
        if method == "GET" and name is None:
            items = []
            selector = _label_selector(request.query.get("labelSelector", ""))
            for (obj_ns, _), obj in sorted(store.items()):
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if (namespace is None or obj_ns == namespace) and all(
                    labels.get(k) == v for k, v in selector.items()
                ):
                    item = copy.deepcopy(obj)
                    item.pop("apiVersion", None)
                    item.pop("kind", None)
                    items.append(item)
            return self._json(
                200,
                {
                    "kind": f"{rtype.kind}List",
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self.revision)},
                    "items": items,
                },
            )
        if method == "POST" and name is None:
            if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
                return self._fail(400, "BadRequest", "the object provided is unrecognized")
            meta = body["metadata"]
            if rtype.namespaced:
                if namespace is None:
                    return self._fail(404, "NotFound", "the server could not find the requested resource")
                if meta.get("namespace", namespace) != namespace:
                    return self._fail(
                        400,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                meta["namespace"] = namespace
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                else:
                    return self._fail(
                        422, "Invalid", f"{rtype.kind} is invalid: metadata.name: Required value"
                    )
            if (ns, meta["name"]) in store:
                return self._fail(
                    409, "AlreadyExists", f'{qualified} "{meta["name"]}" already exists', name=meta["name"]
                )
            if body.get("kind", rtype.kind) != rtype.kind:
                return self._fail(400, "BadRequest", f"kind {body.get('kind')} does not match {rtype.kind}")
            if rtype.kind == "Event" and rtype.group == "":
                invalid = legacy_event_problems(body, namespace or "")
                if invalid:
                    return self._fail(
                        422, "Invalid", f'Event "{meta["name"]}" is invalid: {"; ".join(invalid)}'
                    )
            meta.pop("resourceVersion", None)
            return self._json(201, self._create(rtype, copy.deepcopy(body)))
        if name is None:
            return self._fail(
                405, "MethodNotAllowed", f"the server does not allow this method on {qualified}"
            )
        existing = store.get((ns, name))
        if existing is None:
            return self._fail(404, "NotFound", f'{qualified} "{name}" not found', name=name)
        if method == "GET":
            return self._json(200, copy.deepcopy(existing))
        if method == "DELETE":
            self.delete(rtype.api_version, rtype.kind, ns, name)
            return self._json(200, status_body(200, "", "") | {"status": "Success"})
        if method == "PUT":
            if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
                return self._fail(400, "BadRequest", "the object provided is unrecognized")
            sent_rv = body["metadata"].get("resourceVersion")
            if not sent_rv:
                return self._fail(
                    422,
                    "Invalid",
                    f'{rtype.kind} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
                )
            if sent_rv != existing["metadata"]["resourceVersion"]:
                return self._conflict(qualified, name)
            updated = copy.deepcopy(body)
        elif method == "PATCH":
            content_type = request.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip() != "application/merge-patch+json":
                return self._fail(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (double supports only this), got {content_type!r}",
                )
            if not isinstance(body, dict):
                return self._fail(400, "BadRequest", "the patch is not a JSON object")
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != existing["metadata"]["resourceVersion"]:
                return self._conflict(qualified, name)
            updated = merge_patch(existing, body)
        else:
            return self._fail(
                405, "MethodNotAllowed", f"the server does not allow this method on {qualified}"
            )
        # Identity, uid and creation time never change; the status strategy keeps status and spec apart.
        updated["metadata"] = dict(updated.get("metadata") or {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp"):
            if immutable in existing["metadata"]:
                updated["metadata"][immutable] = existing["metadata"][immutable]
        if subresource == "status":
            result = copy.deepcopy(existing)
            if "status" in updated:
                result["status"] = updated["status"]
            else:
                result.pop("status", None)
        else:
            result = updated
            if "status" in existing:
                result["status"] = existing["status"]
            else:
                result.pop("status", None)
        if result == existing:
            return self._json(200, copy.deepcopy(existing))  # no-op writes don't bump resourceVersion
        return self._json(200, self._store(rtype, result, "MODIFIED"))

    def _conflict(self, qualified: str, name: str) -> web.Response:
        return self._fail(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            name=name,
        )

    async def _watch(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, query: dict[str, str]
    ) -> web.StreamResponse:
        key = (rtype.group, rtype.plural)
        watch = _Watch(asyncio.get_running_loop())
        since = query.get("resourceVersion", "")
        bookmarks = query.get("allowWatchBookmarks") == "true"
        timeout = float(query["timeoutSeconds"]) if "timeoutSeconds" in query else None
        initial: list[dict[str, Any]] = []
        with self._lock:
            if since in ("", "0"):
                initial = [
                    {"type": "ADDED", "object": copy.deepcopy(o)}
                    for (ns, _), o in sorted(self.objects[key].items())
                    if namespace is None or ns == namespace
                ]
                last_rv = self.revision
            elif not since.isdigit() or int(since) < self.compacted_rv:
                initial = [
                    {
                        "type": "ERROR",
                        "object": status_body(
                            410, "Expired", f"too old resource version: {since} ({self.compacted_rv})"
                        ),
                    }
                ]
                last_rv = -1
            else:
                initial = [
                    {"type": event, "object": copy.deepcopy(obj)}
                    for rv, k, event, obj in self.history
                    if k == key
                    and rv > int(since)
                    and (namespace is None or obj["metadata"].get("namespace") == namespace)
                ]
                last_rv = self.revision
            if last_rv >= 0:
                self._watches[key].append((namespace, watch))
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for frame in initial:
                await response.write(json.dumps(frame).encode() + b"\n")
            if last_rv < 0:
                return response
            while True:
                wait = self.bookmark_interval if bookmarks else 3600.0
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                try:
                    frame_or_none = await asyncio.wait_for(watch.queue.get(), timeout=wait)
                except TimeoutError:
                    if bookmarks:
                        with self._lock:
                            rv = str(self.revision)
                        bookmark = {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": rtype.kind,
                                "apiVersion": rtype.api_version,
                                "metadata": {"resourceVersion": rv},
                            },
                        }
                        await response.write(json.dumps(bookmark).encode() + b"\n")
                    continue
                if frame_or_none is None:
                    break
                await response.write(json.dumps(frame_or_none).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self._watches[key] = [(n, w) for n, w in self._watches[key] if w is not watch]
        return response


def controller_identity(
    user: str, own_namespace: str, watch_namespaces: Iterable[str], rules: Any, omit: Iterable[str] = ()
) -> Identity:
    """RBAC as the deployment grants it from ``tyk_controller.rbac`` (``rules`` is that module).

    ``watch_namespaces`` empty: the watched-namespace rules are a ClusterRole. ``omit`` drops resources
    (e.g. ``"secrets"``) to test how the runtime copes with a narrower grant.
    """
    omitted = set(omit)

    def keep(ruleset: tuple[Rule, ...]) -> tuple[Rule, ...]:
        out = []
        for rule in ruleset:
            resources = tuple(r for r in rule.resources if r not in omitted)
            if resources:
                out.append(Rule(rule.api_groups, resources, rule.verbs))
        return tuple(out)

    watched = keep(rules.WATCHED_NAMESPACE_RULES)
    namespaces = list(watch_namespaces)
    identity = Identity(user=user, cluster_rules=keep(rules.CLUSTER_RULES))
    if namespaces:
        for namespace in namespaces:
            identity.namespace_rules[namespace] = identity.namespace_rules.get(namespace, ()) + watched
    else:
        identity.cluster_rules += watched
    identity.namespace_rules[own_namespace] = identity.namespace_rules.get(own_namespace, ()) + keep(
        rules.OWN_NAMESPACE_RULES
    )
    return identity
