"""The level-triggered reconcile loop: desired state from the cluster, actual state from the gateway.

One pass (``Reconciler.reconcile``):

1. *Desired*: every handled Ingress in the in-memory stores, translated (``translate.translate_ingress``).
   An Ingress whose translation has a ``fatal`` Problem is *frozen*: its APIs on the gateway stay exactly as
   they are (neither written nor deleted), and only the Problem is reported.
2. *Actual*: one ``GET /tyk/apis``, filtered to the definitions this controller owns (``owner_of``); APIs
   owned by nobody (``TykApi`` resources, hand-made ones) are never touched. ``GET /tyk/certs`` only when a
   TLS certificate is desired.
3. Write only the differences: a definition is compared through the shape of the desired one
   (``tyk_gateway.drift.project``: the gateway returns every struct field, zero values included), missing
   certificates are pushed, owned APIs whose Ingress is gone are deleted; then ONE ``/tyk/reload/group``,
   and never more than one per ``min_reload_interval_seconds``.
4. Ingress status (``status.loadBalancer`` from the publish Service) and Events (one per Problem, posted
   once while the Problem persists).

The gateway lists what it has *loaded*; a definition written a moment ago shows up only after the group
reload ran. Writes and deletes are therefore remembered for ``pending_grace`` seconds: a pass within that
window does not repeat them. A process killed mid-batch forgets them, and its successor's first pass writes
what is still missing: convergence never depends on this memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from tyk_gateway.client import AUTH_HEADER, GatewayClient, MissingSecretError, Reply, TykGatewayError
from tyk_gateway.drift import project
from tyk_gateway.models import canonical

from .config import ControllerConfig
from .kube import INGRESSES, ClusterState, Key, KubeClient, KubeError

log = logging.getLogger("tyk_controller.reconcile")

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
EVENT_COMPONENT = "tyk-ingress-controller"
WRITE_WORKERS = 8  # concurrent gateway writes (the gateway's HTTP server handles each on its own goroutine)
KUBE_CONCURRENCY = 16  # concurrent status patches / Event posts


class TranslationLike(Protocol):
    """``translate.Translation`` as the runtime reads it (BRIEF §4)."""

    @property
    def apis(self) -> dict[str, dict[str, Any]]: ...

    @property
    def certificates(self) -> dict[str, str]: ...

    @property
    def problems(self) -> list[Any]: ...


TranslateFn = Callable[..., TranslationLike]
OwnerFn = Callable[[Mapping[str, Any]], "tuple[str, str] | None"]
HandledFn = Callable[..., bool]  # (ingress, config, *, default_class, classes) -> bool


@dataclass
class PassResult:
    """What one pass did (logged, and read by tests and the benchmark)."""

    written: int = 0
    deleted: int = 0
    certificates: int = 0
    reloads: int = 0
    statuses: int = 0
    events: int = 0
    frozen: int = 0
    failed_writes: int = 0
    ingresses: int = 0
    apis: int = 0


@dataclass
class _Translated:
    fingerprint: str
    translation: TranslationLike


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Reconciler:
    config: ControllerConfig
    gateway: GatewayClient
    state: ClusterState
    kube: KubeClient
    translate: TranslateFn
    owner_of: OwnerFn
    ingress_handled: HandledFn
    templates: Mapping[str, Mapping[str, Any]]
    pod_name: str = ""
    pod_namespace: str = ""
    pending_grace: float = 5.0
    still_leader: Callable[[], bool] = lambda: True
    clock: Callable[[], float] = time.monotonic
    last_reload: float = float("-inf")
    publish_status: dict[str, Any] | None = None
    _pending: dict[str, tuple[Any, float]] = field(default_factory=dict)  # api_id -> (canonical|None, when)
    _cache: dict[Key, _Translated] = field(default_factory=dict)
    _reported: set[Key] = field(default_factory=set)  # Ingresses whose status this process has set
    # api_id -> (canonical definition, Problem): refused with a 4xx; not sent again until it changes
    _refused: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    _posted: dict[tuple[str, str, str], set[tuple[str, str]]] = field(default_factory=dict)
    _executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(WRITE_WORKERS))

    # --- class selection -------------------------------------------------------------------------------

    def handled(self, ingress: Mapping[str, Any]) -> bool:
        """The contract's class check, with what only the runtime knows: the IngressClass objects.

        IngressClasses whose ``spec.controller`` is ``config.controller_name`` are ours; the one named
        ``config.ingress_class`` counts only when it names this controller (or does not exist: the legacy
        annotation needs no IngressClass object). One of ours marked as the cluster default takes the
        Ingresses that name no class at all.
        """
        classes: list[str] = []
        default_class = False
        for (_, name), obj in self.state.ingress_classes.items.items():
            if (obj.get("spec") or {}).get("controller") != self.config.controller_name:
                if name == self.config.ingress_class:
                    return False
                continue
            classes.append(name)
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            default_class |= annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
        return self.ingress_handled(ingress, self.config, default_class=default_class, classes=classes)

    # --- desired state ---------------------------------------------------------------------------------

    def _translate(self, ingress: Mapping[str, Any]) -> TranslationLike:
        key = (ingress["metadata"].get("namespace", ""), ingress["metadata"]["name"])
        services = self.state.services.items
        secrets = self.state.secrets.items
        # Not the resourceVersion: the status this controller writes bumps it without changing the translation.
        fingerprint = _fingerprint(
            ingress["metadata"].get("uid"),
            ingress["metadata"].get("generation"),
            ingress["metadata"].get("annotations"),
            ingress["metadata"].get("labels"),
            ingress.get("spec"),
            self.state.services.generation,
            self.state.secrets.generation,
            self.state.ingress_classes.generation,
        )
        cached = self._cache.get(key)
        if cached is not None and cached.fingerprint == fingerprint:
            return cached.translation
        translation = self.translate(
            ingress, services=services, tls_secrets=secrets, templates=self.templates, config=self.config
        )
        self._cache[key] = _Translated(fingerprint, translation)
        return translation

    # --- one pass --------------------------------------------------------------------------------------

    async def reconcile(self) -> PassResult:
        result = PassResult()
        ingresses = {k: v for k, v in self.state.ingresses.items.items() if self.handled(v)}
        for key in list(self._cache):
            if key not in ingresses:
                del self._cache[key]
        desired: dict[str, tuple[Key, dict[str, Any]]] = {}
        certificates: dict[str, str] = {}
        frozen: set[Key] = set()
        problems: dict[Key, list[Any]] = {}
        for key, ingress in ingresses.items():
            try:
                translation = self._translate(ingress)
            except Exception as error:  # a translation bug must not stop every other Ingress
                log.exception("translating Ingress %s/%s failed", *key)
                frozen.add(key)
                problems[key] = [_Problem("", "TranslationFailed", f"internal error: {error}", True)]
                continue
            problems[key] = list(translation.problems)
            if any(p.fatal for p in translation.problems):
                frozen.add(key)
                continue
            for api_id, definition in translation.apis.items():
                desired[api_id] = (key, definition)
            certificates.update(translation.certificates)
        result.ingresses, result.apis, result.frozen = len(ingresses), len(desired), len(frozen)

        live = await asyncio.to_thread(self.gateway.list_apis)
        owned: dict[str, tuple[Key, dict[str, Any]]] = {}
        for definition in live:
            owner = self.owner_of(definition)
            if owner is not None and isinstance(definition.get("api_id"), str):
                owned[definition["api_id"]] = ((owner[0], owner[1]), definition)

        now = self.clock()
        for api_id in list(self._pending):
            if now - self._pending[api_id][1] > self.pending_grace:
                del self._pending[api_id]
        writes: list[tuple[Key, dict[str, Any]]] = []
        rejected: dict[Key, list[Any]] = {}
        for api_id, (key, definition) in desired.items():
            want = canonical(definition)
            current = owned.get(api_id)
            if current is not None and project(current[1], want) == want:
                self._pending.pop(api_id, None)
                continue
            pending = self._pending.get(api_id)
            if pending is not None and pending[0] == want:
                continue  # written moment ago, not loaded yet
            refused = self._refused.get(api_id)
            if refused is not None and refused[0] == want:
                rejected.setdefault(key, []).append(refused[1])  # same definition: don't send it again
                continue
            writes.append((key, definition))
        for api_id in [a for a in self._refused if a not in desired]:
            del self._refused[api_id]
        deletes: list[str] = []
        in_scope = set(self.config.watch_namespaces)
        for api_id, (owner, _) in owned.items():
            if api_id in desired or owner in frozen:
                continue
            if in_scope and owner[0] not in in_scope:
                continue  # another controller's namespace (a second install on the same gateways)
            pending = self._pending.get(api_id)
            if pending is not None and pending[0] is None:
                continue
            deletes.append(api_id)
        for api_id in [a for a, (v, _) in self._pending.items() if v is None and a not in owned]:
            del self._pending[api_id]

        if not self.still_leader():  # the Lease was lost while this pass read: the new leader writes
            log.info("no longer the leader; the pass stops before writing")
            return result
        if certificates:
            result.certificates = await self._push_certificates(certificates)
        if writes or deletes:
            loop = asyncio.get_running_loop()
            outcomes = await asyncio.gather(
                *(loop.run_in_executor(self._executor, self._write, key, d) for key, d in writes),
                *(loop.run_in_executor(self._executor, self._delete, api_id) for api_id in deletes),
            )
            unreachable: TykGatewayError | None = None
            maybe_applied = False  # a write without an answer may have reached the gateway
            for index, outcome in enumerate(outcomes):
                if isinstance(outcome, tuple):
                    key, failure = outcome
                    result.failed_writes += 1
                    if failure.status is None or failure.status >= 500:
                        unreachable = failure
                        maybe_applied = True
                        continue
                    problem = _Problem(
                        "",
                        "GatewayRejected",
                        f"the gateway refused an API definition: {failure.message}",
                        False,
                    )
                    rejected.setdefault(key, []).append(problem)
                    if index < len(writes):
                        definition = writes[index][1]
                        self._refused[str(definition["api_id"])] = (canonical(definition), problem)
            result.written = sum(1 for o in outcomes[: len(writes)] if o is None)
            result.deleted = sum(1 for o in outcomes[len(writes) :] if o is None)
            if result.written or result.deleted or maybe_applied:
                await self._reload()
                result.reloads = 1
            if unreachable is not None:
                raise unreachable
        for key, extra in rejected.items():
            problems.setdefault(key, []).extend(extra)

        written_by: dict[Key, int] = {}
        for key, _ in writes:
            written_by[key] = written_by.get(key, 0) + 1
        if not self.still_leader():
            return result
        result.events = await self._report(ingresses, problems, written_by)
        result.statuses = await self._update_statuses(ingresses)
        if writes or deletes or result.certificates:
            log.info(
                "reconciled: %d written, %d deleted, %d certificates, %d reloads",
                result.written,
                result.deleted,
                result.certificates,
                result.reloads,
                extra={"pass": result.__dict__},
            )
        return result

    def _write(self, key: Key, definition: dict[str, Any]) -> tuple[Key, TykGatewayError] | None:
        api_id = str(definition["api_id"])
        try:
            self.gateway.upsert_api(definition)
        except TykGatewayError as error:
            log.warning("write of API %s (Ingress %s/%s) failed: %s", api_id, *key, error)
            return key, error
        self._pending[api_id] = (canonical(definition), self.clock())
        log.info("wrote API %s", api_id, extra={"ingress": f"{key[0]}/{key[1]}", "api_id": api_id})
        return None

    def _delete(self, api_id: str) -> tuple[Key, TykGatewayError] | None:
        try:
            outcome = self.gateway.delete_api(api_id)
        except TykGatewayError as error:
            log.warning("delete of API %s failed: %s", api_id, error)
            return ("", ""), error
        self._pending[api_id] = (None, self.clock())
        log.info("deleted API %s (%s)", api_id, outcome.value, extra={"api_id": api_id})
        return None

    async def _push_certificates(self, wanted: Mapping[str, str]) -> int:
        org = {"org_id": self.config.org_id}
        listed = await asyncio.to_thread(self.gateway.call_ok, "GET", "/tyk/certs", None, org)
        present = set((listed or {}).get("certs") or []) if isinstance(listed, Mapping) else set()
        pushed = 0
        for cert_id, pem in wanted.items():
            if cert_id in present:
                continue
            reply = await asyncio.to_thread(self._post_certificate, pem)
            if reply.status == 200 or (reply.status == 403 and "already exists" in reply.text):
                pushed += 1
                log.info("pushed certificate %s", cert_id, extra={"certificate_id": cert_id})
            else:
                raise self.gateway.error("POST", "/tyk/certs", reply)
        return pushed

    def _post_certificate(self, pem: str) -> Reply:
        """POST the PEM as the raw body: the gateway's certHandler (gateway/cert.go) reads the body as is.

        ``GatewayClient.call`` sends JSON, so this uses its session (same retries, timeouts, secret header).
        """
        gateway = self.gateway
        secret = gateway._secret
        if secret is None:
            raise MissingSecretError()
        try:
            response = gateway._session().post(
                gateway.base_url + "/tyk/certs",
                params={"org_id": self.config.org_id},
                data=pem.encode(),
                headers={AUTH_HEADER: secret.reveal(), "Accept": "application/json"},
                timeout=(gateway.settings.connect_timeout, gateway.settings.read_timeout),
            )
        except requests.RequestException as error:
            raise TykGatewayError(
                "POST", "/tyk/certs", None, type(error).__name__, gateway.base_url
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        return Reply(response.status_code, body, response.text)

    async def _reload(self) -> None:
        wait = self.last_reload + self.config.min_reload_interval_seconds - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)
        await asyncio.to_thread(self.gateway.reload_group)
        self.last_reload = self.clock()
        log.info("requested a group reload")

    # --- status and Events --------------------------------------------------------------------------

    async def refresh_publish_status(self) -> bool:
        """Read the publish Service's address; True when it differs from what the Ingresses were given."""
        ref = self.config.publish_service_ref
        if ref is None:
            return False
        try:
            service = await self.kube.request("GET", f"/api/v1/namespaces/{ref[0]}/services/{ref[1]}")
        except KubeError as error:
            log.warning("cannot read the publish Service %s: %s", self.config.publish_service, error)
            return False
        load_balancer = (service.get("status") or {}).get("loadBalancer") or {}
        entries = []
        for item in load_balancer.get("ingress") or []:
            entry = {k: item[k] for k in ("ip", "hostname") if item.get(k)}
            if entry:
                entries.append(entry)
        status = {"ingress": entries} if entries else {}
        changed = status != self.publish_status
        self.publish_status = status
        return changed

    async def _bounded(self, calls: list[Any]) -> list[Any]:
        """Run Kubernetes calls concurrently, at most ``KUBE_CONCURRENCY`` at a time."""
        semaphore = asyncio.Semaphore(KUBE_CONCURRENCY)

        async def one(call: Any) -> Any:
            async with semaphore:
                return await call

        return await asyncio.gather(*(one(c) for c in calls))

    async def _update_statuses(self, ingresses: Mapping[Key, Mapping[str, Any]]) -> int:
        """Handled Ingresses report the publish Service's address; one this controller stops handling (its
        class changed) gets the address it was given removed, as other controllers do."""
        calls = []
        if self.publish_status is not None:
            for (namespace, name), ingress in ingresses.items():
                current = (ingress.get("status") or {}).get("loadBalancer") or {}
                self._reported.add((namespace, name))
                if current == self.publish_status or (not current.get("ingress") and not self.publish_status):
                    continue
                calls.append(self._patch_status(namespace, name, self.publish_status))
        for key in sorted(self._reported - set(ingresses)):
            self._reported.discard(key)
            stored = self.state.ingresses.items.get(key)
            if stored is None:
                continue  # deleted: nothing to clean
            current = (stored.get("status") or {}).get("loadBalancer") or {}
            if current.get("ingress") and current == self.publish_status:
                calls.append(self._patch_status(key[0], key[1], {}))
        return sum(await self._bounded(calls))

    async def _patch_status(self, namespace: str, name: str, load_balancer: Mapping[str, Any]) -> int:
        patch = {"status": {"loadBalancer": dict(load_balancer) or {"ingress": None}}}
        try:
            await self.kube.request(
                "PATCH",
                INGRESSES.path(namespace, name, "status"),
                patch,
                content_type="application/merge-patch+json",
            )
        except KubeError as error:
            log.warning("cannot update status of Ingress %s/%s: %s", namespace, name, error)
            return 0
        log.info("updated status of Ingress %s/%s", namespace, name)
        return 1

    async def _report(
        self,
        ingresses: Mapping[Key, Mapping[str, Any]],
        problems: Mapping[Key, list[Any]],
        written_by: Mapping[Key, int],
    ) -> int:
        calls = []
        for key, ingress in ingresses.items():
            meta = ingress["metadata"]
            ident = (key[0], key[1], str(meta.get("uid", "")))
            seen = self._posted.setdefault(ident, set())
            current: set[tuple[str, str]] = set()
            for problem in problems.get(key, []):
                where = f"{problem.field}: " if problem.field else ""
                entry = (problem.reason, f"{where}{problem.message}")
                current.add(entry)
                if entry not in seen:
                    calls.append(self.post_event(ingress, "Warning", *entry))
            self._posted[ident] = current
            if written_by.get(key):
                count = written_by[key]
                message = f"wrote {count} API definition{'s' if count != 1 else ''} to the gateway"
                calls.append(self.post_event(ingress, "Normal", "Sync", message))
        for ident in [i for i in self._posted if (i[0], i[1]) not in ingresses]:
            del self._posted[ident]
        return sum(await self._bounded(calls))

    async def post_event(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> int:
        """Create one core/v1 Event (what ``kubectl describe`` shows). Returns 1 when posted."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or self.pod_namespace or "default"
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'tyk-controller')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", ""),
                "kind": involved.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": namespace,
                **({"uid": meta["uid"]} if meta.get("uid") else {}),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": EVENT_COMPONENT},
            "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": self.pod_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.request("POST", f"/api/v1/namespaces/{namespace}/events", body)
        except KubeError as error:
            log.warning("cannot post Event %s on %s/%s: %s", reason, namespace, meta.get("name"), error)
            return 0
        log.info(
            "event %s %s on %s/%s: %s",
            type_,
            reason,
            namespace,
            meta.get("name"),
            message,
            extra={"reason": reason},
        )
        return 1

    def pod_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.pod_name or "tyk-controller",
                "namespace": self.pod_namespace or "default",
            },
        }


@dataclass(frozen=True)
class _Problem:
    field: str
    reason: str
    message: str
    fatal: bool
