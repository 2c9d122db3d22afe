"""The running controller: kopf watches, leader election, the debounced reconcile loop, health endpoints.

Tasks in one asyncio loop:

* kopf (``kopf.operator``): list/watch of Ingresses, IngressClasses, Services and TLS Secrets into the
  in-memory stores (``kube.ClusterState``); every change wakes the reconcile loop.
* leader election (``leader.LeaderElector``): only the leader reconciles and writes status/Events; every
  replica keeps its stores warm, so a standby that takes over starts from a full view.
* the reconcile loop: waits for a change (then ``debounce_seconds`` more, so a burst is one batch) or the
  periodic full resync (``resync_seconds``: fresh lists of every kind, the publish Service's status, and a
  pass over everything). A failed pass is retried with exponential backoff up to
  ``retry_backoff_max_seconds``; "gateway unavailable" is one Warning Event on the controller Pod per outage
  (and a Normal Event when it is back), not one per retry.
* probes every few seconds: Kubernetes (``GET /version``) and the gateway (any HTTP answer from
  ``/hello``); ``/readyz`` is 200 only when both answered recently. ``/healthz`` is 200 while the event
  loop runs and no core task has died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import requests
from aiohttp import web

from tyk_gateway.client import GatewayClient, TykGatewayError

from .config import ControllerConfig
from .kube import (
    INGRESS_CLASSES,
    INGRESSES,
    SECRETS,
    SERVICES,
    ClusterState,
    Kind,
    KubeClient,
    KubeError,
    build_registry,
    kopf_settings,
    login_handler,
)
from .leader import LeaderElector
from .reconcile import HandledFn, OwnerFn, Reconciler, TranslateFn

log = logging.getLogger("tyk_controller")

PUBLISH_CHECK_SECONDS = 30.0


@dataclass
class Translator:
    """The translation functions (``tyk_controller.translate``), injected so the runtime can be tested alone."""

    translate: TranslateFn
    owner_of: OwnerFn
    ingress_handled: HandledFn
    templates: Mapping[str, Mapping[str, Any]]


class Controller:
    def __init__(
        self,
        config: ControllerConfig,
        gateway: GatewayClient,
        translator: Translator,
        pod_name: str,
        pod_namespace: str,
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.pod_name = pod_name
        self.pod_namespace = pod_namespace
        self.state = ClusterState()
        self.kube = KubeClient(lambda: login_handler(settings=kopf.OperatorSettings(), logger=log))
        self.reconciler = Reconciler(
            config=config,
            gateway=gateway,
            state=self.state,
            kube=self.kube,
            translate=translator.translate,
            owner_of=translator.owner_of,
            ingress_handled=translator.ingress_handled,
            templates=translator.templates,
            pod_name=pod_name,
            pod_namespace=pod_namespace,
            still_leader=lambda: self.is_leader,
        )
        self.elector: LeaderElector | None = None
        if config.leader_election.enabled:
            self.elector = LeaderElector(
                self.kube, config.leader_election, pod_namespace, pod_name, on_change=self._leadership_changed
            )
        self.stop = asyncio.Event()
        self.secrets_allowed = True
        self.kube_seen = float("-inf")
        self.gateway_seen = float("-inf")
        self.gateway_down_reported = False
        self._wake = asyncio.Event()
        self._force_full = True
        self._tasks: list[asyncio.Task[Any]] = []

    # --- leadership ---------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def _leadership_changed(self, leader: bool) -> None:
        if leader:
            self._force_full = True
            self._wake.set()

    # --- health ----------------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        freshness = 3 * self.config.probe_interval_seconds
        kube_ok = now - self.kube_seen < freshness
        gateway_ok = now - self.gateway_seen < freshness
        detail = {
            "kubernetes": kube_ok,
            "gateway": gateway_ok,
            "role": "leader" if self.is_leader else "standby",
        }
        return kube_ok and gateway_ok, detail

    def alive(self) -> bool:
        return not any(t.done() for t in self._tasks)

    async def _healthz(self, _: web.Request) -> web.Response:
        ok = self.alive()
        return web.json_response({"alive": ok}, status=200 if ok else 500)

    async def _readyz(self, _: web.Request) -> web.Response:
        ok, detail = self.ready()
        return web.json_response(detail | {"ready": ok}, status=200 if ok else 503)

    async def _serve_health(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(
            runner, "0.0.0.0", self.config.health_port
        ).start()  # all interfaces: the kubelet probes the pod IP
        return runner

    def _gateway_answers(self) -> bool:
        try:
            requests.get(self.gateway.base_url + "/hello", timeout=self.config.probe_interval_seconds)
        except requests.RequestException:
            return False
        return True

    async def _probe(self) -> None:
        while True:
            try:
                await self.kube.request("GET", "/version")
                self.kube_seen = time.monotonic()
            except KubeError as error:
                log.debug("Kubernetes probe failed: %s", error)
            if await asyncio.to_thread(self._gateway_answers):
                self.gateway_seen = time.monotonic()
            await asyncio.sleep(self.config.probe_interval_seconds)

    async def _follow_publish_service(self) -> None:
        """The entry Service gets its address after the Ingresses exist (a cloud load balancer takes minutes):
        check it more often than the full resync, and start a pass when it changed."""
        interval = min(PUBLISH_CHECK_SECONDS, self.config.resync_seconds)
        while True:
            await asyncio.sleep(interval)
            if self.is_leader and await self.reconciler.refresh_publish_status():
                log.info("the publish Service's address changed")
                self._wake.set()

    # --- what to watch ---------------------------------------------------------------------------------

    def _namespaces(self) -> list[str | None]:
        return list(self.config.watch_namespaces) or [None]

    async def _check_secrets_access(self) -> None:
        """List Secrets once per watched namespace: without the grant, run on and say so, don't crash-loop."""
        for namespace in self._namespaces():
            try:
                await self.kube.request("GET", SECRETS.path(namespace), params={"limit": "1"})
            except KubeError as error:
                if error.status != 403:
                    raise
                self.secrets_allowed = False
                where = f"namespace {namespace}" if namespace else "the cluster"
                message = (
                    f"cannot list Secrets in {where} ({error.reason}): TLS Secrets of Ingresses can't be read, "
                    "so Ingresses with spec.tls keep their current gateway APIs; grant list/watch on secrets"
                )
                log.error(message)
                await self.reconciler.post_event(
                    self.reconciler.pod_reference(), "Warning", "SecretsForbidden", message
                )
                return

    def _kinds(self) -> list[Kind]:
        kinds = [INGRESSES, INGRESS_CLASSES, SERVICES]
        if self.secrets_allowed:
            kinds.append(SECRETS)
        return kinds

    async def full_list(self) -> None:
        """Fresh lists of every watched kind: corrects the stores for events lost in a watch gap."""
        for kind in self._kinds():
            store = self.state.stores[kind.plural]
            store.begin_list()
            try:
                items: list[dict[str, Any]] = []
                for namespace in [None] if not kind.namespaced else self._namespaces():
                    items.extend(await self.kube.list(kind, namespace))
            except BaseException:
                store.abort_list()
                raise
            store.end_list(items)

    # --- reconcile loop --------------------------------------------------------------------------------

    async def _gateway_failed(self, error: TykGatewayError) -> None:
        log.warning("gateway pass failed, will retry: %s", error)
        if not self.gateway_down_reported:
            self.gateway_down_reported = True
            await self.reconciler.post_event(
                self.reconciler.pod_reference(),
                "Warning",
                "GatewayUnavailable",
                f"cannot reach the Tyk gateway, retrying with backoff: {error}",
            )

    async def _gateway_ok(self) -> None:
        if self.gateway_down_reported:
            self.gateway_down_reported = False
            await self.reconciler.post_event(
                self.reconciler.pod_reference(), "Normal", "GatewayAvailable", "the Tyk gateway answers again"
            )

    async def reconcile_loop(self) -> None:
        backoff = 1.0
        next_full = time.monotonic()
        self.state.changed.set()
        while True:
            if not self.is_leader:
                self._wake.clear()
                await self._wake.wait()  # set when this replica becomes the leader
                continue
            timeout = max(0.0, next_full - time.monotonic())
            waiters = [
                asyncio.ensure_future(self.state.changed.wait()),
                asyncio.ensure_future(self._wake.wait()),
            ]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            self._wake.clear()
            if not self.is_leader:
                continue
            full = self._force_full or time.monotonic() >= next_full
            if not full and self.config.debounce_seconds:
                await asyncio.sleep(self.config.debounce_seconds)
            self.state.changed.clear()
            try:
                if full:
                    await self.full_list()
                    await self.reconciler.refresh_publish_status()
                await self.reconciler.reconcile()
            except TykGatewayError as error:
                await self._gateway_failed(error)
            except KubeError as error:
                log.warning("Kubernetes call failed, will retry: %s", error)
            except Exception:  # a bug or an answer nobody foresaw: log it, keep serving, retry with backoff
                log.exception("reconcile pass failed, will retry")
            else:
                if full:
                    self._force_full = False
                    next_full = time.monotonic() + self.config.resync_seconds
                backoff = 1.0
                await self._gateway_ok()
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.config.retry_backoff_max_seconds)
            self.state.changed.set()

    # --- run -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        health = await self._serve_health()
        self._tasks.append(asyncio.create_task(self._probe(), name="probes"))
        while not self.stop.is_set():
            try:
                await self._check_secrets_access()
                break
            except KubeError as error:
                log.warning("Kubernetes unreachable at start, retrying: %s", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=2)
        if self.stop.is_set():  # stopped before Kubernetes ever answered
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.kube.close()
            await health.cleanup()
            return
        if self.elector is not None:
            self._tasks.append(asyncio.create_task(self.elector.run(), name="leader election"))
        self._tasks.append(asyncio.create_task(self.reconcile_loop(), name="reconcile"))
        if self.config.publish_service is not None:
            self._tasks.append(asyncio.create_task(self._follow_publish_service(), name="publish Service"))
        stopper = asyncio.create_task(self.stop.wait(), name="stop")
        await asyncio.sleep(
            0
        )  # kopf cancels, at its exit, every task that started after it: start ours first
        registry = build_registry(self.state, self._kinds(), login_handler)
        settings = kopf_settings(kopf.OperatorSettings())
        namespaces = list(self.config.watch_namespaces)
        kopf_stop = asyncio.Event()
        operator = asyncio.create_task(
            kopf.operator(
                registry=registry,
                settings=settings,
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=True,
                stop_flag=kopf_stop,
            ),
            name="kopf",
        )
        self._tasks.append(operator)
        await asyncio.wait([*self._tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in self._tasks if t.done() and not t.cancelled() and t.exception() is not None]
        for task in failed:
            log.error("task %s failed: %r", task.get_name(), task.exception())
        ours = [t for t in self._tasks if t is not operator]
        for task in [*ours, stopper]:
            task.cancel()
        await asyncio.gather(*ours, stopper, return_exceptions=True)
        if self.elector is not None:
            await self.elector.release()
        kopf_stop.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(operator, timeout=10)
        await self.kube.close()
        await health.cleanup()
        if failed:
            raise RuntimeError(f"controller task {failed[0].get_name()} failed") from failed[0].exception()
