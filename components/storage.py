"""Shared storage for the gateway's API definitions, policies and middleware.

Every gateway replica must see the same files: the REST API writes `<id>.json` on the pod that answered, and a
group reload only makes each replica re-read its own folder. With ReadWriteMany Azure Files volumes, that folder
is one share for all of them. (An Azure Disk is ReadWriteOnce: it attaches to one node at a time.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.settings import StorageSettings

# Mount points the gateway image and chart use (TYK_GW_APPPATH, TYK_GW_POLICIES_POLICYPATH, TYK_GW_MIDDLEWAREPATH).
GATEWAY_FOLDERS: dict[str, str] = {
    "apps": "/mnt/tyk-gateway/apps",
    "policies": "/mnt/tyk-gateway/policies",
    "middleware": "/mnt/tyk-gateway/middleware",
}


def claim_name(folder: str) -> str:
    return f"tyk-gateway-{folder}"


@dataclass
class SharedStorageArgs:
    namespace: pulumi.Input[str]
    settings: StorageSettings
    labels: dict[str, str]


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

    def __init__(
        self, name: str, args: SharedStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:SharedStorage", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        if settings.create_storage_class:
            storage_class = k8s.storage.v1.StorageClass(
                f"{name}-class",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=settings.storage_class_name, labels=args.labels),
                provisioner="file.csi.azure.com",
                parameters={"skuName": settings.sku_name},
                mount_options=azure_files_mount_options(settings),
                # Retain: deleting the stack must not delete every API definition and policy with it.
                reclaim_policy="Retain",
                allow_volume_expansion=True,
                # Immediate: Azure Files isn't zonal, and a Pending claim would hold the Helm release's wait.
                volume_binding_mode="Immediate",
                opts=child,
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
                opts=child,
            )
        self.claim_names = {folder: claim_name(folder) for folder in GATEWAY_FOLDERS}
        self.register_outputs(
            {"storage_class_name": self.storage_class_name, "claim_names": self.claim_names}
        )
