"""Shared fixtures: offline plans of the stack files, run once per test session."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from offline.plan import PROJECT_DIR, Plan, run_program

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
