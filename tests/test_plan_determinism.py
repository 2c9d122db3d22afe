"""Same program and stack files, same bytes out: the plan and the diff a reviewer reads don't churn.

Registrations reach the mock monitor from the SDK's thread pool in whatever order their inputs resolve; these
tests run the plan several times, in this process and in fresh interpreters with different hash seeds, and
compare the printed text byte for byte.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from offline.diff import compare, render
from offline.mocks import OfflineMocks, RecordingMonitor
from offline.plan import machine_independent_environment, read_stack_config, render_tree, run_program

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUNS = 5


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_is_the_same_on_every_run_in_one_process(stack: str) -> None:
    trees = {render_tree(run_program(stack)) for _ in range(RUNS)}
    assert len(trees) == 1
    plans = {json.dumps(run_program(stack).to_json()) for _ in range(2)}  # insertion order included
    assert len(plans) == 1


def test_plan_follows_declaration_order() -> None:
    monitor = RecordingMonitor(OfflineMocks())
    plan = run_program("prod", monitor=monitor)
    keys = [r.key for r in plan.resources]
    assert len(monitor.declared) == len(keys)  # every resource was seen being declared
    # The program declares the cluster, then storage, then Redis, then the gateway: so does the plan.
    first = {
        kind: next(i for i, key in enumerate(keys) if kind in key)
        for kind in ("ManagedCluster", "StorageClass", "redis-managed", "gateway-release")
    }
    assert first["ManagedCluster"] < first["StorageClass"] < first["redis-managed"] < first["gateway-release"]
    storage = [r.name for r in plan.resources if r.type == "kubernetes:core/v1:PersistentVolumeClaim"]
    assert storage == ["storage-apps", "storage-policies", "storage-middleware"]
    assert [r["order"] for r in plan.to_json()["resources"].values()] == list(range(len(keys)))


def test_diff_is_the_same_on_every_run_in_one_process() -> None:
    texts = set()
    for _ in range(3):
        old, new = (json.loads(json.dumps(run_program(s).to_json())) for s in ("dev", "prod"))
        texts.add(render(compare(old, new, "dev", "prod"), "markdown"))
    assert len(texts) == 1


def test_diff_order_survives_key_sorted_json() -> None:
    """A revision's plan comes back through `--json` (keys sorted); it must diff in the same order."""
    old, new = (run_program(s).to_json() for s in ("dev", "prod"))
    as_saved = {s: json.loads(json.dumps(p, sort_keys=True)) for s, p in (("dev", old), ("prod", new))}
    direct = render(compare(json.loads(json.dumps(old)), json.loads(json.dumps(new)), "dev", "prod"))
    assert render(compare(as_saved["dev"], as_saved["prod"], "dev", "prod")) == direct


def _run(args: list[str], seed: str) -> str:
    with machine_independent_environment() as env:
        env = {**env, "PYTHONHASHSEED": seed, "PYTHONPATH": str(PROJECT_DIR)}
        result = subprocess.run(
            [sys.executable, "-m", *args],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # nothing stray (e.g. "Exception ignored in ...")
    return result.stdout


def test_diff_is_the_same_in_fresh_interpreters() -> None:
    outputs = {_run(["offline.diff", "dev", "prod"], seed) for seed in ("0", "1", "random")}
    assert len(outputs) == 1
    plans = {_run(["offline.plan", "prod"], seed) for seed in ("2", "random")}
    assert len(plans) == 1


# --- a clean process -----------------------------------------------------------------------------------------


def _open_loops() -> list[asyncio.AbstractEventLoop]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]


def test_a_plan_leaves_no_event_loop_open() -> None:
    """Unclosed loops are finalized at interpreter exit after their sockets: "Exception ignored ... Invalid file
    descriptor". Every loop a plan run creates (its own, the monitor threads') is closed when it ends."""
    before = set(map(id, _open_loops()))
    monitor = RecordingMonitor(OfflineMocks())
    run_program("prod", monitor=monitor)  # prod reads the AKS credentials through an invoke too
    assert monitor.thread_loops() and all(loop.is_closed() for loop in monitor.thread_loops())
    assert [loop for loop in _open_loops() if id(loop) not in before] == []


def test_no_resource_warnings_in_development_mode() -> None:
    with machine_independent_environment() as env:
        result = subprocess.run(
            [sys.executable, "-X", "dev", "-m", "offline.plan", "prod"],
            cwd=PROJECT_DIR,
            env={**env, "PYTHONPATH": str(PROJECT_DIR)},
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "unclosed event loop" not in result.stderr
    assert "Exception ignored" not in result.stderr


def test_generated_certificates_are_the_same_on_every_run() -> None:
    """With the webhook on, keys and certificates (and the caBundle built from them) don't churn the plan."""
    config, secret_keys, _ = read_stack_config("dev")
    controller = json.loads(config["tyk-aks:controller"])
    config["tyk-aks:controller"] = json.dumps({**controller, "enabled": True, "webhook": {"enabled": True}})
    plans = {json.dumps(run_program("dev", config, secret_keys).to_json(), sort_keys=True) for _ in range(2)}
    assert len(plans) == 1
    assert "caBundle" in next(iter(plans))
