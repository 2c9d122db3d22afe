"""Stack config validation: every rejected value is reported with its `tyk-aks:` key and the value itself."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import ConfigError, StackSettings, parse_settings, quantity_value
from offline.mocks import OfflineMocks, RecordingMonitor
from offline.plan import PROJECT_DIR, read_stack_config, run_program

GATEWAY = {"replicas": 2, "hostnames": ["api.example.com"]}


def raw(**keys: Any) -> dict[str, str]:
    """Raw Pulumi config as the engine hands it over: objects as JSON strings."""
    config = {"gateway": GATEWAY, **keys}
    return {f"tyk-aks:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def error_of(config: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config)
    return str(caught.value)


def test_minimal_config_gets_safe_defaults() -> None:
    settings = parse_settings(raw())
    assert settings.namespace == "tyk"
    assert settings.storage.access_mode == "ReadWriteMany"
    assert settings.storage.create_storage_class is True
    assert settings.gateway.replicas == 2
    assert settings.controller.webhook.failure_policy == "Ignore"
    assert settings.api_management.enabled is False


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            raw(gateway={**GATEWAY, "replicas": 0}),
            "tyk-aks:gateway.replicas = 0: Input should be greater than or equal to 1",
        ),
        (
            raw(gateway={**GATEWAY, "hostnames": ["api.example.com", "Not A Host"]}),
            "tyk-aks:gateway.hostnames.1 = 'Not A Host': 'Not A Host' is not a DNS name",
        ),
        (raw(gateway={**GATEWAY, "hostnames": []}), "tyk-aks:gateway.hostnames = []"),
        (
            raw(storage={"accessMode": "ReadWriteSometimes"}),
            "tyk-aks:storage.accessMode = 'ReadWriteSometimes'",
        ),
        (
            raw(storage={"sizes": {"apps": "1 GB"}}),
            "tyk-aks:storage.sizes.apps = '1 GB': '1 GB' is not a Kubernetes quantity",
        ),
        (
            raw(storage={"skuName": "Premium_LRS"}),
            "tyk-aks:storage.sizes.apps = '1Gi': premium Azure file shares have a 100Gi minimum",
        ),
        (
            raw(storage={"accessMode": "ReadWriteOnce"}),
            "tyk-aks:storage.accessMode = 'ReadWriteOnce': 2 gateway replicas",
        ),
        (raw(namespace="Tyk_NS"), "tyk-aks:namespace = 'Tyk_NS': 'Tyk_NS' is not a DNS-1123 label"),
        (
            raw(gateway={**GATEWAY, "pdbMinAvailable": 2}),
            "tyk-aks:gateway.pdbMinAvailable = 2: must be below replicas (2)",
        ),
        (
            raw(gateway={**GATEWAY, "replica": 3}),
            "tyk-aks:gateway.replica = 3: Extra inputs are not permitted",
        ),
        (
            raw(apiManagement={"enabled": True, "gatewayUrl": "localhost:9696"}),
            "tyk-aks:apiManagement.gatewayUrl = 'localhost:9696': must be an http(s) URL",
        ),
        (
            raw(apiManagement={"enabled": True, "gatewayUrl": "http://10.0.0.5:9696"}),
            "tyk-aks:apiManagement.gatewayUrl = 'http://10.0.0.5:9696': only used with `access: url`",
        ),
        (
            raw(apiManagement={"enabled": True, "access": "url"}),
            "tyk-aks:apiManagement.gatewayUrl = None: `access: url` needs the control-API URL",
        ),
        (
            raw(apiManagement={"enabled": True, "access": "port-forward"}),
            "tyk-aks:apiManagement.access = 'port-forward': Input should be 'kubernetes' or 'url'",
        ),
        (
            raw(apiManagement={"rbacSubjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
            "tyk-aks:apiManagement.rbacSubjects.0.namespace = None: a ServiceAccount subject ('ci') needs its namespace",
        ),
        (
            raw(apiManagement={"replicaWaitSeconds": -1}),
            "tyk-aks:apiManagement.replicaWaitSeconds = -1: Input should be greater than or equal to 0",
        ),
        (raw(redis={"enabled": False}), "tyk-aks:redis.addrs = []: with enabled false"),
        (
            raw(cluster={"mode": "aks", "aks": {"minCount": 3, "maxCount": 2}}),
            "tyk-aks:cluster.aks.maxCount = 2: must be at least minCount (3)",
        ),
        (
            raw(controller={"webhook": {"failurePolicy": "Maybe"}}),
            "tyk-aks:controller.webhook.failurePolicy = 'Maybe'",
        ),
        (raw(gateway=3), "tyk-aks:gateway = 3"),
        ({"tyk-aks:namespace": "tyk"}, "tyk-aks:gateway = (missing): Field required"),
    ],
)
def test_bad_value_is_named_with_its_key(config: dict[str, str], expected: str) -> None:
    assert expected in error_of(config)


def test_unknown_top_level_key_is_an_error_not_ignored() -> None:
    message = error_of({**raw(), "tyk-aks:gatway": json.dumps(GATEWAY)})
    assert "tyk-aks:gatway: unknown key" in message
    assert "gateway" in message  # the known keys are listed


def test_all_errors_are_reported_at_once() -> None:
    message = error_of(raw(gateway={**GATEWAY, "replicas": 0}, namespace="UPPER"))
    assert "tyk-aks:gateway.replicas = 0" in message
    assert "tyk-aks:namespace = 'UPPER'" in message


def test_secret_keys_and_other_namespaces_are_not_settings() -> None:
    settings = parse_settings({**raw(), "tyk-aks:apiSecret": "s3cret", "kubernetes:context": "kind-tyk"})
    assert isinstance(settings, StackSettings)


@pytest.mark.parametrize(
    ("quantity", "value"), [("1Gi", 2**30), ("100Gi", 100 * 2**30), ("500M", 5e8), ("250m", 0.25), ("2", 2)]
)
def test_quantity_value(quantity: str, value: float) -> None:
    assert quantity_value(quantity) == value


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stack_files_are_valid(stack: str) -> None:
    config, _, _ = read_stack_config(stack, PROJECT_DIR)
    parse_settings(config)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (raw(gateway={**GATEWAY, "replicas": 0}), r"tyk-aks:gateway.replicas = 0"),
        (raw(apiManagement={"enabled": True}), r"tyk-aks:apiSecret = \(missing\): needed by apiManagement"),
    ],
)
def test_bad_config_stops_the_program_before_any_resource(config: dict[str, str], expected: str) -> None:
    monitor = RecordingMonitor(OfflineMocks())
    with pytest.raises(ConfigError, match=expected):
        run_program("dev", config=config, monitor=monitor, placeholder_secrets=False)
    assert monitor.recorded == []
