"""TykApi / TykPolicy as Pulumi resources (under mocks): inputs, outputs and ordering."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.provider.conftest import api_definition
from tyk_gateway.models import ApiDefinition
from tyk_gateway.resources import TykApi, TykPolicy, access_right

API_TYPE = "pulumi-python:dynamic/tyk:Api"
POLICY_TYPE = "pulumi-python:dynamic/tyk:Policy"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def mocks() -> Mocks:
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="tyk-aks", stack="dev", preview=False)
    return m


def test_policy_over_two_apis_is_registered_after_them(mocks: Mocks) -> None:
    def program() -> Any:
        orders = TykApi("orders", api_definition("orders"), gateway_url="http://gw:8080")
        billing = TykApi("billing", ApiDefinition.model_validate(api_definition("billing")), "http://gw:8080")
        policy = TykPolicy(
            "both",
            {
                "id": "both",
                "rate": 10,
                "per": 1,
                "access_rights": [access_right(orders), access_right(billing)],
            },
            gateway_url="http://gw:8080",
        )
        return pulumi.Output.all(orders.api_id, billing.listen_path, policy.policy_id)

    outputs: list[Any] = []
    pulumi.runtime.test(lambda: program().apply(outputs.extend))()

    registered = [(r.typ, r.name) for r in mocks.resources]
    assert sorted(registered[:2]) == [(API_TYPE, "billing"), (API_TYPE, "orders")]
    assert registered[2:] == [(POLICY_TYPE, "both")]  # waits for both api_id outputs
    assert outputs == ["orders", "/billing/", "both"]
    orders_inputs = next(r.inputs for r in mocks.resources if r.name == "orders")
    assert orders_inputs["api_id"] == "orders" and orders_inputs["target_url"] == "http://httpbin.org"
    assert orders_inputs["definition"]["proxy"]["listen_path"] == "/orders/"
    policy_inputs = mocks.resources[2].inputs
    assert policy_inputs["definition"]["access_rights"] == [
        {"api_id": "orders", "api_name": "orders", "versions": ["Default"]},
        {"api_id": "billing", "api_name": "billing", "versions": ["Default"]},
    ]
    assert policy_inputs["policy_id"] == "both" and policy_inputs["gateway_url"] == "http://gw:8080"
    # The provider is pickled by reference and not made a secret: it holds nothing secret.
    assert isinstance(policy_inputs["__provider"], str) and len(policy_inputs["__provider"]) < 200


def test_definition_given_as_an_output(mocks: Mocks) -> None:
    def program() -> Any:
        definition = pulumi.Output.from_input("late").apply(lambda api_id: api_definition(api_id))
        return TykApi("late", definition, gateway_url=pulumi.Output.from_input("http://gw")).listen_path

    seen: list[Any] = []
    pulumi.runtime.test(lambda: program().apply(seen.append))()
    assert seen == ["/late/"]
    assert mocks.resources[0].inputs["api_id"] == "late"
