"""The shared volumes keep their data: protected against replacement and deletion, and (in `aks` mode) in a storage
account of the stack's own resource group rather than in the cluster's node resource group."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from components.settings import ConfigError, parse_settings
from components.storage import IMMUTABLE_FIELDS, STORAGE_ACCOUNT_CONTRIBUTOR
from offline.mocks import RecordedResource
from offline.plan import Plan, read_stack_config, run_program

STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
ACCOUNT = "azure-native:storage:StorageAccount"
DATA_TYPES = (STORAGE_CLASS, PVC, ACCOUNT)


def _field(inputs: dict[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _plan_with(stack: str, edit: Callable[[dict[str, Any]], None]) -> Plan:
    config, secret_keys, _ = read_stack_config(stack)
    document = {key.split(":", 1)[1]: json.loads(value) for key, value in config.items() if value[:1] in "{["}
    plain = {key.split(":", 1)[1]: value for key, value in config.items() if value[:1] not in "{["}
    merged: dict[str, Any] = {**plain, **document}
    edit(merged)
    edited = {
        f"tyk-aks:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in merged.items()
    }
    return run_program(stack, config=edited, secret_keys=secret_keys)


def _replaced_or_deleted(old: Plan, new: Plan) -> list[tuple[RecordedResource, str]]:
    """Resources of the old plan that the new one would replace (an immutable field changed) or delete."""
    new_by_key = {r.key: r for r in new.resources}
    found = []
    for resource in old.resources:
        if resource.type not in IMMUTABLE_FIELDS:
            continue
        after = new_by_key.get(resource.key)
        if after is None:
            found.append((resource, "deleted"))
            continue
        for path in IMMUTABLE_FIELDS[resource.type]:
            if _field(resource.inputs, path) != _field(after.inputs, path):
                found.append((resource, f"replaced ({path})"))
                break
    return found


def _protected(resource: RecordedResource) -> bool:
    return bool(resource.options["protect"]) and bool(resource.options["retainOnDelete"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_data_holding_resources_are_protected_and_retained(
    stack: str, plan_of: Callable[[str], Plan]
) -> None:
    plan = plan_of(stack)
    held = [r for r in plan.resources if r.type in DATA_TYPES]
    assert len([r for r in held if r.type == PVC]) == 3
    for resource in held:
        assert _protected(resource), resource.key


def test_local_stack_is_disposable(plan_of: Callable[[str], Plan]) -> None:
    for resource in plan_of("local").find(PVC):
        assert not resource.options["protect"] and not resource.options["retainOnDelete"]


# The config edits that used to empty the shares (each replaces the class and/or the claims, whose specs are
# immutable). The engine refuses to replace or delete a resource protected in both the old state and the new
# program (`new.Protect && old.Protect` in pulumi's step generator), so each must hit only protected resources.
EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "storage.skuName": lambda c: c["storage"].update(skuName="Standard_ZRS"),
    "storage.storageClassName": lambda c: c["storage"].update(storageClassName="tyk-files-v2"),
    "storage.createStorageClass": lambda c: c["storage"].update(createStorageClass=False),
    "storage.accessMode": lambda c: (
        c["storage"].update(accessMode="ReadWriteOnce")
        or c["gateway"].update(replicas=1, pdbMinAvailable=None)
    ),
    "namespace": lambda c: c.update(namespace="tyk-gateway"),
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_change_that_would_replace_a_share_fails_in_preview(
    stack: str, edit: str, plan_of: Callable[[str], Plan]
) -> None:
    old = plan_of(stack)
    new = _plan_with(stack, EDITS[edit])
    hit = _replaced_or_deleted(old, new)
    assert hit, f"{edit} should replace or delete the class or a claim (else this test checks nothing)"
    new_by_key = {r.key: r for r in new.resources}
    for resource, what in hit:
        assert _protected(resource), f"{edit}: {resource.key} would be {what} and is not protected"
        if resource.key in new_by_key:
            assert new_by_key[resource.key].options["protect"], f"{edit}: {resource.key} loses protect"


def test_a_size_increase_is_an_in_place_expansion(plan_of: Callable[[str], Plan]) -> None:
    new = _plan_with("prod", lambda c: c["storage"]["sizes"].update(apps="200Gi"))
    assert _replaced_or_deleted(plan_of("prod"), new) == []
    [apps] = [r for r in new.find(PVC) if r.inputs["metadata"]["name"] == "tyk-gateway-apps"]
    assert apps.inputs["spec"]["resources"] == {"requests": {"storage": "200Gi"}}


# --- the storage account -------------------------------------------------------------------------------------


def test_prod_shares_live_in_an_account_of_the_stack_resource_group(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("prod")
    group = plan.one("azure-native:resources:ResourceGroup")
    account = plan.one(ACCOUNT)
    assert account.inputs["resourceGroupName"] == group.inputs["resourceGroupName"] == "tyk-prod"
    assert account.inputs["accountName"] == "tykprodgatewayfiles"
    assert account.inputs["kind"] == "FileStorage"  # premium shares exist only in FileStorage accounts
    assert account.inputs["sku"] == {"name": "Premium_ZRS"}
    assert account.inputs["minimumTlsVersion"] == "TLS1_2"
    assert account.inputs["allowBlobPublicAccess"] is False

    storage_class = plan.one(STORAGE_CLASS)
    assert storage_class.inputs["parameters"] == {
        "skuName": "Premium_ZRS",
        "resourceGroup": "tyk-prod",
        "storageAccount": "tykprodgatewayfiles",
    }
    assert account.urn in storage_class.dependencies

    service = plan.one("azure-native:storage:FileServiceProperties")
    assert service.inputs["accountName"] == "tykprodgatewayfiles"
    assert service.inputs["shareDeleteRetentionPolicy"] == {"enabled": True, "days": 30}

    [lock] = plan.find("azure-native:authorization:ManagementLockByScope")
    assert lock.inputs["level"] == "CanNotDelete"
    assert account.urn in lock.dependencies  # scope: the account's id


def test_the_cluster_identity_may_manage_the_account(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("prod")
    cluster = plan.one("azure-native:containerservice:ManagedCluster")
    [grant] = plan.find("azure-native:authorization:RoleAssignment", "storage-csi-access")
    assert grant.inputs["principalId"] == cluster.outputs["identity"]["principalId"]
    assert grant.inputs["principalType"] == "ServicePrincipal"
    assert grant.inputs["roleDefinitionId"].endswith(f"/roleDefinitions/{STORAGE_ACCOUNT_CONTRIBUTOR}")
    assert plan.one(ACCOUNT).urn in grant.dependencies


def test_aks_without_an_account_setting_gets_one_named_after_the_cluster() -> None:
    config, _, _ = read_stack_config("prod")
    storage = json.loads(config["tyk-aks:storage"])
    del storage["account"]
    config["tyk-aks:storage"] = json.dumps(storage)
    settings = parse_settings(config)
    assert settings.storage.account is not None
    assert settings.storage.account.name == "tykprodfiles"
    assert settings.storage.account.delete_lock is False


def test_existing_cluster_can_name_its_account() -> None:
    def edit(c: dict[str, Any]) -> None:
        c["storage"]["account"] = {"name": "corpfiles01", "resourceGroupName": "corp-storage"}

    plan = _plan_with("dev", edit)
    assert plan.one(STORAGE_CLASS).inputs["parameters"] == {
        "skuName": "Standard_LRS",
        "resourceGroup": "corp-storage",
        "storageAccount": "corpfiles01",
    }
    assert not [r for r in plan.resources if r.type.startswith("azure-native:")]  # it exists already


@pytest.mark.parametrize(
    ("stack", "account", "message"),
    [
        ("dev", {"name": "corpfiles01"}, "tyk-aks:storage.account.resourceGroupName = None"),
        (
            "prod",
            {"name": "corpfiles01", "resourceGroupName": "x"},
            "created in the stack's own resource group",
        ),
        ("prod", {"name": "Bad_Name"}, "is not a storage account name"),
    ],
)
def test_bad_account_settings_are_refused(stack: str, account: dict[str, Any], message: str) -> None:
    config, _, _ = read_stack_config(stack)
    storage = json.loads(config["tyk-aks:storage"])
    storage["account"] = account
    config["tyk-aks:storage"] = json.dumps(storage)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_settings(config)
