"""Redis: a maintained image in the cluster (dev/local), Azure Managed Redis over TLS in prod, and a password
rotation during which Redis accepts both the old and the new password."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi.runtime.rpc import contains_unknowns

from components.images import Image
from components.redis import ACL_KEY, GENERATION_ANNOTATION, acl_file
from components.settings import ConfigError, parse_settings
from offline.mocks import OfflineMocks, RecordingMonitor, is_secret, reveal
from offline.plan import Plan, read_stack_config, run_program

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
MANAGED = "azure-native:redisenterprise:RedisEnterprise"
DATABASE = "azure-native:redisenterprise:Database"
# Redis releases with the fix for CVE-2025-49844 (Lua use-after-free RCE), per the Redis security advisory.
FIXED = {(7, 2): 11, (7, 4): 6, (8, 0): 4, (8, 2): 2}


def _gateway(plan: Plan) -> dict[str, Any]:
    values: dict[str, Any] = plan.one(RELEASE, "gateway-release").inputs["values"]
    return values


def _edited(stack: str, edit: Callable[[dict[str, Any]], None], **secrets: str) -> Plan:
    config, secret_keys, _ = read_stack_config(stack)
    redis = json.loads(config.get("tyk-aks:redis", "{}"))
    edit(redis)
    config["tyk-aks:redis"] = json.dumps(redis)
    for key, value in secrets.items():
        config[f"tyk-aks:{key}"] = value
        secret_keys.append(f"tyk-aks:{key}")
    return run_program(stack, config=config, secret_keys=secret_keys)


def _container(plan: Plan) -> dict[str, Any]:
    [container] = plan.one(STATEFULSET, "redis-statefulset").inputs["spec"]["template"]["spec"]["containers"]
    return dict(container)


# --- in the cluster (dev, local) -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_in_cluster_redis_is_a_maintained_patched_image(stack: str, plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of(stack)
    assert not plan.find(RELEASE, "redis-release"), "Bitnami's chart only runs Bitnami's frozen images"
    image = _container(plan)["image"]
    assert "bitnami" not in image
    match = re.match(r"^redis:(\d+)\.(\d+)\.(\d+)-alpine(@sha256:[0-9a-f]{64})?$", image)
    assert match, image
    major, minor, patch = (int(match[i]) for i in (1, 2, 3))
    assert (major, minor) in FIXED and patch >= FIXED[(major, minor)], (
        f"{image} predates CVE-2025-49844's fix"
    )


def test_in_cluster_redis_persists_and_never_evicts(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("dev")
    conf = plan.one(CONFIG_MAP, "redis-config").inputs["data"]["redis.conf"].splitlines()
    assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction", "dir /data"} <= set(conf)
    assert f"maxmemory {int(512 * 2**20 * 0.75)}" in conf  # 75% of the 512Mi default limit
    statefulset = plan.one(STATEFULSET, "redis-statefulset").inputs["spec"]
    assert statefulset["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    [claim] = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert _container(plan)["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_in_cluster_redis_pod_meets_the_restricted_pod_security_standard(
    plan_of: Callable[[str], Plan],
) -> None:
    spec = plan_of("dev").one(STATEFULSET, "redis-statefulset").inputs["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    assert container["securityContext"] == {
        "runAsUser": 10001,  # above 10000: no clash with a host account
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_acl_file_accepts_exactly_the_given_passwords() -> None:
    # Redis ACL rules: `#<hash>` adds a password given as the hex SHA-256 of the password (redis.io ACL docs).
    text = acl_file(["new-password", "old-password"])
    user, name, state, *rules = text.split()
    assert (user, name, state) == ("user", "default", "on")
    hashes = {r[1:] for r in rules if r.startswith("#")}
    assert hashes == {hashlib.sha256(p.encode()).hexdigest() for p in ("new-password", "old-password")}
    assert {"~*", "&*", "+@all"} <= set(rules)
    assert "new-password" not in text


def test_rotation_keeps_the_old_password_valid_until_the_gateways_moved() -> None:
    before = run_program("dev")
    during = _edited(
        "dev",
        lambda r: r.update(passwordGeneration=2),
        redisPassword="the-new-redis-password",
        redisPasswordPrevious="the-old-redis-password",
    )
    acl = reveal(during.one(SECRET, "redis-acl").inputs["stringData"])[ACL_KEY]
    assert acl == acl_file(["the-new-redis-password", "the-old-redis-password"])
    assert is_secret(during.one(SECRET, "redis-acl").inputs["stringData"])
    # The gateways get the new password and restart (new generation) ...
    gateway_secret = reveal(during.one(SECRET, "redis-password").inputs["stringData"])
    assert gateway_secret == {"redis-password": "the-new-redis-password"}
    annotations = _gateway(during)["tyk-gateway"]["gateway"]["podAnnotations"]
    assert annotations[GENERATION_ANNOTATION] == "2"
    assert _gateway(before)["tyk-gateway"]["gateway"]["podAnnotations"][GENERATION_ANNOTATION] == "1"
    # ... only after Redis (restarted by its ACL revision) accepts both passwords.
    template = during.one(STATEFULSET, "redis-statefulset").inputs["spec"]["template"]["metadata"]
    revision = template["annotations"]["tyk-aks.io/acl-revision"]
    old_template = before.one(STATEFULSET, "redis-statefulset").inputs["spec"]["template"]["metadata"]
    assert revision != old_template["annotations"]["tyk-aks.io/acl-revision"]
    assert (
        during.one(STATEFULSET, "redis-statefulset").urn
        in during.one(RELEASE, "gateway-release").dependencies
    )


# --- Azure Managed Redis (prod) ------------------------------------------------------------------------------


def test_prod_uses_azure_managed_redis_over_tls(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("prod")
    assert not plan.find(STATEFULSET, "redis-statefulset")
    cluster = plan.one(MANAGED)
    assert cluster.inputs["clusterName"] == "tyk-prod-redis"
    assert cluster.inputs["resourceGroupName"] == "tyk-prod"
    assert cluster.inputs["minimumTlsVersion"] == "1.2"
    assert cluster.inputs["highAvailability"] == "Enabled"
    assert cluster.inputs["sku"] == {"name": "Balanced_B3"}
    database = plan.one(DATABASE)
    assert database.inputs["clientProtocol"] == "Encrypted"
    assert database.inputs["evictionPolicy"] == "NoEviction"
    assert database.inputs["persistence"] == {"aofEnabled": True, "aofFrequency": "1s"}
    assert database.inputs["clusteringPolicy"] == "NoCluster"
    assert database.inputs["port"] == 10000
    for resource in (cluster, database):
        assert resource.options["protect"] and resource.options["retainOnDelete"], resource.key

    redis = _gateway(plan)["global"]["redis"]
    assert redis["addrs"] == ["tyk-prod-redis.westeurope.redis.azure.net:10000"]
    assert redis["useSSL"] is True and redis["tlsMinVersion"] == "1.2"
    assert "enableCluster" not in redis  # NoCluster: a plain Redis to the gateway
    secret = plan.one(SECRET, "redis-password")
    assert is_secret(secret.inputs["stringData"])
    assert reveal(secret.inputs["stringData"]) == {
        "redis-password": "offline-tyk-prod-redis-default-primary-key"
    }


class CallRecordingMocks(OfflineMocks):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.calls.append(args.token)
        return super().call(args)


def test_a_preview_never_reads_the_access_keys() -> None:
    previewing, updating = CallRecordingMocks(), CallRecordingMocks()
    plan = run_program("prod", monitor=RecordingMonitor(previewing), preview=True)
    assert "azure-native:redisenterprise:listDatabaseKeys" not in previewing.calls  # Reader may not list keys
    assert contains_unknowns(plan.one(SECRET, "redis-password").inputs["stringData"])  # shown as computed
    run_program("prod", monitor=RecordingMonitor(updating))
    assert "azure-native:redisenterprise:listDatabaseKeys" in updating.calls  # `up`: the deploy identity


def test_managed_key_rotation_switches_key_and_restarts_the_gateways() -> None:
    plan = _edited(
        "prod", lambda r: r["managed"].update(activeKey="secondary") or r.update(passwordGeneration=2)
    )
    secret = reveal(plan.one(SECRET, "redis-password").inputs["stringData"])
    assert secret == {"redis-password": "offline-tyk-prod-redis-default-secondary-key"}
    annotations = _gateway(plan)["tyk-gateway"]["gateway"]["podAnnotations"]
    assert annotations[GENERATION_ANNOTATION] == "secondary-2"


def test_oss_cluster_policy_turns_on_the_gateway_cluster_client() -> None:
    plan = _edited("prod", lambda r: r["managed"].update(clusteringPolicy="OSSCluster"))
    assert plan.one(DATABASE).inputs["clusteringPolicy"] == "OSSCluster"
    assert _gateway(plan)["global"]["redis"]["enableCluster"] is True


# --- settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "redis", "message"),
    [
        ("dev", {"managed": {"name": "r1"}}, "Azure Managed Redis is created in the stack's resource group"),
        ("prod", {"managed": {"name": "r1", "clusteringPolicy": "EnterpriseCluster"}}, "clusteringPolicy"),
        ("dev", {"imageDigest": "sha256:abc"}, "is not an image digest"),
        ("prod", {"managed": {"name": "-bad-"}}, "is not an Azure Managed Redis name"),
    ],
)
def test_bad_redis_settings_are_refused(stack: str, redis: dict[str, Any], message: str) -> None:
    config, _, _ = read_stack_config(stack)
    config["tyk-aks:redis"] = json.dumps(redis)
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_settings(config)


def test_image_digest_pins_the_pull() -> None:
    digest = "sha256:" + "a" * 64
    assert Image("redis", "7.4.6-alpine", digest).reference == f"redis:7.4.6-alpine@{digest}"
    plan = _edited("dev", lambda r: r.update(imageDigest=digest))
    assert _container(plan)["image"] == f"redis:7.4.6-alpine@{digest}"
