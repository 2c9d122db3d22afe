"""The Kubernetes cluster the stack deploys to, and the explicit provider every other component uses.

Two modes, chosen by `tyk-aks:cluster.mode`:

- `existing`: any cluster kubectl can reach (AKS, kind, minikube, ...). The provider uses the kubeconfig path
  from config, or `$KUBECONFIG` / `~/.kube/config` as kubectl does, and the context from config (or the
  kubeconfig's current context). No Azure resource is declared.
- `aks`: a resource group and an AKS `ManagedCluster` (system-assigned managed identity, one autoscaled system
  pool) created with `pulumi-azure-native`. The cluster-user kubeconfig is read back as a secret output and fed
  to the provider, so the workloads land on the cluster this stack just created.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import containerservice, resources

from components.settings import AksSettings, ClusterSettings

SYSTEM_POOL = "system"
"""Name of the inline system node pool (AKS: lowercase letters and digits, at most 12)."""

# The autoscaler owns the node count after creation. A count in the program that differs from the live one
# would either show as drift on every preview or, when applied, be rejected ("Cannot manually scale AgentPool
# ... with cluster autoscaler enabled"). The initial count is `minCount`.
IGNORED_CLUSTER_CHANGES = ["agentPoolProfiles[0].count"]


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
    """The AKS resource group's region; None in `existing` mode."""
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

        if settings.mode == "aks":
            aks = settings.aks or AksSettings()
            self.kubeconfig = self._create_aks(name, aks)
            self.provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=self.kubeconfig,
                opts=pulumi.ResourceOptions(parent=self),
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
        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=aks.resource_group_name,
            location=aks.location,
            opts=child,
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
            agent_pool_profiles=[system_pool(aks)],
            # AKS's application routing add-on (managed NGINX): the default ingress class of the stacks,
            # `webapprouting.kubernetes.azure.com`.
            ingress_profile=containerservice.ManagedClusterIngressProfileArgs(
                web_app_routing=containerservice.ManagedClusterIngressProfileWebAppRoutingArgs(enabled=True)
            ),
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(ignore_changes=IGNORED_CLUSTER_CHANGES)
            ),
        )
        self.cluster_name = cluster.name
        self.resource_group_name = group.name
        self.location = group.location
        self.kubelet_object_id = cluster.identity_profile.apply(_kubelet_object_id)
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        return pulumi.Output.secret(credentials.apply(_first_kubeconfig))
