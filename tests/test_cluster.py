"""The cluster choice: an existing cluster (kubeconfig/context) or a new AKS cluster feeding the provider."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from components.cluster import (
    IGNORED_CLUSTER_CHANGES,
    KubernetesCluster,
    KubernetesClusterArgs,
    decode_kubeconfig,
)
from components.settings import ClusterSettings, parse_settings
from offline.mocks import OfflineMocks, RecordedResource, RecordingMonitor, is_secret, reveal
from offline.plan import Plan, read_stack_config

AKS_KUBECONFIG = "apiVersion: v1\nkind: Config\ncurrent-context: tyk-prod\n# from the mock credentials call\n"
CREDENTIALS_TOKEN = "azure-native:containerservice:listManagedClusterUserCredentials"
PROVIDER_TYPE = "pulumi:providers:kubernetes"
COMPONENT_TYPE = "tyk-aks:index:KubernetesCluster"


class CredentialMocks(OfflineMocks):
    """Offline mocks that also record invokes and return a recognisable kubeconfig."""

    def __init__(self) -> None:
        self.calls: list[pulumi.runtime.MockCallArgs] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.calls.append(args)
        if args.token == CREDENTIALS_TOKEN:
            value = base64.b64encode(AKS_KUBECONFIG.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}, []
        return super().call(args)


class Built:
    def __init__(self, monitor: RecordingMonitor, mocks: CredentialMocks, cluster: KubernetesCluster) -> None:
        self.monitor = monitor
        self.mocks = mocks
        self.cluster = cluster

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.monitor.recorded if r.type == type_]

    def one(self, type_: str) -> RecordedResource:
        [resource] = self.of_type(type_)
        return resource


def build(settings: dict[str, Any]) -> Built:
    mocks = CredentialMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="tyk-aks", stack="dev", preview=False, monitor=monitor)
    holder: list[KubernetesCluster] = []

    @pulumi.runtime.test
    def run() -> Any:
        cluster = KubernetesCluster(
            "cluster", KubernetesClusterArgs(settings=ClusterSettings.model_validate(settings))
        )
        holder.append(cluster)
        return cluster.kubeconfig

    run()
    return Built(monitor, mocks, holder[0])


AKS: dict[str, Any] = {
    "mode": "aks",
    "aks": {
        "location": "northeurope",
        "resourceGroupName": "tyk-prod",
        "clusterName": "tyk-prod",
        "kubernetesVersion": "1.33",
        "vmSize": "Standard_D4s_v5",
        "minCount": 3,
        "maxCount": 6,
        "zones": ["1", "2", "3"],
    },
}


# --- aks -----------------------------------------------------------------------------------------------------


def test_aks_resource_group_and_cluster_inputs() -> None:
    built = build(AKS)
    group = built.one("azure-native:resources:ResourceGroup")
    assert group.inputs == {"resourceGroupName": "tyk-prod", "location": "northeurope"}

    cluster = built.one("azure-native:containerservice:ManagedCluster")
    inputs = cluster.inputs
    assert inputs["resourceName"] == "tyk-prod"  # deterministic Azure name, no random suffix
    assert inputs["resourceGroupName"] == "tyk-prod"  # from the group's output: an implicit dependency
    assert group.urn in cluster.dependencies
    assert inputs["location"] == "northeurope"
    assert inputs["dnsPrefix"] == "tyk-prod"
    assert inputs["kubernetesVersion"] == "1.33"
    assert inputs["identity"] == {"type": "SystemAssigned"}
    assert inputs["enableRBAC"] is True
    assert inputs["ingressProfile"] == {
        "webAppRouting": {"enabled": True}
    }  # the stacks' default ingress class
    assert "servicePrincipalProfile" not in inputs

    [pool] = inputs["agentPoolProfiles"]
    assert pool["name"] == "system"
    assert pool["mode"] == "System"
    assert pool["type"] == "VirtualMachineScaleSets"
    assert pool["osType"] == "Linux"
    assert pool["vmSize"] == "Standard_D4s_v5"
    assert pool["enableAutoScaling"] is True
    assert (pool["minCount"], pool["maxCount"], pool["count"]) == (3, 6, 3)
    assert pool["availabilityZones"] == ["1", "2", "3"]


def test_aks_node_count_belongs_to_the_autoscaler() -> None:
    cluster = build(AKS).one("azure-native:containerservice:ManagedCluster")
    # The network profile too: every field of it would re-create the cluster (e.g. adding it to an old one).
    assert cluster.options["ignoreChanges"] == IGNORED_CLUSTER_CHANGES
    assert IGNORED_CLUSTER_CHANGES == ["agentPoolProfiles[0].count", "networkProfile"]
    assert not cluster.options["replaceOnChanges"]  # a setting change must never recreate the cluster


def test_aks_group_and_cluster_are_protected() -> None:
    built = build(AKS)
    for type_ in ("azure-native:resources:ResourceGroup", "azure-native:containerservice:ManagedCluster"):
        assert built.one(type_).options["protect"] is True, type_
    unprotected = build({**AKS, "aks": {**AKS["aks"], "protect": False}})
    assert unprotected.one("azure-native:containerservice:ManagedCluster").options["protect"] is False


def test_aks_defaults_leave_version_and_zones_to_azure() -> None:
    built = build({"mode": "aks"})
    inputs = built.one("azure-native:containerservice:ManagedCluster").inputs
    assert "kubernetesVersion" not in inputs
    assert "availabilityZones" not in inputs["agentPoolProfiles"][0]
    assert inputs["resourceName"] == "tyk-aks"
    assert built.one("azure-native:resources:ResourceGroup").inputs["location"] == "westeurope"


def test_aks_credentials_are_read_from_the_new_cluster() -> None:
    built = build(AKS)
    [call] = [c for c in built.mocks.calls if c.token == CREDENTIALS_TOKEN]
    # `exec`: kubelogin gets an Entra ID token for whoever runs pulumi (the only form that works with Entra ID).
    assert call.args == {"resourceGroupName": "tyk-prod", "resourceName": "tyk-prod", "format": "exec"}


def test_aks_provider_gets_the_decoded_kubeconfig_as_a_secret() -> None:
    built = build(AKS)
    provider = built.one(PROVIDER_TYPE)
    kubeconfig = provider.inputs["kubeconfig"]
    assert is_secret(kubeconfig), "the kubeconfig holds cluster credentials: it must be a secret"
    assert reveal(kubeconfig) == AKS_KUBECONFIG  # base64-decoded, not the raw credentials value
    cluster = built.one("azure-native:containerservice:ManagedCluster")
    assert cluster.urn in provider.dependencies

    assert built.cluster.kubeconfig is not None
    assert _sync_await(built.cluster.kubeconfig.is_secret())
    assert _sync_await(built.cluster.kubeconfig.future()) == AKS_KUBECONFIG
    assert built.cluster.cluster_name is not None
    assert _sync_await(built.cluster.cluster_name.future()) == "tyk-prod"


def test_aks_children_are_parented_to_the_component() -> None:
    built = build(AKS)
    component = built.one(COMPONENT_TYPE)
    children = [r for r in built.monitor.recorded if r is not component]
    assert {r.type for r in children} == {
        "azure-native:resources:ResourceGroup",
        "azure-native:containerservice:ManagedCluster",
        "azure-native:authorization:RoleAssignment",
        PROVIDER_TYPE,
    }
    assert all(r.parent_urn == component.urn for r in children)
    assert [r.name for r in children] == [
        "cluster-rg",
        "cluster-aks",
        "cluster-deployer-admin",
        "cluster-k8s",
    ]


def test_decode_kubeconfig() -> None:
    assert (
        decode_kubeconfig(base64.b64encode("apiVersion: v1\nnäme: ü".encode()).decode())
        == "apiVersion: v1\nnäme: ü"
    )


# --- existing ------------------------------------------------------------------------------------------------


def test_existing_declares_no_azure_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    built = build({"mode": "existing", "context": "kind-tyk"})
    assert not [r for r in built.monitor.recorded if r.type.startswith("azure-native:")]
    assert not built.mocks.calls
    assert {r.type for r in built.monitor.recorded} == {COMPONENT_TYPE, PROVIDER_TYPE}
    provider = built.one(PROVIDER_TYPE)
    assert provider.inputs == {"context": "kind-tyk"}  # kubeconfig: kubectl's default file
    assert provider.parent_urn == built.one(COMPONENT_TYPE).urn
    assert built.cluster.kubeconfig is None
    assert built.cluster.cluster_name is None


def test_existing_kubeconfig_path_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/elsewhere/config")
    built = build({"mode": "existing", "kubeconfig": "~/.kube/tyk-dev.yaml", "context": "tyk-dev"})
    inputs = built.one(PROVIDER_TYPE).inputs
    # A path, not the file's contents: no credentials in the state. Config wins over $KUBECONFIG.
    assert inputs["kubeconfig"] == "~/.kube/tyk-dev.yaml"
    assert inputs["context"] == "tyk-dev"


def test_existing_without_kubeconfig_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/ci/kubeconfig")
    inputs = build({"mode": "existing"}).one(PROVIDER_TYPE).inputs
    assert inputs == {"kubeconfig": "/ci/kubeconfig"}  # what CI sets after `az aks get-credentials`


# --- the stack files -----------------------------------------------------------------------------------------


def _settings(stack: str) -> Any:
    config, _, _ = read_stack_config(stack)
    return parse_settings(config)


def test_local_stack_is_kind_without_azure() -> None:
    settings = _settings("local")
    assert settings.cluster.mode == "existing"
    assert settings.cluster.context == "kind-tyk"
    assert settings.cluster.aks is None
    assert settings.storage.create_storage_class is False  # no Azure Files class
    assert settings.storage.storage_class_name == "standard"
    assert settings.storage.access_mode == "ReadWriteOnce"
    assert settings.gateway.replicas == 1
    assert settings.gateway.ingress.class_name == "nginx"
    assert settings.controller.enabled is True
    assert settings.api_management.enabled is True
    assert settings.api_management.access == "kubernetes" and settings.api_management.gateway_url is None


def test_prod_stack_creates_an_aks_cluster() -> None:
    settings = _settings("prod")
    assert settings.cluster.mode == "aks"
    assert settings.cluster.aks is not None
    assert settings.cluster.aks.min_count <= settings.cluster.aks.max_count


# --- through the whole program -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["local", "dev", "prod"])
def test_every_kubernetes_resource_uses_the_cluster_provider(
    stack: str, plan_of: Callable[[str], Plan]
) -> None:
    plan = plan_of(stack)
    provider = plan.one(PROVIDER_TYPE, "cluster-k8s")
    kubernetes = [r for r in plan.resources if r.custom and r.type.startswith("kubernetes:")]
    assert kubernetes
    for resource in kubernetes:
        # Provider references are `<urn>::<id>`; a default provider would mean an implicit kubeconfig.
        assert resource.provider.startswith(provider.urn + "::"), f"{resource.key} uses {resource.provider!r}"


@pytest.mark.parametrize("stack", ["local", "dev"])
def test_existing_cluster_stacks_have_no_azure_resources(stack: str, plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of(stack)
    assert not [r.key for r in plan.resources if r.type.startswith("azure-native:")]


def test_local_stack_uses_the_default_storage_class(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("local")
    assert not plan.find("kubernetes:storage.k8s.io/v1:StorageClass")
    claims = plan.find("kubernetes:core/v1:PersistentVolumeClaim")
    assert len(claims) == 3
    for claim in claims:
        assert claim.inputs["spec"]["storageClassName"] == "standard"
        assert claim.inputs["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_prod_plan_wires_the_aks_kubeconfig(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("prod")
    plan.one("azure-native:containerservice:ManagedCluster", "cluster-aks")
    provider = plan.one(PROVIDER_TYPE, "cluster-k8s")
    assert is_secret(provider.inputs["kubeconfig"])
    masked = plan.to_json()
    assert masked["resources"][f"{PROVIDER_TYPE}::cluster-k8s"]["inputs"]["kubeconfig"] == "[secret]"
    assert "kubeconfig" not in masked["outputs"]  # no credential leaves the stack


# --- closed by default ---------------------------------------------------------------------------------------


def test_aks_enforces_network_policies_with_cilium() -> None:
    inputs = build(AKS).one("azure-native:containerservice:ManagedCluster").inputs
    assert (
        inputs["networkProfile"].items()
        >= {
            "networkPlugin": "azure",
            "networkPluginMode": "overlay",
            "networkDataplane": "cilium",
            "networkPolicy": "cilium",
        }.items()
    )
    azure = build({**AKS, "aks": {**AKS["aks"], "networkPolicy": "azure"}})
    profile = azure.one("azure-native:containerservice:ManagedCluster").inputs["networkProfile"]
    assert (profile["networkPolicy"], profile["networkDataplane"]) == ("azure", "azure")


def test_aks_uses_entra_id_with_azure_rbac() -> None:
    settings = {**AKS, "aks": {**AKS["aks"], "disableLocalAccounts": True, "adminGroupObjectIds": ["g-1"]}}
    inputs = build(settings).one("azure-native:containerservice:ManagedCluster").inputs
    assert inputs["aadProfile"] == {"managed": True, "enableAzureRBAC": True, "adminGroupObjectIDs": ["g-1"]}
    assert inputs["disableLocalAccounts"] is True


def test_prod_stack_disables_local_accounts() -> None:
    aks = _settings("prod").cluster.aks
    assert aks is not None and aks.disable_local_accounts is True


def test_deployer_is_cluster_admin_through_azure_rbac_before_the_provider_is_used() -> None:
    built = build(AKS)
    cluster = built.one("azure-native:containerservice:ManagedCluster")
    [grant] = built.of_type("azure-native:authorization:RoleAssignment")
    assert grant.inputs["principalId"] == "offline-object-id"  # getClientConfig: whoever runs pulumi
    assert grant.inputs["roleDefinitionId"].endswith("/b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b")
    assert cluster.urn in grant.dependencies
    assert grant.urn in built.one(PROVIDER_TYPE).dependencies
    # A later preview/up by another identity (the read-only preview one) must not move the grant to it.
    assert grant.options["ignoreChanges"] == ["principalId", "principalType"]
    assert grant.inputs["principalType"] == "User"  # by hand; Azure refuses a type that doesn't match
    ci = build({**AKS, "aks": {**AKS["aks"], "deployerPrincipalType": "ServicePrincipal"}})
    [ci_grant] = ci.of_type("azure-native:authorization:RoleAssignment")
    assert ci_grant.inputs["principalType"] == "ServicePrincipal"


def test_readers_get_read_only_roles() -> None:
    built = build({**AKS, "aks": {**AKS["aks"], "readerPrincipalIds": ["preview-sp"]}})
    grants = {
        r.inputs["roleDefinitionId"].rsplit("/", 1)[1]: r
        for r in built.of_type("azure-native:authorization:RoleAssignment")
        if r.inputs["principalId"] == "preview-sp"
    }
    assert set(grants) == {
        "7f6c6a51-bcf8-42ba-9220-52d62157d7db",  # Azure Kubernetes Service RBAC Reader
        "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",  # Azure Kubernetes Service Cluster User Role
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",  # Reader (resource group)
    }
