"""Time and gateway calls of the ingress controller: N Ingresses x 3 paths, converge, edit, idle.

Run: ``python -m benchmarks.controller_bench [--ingresses 1000] [--edits 10] [--resync 5]``

The controller runs as its own process (``python -m tyk_controller``, the real translation, the production
timings: 0.5 s debounce, at most one group reload per second) against the fake Kubernetes API server and the
gateway emulator, both in this process on 127.0.0.1. Figures come from the emulator's request counters.

Phases:

1. *converge from empty*: N Ingresses exist before the controller starts; time until the gateway has
   loaded all 3N APIs.
2. *after E edits*: E Ingresses change one of their paths (E deletes + E writes); time until loaded.
3. *a stream of edits*: 50 Ingresses edited one every 100 ms; shows the reload rate limit.
4. *no-op resync*: nothing changes for one full resync period.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.controller.runtime_support import ControllerProcess, ingress, ingress_class, service
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble
from tyk_controller.config import ControllerConfig
from tyk_controller.translate import owner_of

PATHS = ("/api", "/web", "/static")


@dataclass
class Row:
    phase: str
    seconds: float
    lists: int
    writes: int
    deletes: int
    reloads: int
    busiest_second: int  # most group reloads requested within any 1 s window
    changed: int

    def cells(self) -> list[str]:
        return [
            self.phase,
            f"{self.seconds:.2f}",
            str(self.lists),
            str(self.writes),
            str(self.deletes),
            str(self.reloads),
            str(self.busiest_second),
            str(self.changed),
        ]


def owned_count(gateway: GatewayEmulator) -> int:
    return sum(1 for a in list(gateway.loaded_apis.values()) if owner_of(a) is not None)


def served_paths(gateway: GatewayEmulator, host: str) -> set[str]:
    """The listen paths (without their regular-expression suffix) the gateway has loaded for ``host``."""
    return {
        a["proxy"]["listen_path"].split("{")[0]
        for a in list(gateway.loaded_apis.values())
        if a.get("domain") == host
    }


def wait_until(check: object, timeout: float) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise SystemExit("did not converge in time")
        time.sleep(0.02)
    return time.monotonic() - started


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times if start <= t < start + 1.0) for start in times), default=0)


def counters(gateway: GatewayEmulator, phase: str, seconds: float, changed: int) -> Row:
    stats = gateway.stats
    return Row(
        phase,
        seconds,
        stats.count("GET /tyk/apis", "GET /tyk/certs"),
        stats.count("POST /tyk/apis", "PUT /tyk/apis/{id}"),
        stats.count("DELETE /tyk/apis/{id}"),
        stats.count("GET /tyk/reload/group"),
        busiest_second(list(stats.reload_requested)),
        changed,
    )


def run(ingresses: int, edits: int, resync: float) -> list[Row]:
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        KubeApiDouble() as api,
        GatewayEmulator(Path(tmp) / "gw") as gateway,
    ):
        api.apply(ingress_class())
        api.apply(service("gateway", "tyk", load_balancer_ip="20.1.2.3"))
        api.apply(service("web"))
        for i in range(ingresses):
            api.apply(ingress(f"app-{i}", host=f"app-{i}.example.com", paths=PATHS))
        production = ControllerConfig(gateway_url=gateway.url)
        controller = ControllerProcess(
            api,
            gateway,
            Path(tmp) / "controller",
            "controller-0",
            resync_seconds=resync,
            debounce_seconds=production.debounce_seconds,
            min_reload_interval_seconds=production.min_reload_interval_seconds,
            gateway_client=production.gateway_client.model_dump(by_alias=True),
        )
        started = time.monotonic()
        controller.start()
        try:
            wait_until(lambda: owned_count(gateway) == ingresses * len(PATHS), timeout=180)
            rows.append(
                counters(gateway, "converge from empty", time.monotonic() - started, ingresses * len(PATHS))
            )
            time.sleep(3.0)  # the confirming pass after the reload, status updates, Events
            gateway.reset_stats()
            started = time.monotonic()
            for i in range(edits):
                api.apply(ingress(f"app-{i}", host=f"app-{i}.example.com", paths=("/api", "/web", "/assets")))
            edited = f"app-{edits - 1}.example.com"
            wait_until(lambda: served_paths(gateway, edited) == {"/api", "/web", "/assets"}, timeout=60)
            rows.append(counters(gateway, f"after {edits} edits", time.monotonic() - started, 2 * edits))
            time.sleep(3.0)
            gateway.reset_stats()
            started = time.monotonic()
            churn = 50  # one edit every 100 ms for 5 s: the reload rate limit under a steady stream
            for i in range(churn):
                api.apply(
                    ingress(
                        f"app-{100 + i}", host=f"app-{100 + i}.example.com", paths=("/api", "/web", "/v2")
                    )
                )
                time.sleep(0.1)
            churned = f"app-{100 + churn - 1}.example.com"
            wait_until(lambda: served_paths(gateway, churned) == {"/api", "/web", "/v2"}, timeout=60)
            rows.append(counters(gateway, f"{churn} edits over 5 s", time.monotonic() - started, 2 * churn))
            time.sleep(3.0)
            gateway.reset_stats()
            started = time.monotonic()
            time.sleep(resync + 0.5)
            rows.append(counters(gateway, "no-op resync", time.monotonic() - started, 0))
        finally:
            controller.signal(signal.SIGTERM)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingresses", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--resync", type=float, default=5.0)
    args = parser.parse_args()
    rows = run(args.ingresses, args.edits, args.resync)
    header = [
        "phase",
        "seconds",
        "list calls",
        "writes",
        "deletes",
        "group reloads",
        "max reloads in 1 s",
        "APIs changed",
    ]
    table = [header, *(r.cells() for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"{args.ingresses} Ingresses x {len(PATHS)} paths, resync every {args.resync:g} s")
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
