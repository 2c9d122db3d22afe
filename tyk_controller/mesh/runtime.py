"""Starts the mesh inside the controller process: the admission server (every replica, so the webhook Service
has as many endpoints as the Deployment has replicas) and the routes reconciler (the leader only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from tyk_controller.config import ControllerConfig
from tyk_controller.mesh.config import REDIS_PASSWORD_ENV
from tyk_controller.mesh.reconciler import Kube, MeshReconciler
from tyk_controller.mesh.server import AdmissionServer
from tyk_controller.mesh.sidecar import annotation_customiser
from tyk_gateway.client import GatewayClient

log = logging.getLogger("tyk_controller.mesh")


def mesh_problems(config: ControllerConfig) -> list[str]:
    """What keeps the mesh from starting, one line each (checked before anything starts)."""
    problems = []
    if config.webhook is not None and config.mesh is None:
        problems.append(
            "webhook is set but mesh is not: the injector needs the mesh settings (sidecar image, Redis)"
        )
    if config.mesh is not None and not os.environ.get(REDIS_PASSWORD_ENV):
        problems.append(
            f"environment variable {REDIS_PASSWORD_ENV} (the gateways' Redis password) is not set"
        )
    return problems


class MeshRuntime:
    def __init__(
        self,
        config: ControllerConfig,
        kube: Kube,
        gateway: GatewayClient,
        is_leader: Callable[[], bool],
        pod_namespace: str,
        templates: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.config = config
        self.server: AdmissionServer | None = None
        self.reconciler: MeshReconciler | None = None
        self._task: asyncio.Task[None] | None = None
        self._is_leader = is_leader
        if config.mesh is None:
            return
        # The same templates as the Ingresses' (as loaded at start).
        customise = annotation_customiser(templates)
        if config.webhook is not None:
            self.server = AdmissionServer(config.webhook, config.mesh, customise=customise)
        self.reconciler = MeshReconciler(
            kube,
            config.mesh,
            redis_password=os.environ.get(REDIS_PASSWORD_ENV, ""),
            reload=lambda: asyncio.to_thread(gateway.reload_group),
            controller_namespace=pod_namespace,
            customise=customise,
        )

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()
        if self.reconciler is not None and self.config.mesh is not None:
            self._task = asyncio.create_task(
                self.reconciler.run(
                    resync_seconds=self.config.mesh.resync_seconds, is_leader=self._is_leader
                ),
                name="mesh routes",
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.server is not None:
            await self.server.stop()
