"""Programs with thousands of definitions: the SDK pickler workaround and linear dependencies."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from benchmarks.program_bench import write_definitions
from offline.plan import read_stack_config, run_program
from tests.provider.test_resources import API_TYPE, POLICY_TYPE, Mocks
from tyk_gateway.loader import declare_definitions
from tyk_gateway.provider import TykApiProvider
from tyk_gateway.resources import TykApi
from tyk_gateway.sdk_workarounds import unwrap_batch_setitems

STDLIB_BATCH_SETITEMS = "_Pickler._batch_setitems"


def batch_setitems() -> Any:
    return pickle._Pickler.__dict__["_batch_setitems"]


def test_the_sdk_still_leaks_its_wrapper() -> None:
    """The defect the workaround exists for; when this fails, upstream fixed it: delete sdk_workarounds."""
    unwrap_batch_setitems()
    serialize_provider(TykApiProvider())
    serialize_provider(TykApiProvider())
    assert batch_setitems().__qualname__ != STDLIB_BATCH_SETITEMS
    assert unwrap_batch_setitems() == 2
    assert batch_setitems().__qualname__ == STDLIB_BATCH_SETITEMS


def test_provider_blobs_stay_deterministic_with_the_workaround() -> None:
    first = serialize_provider(TykApiProvider())
    unwrap_batch_setitems()
    assert serialize_provider(TykApiProvider()) == first


@pytest.fixture
def mocks() -> Mocks:
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="tyk-aks", stack="dev", preview=False)
    return m


def test_each_resource_leaves_the_pickler_as_it_found_it(mocks: Mocks) -> None:
    depths: list[str] = []

    def program() -> None:
        for i in range(3):
            TykApi(f"api-{i}", {"api_id": f"api-{i}"}, "http://gw:8080")
            depths.append(batch_setitems().__qualname__)

    pulumi.runtime.test(program)()
    assert depths == [STDLIB_BATCH_SETITEMS] * 3


def test_three_thousand_definitions_declare_without_recursion_error(mocks: Mocks, tmp_path: Path) -> None:
    """About three times the old limit (~950 dynamic resources died with RecursionError)."""
    write_definitions(tmp_path, 2700)  # + 270 policies

    def program() -> None:
        declare_definitions(tmp_path, "http://gw:8080")

    pulumi.runtime.test(program)()
    types = [r.typ for r in mocks.resources]
    assert types.count(API_TYPE) == 2700 and types.count(POLICY_TYPE) == 270


def test_definitions_depend_on_the_release_and_policies_on_the_apis_they_grant(tmp_path: Path) -> None:
    write_definitions(tmp_path, 30)  # policy-0000p grants api-(10p)..api-(10p+9)
    config, secret_keys, _notes = read_stack_config("dev")
    management = json.loads(config["tyk-aks:apiManagement"])
    config["tyk-aks:apiManagement"] = json.dumps({**management, "definitionsDir": str(tmp_path)})
    plan = run_program("dev", config=config, secret_keys=secret_keys)

    release = plan.one("kubernetes:helm.sh/v3:Release", "gateway-release").urn
    apis = {r.name: r for r in plan.find(API_TYPE)}
    assert len(apis) == 30
    for api in apis.values():
        assert api.dependencies == [release]  # not the component's every child
    for p, policy in enumerate(sorted(plan.find(POLICY_TYPE), key=lambda r: r.name)):
        granted = {apis[f"api-{i:05d}"].urn for i in range(p * 10, p * 10 + 10)}
        assert set(policy.dependencies) == {release, *granted}
