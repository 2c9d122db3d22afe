"""Leader election on a Lease against the fake API server (optimistic concurrency is the server's)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import kopf
import pytest

from tests.kube_api_double import KubeApiDouble, controller_identity
from tyk_controller import rbac
from tyk_controller.config import LeaderElection
from tyk_controller.kube import KubeClient
from tyk_controller.leader import LeaderElector

SETTINGS = LeaderElection(lease_duration_seconds=10, renew_deadline_seconds=5, retry_period_seconds=1)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Like asyncio.run, without leaving the main thread's event loop unset for later (Pulumi) tests."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coroutine)
    finally:
        loop.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[KubeApiDouble]:
    with KubeApiDouble() as server:
        for pod in ("a", "b"):
            server.grant(f"token-{pod}", controller_identity(f"pod-{pod}", "tyk", [], rbac))
        yield server


def elector(api: KubeApiDouble, pod: str, clock: FakeClock) -> LeaderElector:
    info = kopf.ConnectionInfo(server=api.url, token=f"token-{pod}")
    return LeaderElector(KubeClient(lambda: info), SETTINGS, "tyk", f"pod-{pod}", clock=clock)


def holder(api: KubeApiDouble) -> str:
    lease = api.get("coordination.k8s.io/v1", "Lease", "tyk", "tyk-controller")
    assert lease is not None
    return str(lease["spec"]["holderIdentity"])


def test_one_holder_standby_takes_over_only_after_the_lease_expires_on_its_own_clock(
    api: KubeApiDouble,
) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        clock.now += 9  # a does not renew; b has watched the same record for 9 s < 10 s
        assert not await b.try_acquire_or_renew()
        assert await a.try_acquire_or_renew()  # a renews: a new record, b's observation restarts
        clock.now += 9
        assert not await b.try_acquire_or_renew()
        clock.now += 9.5  # 9.5 s since b first saw the renewed record... still below 10 s
        assert not await b.try_acquire_or_renew()
        clock.now += 1
        assert await b.try_acquire_or_renew()
        assert holder(api) == "pod-b"
        lease = api.get("coordination.k8s.io/v1", "Lease", "tyk", "tyk-controller")
        assert lease is not None and lease["spec"]["leaseTransitions"] == 1
        assert not await a.try_acquire_or_renew()  # a's lease is gone; it must not take it back
        await a.kube.close()
        await b.kube.close()

    run(scenario())


def test_concurrent_candidates_exactly_one_wins(api: KubeApiDouble) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        candidates = [elector(api, p, clock) for p in ("a", "b")]
        results = await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))
        assert sorted(results) == [False, True]
        # Now an expired lease, both try again at once: the update with the stale resourceVersion gets 409.
        for c in candidates:
            await c.try_acquire_or_renew()  # both observe the current record
        clock.now += 11
        winner = next(c for c, won in zip(candidates, results, strict=True) if won)
        loser = next(c for c in candidates if c is not winner)
        second = await asyncio.gather(loser.try_acquire_or_renew(), winner.try_acquire_or_renew())
        assert list(second).count(True) == 1
        for c in candidates:
            await c.kube.close()

    run(scenario())
    assert any(r.status == 409 for r in api.requests if r.resource == "leases")


def test_leader_steps_down_when_it_cannot_renew_and_releases_on_shutdown(api: KubeApiDouble) -> None:
    clock = FakeClock()
    changes: list[bool] = []

    async def scenario() -> None:
        a = elector(api, "a", clock)
        a.on_change = changes.append
        a.settings = LeaderElection(
            lease_duration_seconds=10, renew_deadline_seconds=5, retry_period_seconds=0.01
        )
        task = asyncio.create_task(a.run())
        await asyncio.sleep(0.1)
        assert a.is_leader
        api.down = True
        clock.now += 4  # renewals fail, still within the renew deadline
        await asyncio.sleep(0.1)
        assert a.is_leader
        clock.now += 2  # past the deadline: step down before the lease can expire for others
        await asyncio.sleep(0.1)
        assert not a.is_leader
        api.down = False
        await asyncio.sleep(0.1)
        assert a.is_leader  # still the holder in the Lease: renews and resumes
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await a.release()
        await a.kube.close()

    run(scenario())
    assert changes == [True, False, True, False]
    assert holder(api) == ""
