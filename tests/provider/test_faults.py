"""Concurrency and fault runs: nothing lost, no duplicates, and the gateway ends as declared."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import (
    api_definition,
    new_command,
    plugin_provider,
    policy_definition,
    props,
    stack_config,
)
from tyk_gateway.drift import project
from tyk_gateway.provider import TykApiProvider, TykPolicyProvider, _TykProvider


def run_all(workers: int, jobs: Sequence[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def test_fifty_concurrent_creates_lose_nothing(emulator: GatewayEmulator, api_provider: _TykProvider) -> None:
    wanted = {
        f"api-{i:02d}": props(api_provider, emulator.url, api_definition(f"api-{i:02d}")) for i in range(50)
    }
    results = run_all(50, [partial(api_provider.create, p) for p in wanted.values()])
    assert sorted(r.id for r in results) == sorted(wanted)
    assert sorted(emulator.disk_apis()) == sorted(wanted)
    assert emulator.stats.calls["POST /tyk/apis"] == 50
    assert 1 <= emulator.stats.calls["GET /tyk/reload/group"] <= 10  # coalesced, never one per write
    assert max(emulator.stats.reload_requested) > emulator.stats.last_write_at

    new_command()
    emulator.reload_now()
    emulator.reset_stats()
    reads = run_all(4, [partial(api_provider.read, i, r.outs) for i, r in zip(wanted, results, strict=True)])
    assert [r.id for r in reads] == list(wanted)
    assert all(read.outs == created.outs for read, created in zip(reads, results, strict=True))
    assert emulator.stats.calls["GET /tyk/apis"] == 1  # 50 reads, one list call


def test_fault_run_ends_with_the_declared_state(emulator: GatewayEmulator) -> None:
    config = stack_config(retries=15, readTimeout=0.2)
    apis = plugin_provider(TykApiProvider, config)
    policies = plugin_provider(TykPolicyProvider, config)
    emulator.faults.error_rate = 0.3
    emulator.faults.drop_before_rate = 0.03
    emulator.faults.drop_after_rate = 0.05
    emulator.faults.slow_rate = 0.02
    emulator.faults.slow_next = 2  # at least two timeouts, whatever the dice say
    emulator.faults.slow_seconds = 0.3
    rng = random.Random(7)
    url = emulator.url

    declared_apis: dict[str, dict[str, Any]] = {}  # id -> checked inputs, then outputs
    declared_policies: dict[str, dict[str, Any]] = {}

    def create(
        provider: _TykProvider, store: dict[str, dict[str, Any]], key: str, definition: dict[str, Any]
    ) -> None:
        store[key] = provider.create(props(provider, url, definition)).outs or {}

    def update(
        provider: _TykProvider, store: dict[str, dict[str, Any]], key: str, definition: dict[str, Any]
    ) -> None:
        news = props(provider, url, definition)
        assert provider.diff(key, store[key], news).changes
        store[key] = provider.update(key, store[key], news).outs or {}

    def delete(provider: _TykProvider, store: dict[str, dict[str, Any]], key: str) -> None:
        provider.delete(key, store.pop(key))

    api_ids = [f"svc-{i:02d}" for i in range(60)]
    policy_ids = [f"plan-{i:02d}" for i in range(20)]
    new_api = {
        a: api_definition(a, proxy={"listen_path": f"/{a}/", "target_url": f"http://{a}.v2"}) for a in api_ids
    }
    policy = {p: policy_definition(p, tuple(rng.sample(api_ids, 3))) for p in policy_ids}
    faster = {p: {**policy[p], "rate": 500} for p in policy_ids}

    # 80 creates (60 APIs, then 20 policies over 3 APIs each), 60 updates, 60 deletes.
    run_all(4, [partial(create, apis, declared_apis, a, api_definition(a)) for a in api_ids])
    run_all(4, [partial(create, policies, declared_policies, p, policy[p]) for p in policy_ids])
    run_all(
        4,
        [partial(update, apis, declared_apis, a, new_api[a]) for a in api_ids[:45]]
        + [partial(update, policies, declared_policies, p, faster[p]) for p in policy_ids[:15]],
    )
    run_all(4, [partial(delete, policies, declared_policies, p) for p in policy_ids[10:]])
    run_all(4, [partial(delete, apis, declared_apis, a) for a in api_ids[10:]])
    operations = 60 + 20 + 45 + 15 + 10 + 50
    assert operations == 200

    stats = emulator.stats
    assert stats.injected["5xx"] >= 0.2 * stats.total, (stats.injected, stats.total)
    assert (
        stats.injected["drop_before"] > 0 and stats.injected["drop_after"] > 0 and stats.injected["slow"] > 0
    )
    assert max(stats.reload_requested) > stats.last_write_at  # a reload after the last change

    # Refresh under faults: every read finds its object unchanged.
    emulator.reload_now()
    new_command()
    for key, outs in declared_apis.items():
        read = apis.read(key, outs)
        assert (read.id, read.outs) == (key, outs)
    for key, outs in declared_policies.items():
        read = policies.read(key, outs)
        assert (read.id, read.outs) == (key, outs)

    # Gateway state (disk and loaded) equals the declared state, nothing more, nothing twice.
    emulator.faults.error_rate = emulator.faults.drop_before_rate = emulator.faults.drop_after_rate = 0
    emulator.reload_now()
    assert sorted(emulator.disk_apis()) == sorted(emulator.loaded_apis) == sorted(declared_apis)
    assert sorted(emulator.disk_policies()) == sorted(emulator.loaded_policies) == sorted(declared_policies)
    for key, outs in declared_apis.items():
        assert project(emulator.loaded_apis[key], outs["definition"]) == outs["definition"]
    for key, outs in declared_policies.items():
        assert project(emulator.loaded_policies[key], outs["definition"]) == outs["definition"]
    assert {a["proxy"]["target_url"] for a in emulator.loaded_apis.values()} == {
        f"http://{a}.v2" for a in api_ids[:10]
    }
