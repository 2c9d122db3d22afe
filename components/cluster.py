"""The Kubernetes cluster the stack deploys to, and the explicit provider every other component uses.

Two modes, chosen by `tyk-aks:cluster.mode`:

- `existing`: any cluster kubectl can reach (AKS, kind, minikube, ...). The provider uses the kubeconfig path
  from config, or `$KUBECONFIG` / `~/.kube/config` as kubectl does, and the context from config (or the
  kubeconfig's current context). No Azure resource is declared.
- `aks`: a resource group and an AKS `ManagedCluster` (system-assigned managed identity, one autoscaled system
  pool, Azure CNI Overlay with a NetworkPolicy engine, Entra ID with Azure RBAC) created with
  `pulumi-azure-native`. The provider gets the cluster-user kubeconfig in `exec` form: kubelogin fetches an
  Entra ID token for whoever runs `pulumi` (`AAD_LOGIN_METHOD=azurecli` in CI), which Azure RBAC authorizes.
  The stack grants that identity "Azure Kubernetes Service RBAC Cluster Admin" on the cluster. No kubeconfig is
  exported: there is no static credential to leak (`disableLocalAccounts` refuses the admin one).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, containerservice, resources

from components.settings import AksSettings, ClusterSettings

SYSTEM_POOL = "system"
"""Name of the inline system node pool (AKS: lowercase letters and digits, at most 12)."""

# The autoscaler owns the node count after creation. A count in the program that differs from the live one
# would either show as drift on every preview or, when applied, be rejected ("Cannot manually scale AgentPool
# ... with cluster autoscaler enabled"). The initial count is `minCount`.
#
# The network profile is set when the cluster is created and never changed by the program: pulumi-azure-native
# replaces a cluster on any change of its plugin, mode, dataplane, policy or CIDRs, and a replaced cluster takes
# its node resource group (and whatever lives there) along. A cluster created before the profile was declared
# moves to Azure CNI Overlay + Cilium in place with `az aks update` (docs/production.md).
IGNORED_CLUSTER_CHANGES = ["agentPoolProfiles[0].count", "networkProfile"]

# Built-in Azure roles (ids are the same in every tenant).
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
AKS_RBAC_READER = "7f6c6a51-bcf8-42ba-9220-52d62157d7db"
AKS_CLUSTER_USER = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"  # listClusterUserCredential
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


@dataclass
class KubernetesClusterArgs:
    settings: ClusterSettings


def decode_kubeconfig(value: str) -> str:
    """The kubeconfig text from the base64 `kubeconfigs[].value` of listManagedClusterUserCredentials."""
    return base64.b64decode(value).decode("utf-8")


def _first_kubeconfig(credentials: containerservice.ListManagedClusterUserCredentialsResult) -> str:
    kubeconfigs = credentials.kubeconfigs or []
    if not kubeconfigs:
        raise ValueError("listManagedClusterUserCredentials returned no kubeconfig")
    return decode_kubeconfig(kubeconfigs[0].value)


def network_profile(aks: AksSettings) -> containerservice.ContainerServiceNetworkProfileArgs:
    """Azure CNI Overlay with a NetworkPolicy engine: Cilium's eBPF dataplane, or Azure NPM."""
    cilium = aks.network_policy == "cilium"
    return containerservice.ContainerServiceNetworkProfileArgs(
        network_plugin=containerservice.NetworkPlugin.AZURE,
        network_plugin_mode=containerservice.NetworkPluginMode.OVERLAY,
        network_dataplane=(
            containerservice.NetworkDataplane.CILIUM if cilium else containerservice.NetworkDataplane.AZURE
        ),
        network_policy=(
            containerservice.NetworkPolicy.CILIUM if cilium else containerservice.NetworkPolicy.AZURE
        ),
    )


def entra_profile(aks: AksSettings) -> containerservice.ManagedClusterAADProfileArgs:
    """AKS-managed Entra ID integration with Azure RBAC for Kubernetes authorization."""
    return containerservice.ManagedClusterAADProfileArgs(
        managed=True,
        enable_azure_rbac=True,
        admin_group_object_ids=list(aks.admin_group_object_ids) or None,
    )


def system_pool(aks: AksSettings) -> containerservice.ManagedClusterAgentPoolProfileArgs:
    """The inline system pool: autoscaled between minCount and maxCount, starting at minCount."""
    return containerservice.ManagedClusterAgentPoolProfileArgs(
        name=SYSTEM_POOL,
        mode=containerservice.AgentPoolMode.SYSTEM,
        type=containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
        os_type=containerservice.OSType.LINUX,
        vm_size=aks.vm_size,
        enable_auto_scaling=True,
        count=aks.min_count,
        min_count=aks.min_count,
        max_count=aks.max_count,
        availability_zones=list(aks.zones) or None,
    )


def _kubelet_object_id(profile: Any) -> str:
    """The kubelet identity's object id from the cluster's `identityProfile` (the identity that pulls images)."""
    object_id = (profile or {})["kubeletidentity"].object_id
    if not object_id:
        raise ValueError("the AKS cluster reports no kubelet identity object id")
    return str(object_id)


