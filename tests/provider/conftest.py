"""Fixtures for the Tyk provider tests: a gateway emulator and providers set up like the plugin does."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import pytest
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider

from tests.gateway_emulator import GatewayEmulator
from tyk_gateway.provider import TykApiProvider, TykPolicyProvider, _TykProvider, forget_gateways

SECRET = "s3cr3t-admin-key-for-tests"

#: Small timeouts and backoffs keep the suite fast; production defaults are in ClientSettings.
FAST_CLIENT = {
    "connectTimeout": 1.0,
    "readTimeout": 1.0,
    "retries": 6,
    "backoffFactor": 0.002,
    "backoffMax": 0.02,
    "listCacheTtl": 5.0,
}


#: Replica verification waits at most this long in tests (production default: 30 s).
FAST_MANAGEMENT = {"replicaWaitSeconds": 2.0}


def stack_config(
    secret: str = SECRET,
    management: dict[str, Any] | None = None,
    extra: dict[str, str] | None = None,
    **client: Any,
) -> Config:
    raw = {
        "tyk-aks:apiSecret": secret,
        "tyk-aks:gatewayClient": json.dumps({**FAST_CLIENT, **client}),
        "tyk-aks:apiManagement": json.dumps({**FAST_MANAGEMENT, **(management or {})}),
        **(extra or {}),
    }
    return Config(raw, "tyk-aks")


def new_command() -> None:
    """Simulate the next pulumi command: a new plugin process with empty caches."""
    forget_gateways()


def plugin_provider(cls: type[_TykProvider], config: Config) -> _TykProvider:
    """What the plugin process does: unpickle the state's __provider blob, then configure()."""
    provider = dill.loads(base64.b64decode(serialize_provider(cls())))
    assert isinstance(provider, cls)
    provider.configure(ConfigureRequest(config))
    return provider


@pytest.fixture(autouse=True)
def _fresh_plugin_process() -> Iterator[None]:
    """Each test starts like a new plugin process: no shared clients, caches or reload state."""
    forget_gateways()
    yield
    forget_gateways()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[GatewayEmulator]:
    with GatewayEmulator(tmp_path / "gateway", secret=SECRET, reload_interval=0.01) as gateway:
        yield gateway


@pytest.fixture
def api_provider() -> _TykProvider:
    return plugin_provider(TykApiProvider, stack_config())


@pytest.fixture
def policy_provider() -> _TykProvider:
    return plugin_provider(TykPolicyProvider, stack_config())


def api_definition(api_id: str = "httpbin", **overrides: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "api_id": api_id,
        "name": api_id,
        "org_id": "default",
        "use_keyless": False,
        "use_standard_auth": True,
        "auth_configs": {"authToken": {"auth_header_name": "Authorization"}},
        "proxy": {
            "listen_path": f"/{api_id}/",
            "target_url": "http://httpbin.org",
            "strip_listen_path": True,
        },
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }
    definition.update(overrides)
    return definition


def policy_definition(
    policy_id: str = "basic", api_ids: tuple[str, ...] = ("httpbin",), **overrides: Any
) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "id": policy_id,
        "name": f"{policy_id} policy",
        "org_id": "default",
        "rate": 100,
        "per": 60,
        "quota_max": -1,
        "access_rights": {a: {"api_id": a, "api_name": a, "versions": ["Default"]} for a in api_ids},
    }
    definition.update(overrides)
    return definition


def props(provider: _TykProvider, gateway_url: str, definition: dict[str, Any]) -> dict[str, Any]:
    """Run check() like the engine does and return the checked inputs (failing on check failures)."""
    result = provider.check({}, {"gateway_url": gateway_url, "definition": definition, "__provider": "x"})
    assert not result.failures, [f.reason for f in result.failures]
    return result.inputs
