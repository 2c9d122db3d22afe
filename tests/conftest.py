"""Shared fixtures: offline plans of the stack files, run once per test session; the fake Kubernetes API server
and a gateway emulator for the tests that run the controller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from offline.plan import PROJECT_DIR, Plan, run_program
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble

STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in PROJECT_DIR.glob("Pulumi.*.yaml")
)

_plans: dict[str, Plan] = {}


def stack_plan(stack: str) -> Plan:
    """The offline plan of `Pulumi.<stack>.yaml` (cached: the program is deterministic under mocks)."""
    if stack not in _plans:
        _plans[stack] = run_program(stack)
    return _plans[stack]


@pytest.fixture
def plan_of() -> Callable[[str], Plan]:
    return stack_plan


@pytest.fixture(params=STACKS)
def any_stack_plan(request: pytest.FixtureRequest) -> Plan:
    return stack_plan(request.param)


@pytest.fixture
def api() -> Iterator[KubeApiDouble]:
    with KubeApiDouble(bookmark_interval=0.5) as server:
        yield server


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayEmulator]:
    with GatewayEmulator(tmp_path / "gateway", reload_interval=0.05) as emulator:
        yield emulator
