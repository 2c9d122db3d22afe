"""Gateway calls, reloads and wall time of the Tyk provider for N managed APIs.

Run: ``python -m benchmarks.provider_bench [--sizes 100 1000] [--changes 10 100]``

It starts the gateway emulator, then drives the API provider the way the Pulumi engine
does (check/diff for every resource, create/update/read/delete where the engine would
call them) from a pool of 4 threads, like the dynamic-provider plugin's 4 workers.
Each phase starts like a new pulumi command (fresh provider caches). Figures come from
the emulator's request counters.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dill
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider

from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import api_definition
from tyk_gateway.provider import TykApiProvider, forget_gateways

SECRET = "benchmark-secret"
WORKERS = 4


@dataclass
class Row:
    n: int
    phase: str
    operations: int
    calls: int
    writes: int
    reads: int
    reload_calls: int
    seconds: float


def definition(i: int, target: str = "http://upstream:8080") -> dict[str, Any]:
    """The i-th of N token-protected APIs (the test suite's sample definition, numbered)."""
    api_id = f"api-{i:05d}"
    return api_definition(
        api_id, proxy={"listen_path": f"/{api_id}/", "target_url": target, "strip_listen_path": True}
    )


def plugin_provider() -> TykApiProvider:
    """Unpickle and configure the provider as the plugin process does."""
    provider = dill.loads(base64.b64decode(serialize_provider(TykApiProvider())))
    provider.configure(ConfigureRequest(Config({"tyk-aks:apiSecret": SECRET}, "tyk-aks")))
    assert isinstance(provider, TykApiProvider)
    return provider


def parallel(jobs: Iterable[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda job: job(), jobs))


class Bench:
    def __init__(self, gateway: GatewayEmulator, n: int) -> None:
        self.gateway = gateway
        self.n = n
        self.rows: list[Row] = []

    def phase(self, name: str, operations: int, run: Callable[[], None]) -> None:
        forget_gateways()  # a new pulumi command: new plugin process, empty caches
        self.gateway.reload_now()  # whatever the previous command wrote has been loaded
        self.gateway.reset_stats()
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
        calls = self.gateway.stats.calls
        self.rows.append(
            Row(
                n=self.n,
                phase=name,
                operations=operations,
                calls=sum(calls.values()),
                writes=sum(v for k, v in calls.items() if k.split()[0] in {"POST", "PUT", "DELETE"}),
                reads=sum(
                    v for k, v in calls.items() if k.startswith(("GET /tyk/apis", "GET /tyk/policies"))
                ),
                reload_calls=sum(v for k, v in calls.items() if k.startswith("GET /tyk/reload")),
                seconds=seconds,
            )
        )


def run_size(n: int, changes: list[int]) -> list[Row]:
    provider = plugin_provider()
    with tempfile.TemporaryDirectory() as tmp, GatewayEmulator(Path(tmp), SECRET, reload_interval=0.05) as gw:
        bench = Bench(gw, n)
        url = gw.url
        state: dict[str, dict[str, Any]] = {}

        def check(d: dict[str, Any]) -> dict[str, Any]:
            result = provider.check({}, {"gateway_url": url, "definition": d})
            assert not result.failures
            return result.inputs

        def create(i: int) -> None:
            result = provider.create(check(definition(i)))
            state[result.id] = result.outs or {}

        def plan(targets: dict[int, str]) -> None:
            """check + diff every resource; update those that changed (what `pulumi up` does)."""

            def one(i: int) -> None:
                news = check(definition(i, targets.get(i, state[f"api-{i:05d}"]["target_url"])))
                api_id = news["api_id"]
                if provider.diff(api_id, state[api_id], news).changes:
                    state[api_id] = provider.update(api_id, state[api_id], news).outs or {}

            parallel([partial(one, i) for i in range(n)])

        def create_all() -> None:
            parallel([partial(create, i) for i in range(n)])

        def refresh_all() -> None:
            assert all(r.id for r in parallel([partial(provider.read, k, v) for k, v in state.items()]))

        def delete_all() -> None:
            parallel([partial(provider.delete, k, v) for k, v in list(state.items())])

        bench.phase("create all", n, create_all)
        bench.phase("no-op plan", n, partial(plan, {}))
        for version, k in enumerate(sorted({min(k, n) for k in changes}), start=2):
            bench.phase(
                f"update {k}", k, partial(plan, {i: f"http://upstream-v{version}:8080" for i in range(k)})
            )
        bench.phase("refresh all", n, refresh_all)
        bench.phase("delete all", n, delete_all)
        assert gw.disk_apis() == {}
        return bench.rows


def print_table(rows: list[Row]) -> None:
    header = f"{'N':>5}  {'phase':<12} {'ops':>5} {'HTTP calls':>10} {'writes':>6} {'list/get':>8} {'reloads':>7} {'wall s':>7} {'ms/op':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        per_op = 1000 * r.seconds / r.operations if r.operations else 0.0
        print(
            f"{r.n:>5}  {r.phase:<12} {r.operations:>5} {r.calls:>10} {r.writes:>6} {r.reads:>8} "
            f"{r.reload_calls:>7} {r.seconds:>7.2f} {per_op:>6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--changes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--json", action="store_true", help="print rows as JSON instead of a table")
    args = parser.parse_args()
    rows = [row for n in args.sizes for row in run_size(n, args.changes)]
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        print_table(rows)
        print(
            f"\n{WORKERS} worker threads. 'update k' = check+diff of all N resources, k of them changed."
            "\n'reloads' = /tyk/reload* requests sent by the provider; 'list/get' = GET /tyk/apis*."
        )


if __name__ == "__main__":
    main()
