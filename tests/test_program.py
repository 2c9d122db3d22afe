"""The whole program under Pulumi's mocks, per stack file: the exact inputs the engine would receive."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.gateway import API_SECRET_KEY, CONTROL_SERVICE_NAME, POD_LABELS
from components.settings import parse_settings
from offline.mocks import (
    PINNED_IMAGE_TYPE,
    OfflineMocks,
    RecordedResource,
    RecordingMonitor,
    is_secret,
    mask,
    reveal,
    secret_strings,
)
from offline.plan import Plan, read_stack_config, run_program
from tests.conftest import STACKS, stack_plan
from tests.k8s_schema import is_kubernetes_object, validate

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
FOLDERS = {
    "apps": "/mnt/tyk-gateway/apps",
    "policies": "/mnt/tyk-gateway/policies",
    "middleware": "/mnt/tyk-gateway/middleware",
}


def gateway_values(plan: Plan) -> dict[str, Any]:
    release = plan.one(RELEASE, "gateway-release")
    assert not is_secret(release.inputs["values"]), "a secret inside values would hide every value diff"
    values: dict[str, Any] = release.inputs["values"]
    return values


def claims(plan: Plan) -> dict[str, RecordedResource]:
    return {r.inputs["metadata"]["name"].removeprefix("tyk-gateway-"): r for r in plan.find(PVC)}


# --- dev -----------------------------------------------------------------------------------------------------


def test_dev_shared_volumes_are_three_rwx_azure_files_claims() -> None:
    plan = stack_plan("dev")
    storage_class = plan.one(STORAGE_CLASS)
    assert storage_class.inputs["metadata"]["name"] == "tyk-gateway-files"
    assert storage_class.inputs["provisioner"] == "file.csi.azure.com"
    assert storage_class.inputs["parameters"] == {"skuName": "Standard_LRS"}
    assert {"uid=65532", "gid=2000", "dir_mode=0775", "file_mode=0664"} <= set(
        storage_class.inputs["mountOptions"]
    )
    assert storage_class.inputs["reclaimPolicy"] == "Retain"

    found = claims(plan)
    assert sorted(found) == ["apps", "middleware", "policies"]
    for claim in found.values():
        assert claim.inputs["metadata"]["namespace"] == "tyk"
        assert claim.inputs["spec"] == {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "tyk-gateway-files",
            "resources": {"requests": {"storage": "1Gi"}},
        }
        assert storage_class.urn in claim.dependencies


def test_dev_gateway_release_values() -> None:
    plan = stack_plan("dev")
    release = plan.one(RELEASE, "gateway-release")
    assert release.inputs["chart"] == "tyk-oss"
    assert release.inputs["version"] == "5.3.0"
    assert release.inputs["repositoryOpts"] == {"repo": "https://helm.tyk.io/public/helm/charts/"}
    assert release.inputs["name"] == "tyk-gateway"
    assert release.inputs["namespace"] == "tyk"

    values = gateway_values(plan)
    gateway = values["tyk-gateway"]["gateway"]
    assert gateway["replicaCount"] == 2
    assert gateway["control"] == {"enabled": True, "containerPort": 9696, "port": 9696, "type": "ClusterIP"}
    assert gateway["ingress"]["enabled"] is True
    assert gateway["ingress"]["className"] == "webapprouting.kubernetes.azure.com"
    assert gateway["ingress"]["hosts"] == [
        {"host": "api.dev.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
    ]
    assert gateway["ingress"]["tls"] == []
    assert "pdb" not in gateway
    assert gateway["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert gateway["log"]["level"] == "debug"
    # Shared folders: each claim mounted at its folder.
    volumes = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in gateway["extraVolumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["name"]: m["mountPath"] for m in gateway["extraVolumeMounts"]}
    assert {mounts[name]: claim for name, claim in volumes.items()} == {
        path: f"tyk-gateway-{folder}" for folder, path in FOLDERS.items()
    }


def test_dev_gateway_reads_secrets_by_name_only() -> None:
    plan = stack_plan("dev")
    values = gateway_values(plan)
    api_secret = plan.one(SECRET, "gateway-api-secret")
    redis_secret = plan.one(SECRET, "redis-password")
    assert values["global"]["secrets"] == {"useSecretName": api_secret.inputs["metadata"]["name"]}
    assert values["global"]["redis"]["passSecret"] == {
        "name": redis_secret.inputs["metadata"]["name"],
        "keyName": "redis-password",
    }
    assert values["global"]["redis"]["addrs"] == ["tyk-redis:6379"]  # same namespace
    assert is_secret(api_secret.inputs["stringData"])
    assert list(reveal(api_secret.inputs["stringData"])) == [API_SECRET_KEY]
    assert is_secret(redis_secret.inputs["stringData"])


def test_helm_values_are_known_in_a_preview_of_a_new_stack() -> None:
    # In a preview of a new stack no created object has outputs yet; values built from them would show as
    # unknown (or hide inside one secret) and `pulumi preview` would show no value diff at all.
    class NoOutputsYet(OfflineMocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            if args.typ == PINNED_IMAGE_TYPE:
                # Its `check` resolved the digest, and a provider without previews (a dynamic one) has its
                # checked inputs as a preview's state (provider_plugin.go, Create with Preview).
                return super().new_resource(args)
            return "", {}

    plan = run_program("prod", monitor=RecordingMonitor(NoOutputsYet()), preview=True)
    for name in ("gateway-release",):
        values = plan.one(RELEASE, name).inputs["values"]
        assert isinstance(values, dict) and not is_secret(values), name
        json.dumps(values)  # nothing unknown inside
    assert gateway_values(plan) == gateway_values(stack_plan("prod"))


def test_gateway_release_waits_for_volumes_redis_and_secret() -> None:
    plan = stack_plan("dev")
    release = plan.one(RELEASE, "gateway-release")
    needed = [c.urn for c in claims(plan).values()]
    needed += [plan.one(STATEFULSET, "redis-statefulset").urn, plan.one(SECRET, "gateway-api-secret").urn]
    assert set(needed) <= set(release.dependencies)


# --- prod ----------------------------------------------------------------------------------------------------


def test_prod_gateway_is_spread_guarded_and_sized() -> None:
    plan = stack_plan("prod")
    gateway = gateway_values(plan)["tyk-gateway"]["gateway"]
    assert gateway["replicaCount"] == 3
    assert gateway["pdb"] == {"enabled": True, "minAvailable": 2}
    assert gateway["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    spread = {c["topologyKey"]: c for c in gateway["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in spread.values():
        assert constraint["labelSelector"] == {"matchLabels": POD_LABELS}
        assert constraint["maxSkew"] == 1
    assert [h["host"] for h in gateway["ingress"]["hosts"]] == ["api.example.com", "api.example.net"]
    assert gateway["ingress"]["tls"] == [
        {"secretName": "api-example-tls", "hosts": ["api.example.com", "api.example.net"]}
    ]


def test_prod_storage_is_premium_zone_redundant_and_large_enough() -> None:
    plan = stack_plan("prod")
    assert plan.one(STORAGE_CLASS).inputs["parameters"]["skuName"] == "Premium_ZRS"
    for claim in claims(plan).values():
        assert claim.inputs["spec"]["resources"] == {"requests": {"storage": "100Gi"}}
        assert claim.inputs["spec"]["accessModes"] == ["ReadWriteMany"]


# --- every stack ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_replicas_and_hostnames_follow_the_stack_file(stack: str) -> None:
    config, _, _ = read_stack_config(stack)
    settings = parse_settings(config)
    gateway = gateway_values(stack_plan(stack))["tyk-gateway"]["gateway"]
    assert gateway["replicaCount"] == settings.gateway.replicas
    assert [h["host"] for h in gateway["ingress"]["hosts"]] == settings.gateway.hostnames
    assert gateway["hostName"] == settings.gateway.hostnames[0]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_validates_against_the_schema(stack: str) -> None:
    objects = [r for r in stack_plan(stack).resources if is_kubernetes_object(r)]
    assert objects
    for resource in objects:
        validate(resource)


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_resource_uses_the_explicit_provider(stack: str) -> None:
    plan = stack_plan(stack)
    [provider] = plan.find("pulumi:providers:kubernetes")
    for resource in plan.resources:
        if resource.custom and resource.type.startswith("kubernetes:"):
            assert resource.provider.startswith(provider.urn + "::"), resource.key


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_appears_in_plaintext(stack: str) -> None:
    plan = stack_plan(stack)
    secrets = _secret_values(plan)
    assert secrets, "the plan should know at least the API secret and the Redis password"
    shown = json.dumps(plan.to_json())  # every input and output, secrets masked
    for value in secrets:
        assert value not in shown
    for resource in plan.resources:
        if resource.type == "kubernetes:core/v1:ConfigMap":
            assert not any(value in json.dumps(reveal(resource.inputs)) for value in secrets), resource.key
        # Secret values may only travel inside secret wrappers.
        assert not any(value in json.dumps(mask(resource.inputs)) for value in secrets), resource.key


def _secret_values(plan: Plan) -> set[str]:
    """Every value the plan holds as a secret: inputs and outputs of every resource, and the exports."""
    values = {
        value
        for resource in plan.resources
        for value in (*secret_strings(resource.inputs), *secret_strings(resource.outputs))
    }
    values |= set(secret_strings(plan.outputs))
    # Generated passwords are secret outputs of their resource (pulumi-random marks `result` secret).
    values |= {r.outputs["result"] for r in plan.find("random:index/randomPassword:RandomPassword")}
    # The SDK wraps a whole list input when one field is secret (docker-build's `registries`: only the password
    # is); values a resource reports as plain outputs (a registry's name and login server) are public.
    public = {
        value
        for resource in plan.resources
        if resource.type == "azure-native:containerregistry:Registry"
        for value in (resource.outputs.get("name"), resource.outputs.get("loginServer"))
    }
    return {v for v in values if isinstance(v, str) and len(v) >= 8} - public


def test_runs_in_one_process_do_not_share_exports() -> None:
    assert "aks_cluster_name" in run_program("prod").outputs  # the AKS stack names its cluster
    assert "aks_cluster_name" not in run_program("local").outputs


@pytest.mark.parametrize("stack", STACKS)
def test_exports_name_the_gateway(stack: str) -> None:
    plan = stack_plan(stack)
    assert plan.outputs["control_api_url"] == f"http://{CONTROL_SERVICE_NAME}.tyk.svc:9696"
    config, _, _ = read_stack_config(stack)
    settings = parse_settings(config)
    scheme = "https" if settings.gateway.ingress.tls_secret_name else "http"
    assert plan.outputs["gateway_url"] == f"{scheme}://{settings.gateway.hostnames[0]}/"


# --- the ingress controller: tests/test_controller.py (per stack, with the image, entry point and RBAC) --------


# --- an existing Redis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret_name", [None, "corp-redis"])
def test_existing_redis_is_wired_by_address_and_secret(secret_name: str | None) -> None:
    config, secret_keys, _ = read_stack_config("dev")
    redis: dict[str, Any] = {"enabled": False, "addrs": ["redis.shared.svc:6379", "redis-2.shared.svc:6379"]}
    if secret_name:
        redis["passwordSecretName"] = secret_name
    config["tyk-aks:redis"] = json.dumps(redis)
    plan = run_program("dev", config=config, secret_keys=secret_keys)

    assert plan.find(STATEFULSET, "redis-statefulset") == []
    values = gateway_values(plan)["global"]["redis"]
    assert values["addrs"] == redis["addrs"]
    # Either the Secret the cluster already has, or one the program makes from `redisPassword`.
    assert values["passSecret"] == {"name": secret_name or "tyk-redis-password", "keyName": "redis-password"}
    made = plan.find(SECRET, "redis-password")
    assert (made == []) == bool(secret_name)
    if made:
        assert made[0].urn in plan.one(RELEASE, "gateway-release").dependencies


# --- API management through the API server ------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_definitions_go_through_the_api_server_in_every_stack(stack: str) -> None:
    plan = stack_plan(stack)
    settings = parse_settings(read_stack_config(stack)[0])
    target = f"kubernetes://{settings.namespace}/{CONTROL_SERVICE_NAME}:{settings.gateway.control_port}"
    managed = plan.find("pulumi-python:dynamic/tyk:Api") + plan.find("pulumi-python:dynamic/tyk:Policy")
    assert managed and {r.inputs["gateway_url"] for r in managed} == {target}


def test_rbac_grants_exactly_the_provider_rules_to_the_named_subjects() -> None:
    from components.api_access import DEPLOY_ROLE, PREVIEW_ROLE
    from tyk_gateway.kube import provider_rules

    config, secret_keys, _ = read_stack_config("prod")
    management = json.loads(config["tyk-aks:apiManagement"])
    management["rbacSubjects"] = [{"kind": "Group", "name": "platform-team-object-id"}]
    management["previewSubjects"] = [{"kind": "ServiceAccount", "name": "ci", "namespace": "ci"}]
    plan = run_program("prod", {**config, "tyk-aks:apiManagement": json.dumps(management)}, secret_keys)
    roles = {
        r.inputs["metadata"]["name"]: r
        for r in plan.find("kubernetes:rbac.authorization.k8s.io/v1:Role")
        if not _ingress_controller(r)
    }
    bindings = {
        r.inputs["metadata"]["name"]: r
        for r in plan.find("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
        if not _ingress_controller(r)
    }
    for resource in [*roles.values(), *bindings.values()]:
        validate(resource)
        assert resource.inputs["metadata"]["namespace"] == "tyk"
    expected = [
        {
            "apiGroups": [""],
            "resources": list(rule.resources),
            "verbs": list(rule.verbs),
            **({"resourceNames": list(rule.resource_names)} if rule.resource_names else {}),
        }
        for rule in provider_rules(CONTROL_SERVICE_NAME)
    ]
    assert roles[DEPLOY_ROLE].inputs["rules"] == expected
    assert roles[PREVIEW_ROLE].inputs["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["services/proxy"],
            "verbs": ["get"],
            "resourceNames": [CONTROL_SERVICE_NAME],
        }
    ]
    assert bindings[DEPLOY_ROLE].inputs["subjects"] == [
        {"kind": "Group", "name": "platform-team-object-id", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert bindings[PREVIEW_ROLE].inputs["subjects"] == [
        {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"}
    ]
    # The definitions wait for the grants, so the first `pulumi up` by that principal can already write.
    api = plan.find("pulumi-python:dynamic/tyk:Api")[0]
    assert {bindings[DEPLOY_ROLE].urn, bindings[PREVIEW_ROLE].urn} <= set(api.dependencies)


def _ingress_controller(resource: RecordedResource) -> bool:
    """The ingress controller's own RBAC (tests/test_controller.py), not API management's."""
    return resource.name.startswith("ingress-controller-")


def test_no_role_without_subjects() -> None:
    roles = stack_plan("dev").find("kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert not [r for r in roles if not _ingress_controller(r)]
