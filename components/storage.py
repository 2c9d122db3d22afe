"""Shared storage for the gateway's API definitions, policies and middleware.

Every gateway replica must see the same files: the REST API writes `<id>.json` on the pod that answered, and a
group reload only makes each replica re-read its own folder. With ReadWriteMany Azure Files volumes, that folder
is one share for all of them. (An Azure Disk is ReadWriteOnce: it attaches to one node at a time.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, storage

from components.settings import StorageSettings

# Mount points the gateway image and chart use (TYK_GW_APPPATH, TYK_GW_POLICIES_POLICYPATH, TYK_GW_MIDDLEWAREPATH).
GATEWAY_FOLDERS: dict[str, str] = {
    "apps": "/mnt/tyk-gateway/apps",
    "policies": "/mnt/tyk-gateway/policies",
    "middleware": "/mnt/tyk-gateway/middleware",
}


# Built-in role "Storage Account Contributor": the Azure Files CSI driver creates shares in the account and reads
# its keys (listKeys) with the cluster's identity; an account outside the node resource group needs the grant.
STORAGE_ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"

# Fields the API server refuses to update (kubernetes `ValidateStorageClassUpdate`,
# `ValidatePersistentVolumeClaimUpdate`): a change to one is a delete and re-create, which for a claim means a
# new, empty share. Only `resources.requests` (expansion) of a claim may change in place.
IMMUTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "kubernetes:storage.k8s.io/v1:StorageClass": (
        "metadata.name",
        "provisioner",
        "parameters",
        "reclaimPolicy",
        "volumeBindingMode",
        "mountOptions",
    ),
    "kubernetes:core/v1:PersistentVolumeClaim": (
        "metadata.name",
        "metadata.namespace",
        "spec.accessModes",
        "spec.storageClassName",
        "spec.volumeName",
        "spec.selector",
    ),
}


def claim_name(folder: str) -> str:
    return f"tyk-gateway-{folder}"


@dataclass
class AzureTarget:
    """Where `aks` mode creates the storage account: the stack's resource group, and who needs access to it."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    cluster_principal_id: pulumi.Input[str]
    """The AKS cluster identity (the Azure Files CSI driver runs with it)."""


@dataclass
class SharedStorageArgs:
    namespace: pulumi.Input[str]
    settings: StorageSettings
    labels: dict[str, str]
    azure: AzureTarget | None = None
    """Set in `aks` mode: the storage account is created there."""


def azure_files_mount_options(settings: StorageSettings) -> list[str]:
    """SMB mount options: SMB ignores fsGroup/chmod, so ownership and modes are fixed at mount time."""
    return [
        "dir_mode=0775",
        "file_mode=0664",
        f"uid={settings.mount_uid}",
        f"gid={settings.mount_gid}",
        "mfsymlinks",  # symlink support on SMB, as AKS's built-in azurefile-csi classes set
        "cache=strict",  # readers on other nodes see a replica's write before the group reload
        "nosharesock",  # one SMB connection per mount: a reconnect storm on one share doesn't stall the others
        "actimeo=30",
    ]


