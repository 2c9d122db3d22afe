"""Stack config validation: every rejected value is reported with its `tyk-aks:` key and the value itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.settings import ConfigError, StackSettings, parse_settings, quantity_value
from offline.mocks import OfflineMocks, RecordingMonitor
from offline.plan import PROJECT_DIR, read_stack_config, run_program
from tyk_gateway.problems import Problem

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
            "tyk-aks:gateway.replica: unknown key (did you mean 'replicas'?)",
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
    ("quantity", "value"),
    [
        ("1Gi", 2**30),
        ("100Gi", 100 * 2**30),
        ("500M", 5e8),
        ("250m", 0.25),
        ("2", 2),
        ("1e3", 1000),  # the forms Kubernetes also takes: decimal exponent, n/u suffixes, sign, leading dot
        ("100n", pytest.approx(1e-7)),
        ("+.5", 0.5),
        ("-1", -1),
    ],
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


# --- mistakes that used to pass silently, and where they are -------------------------------------------------


def test_unknown_namespace_is_an_error_with_a_suggestion() -> None:
    message = error_of({**raw(), "tyk_aks:storage": "{}"})
    assert "tyk_aks:storage: unknown config namespace 'tyk_aks' (did you mean 'tyk-aks'?)" in message
    providers = {"kubernetes:context": "kind", "azure-native:location": "westeurope", "pulumi:tags": "{}"}
    parse_settings({**raw(), **providers})  # the providers' own settings stay allowed


def test_a_plaintext_secret_is_an_error() -> None:
    config = {**raw(), "tyk-aks:apiSecret": "hunter2"}
    with pytest.raises(
        ConfigError, match=r"apiSecret is in plain text: .*pulumi config set --secret apiSecret"
    ):
        parse_settings(config, secret_keys=set())
    parse_settings(config, secret_keys={"tyk-aks:apiSecret"})  # encrypted: fine


def test_a_plaintext_secret_in_a_stack_file_stops_the_program(tmp_path: Path) -> None:
    stack = (PROJECT_DIR / "Pulumi.dev.yaml").read_text() + "  tyk-aks:redisPassword: hunter2\n"
    (tmp_path / "Pulumi.dev.yaml").write_text(stack)
    config, secret_keys, _ = read_stack_config("dev", tmp_path)
    with pytest.raises(ConfigError, match=r"tyk-aks:redisPassword is in plain text"):
        run_program("dev", config, secret_keys)


def test_nested_unknown_keys_list_the_known_ones() -> None:
    message = error_of(raw(gateway={**GATEWAY, "ingress": {"clasName": "nginx"}}))
    assert (
        "tyk-aks:gateway.ingress.clasName: unknown key (did you mean 'className'?); known keys: annotations, "
        in (message)
    )
    far = error_of(raw(storage={"zzz": 1}))
    assert "tyk-aks:storage.zzz: unknown key; known keys: accessMode," in far  # nothing close: no guess
    top = error_of({**raw(), "tyk-aks:gatway": "{}"})
    assert "tyk-aks:gatway: unknown key (did you mean 'gateway'?)" in top


@pytest.mark.parametrize(
    ("storage", "gateway_resources", "problem"),
    [
        ({"sizes": {"apps": 1, "policies": "500Mi"}}, {"requests": {"cpu": 1, "memory": 0.5}}, None),
        (
            {"sizes": {"apps": "0Gi"}},
            None,
            "tyk-aks:storage.sizes.apps = '0Gi': a volume size must be more than 0",
        ),
        ({"sizes": {"apps": 0}}, None, "tyk-aks:storage.sizes.apps = 0: a volume size must be more than 0"),
        ({}, {"requests": {"cpu": True}}, "tyk-aks:gateway.resources.requests.cpu = True"),
        ({}, {"requests": {"cpu": "0"}}, None),  # a request of nothing is allowed, as in Kubernetes
        (
            {},
            {"limits": {"memory": "-1Gi"}},
            "tyk-aks:gateway.resources.limits.memory = '-1Gi': a resource quantity",
        ),
    ],
)
def test_quantities_as_kubernetes_takes_them(
    storage: dict[str, Any], gateway_resources: dict[str, Any] | None, problem: str | None
) -> None:
    config = raw(storage=storage, gateway={**GATEWAY, "resources": gateway_resources})
    if problem is None:
        settings = parse_settings(config)
        assert settings.storage.sizes.apps in ("1", "1Gi")
    else:
        assert problem in error_of(config)


def test_wildcard_hostnames_are_refused() -> None:
    message = error_of(raw(gateway={**GATEWAY, "hostnames": ["*.dev.example.com"]}))
    assert (
        "tyk-aks:gateway.hostnames.0 = '*.dev.example.com': wildcard hostnames are not supported" in message
    )


def test_problems_are_located_in_the_stack_file(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(
        "config:\n"
        "  tyk-aks:gateway:\n"
        "    replicas: 0\n"
        "    hostnames: [api.example.com]\n"
        "  tyk-aks:storage:\n"
        "    sizez: {}\n"
    )
    config, _, _ = read_stack_config("dev", tmp_path)
    with pytest.raises(ConfigError) as caught:
        parse_settings(config, source=stack)
    assert isinstance(caught.value, pulumi.RunError)  # `pulumi preview` prints it without a traceback
    positions = sorted(line.split(": ")[0] for line in str(caught.value).splitlines())
    assert positions == [f"{stack}:3:5", f"{stack}:6:5"]  # every problem at once, each at its key


def test_a_stack_file_that_is_not_yaml_names_the_file_and_position(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  tyk-aks:gateway:\n    replicas: [1\n")
    with pytest.raises(ConfigError) as caught:
        read_stack_config("dev", tmp_path)
    [line] = str(caught.value).splitlines()
    assert line.startswith(f"{tmp_path / 'Pulumi.dev.yaml'}:4:1: not valid YAML")
    assert "<unicode string>" not in line


def test_plan_prints_one_line_per_problem_and_a_traceback_only_in_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from offline import plan

    def broken(stack: str) -> Any:
        raise ConfigError([Problem("first problem", "Pulumi.dev.yaml", 3, 5), Problem("second problem")])

    monkeypatch.setattr(plan, "run_program", broken)
    monkeypatch.delenv("TYK_AKS_DEBUG", raising=False)
    assert plan.main(["dev"]) == 1
    assert capsys.readouterr().err == "error: Pulumi.dev.yaml:3:5: first problem\nerror: second problem\n"
    monkeypatch.setenv("TYK_AKS_DEBUG", "1")
    with pytest.raises(ConfigError):
        plan.main(["dev"])


def test_under_pulumi_the_program_raises_a_run_error_unless_debugging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The language host prints a RunError's message alone, any other exception with its traceback."""
    bad = raw(gateway={**GATEWAY, "replicas": 0})
    monkeypatch.delenv("TYK_AKS_DEBUG", raising=False)
    with pytest.raises(pulumi.RunError):
        run_program("dev", config=bad, placeholder_secrets=False)
    monkeypatch.setenv("TYK_AKS_DEBUG", "1")
    with pytest.raises(RuntimeError) as caught:
        run_program("dev", config=bad, placeholder_secrets=False)
    assert not isinstance(caught.value, pulumi.RunError) and isinstance(caught.value.__cause__, ConfigError)