class KubernetesCluster(pulumi.ComponentResource):
    """The target cluster (existing, or a new AKS cluster) and the Kubernetes provider for it."""

    provider: k8s.Provider
    """The explicit Kubernetes provider; pass it to every component (`ResourceOptions(provider=...)`)."""
    kubeconfig: pulumi.Output[str] | None
    """The AKS cluster-user kubeconfig (secret); None in `existing` mode, where it stays on the machine."""
    cluster_name: pulumi.Output[str] | None
    """The AKS cluster's name; None in `existing` mode."""
    resource_group_name: pulumi.Output[str] | None
    """The AKS resource group's name; None in `existing` mode."""
    location: pulumi.Output[str] | None
    """The resource group's Azure region; None in `existing` mode."""
    access: list[pulumi.Resource]
    """Role assignments the provider's first use needs (the deployer's Azure RBAC role on the cluster)."""
    principal_id: pulumi.Output[str] | None
    """Object id of the cluster's system-assigned identity (the CSI drivers use it); None in `existing` mode."""
    kubelet_object_id: pulumi.Output[str] | None
    """Object id of the AKS kubelet identity (what pulls images, e.g. granted AcrPull); None in `existing` mode."""

    def __init__(
        self, name: str, args: KubernetesClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:KubernetesCluster", name, None, opts)
        settings = args.settings
        self.kubeconfig = None
        self.cluster_name = None
        self.resource_group_name = None
        self.location = None
        self.kubelet_object_id = None
        self.access = []
        self.principal_id = None

        if settings.mode == "aks":
            aks = settings.aks or AksSettings()
            self.kubeconfig = self._create_aks(name, aks)
            self.provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=self.kubeconfig,
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.access),
            )
        else:
            # kubeconfig None: the SDK falls back to $KUBECONFIG when the program runs, and the provider to
            # ~/.kube/config. A path (not the file's content) keeps credentials out of the state.
            self.provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=settings.kubeconfig,
                context=settings.context,
                opts=pulumi.ResourceOptions(parent=self),
            )

        outputs: dict[str, Any] = {"mode": settings.mode}
        if self.cluster_name is not None:
            outputs["clusterName"] = self.cluster_name
            outputs["resourceGroupName"] = self.resource_group_name
        self.register_outputs(outputs)

    def _create_aks(self, name: str, aks: AksSettings) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, protect=aks.protect)
        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=aks.resource_group_name,
            location=aks.location,
            opts=keep,
        )
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=group.name,
            resource_name_=aks.cluster_name,
            location=group.location,
            dns_prefix=aks.cluster_name,
            kubernetes_version=aks.kubernetes_version,
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.SYSTEM_ASSIGNED
            ),
            enable_rbac=True,
            aad_profile=entra_profile(aks),
            disable_local_accounts=aks.disable_local_accounts,
            network_profile=network_profile(aks),
            agent_pool_profiles=[system_pool(aks)],
            # AKS's application routing add-on (managed NGINX): the default ingress class of the stacks,
            # `webapprouting.kubernetes.azure.com`.
            ingress_profile=containerservice.ManagedClusterIngressProfileArgs(
                web_app_routing=containerservice.ManagedClusterIngressProfileWebAppRoutingArgs(enabled=True)
            ),
            opts=pulumi.ResourceOptions.merge(
                keep, pulumi.ResourceOptions(ignore_changes=IGNORED_CLUSTER_CHANGES)
            ),
        )
        self.cluster_name = cluster.name
        self.resource_group_name = group.name
        self.location = group.location
        self.principal_id = cluster.identity.apply(lambda identity: identity.principal_id if identity else "")

        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))

        def role(role_id: str) -> pulumi.Output[str]:
            return client.subscription_id.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"
                )
            )

        # Whoever creates the cluster deploys the workloads through the Kubernetes API with their own Entra token.
        # The grant keeps that first principal: a preview by the read-only identity (or an `up` by someone else)
        # must not show it moving to whoever runs pulumi. More admins: `adminGroupObjectIds`.
        deployer = authorization.RoleAssignment(
            f"{name}-deployer-admin",
            scope=cluster.id,
            principal_id=client.object_id,
            principal_type=aks.deployer_principal_type,
            role_definition_id=role(AKS_RBAC_CLUSTER_ADMIN),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["principalId", "principalType"]),
        )
        for index, principal in enumerate(aks.reader_principal_ids):
            for suffix, scope, role_id in (
                ("k8s-reader", cluster.id, AKS_RBAC_READER),
                ("cluster-user", cluster.id, AKS_CLUSTER_USER),
                ("group-reader", group.id, READER),
            ):
                authorization.RoleAssignment(
                    f"{name}-reader-{index}-{suffix}",
                    scope=scope,
                    principal_id=principal,
                    principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                    role_definition_id=role(role_id),
                    opts=child,
                )
        self.access = [deployer]
        self.kubelet_object_id = cluster.identity_profile.apply(_kubelet_object_id)
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            # `exec`: a kubelogin exec plugin instead of a token; with Entra ID the only form that works.
            format="exec",
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        return pulumi.Output.secret(credentials.apply(_first_kubeconfig))
