"""Closed by default: the NetworkPolicies the program declares, evaluated with Kubernetes' semantics; the namespace's
Pod Security level; the gateway's probes and image pins."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from components.gateway import POD_LABELS as GATEWAY
from components.network import CONTROLLER_LABELS, KONNECTIVITY_AGENT, SIDECAR_LABELS
from components.redis import POD_LABELS as REDIS
from components.settings import ConfigError, parse_settings
from offline.plan import Plan, read_stack_config, run_program
from tests.network_policy import Pod, Policy, allows

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
NS = "tyk"
gateway = Pod(NS, GATEWAY)
controller = Pod(NS, CONTROLLER_LABELS)
redis = Pod(NS, REDIS)
stranger = Pod(NS, {"app": "debug-shell"})  # any other pod of the namespace
elsewhere = Pod("team-a", {"app": "web"})  # a pod of another namespace
sidecar = Pod("team-a", {"app": "orders", **SIDECAR_LABELS})
konnectivity = Pod("kube-system", KONNECTIVITY_AGENT)
core_dns = Pod("kube-system", {"k8s-app": "kube-dns"})
ingress_nginx = Pod("app-routing-system", {"app": "nginx"})


def policies(plan: Plan) -> list[Policy]:
    return [Policy(p.inputs["metadata"]["namespace"], p.inputs["spec"]) for p in plan.find(NETWORK_POLICY)]


@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_control_api_only_from_the_controller_and_the_api_server_proxy(
    stack: str, plan_of: Callable[[str], Plan]
) -> None:
    rules = policies(plan_of(stack))
    assert allows(rules, controller, gateway, 9696)
    assert allows(rules, konnectivity, gateway, 9696)  # kubectl/API-management through the service proxy
    for source in (stranger, elsewhere, redis, ingress_nginx, sidecar):
        assert not allows(rules, source, gateway, 9696), source


@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_proxy_port_is_open_to_every_source(stack: str, plan_of: Callable[[str], Plan]) -> None:
    rules = policies(plan_of(stack))
    for source in (ingress_nginx, elsewhere, sidecar):
        assert allows(rules, source, gateway, 8080), source
    # Pods of the namespace itself get no egress but what a rule grants (default deny).
    assert not allows(rules, stranger, gateway, 8080)


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_redis_only_from_gateways_sidecars_and_the_controller(
    stack: str, plan_of: Callable[[str], Plan]
) -> None:
    rules = policies(plan_of(stack))
    for source in (gateway, controller, sidecar):
        assert allows(rules, source, redis, 6379), source
    for source in (stranger, elsewhere, konnectivity, ingress_nginx):
        assert not allows(rules, source, redis, 6379), source
    assert not allows(rules, redis, elsewhere, 443)  # Redis opens no connection


def test_sidecar_namespaces_narrow_redis_access() -> None:
    config, secret_keys, _ = read_stack_config("dev")
    config["tyk-aks:networkPolicies"] = json.dumps({"sidecarNamespaces": ["team-b"]})
    rules = policies(run_program("dev", config=config, secret_keys=secret_keys))
    assert not allows(rules, sidecar, redis, 6379)
    assert allows(rules, Pod("team-b", SIDECAR_LABELS), redis, 6379)


@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_default_deny_with_dns(stack: str, plan_of: Callable[[str], Plan]) -> None:
    rules = policies(plan_of(stack))
    assert not allows(rules, elsewhere, stranger, 80)
    assert not allows(rules, stranger, elsewhere, 443)
    for pod in (stranger, gateway, redis, controller):
        assert allows(rules, pod, core_dns, 53, "UDP") and allows(rules, pod, core_dns, 53, "TCP")
    assert allows(rules, gateway, elsewhere, 8000)  # upstream APIs
    assert allows(rules, controller, Pod("default", {}, ip="10.0.0.1"), 443)  # the Kubernetes API


def test_extra_control_api_sources_by_cidr() -> None:
    config, secret_keys, _ = read_stack_config("prod")
    config["tyk-aks:networkPolicies"] = json.dumps({"controlApiFromCidrs": ["10.225.0.0/28"]})
    rules = policies(run_program("prod", config=config, secret_keys=secret_keys))
    assert allows(rules, Pod("none", {}, ip="10.225.0.4"), gateway, 9696)
    assert not allows(rules, Pod("none", {}, ip="10.225.1.4"), gateway, 9696)


# --- pod security --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_namespace_enforces_the_restricted_pod_security_standard(
    stack: str, plan_of: Callable[[str], Plan]
) -> None:
    labels = plan_of(stack).one("kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_gateway_chart_pods_meet_restricted(stack: str, plan_of: Callable[[str], Plan]) -> None:
    # The chart applies `containerSecurityContext` to the gateway and its init container (tyk-charts
    # deployment-gw-repset.yaml); its default complies with `restricted`. Helm merges values onto it, so the
    # values may only change the identity (to the shared mounts' owner, a UID above 10000), never weaken it.
    gateway_values = plan_of(stack).one(RELEASE, "gateway-release").inputs["values"]["tyk-gateway"]["gateway"]
    assert gateway_values["containerSecurityContext"] == {"runAsUser": 65532}
    assert gateway_values["securityContext"] == {"runAsUser": 65532, "fsGroup": 2000}


@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_gateways_mount_no_service_account_token(stack: str, plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of(stack)
    gateway_values = plan.one(RELEASE, "gateway-release").inputs["values"]["tyk-gateway"]["gateway"]
    account = plan.one("kubernetes:core/v1:ServiceAccount", "gateway-service-account")
    assert gateway_values["serviceAccountName"] == account.inputs["metadata"]["name"] == "tyk-gateway"
    assert account.inputs["automountServiceAccountToken"] is False
    assert account.urn in plan.one(RELEASE, "gateway-release").dependencies


# --- probes and image pins -----------------------------------------------------------------------------------


def _gateway(plan: Plan) -> dict[str, Any]:
    values: dict[str, Any] = plan.one(RELEASE, "gateway-release").inputs["values"]["tyk-gateway"]["gateway"]
    return values


@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_gateway_readiness_is_the_ready_endpoint_with_a_startup_probe(
    stack: str, plan_of: Callable[[str], Plan]
) -> None:
    values = _gateway(plan_of(stack))
    assert values["readinessProbe"]["httpGet"] == {"scheme": "HTTP", "path": "/ready", "port": 9696}
    assert values["startupProbe"]["httpGet"]["path"] == "/hello"
    assert values["startupProbe"]["periodSeconds"] * values["startupProbe"]["failureThreshold"] >= 300


def test_gateways_without_ready_endpoint_are_refused() -> None:
    config, _, _ = read_stack_config("dev")
    gateway_settings = json.loads(config["tyk-aks:gateway"])
    gateway_settings["imageTag"] = "v5.8.2"
    config["tyk-aks:gateway"] = json.dumps(gateway_settings)
    with pytest.raises(ConfigError, match=r"imageTag = 'v5.8.2'.*v5.9.0"):
        parse_settings(config)


def test_digests_pin_the_gateway_and_init_images() -> None:
    config, secret_keys, _ = read_stack_config("prod")
    gateway_settings = json.loads(config["tyk-aks:gateway"])
    gateway_settings |= {"imageDigest": "sha256:" + "1" * 64, "initImageDigest": "sha256:" + "2" * 64}
    config["tyk-aks:gateway"] = json.dumps(gateway_settings)
    values = _gateway(run_program("prod", config=config, secret_keys=secret_keys))
    assert values["image"]["tag"] == "v5.13.1@sha256:" + "1" * 64
    init = values["initContainers"]["setupDirectories"]
    assert init["tag"] == "1.37.0@sha256:" + "2" * 64
    assert init["resources"]["limits"] == {"cpu": "100m", "memory": "64Mi"}
