"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics (kopf has none).

As in client-go's ``leaderelection`` package:

* a candidate acquires the Lease when it does not exist (create; 409 means someone else won), when it names
  no holder, or when the record it last *observed* has not changed for ``leaseDurationSeconds`` of the
  candidate's own clock (never the holder's ``renewTime``, so clock skew between nodes cannot shorten a
  lease);
* every write is an update carrying the ``resourceVersion`` read just before, so of two candidates writing
  at once exactly one wins (the other gets 409 Conflict);
* the leader renews every ``retry_period``; when it has not managed to renew for ``renew_deadline`` it stops
  acting as leader at once (before its lease can expire and a standby takes over);
* on shutdown the leader releases the Lease (empty holder, 1 s duration) so a standby takes over quickly.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from .config import LeaderElection
from .kube import LEASES, KubeClient, KubeError

log = logging.getLogger("tyk_controller.leader")


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: KubeClient,
        settings: LeaderElection,
        namespace: str,
        identity: str,
        on_change: Callable[[bool], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.namespace = namespace
        self.identity = identity
        self.on_change = on_change
        self.clock = clock
        self.is_leader = False
        self.last_contact = 0.0  # clock() of the last successful Lease call (Kubernetes reachable)
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0

    @property
    def _path(self) -> str:
        return LEASES.path(self.namespace, self.settings.lease_name)

    def _set_leader(self, value: bool) -> None:
        if value != self.is_leader:
            self.is_leader = value
            log.info(
                "leadership %s",
                "acquired" if value else "lost",
                extra={"lease": self.settings.lease_name, "identity": self.identity},
            )
            self.on_change(value)

    def _spec(self, transitions: int, acquire_time: str | None) -> dict[str, Any]:
        now = _now_micro()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration_seconds)),
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One round. Returns whether this process holds the Lease afterwards."""
        try:
            lease = await self.kube.request("GET", self._path)
        except KubeError as error:
            if error.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.settings.lease_name, "namespace": self.namespace},
                "spec": self._spec(0, None),
            }
            return await self._write("POST", LEASES.path(self.namespace), body)
        self.last_contact = self.clock()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (
            holder,
            spec.get("renewTime"),
            spec.get("leaseTransitions"),
            spec.get("leaseDurationSeconds"),
        )
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration_seconds)
        if holder and holder != self.identity and self.clock() < self._observed_at + duration:
            return False  # somebody else holds a lease that has not expired
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new_spec = self._spec(transitions, spec.get("acquireTime"))
        else:
            new_spec = self._spec(transitions + 1, None)
        lease["spec"] = new_spec
        return await self._write("PUT", self._path, lease)

    async def _write(self, method: str, path: str, lease: dict[str, Any]) -> bool:
        """Create or update the Lease; False when another candidate wrote first (409 Conflict)."""
        try:
            await self.kube.request(method, path, lease)
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        self.last_contact = self._last_renew = self.clock()
        return True

    async def run(self) -> None:
        """Forever: acquire, renew, step down when renewal failed for ``renew_deadline``."""
        while True:
            try:
                held = await self.try_acquire_or_renew()
            except KubeError as error:
                log.warning("leader election round failed: %s", error)
                held = (
                    self.is_leader and self.clock() - self._last_renew < self.settings.renew_deadline_seconds
                )
            else:
                if not held and self.is_leader:
                    log.warning("lost the Lease %s to another holder", self.settings.lease_name)
            self._set_leader(held)
            await asyncio.sleep(self.settings.retry_period_seconds)

    async def release(self) -> None:
        """Give the Lease up (only if still ours) so that a standby need not wait for it to expire."""
        if not self.is_leader:
            return
        self._set_leader(False)
        try:
            lease = await self.kube.request("GET", self._path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_now_micro())
            lease["spec"] = spec
            await self.kube.request("PUT", self._path, lease)
            log.info("released the Lease %s", self.settings.lease_name)
        except KubeError as error:
            log.warning("could not release the Lease: %s", error)
