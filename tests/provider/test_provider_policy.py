"""TykPolicyProvider against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import api_definition, new_command, policy_definition, props
from tyk_gateway.models import UNKNOWN
from tyk_gateway.provider import _TykProvider


def test_full_lifecycle(emulator: GatewayEmulator, policy_provider: _TykProvider) -> None:
    desired = props(policy_provider, emulator.url, policy_definition("basic"))
    created = policy_provider.create(desired)
    outs = created.outs or {}
    assert created.id == "basic" and outs["policy_id"] == "basic" and outs["name"] == "basic policy"
    assert emulator.stats.calls["POST /tyk/policies"] == 1
    assert emulator.disk_policies()["basic"]["access_rights"]["httpbin"]["versions"] == ["Default"]

    new_command()
    emulator.reload_now()
    emulator.reset_stats()
    read = policy_provider.read("basic", outs)
    assert read.outs == outs  # `_id: ""`, partitions, zero fields: no drift
    assert (
        policy_provider.diff(
            "basic", outs, props(policy_provider, emulator.url, policy_definition("basic"))
        ).changes
        is False
    )
    assert emulator.stats.total == 1  # the one shared list call

    faster = props(policy_provider, emulator.url, policy_definition("basic", rate=1000))
    assert policy_provider.diff("basic", outs, faster).changes is True
    outs = policy_provider.update("basic", outs, faster).outs or {}
    assert emulator.stats.calls["PUT /tyk/policies/{id}"] == 1
    assert emulator.disk_policies()["basic"]["rate"] == 1000

    policy_provider.delete("basic", outs)
    assert emulator.disk_policies() == {}
    policy_provider.delete("basic", outs)  # already gone (500 "Delete failed") is fine
    new_command()
    emulator.reload_now()
    assert policy_provider.read("basic", outs).id == ""


def test_policy_referencing_two_apis(
    emulator: GatewayEmulator, api_provider: _TykProvider, policy_provider: _TykProvider
) -> None:
    for api_id in ("orders", "billing"):
        api_provider.create(props(api_provider, emulator.url, api_definition(api_id)))
    # Python programs pass a list (dict keys cannot be Outputs); check keys it by api_id.
    rights = [{"api_id": a, "api_name": a, "versions": ["Default"]} for a in ("orders", "billing")]
    desired = props(policy_provider, emulator.url, policy_definition("both", access_rights=rights))
    assert set(desired["definition"]["access_rights"]) == {"orders", "billing"}
    outs = policy_provider.create(desired).outs or {}

    emulator.reload_now()
    live = emulator.loaded_policies["both"]["access_rights"]
    assert {k: v["api_id"] for k, v in live.items()} == {"orders": "orders", "billing": "billing"}
    assert set(emulator.loaded_apis) == {"orders", "billing"}

    # Someone grants a third API behind Pulumi's back: that is drift in a data-keyed map.
    emulator.edit_file(
        "policy",
        "both",
        lambda p: p["access_rights"].update(extra={"api_id": "extra", "versions": ["Default"]}),
    )
    emulator.reload_now()
    new_command()
    read = policy_provider.read("both", outs)
    assert read.outs is not None
    assert set(read.outs["definition"]["access_rights"]) == {"orders", "billing", "extra"}
    assert policy_provider.diff("both", read.outs, desired).changes is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "has space"}, "definition.id: allowed characters are a-z, A-Z, 0-9"),
        ({"id": None}, "definition.id: Field required"),
        ({"quota_max": 1.5}, "definition.quota_max: Input should be a valid integer"),
        (
            {"access_rights": {"a": {"api_id": "b"}}},
            "access_rights.a.api_id is 'b'; it must equal its key 'a'",
        ),
        (
            {"access_rights": [{"versions": ["Default"]}]},
            "definition.access_rights: Input should be a valid dictionary",
        ),
        ({"_id": "123"}, "definition._id: must be empty or a 24-character hex ObjectId"),
    ],
)
def test_check_names_the_bad_field(
    policy_provider: _TykProvider, change: dict[str, Any], message: str
) -> None:
    result = policy_provider.check(
        {}, {"gateway_url": "http://gw", "definition": {**policy_definition(), **change}}
    )
    assert len(result.failures) == 1 and message in result.failures[0].reason, result.failures[0].reason


def test_unknown_api_ids_during_preview(policy_provider: _TykProvider) -> None:
    rights = [{"api_id": UNKNOWN, "versions": ["Default"]}]
    result = policy_provider.check(
        {}, {"gateway_url": "http://gw", "definition": policy_definition(access_rights=rights)}
    )
    assert result.failures == []


def test_changing_policy_id_replaces(policy_provider: _TykProvider) -> None:
    old = props(policy_provider, "http://gw", policy_definition("a"))
    new = props(policy_provider, "http://gw", policy_definition("b"))
    diff = policy_provider.diff("a", old, new)
    assert diff.changes is True and diff.replaces == ["policy_id"]