class SharedStorage(pulumi.ComponentResource):
    """An Azure Files StorageClass (or an existing class) and a ReadWriteMany claim per gateway folder."""

    storage_class_name: pulumi.Output[str]
    """The class the claims use."""
    claim_names: dict[str, str]
    """Claim name per folder (`apps`, `policies`, `middleware`): fixed names, so Helm values that use them are
    known at preview time (depend on `claims` for ordering)."""
    claims: dict[str, k8s.core.v1.PersistentVolumeClaim]
    account: storage.StorageAccount | None
    """The storage account created in `aks` mode."""

    def __init__(
        self, name: str, args: SharedStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:SharedStorage", name, None, opts)
        settings = args.settings
        # Whatever holds data is protected: the engine refuses a replace or delete of it (even in preview), and
        # a resource that leaves the stack stays where it is (retain_on_delete) instead of taking the data along.
        keep = pulumi.ResourceOptions(
            parent=self, protect=settings.protect, retain_on_delete=settings.protect
        )
        self.account = None

        parameters: dict[str, pulumi.Input[str]] = {"skuName": settings.sku_name}
        if settings.account is not None and args.azure is not None:
            self.account = self._create_account(name, settings, args.azure, keep)
            parameters |= {
                "resourceGroup": args.azure.resource_group_name,
                "storageAccount": settings.account.name,
            }
        elif settings.account is not None and settings.account.resource_group_name is not None:
            parameters |= {
                "resourceGroup": settings.account.resource_group_name,
                "storageAccount": settings.account.name,
            }

        if settings.create_storage_class:
            storage_class = k8s.storage.v1.StorageClass(
                f"{name}-class",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=settings.storage_class_name, labels=args.labels),
                provisioner="file.csi.azure.com",
                parameters=parameters,
                mount_options=azure_files_mount_options(settings),
                # Retain: deleting the stack must not delete every API definition and policy with it.
                reclaim_policy="Retain",
                allow_volume_expansion=True,
                # Immediate: Azure Files isn't zonal, and a Pending claim would hold the Helm release's wait.
                volume_binding_mode="Immediate",
                opts=pulumi.ResourceOptions.merge(
                    keep, pulumi.ResourceOptions(depends_on=[self.account] if self.account else [])
                ),
            )
            self.storage_class_name = storage_class.metadata["name"]
        else:
            self.storage_class_name = pulumi.Output.from_input(settings.storage_class_name)

        self.claims = {}
        for folder in GATEWAY_FOLDERS:
            self.claims[folder] = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{folder}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=claim_name(folder),
                    namespace=args.namespace,
                    labels={**args.labels, "app.kubernetes.io/component": f"gateway-{folder}"},
                ),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    access_modes=[settings.access_mode],
                    storage_class_name=self.storage_class_name,
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                        requests={"storage": getattr(settings.sizes, folder)}
                    ),
                ),
                opts=keep,
            )
        self.claim_names = {folder: claim_name(folder) for folder in GATEWAY_FOLDERS}
        self.register_outputs(
            {"storage_class_name": self.storage_class_name, "claim_names": self.claim_names}
        )

    def _create_account(
        self, name: str, settings: StorageSettings, azure: AzureTarget, keep: pulumi.ResourceOptions
    ) -> storage.StorageAccount:
        """The account in the stack's resource group, with share soft delete, the CSI grant and an optional lock."""
        assert settings.account is not None
        premium = settings.sku_name.startswith("Premium")
        account = storage.StorageAccount(
            f"{name}-account",
            account_name=settings.account.name,
            resource_group_name=azure.resource_group_name,
            location=azure.location,
            # Premium file shares only exist in FileStorage accounts; standard ones in general-purpose v2.
            kind=storage.Kind.FILE_STORAGE if premium else storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=settings.sku_name),
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            allow_blob_public_access=False,
            enable_https_traffic_only=True,
            opts=keep,
        )
        storage.FileServiceProperties(
            f"{name}-file-service",
            account_name=account.name,
            resource_group_name=azure.resource_group_name,
            file_services_name="default",
            share_delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True, days=settings.account.share_soft_delete_days
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        subscription = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        authorization.RoleAssignment(
            f"{name}-csi-access",
            scope=account.id,
            principal_id=azure.cluster_principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=subscription.subscription_id.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
                    f"{STORAGE_ACCOUNT_CONTRIBUTOR}"
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if settings.account.delete_lock:
            authorization.ManagementLockByScope(
                f"{name}-account-lock",
                scope=account.id,
                level=authorization.LockLevel.CAN_NOT_DELETE,
                notes="Holds the gateways' API definitions and policies: see docs/production.md before removing.",
                opts=pulumi.ResourceOptions(parent=self),
            )
        return account
