"""Gateway calls, reloads and wall time of the Tyk provider for N managed APIs.

Run: ``./run bench provider_bench [--sizes 100 1000] [--changes 10 100] [--replicas 3]``

It starts the gateway emulator, then drives the API provider the way the Pulumi engine
does (check/diff for every resource, create/update/read/delete where the engine would
call them) from a pool of 4 threads, like the dynamic-provider plugin's 4 workers.
Each phase starts like a new pulumi command (fresh provider caches). Figures come from
the emulator's request counters.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pulumi.dynamic import Config

from tests.gateway_cluster import GatewayCluster
from tests.gateway_emulator import GatewayEmulator
from tests.kube_proxy_double import KubeProxyDouble
from tests.provider.conftest import api_definition, plugin_provider
from tyk_gateway.kube import kubernetes_target
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
    provider = plugin_provider(TykApiProvider, Config({"tyk-aks:apiSecret": SECRET}, "tyk-aks"))
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


@dataclass
class ReplicaRow:
    n: int
    replicas: int
    verify: bool
    phase: str
    operations: int
    batches: int
    group_reloads: int
    lists_per_replica: float
    gets_per_replica: float
    seconds: float


def run_replicas(n: int, replicas: int, changes: int) -> list[ReplicaRow]:
    """The same phases through the Kubernetes service proxy in front of `replicas` gateways on one folder,
    with replica verification off and on: what verification costs per batch."""
    return [row for verify in (False, True) for row in _replica_phases(n, replicas, changes, verify)]


def _replica_phases(n: int, replicas: int, changes: int, verify: bool) -> list[ReplicaRow]:
    rows: list[ReplicaRow] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        GatewayCluster(Path(tmp) / "share", SECRET, replicas=replicas, reload_interval=0.05) as cluster,
    ):
        kube = KubeProxyDouble(cluster)
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(kube.kubeconfig()))
        config = Config(
            {
                "tyk-aks:apiSecret": SECRET,
                "tyk-aks:cluster": json.dumps({"mode": "existing", "kubeconfig": str(kubeconfig)}),
                "tyk-aks:apiManagement": json.dumps({"verifyReplicas": verify}),
            },
            "tyk-aks",
        )
        provider = plugin_provider(TykApiProvider, config)
        url = kubernetes_target("tyk", kube.service, kube.port)
        state: dict[str, dict[str, Any]] = {}

        def check(d: dict[str, Any]) -> dict[str, Any]:
            result = provider.check({}, {"gateway_url": url, "definition": d})
            assert not result.failures
            return result.inputs

        def phase(name: str, operations: int, jobs: Callable[[], list[Callable[[], Any]]]) -> None:
            forget_gateways()
            for replica in cluster.replicas.values():
                replica.reload_now()
                replica.reset_stats()
            started = time.perf_counter()
            parallel(jobs())
            seconds = time.perf_counter() - started
            batches = len(provider._gateway({"gateway_url": url}).reloads.batches)
            lists = sum(r.stats.calls["GET /tyk/apis"] for r in cluster.replicas.values()) / replicas
            gets = sum(r.stats.calls["GET /tyk/apis/{id}"] for r in cluster.replicas.values()) / replicas
            group = sum(r.stats.calls["GET /tyk/reload/group"] for r in cluster.replicas.values())
            rows.append(
                ReplicaRow(n, replicas, verify, name, operations, batches, group, lists, gets, seconds)
            )

        def create(i: int) -> None:
            result = provider.create(check(definition(i)))
            state[result.id] = result.outs or {}

        def update(i: int) -> None:
            api_id = f"api-{i:05d}"
            news = check(definition(i, "http://v2:8080"))
            state[api_id] = provider.update(api_id, state[api_id], news).outs or {}

        phase("create all", n, lambda: [partial(create, i) for i in range(n)])
        phase(f"update {changes}", changes, lambda: [partial(update, i) for i in range(changes)])
        phase("refresh all", n, lambda: [partial(provider.read, k, v) for k, v in state.items()])
        phase("delete all", n, lambda: [partial(provider.delete, k, v) for k, v in list(state.items())])
        kube.down()
    return rows


def print_replica_table(rows: list[ReplicaRow]) -> None:
    header = (
        f"{'N':>5} {'pods':>4} {'verify':>6}  {'phase':<12} {'ops':>5} {'batches':>7} {'group reloads':>13} "
        f"{'lists/pod':>9} {'lists/pod/batch':>15} {'gets/pod':>8} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        per_batch = r.lists_per_replica / r.batches if r.batches else 0.0
        print(
            f"{r.n:>5} {r.replicas:>4} {'on' if r.verify else 'off':>6}  {r.phase:<12} {r.operations:>5} {r.batches:>7} "
            f"{r.group_reloads:>13} {r.lists_per_replica:>9.1f} {per_batch:>15.2f} {r.gets_per_replica:>8.1f} "
            f"{r.seconds:>7.2f}"
        )


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
    parser.add_argument(
        "--replicas", type=int, default=0, help="also run through the service proxy with this many replicas"
    )
    args = parser.parse_args()
    if args.replicas:
        replica_rows = [r for n in args.sizes for r in run_replicas(n, args.replicas, min(args.changes))]
        print_replica_table(replica_rows)
        print(
            "\nThrough the Kubernetes service proxy double; 'batches' = group commits (each write waits for its"
            "\nbatch's reload and verification); 'lists/pod' = GET /tyk/apis per replica, including refresh reads;"
            "\n'gets/pod' = GET /tyk/apis/{id} per replica (verification of batches of up to 4 objects)."
            "\n"
        )
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
