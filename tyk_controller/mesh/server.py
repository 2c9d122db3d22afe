"""The sidecar injector's HTTPS admission server (admission.k8s.io/v1), with a certificate that reloads itself.

The serving certificate is a Kubernetes Secret mounted as files; when it is renewed (a `pulumi up` in its
renewal window), kubelet swaps the files in place. Every TLS handshake goes through `ReloadingTLS`'s SNI
callback (OpenSSL calls it with or without SNI), which re-reads the pair when the files changed and hands the
handshake the newest context: no restart, no dropped connection, and a half-written pair keeps the old one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tyk_controller.config import WebhookServer
from tyk_controller.mesh.config import MeshConfig
from tyk_controller.mesh.sidecar import Customise, Injection, Problem, plan_injection

log = logging.getLogger("tyk_controller.mesh")

REVIEW_API_VERSION = "admission.k8s.io/v1"
MAX_BODY = 3 * 1024 * 1024
"""The API server caps objects at 1.5 MiB; a review carries the object (and, on updates, the old one)."""


class ReloadingTLS:
    """A server SSLContext whose certificate follows the files on disk."""

    def __init__(self, cert_file: str, key_file: str, *, check_interval: float = 1.0) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.check_interval = check_interval
        self.reloads = 0
        self._signature = self._stat()
        self._current = self._load()  # fails loudly at start: a webhook without a certificate is useless
        self._checked = time.monotonic()
        self.context = self._load()  # the listening socket's; each handshake is handed ``_current``
        self.context.sni_callback = self._on_handshake

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        # kubelet replaces the `..data` symlink: follow it (os.stat), so inode/mtime change on renewal.
        signatures = []
        for path in (self.cert_file, self.key_file):
            st = os.stat(path)
            signatures.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(signatures)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def refresh(self) -> bool:
        """Reload if the files changed; True when a new certificate is in use."""
        try:
            signature = self._stat()
            if signature == self._signature:
                return False
            context = self._load()
        except (OSError, ssl.SSLError) as error:
            # Mid-rotation (key and certificate not matching yet) or files briefly absent: keep serving the
            # previous pair and look again on a later handshake.
            log.warning("webhook certificate not reloaded, keeping the previous one: %s", error)
            return False
        self._current, self._signature = context, signature
        self.reloads += 1
        log.info("webhook certificate reloaded from %s", self.cert_file)
        return True

    def _on_handshake(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        now = time.monotonic()
        if now - self._checked >= self.check_interval:
            self._checked = now
            self.refresh()
        connection.context = self._current


@dataclass
class AdmissionStats:
    reviews: int = 0
    patched: int = 0
    warned: int = 0


def review_response(
    review: Mapping[str, Any], mesh: MeshConfig, customise: Customise | None = None
) -> tuple[dict[str, Any], Injection | None]:
    """The AdmissionReview answer: always allowed (a bad opt-in is a warning, never a blocked pod)."""
    request = review.get("request")
    if (
        review.get("apiVersion") != REVIEW_API_VERSION
        or not isinstance(request, Mapping)
        or "uid" not in request
    ):
        raise ValueError(f"not an {REVIEW_API_VERSION} AdmissionReview request")
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    injection = None
    kind = request.get("kind") or {}
    pod = request.get("object")
    if (
        request.get("operation") == "CREATE"
        and kind.get("group", "") == ""
        and kind.get("kind") == "Pod"
        and isinstance(pod, Mapping)
        and not request.get("subResource")
    ):
        namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or ""
        try:
            injection = plan_injection(pod, namespace, mesh, customise)
        except Exception as error:  # never block a pod on our own bug: admit it unchanged, say why
            log.exception("pod in %s: injection failed", namespace)
            injection = Injection(
                None,
                [
                    Problem(
                        "",
                        "InjectionFailed",
                        f"{type(error).__name__}: {error}; pod admitted without the sidecar",
                    )
                ],
            )
        if injection.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(injection.patch).encode()).decode()
        if injection.problems:
            response["warnings"] = injection.warnings
    return {"apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview", "response": response}, injection


def admission_app(
    settings: WebhookServer,
    mesh: MeshConfig,
    customise: Customise | None = None,
    stats: AdmissionStats | None = None,
    on_review: Callable[[Mapping[str, Any], Injection | None], None] | None = None,
) -> web.Application:
    counters = stats if stats is not None else AdmissionStats()

    async def mutate(request: web.Request) -> web.Response:
        try:
            review = json.loads(await request.read())
            answer, injection = review_response(review, mesh, customise)
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        counters.reviews += 1
        if injection is not None:
            counters.patched += bool(injection.patch)
            counters.warned += bool(injection.problems)
            request_part = review["request"]
            pod_name = (request_part.get("object") or {}).get("metadata", {}).get(
                "generateName"
            ) or request_part.get("name")
            if injection.patch:
                log.info("injected sidecar into pod %s/%s", request_part.get("namespace"), pod_name)
            for problem in injection.problems:
                log.warning(
                    "pod %s/%s admitted without sidecar: %s: %s",
                    request_part.get("namespace"),
                    pod_name,
                    problem.reason,
                    problem.message,
                )
        if on_review is not None:
            on_review(review, injection)
        return web.json_response(answer)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(settings.path, mutate)
    app.router.add_get("/healthz", healthz)
    return app


class AdmissionServer:
    """Runs the admission app on HTTPS in the caller's event loop (the controller's, or a test's)."""

    def __init__(
        self,
        settings: WebhookServer,
        mesh: MeshConfig,
        *,
        host: str = "0.0.0.0",
        customise: Customise | None = None,
        check_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.host = host
        self.stats = AdmissionStats()
        self.tls = ReloadingTLS(settings.cert_file, settings.key_file, check_interval=check_interval)
        self.app = admission_app(settings, mesh, customise, self.stats)
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.settings.port, ssl_context=self.tls.context)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("admission webhook serving HTTPS on %s:%d%s", self.host, self.port, self.settings.path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
