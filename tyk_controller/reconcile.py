"""The level-triggered reconcile loop: desired state from the cluster, actual state from the gateway.

One pass (``Reconciler.reconcile``):

1. *Desired*: every handled Ingress in the in-memory stores, translated (``translate.translate_ingress``).
   An Ingress whose translation has a ``fatal`` Problem is *frozen*: its APIs on the gateway stay exactly as
   they are (neither written nor deleted), and only the Problem is reported.
2. *Actual*: one ``GET /tyk/apis``, filtered to the definitions this controller owns (``owner_of`` and
   ``controller_of``: the Ingress and the controller name recorded in ``config_data``); APIs of nobody
   (``TykApi`` resources, hand-made ones) and of another installation are never touched.
3. *Combined* (``resolve_conflicts``): of Ingresses routing the same host and path the oldest keeps it;
   definitions this pass must not change (not ours, or of a frozen Ingress) always keep theirs.
4. Write only the differences: a definition is compared through the shape of the desired one
   (``tyk_gateway.drift.project``: the gateway returns every struct field, zero values included) plus a
   digest of the whole (``_with_digest``), missing certificates are pushed, owned APIs whose Ingress is
   gone are deleted; then ONE ``/tyk/reload/group``, and never more than one per
   ``min_reload_interval_seconds``; certificates this controller pushed that no API names any more are
   deleted.
5. Ingress status (``status.loadBalancer`` from the publish Service) and Events (one per Problem, posted
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

from tyk_gateway.client import GatewayClient, TykGatewayError
from tyk_gateway.drift import project
from tyk_gateway.models import canonical

from .config import ControllerConfig
from .kube import EVENTS, INGRESSES, SERVICES, ClusterState, Key, KubeClient, KubeError

log = logging.getLogger("tyk_controller.reconcile")

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
EVENT_COMPONENT = "tyk-ingress-controller"
WRITE_WORKERS = 8  # concurrent gateway writes (the gateway's HTTP server handles each on its own goroutine)
KUBE_CONCURRENCY = 16  # concurrent status patches / Event posts
DIGEST_KEY = "tyk-aks.io/digest"  # config_data key: digest of the definition as written (``_with_digest``)


class TranslationLike(Protocol):
    """``translate.Translation`` as the runtime reads it (the contract of `tyk_controller.translate`)."""

    @property
    def apis(self) -> dict[str, dict[str, Any]]: ...

    @property
    def certificates(self) -> dict[str, str]: ...

    @property
    def problems(self) -> list[Any]: ...


class ResolutionLike(Protocol):
    """``translate.Resolution`` as the runtime reads it."""

    @property
    def apis(self) -> dict[str, dict[str, Any]]: ...

    @property
    def problems(self) -> Mapping[tuple[str, str], list[Any]]: ...


TranslateFn = Callable[..., TranslationLike]
OwnerFn = Callable[[Mapping[str, Any]], "tuple[str, str] | None"]
ControllerFn = Callable[[Mapping[str, Any]], "str | None"]  # the controller name recorded in a definition
ResolveFn = Callable[..., ResolutionLike]  # (apis_by_ingress, *, order, foreign) -> Resolution
HandledFn = Callable[..., bool]  # (ingress, config, *, default_class, classes) -> bool


@dataclass
class PassResult:
    """What one pass did (logged, and read by tests and the benchmark)."""

    written: int = 0
    deleted: int = 0
    certificates: int = 0
    certificates_removed: int = 0
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
    resolve_conflicts: ResolveFn | None = None  # None: every Ingress's APIs are written as translated
    controller_of: ControllerFn | None = None  # None: every definition with an owner is this controller's
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
    # certificate ids this controller pushed or saw its APIs use: the only ones it ever deletes
    _our_certificates: set[str] = field(default_factory=set)
    _unattributed: set[str] = field(default_factory=set)  # api ids already logged as nobody's
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

    def use_templates(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        """A new template set: every Ingress is translated again on the next pass."""
        self.templates = templates
        self._cache.clear()

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

    # --- ownership and conflicts ----------------------------------------------------------------------

    def _ours(
        self, definition: Mapping[str, Any], owner: tuple[str, str], ingresses: Mapping[Key, Any]
    ) -> bool:
        """Whether a definition recording an owning Ingress was written by this controller.

        The record names the controller (``controller_of``): another installation on the same gateways (a
        different ``controllerName``) is never touched. A record without the controller name predates it:
        such an API is adopted (and rewritten with the full record) by the controller that handles its
        Ingress; when that Ingress is gone nobody can tell whose it was, so it is left alone and logged.
        """
        if self.config.watch_namespaces and owner[0] not in self.config.watch_namespaces:
            return False  # another installation's namespace
        if self.controller_of is None:
            return True
        recorded = self.controller_of(definition)
        if recorded is not None:
            return recorded == self.config.controller_name
        if owner in ingresses:
            return True
        api_id = str(definition.get("api_id"))
        if api_id not in self._unattributed:
            self._unattributed.add(api_id)
            log.warning(
                "API %s records Ingress %s/%s but no controller, and that Ingress is not handled here: "
                "left alone (delete it by hand if it is stale)",
                api_id,
                *owner,
                extra={"api_id": api_id},
            )
        return False

    def _combine(
        self,
        ingresses: Mapping[Key, Mapping[str, Any]],
        apis_by_ingress: Mapping[Key, Mapping[str, dict[str, Any]]],
        foreign: list[dict[str, Any]],
        problems: dict[Key, list[Any]],
    ) -> dict[str, tuple[Key, dict[str, Any]]]:
        """Every Ingress's APIs that can be served together (``resolve_conflicts``), by api id.

        The oldest Ingress (``metadata.creationTimestamp``, ties by namespace/name, as ingress-nginx decides)
        keeps a contested host and path; definitions this pass must not change (``foreign``: not ours, or of
        a frozen Ingress) always keep theirs, and their api ids are never overwritten.
        """
        owner_by_api = {api_id: key for key, apis in apis_by_ingress.items() for api_id in apis}
        if self.resolve_conflicts is None:
            combined: Mapping[str, dict[str, Any]] = {
                api_id: api for apis in apis_by_ingress.values() for api_id, api in apis.items()
            }
        else:
            order = sorted(apis_by_ingress, key=lambda key: _age(ingresses[key], key))
            resolution = self.resolve_conflicts(apis_by_ingress, order=order, foreign=foreign)
            combined = resolution.apis
            for key, extra in resolution.problems.items():
                problems.setdefault((key[0], key[1]), []).extend(extra)
        held = {str(d["api_id"]): d for d in foreign if isinstance(d.get("api_id"), str)}
        desired: dict[str, tuple[Key, dict[str, Any]]] = {}
        for api_id, api in combined.items():
            key = owner_by_api[api_id]
            holder = held.get(api_id)
            if holder is not None:
                if self.controller_of is not None and self.controller_of(holder):
                    by = f"controller {self.controller_of(holder)!r}"
                else:
                    by = "a definition this controller does not manage"
                problems.setdefault(key, []).append(
                    _Problem(
                        "spec.rules",
                        "PathConflict",
                        f"{api.get('name', api_id)}: API id {api_id!r} is held on the gateway by {by}; "
                        "this route is not written",
                        False,
                    )
                )
                continue
            desired[api_id] = (key, api)
        return desired

    # --- one pass --------------------------------------------------------------------------------------

    async def reconcile(self) -> PassResult:
        result = PassResult()
        ingresses = {k: v for k, v in self.state.ingresses.items.items() if self.handled(v)}
        for key in list(self._cache):
            if key not in ingresses:
                del self._cache[key]
        apis_by_ingress: dict[Key, Mapping[str, dict[str, Any]]] = {}
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
            apis_by_ingress[key] = translation.apis
            certificates.update(translation.certificates)

        live = await asyncio.to_thread(self.gateway.list_apis)
        owned: dict[str, tuple[Key, dict[str, Any]]] = {}
        foreign: list[dict[str, Any]] = []  # live definitions this pass must not change
        for definition in live:
            api_id = definition.get("api_id")
            owner = self.owner_of(definition)
            if owner is None or not isinstance(api_id, str) or not self._ours(definition, owner, ingresses):
                foreign.append(_as_written(definition))
                continue
            if owner in frozen:
                foreign.append(definition)
            owned[api_id] = (owner, definition)
        desired = self._combine(ingresses, apis_by_ingress, foreign, problems)
        result.ingresses, result.apis, result.frozen = len(ingresses), len(desired), len(frozen)

        now = self.clock()
        for api_id in list(self._pending):
            if now - self._pending[api_id][1] > self.pending_grace:
                del self._pending[api_id]
        writes: list[tuple[Key, dict[str, Any]]] = []
        rejected: dict[Key, list[Any]] = {}
        for api_id, (key, definition) in desired.items():
            definition = _with_digest(definition)
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
        for api_id, (owner, _) in owned.items():
            if api_id in desired or owner in frozen:
                continue
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
        result.certificates_removed = await self._remove_certificates(live, owned, certificates)

        written_by: dict[Key, int] = {}
        for key, _ in writes:
            written_by[key] = written_by.get(key, 0) + 1
        if not self.still_leader():
            return result
        result.events = await self._report(ingresses, problems, written_by)
        result.statuses = await self._update_statuses(ingresses)
        if writes or deletes or result.certificates or result.certificates_removed:
            log.info(
                "reconciled: %d written, %d deleted, %d certificates pushed, %d removed, %d reloads",
                result.written,
                result.deleted,
                result.certificates,
                result.certificates_removed,
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
            # The gateway's certHandler (gateway/cert.go) reads the body as is: the PEM, not JSON.
            reply = await asyncio.to_thread(self.gateway.call, "POST", "/tyk/certs", pem.encode(), org)
            if reply.status == 200 or (reply.status == 403 and "already exists" in reply.text):
                pushed += 1
                log.info("pushed certificate %s", cert_id, extra={"certificate_id": cert_id})
            else:
                raise self.gateway.error("POST", "/tyk/certs", reply)
        return pushed

    async def _remove_certificates(
        self,
        live: list[dict[str, Any]],
        owned: Mapping[str, tuple[Key, dict[str, Any]]],
        wanted: Mapping[str, str],
    ) -> int:
        """Delete the certificates this controller pushed that no API on the gateway uses any more.

        Certificate ids are content addressed, so the same certificate may be shared with APIs this
        controller doesn't own: a certificate is deleted only when it was pushed by this process or used by
        an owned API (``_our_certificates``), no translation wants it, and no definition in the gateway's
        list (owned or not, in any field) names it. The list shows what the gateway has *loaded*: an API
        rewritten to a renewed certificate still names the old one until the reload, so the old one goes on
        the first pass after that.
        """
        for _, definition in owned.values():
            for cert_id in definition.get("certificates") or []:
                if isinstance(cert_id, str) and cert_id:
                    self._our_certificates.add(cert_id)
        self._our_certificates.update(wanted)
        candidates = self._our_certificates - set(wanted)
        if not candidates:
            return 0
        in_use = "\n".join(json.dumps(definition) for definition in live)
        removed = 0
        for cert_id in sorted(c for c in candidates if c not in in_use):
            try:
                await asyncio.to_thread(
                    self.gateway.call_ok,
                    "DELETE",
                    f"/tyk/certs/{cert_id}",
                    None,
                    {"org_id": self.config.org_id},
                )
            except TykGatewayError as error:
                if error.status is None or error.status >= 500:
                    raise  # unreachable: the pass is retried, the certificate stays a candidate
                log.warning("delete of certificate %s refused: %s", cert_id, error)
            else:
                removed += 1
                log.info("deleted certificate %s", cert_id, extra={"certificate_id": cert_id})
            self._our_certificates.discard(cert_id)
        return removed

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
            service = await self.kube.request("GET", SERVICES.path(*ref))
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
            await self.kube.request("POST", EVENTS.path(namespace), body)
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


def _as_written(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with the listen path it was written with.

    When an API is loaded onto a domain and listen path that another one already had, the gateway keeps the
    earlier API there and appends ``-<api_id>`` (then ``_`` until unique) to the newcomer's listen path in
    what it has loaded and lists (``processSpec``/``loadHTTPService`` in ``gateway/api_loader.go``). An API
    we don't manage still claims the path it was written with, so conflicts are resolved against that one.
    """
    api_id = definition.get("api_id")
    proxy = definition.get("proxy")
    if not isinstance(api_id, str) or not isinstance(proxy, Mapping):
        return definition
    listen_path = str(proxy.get("listen_path") or "")
    marker = "-" + api_id
    trimmed = listen_path.rstrip("_")
    if not api_id or not trimmed.endswith(marker) or len(trimmed) == len(marker):
        return definition
    return {**definition, "proxy": {**proxy, "listen_path": trimmed[: -len(marker)]}}


def _with_digest(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition with a digest of itself in ``config_data``.

    Live definitions are compared through the desired one's fields (the gateway returns every field, zero
    values included), which can't see a field the desired definition no longer has (a template or an
    annotation that stopped setting it): the digest changes then, so the definition is written again.
    """
    digest = hashlib.sha256(json.dumps(canonical(definition), sort_keys=True).encode()).hexdigest()[:32]
    config_data = definition.get("config_data")
    return {
        **definition,
        "config_data": {**(config_data if isinstance(config_data, Mapping) else {}), DIGEST_KEY: digest},
    }


def _age(ingress: Mapping[str, Any], key: Key) -> tuple[bool, str, Key]:
    """Oldest first; an Ingress without a creation time (never from an API server) sorts last."""
    created = str((ingress.get("metadata") or {}).get("creationTimestamp") or "")
    return (not created, created, key)


@dataclass(frozen=True)
class _Problem:
    field: str
    reason: str
    message: str
    fatal: bool
