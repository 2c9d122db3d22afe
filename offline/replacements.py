"""Which planned input changes replace a resource, and which the API refuses to make in place.

`pulumi preview` asks each resource's provider; offline there is no provider, so this module carries the same
rules, taken from the providers' source (versions as pinned in requirements.txt):

- pulumi-kubernetes (`provider/pkg/provider/diff.go`, `forceNewProperties`): `metadata.name`/`namespace` of
  every object, then per kind (PVC `spec.accessModes`/`selector`/`storageClassName`/`volumeName`, StorageClass
  `parameters`/`provisioner`, Service `spec.clusterIP`, Deployment/DaemonSet `spec.selector`, ...). Secrets and
  ConfigMaps are replaced when their data changes unless the provider sets `enableSecretMutable` /
  `enableConfigMapMutable`. The Helm release (`helm_release.go`) is replaced on `name`/`namespace`; the provider
  itself (`DiffConfig`) on `context`, `cluster`, `clusterIdentifier`, `kubeconfig` (another cluster), which
  replaces every object it manages.
- Kubernetes validation refuses some updates pulumi-kubernetes sends as updates (`pulumi up` then fails):
  StorageClass `reclaimPolicy`/`volumeBindingMode`, a smaller PVC, a bigger one without `allowVolumeExpansion`,
  StatefulSet `serviceName`/`volumeClaimTemplates`, IngressClass `spec.controller`.
- pulumi-azure-native (`provider/pkg/provider/diff.go`, `gen/replacement.go`): the parameters of a resource's
  path (`resourceGroupName`, `resourceName`, ...) and its force-new properties (ResourceGroup `location`;
  ManagedCluster `location`, `dnsPrefix`, `fqdnSubdomain`, `nodeResourceGroup`, network plugin and CIDRs,
  ...). Azure itself refuses a new VM size for an existing node pool.
- pulumi-random and pulumi-tls (bridged Terraform providers): every input forces a new value.
- The program's own dynamic resources: their provider's `diff` (`tyk_gateway.provider`): a new `api_id`/`id`.
- Any resource: a path listed in its `replaceOnChanges` option; a new parent (a new URN: created, old deleted).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REPLACE = "replace"
REFUSED = "refused"


@dataclass(frozen=True)
class Effect:
    """What a changed input path does to its resource."""

    kind: str  # REPLACE or REFUSED
    why: str


# What is lost when a resource of these types is replaced: such replacements head the pull-request comment.
STATEFUL = {
    "kubernetes:core/v1:PersistentVolumeClaim": "its volume and the files on it",
    "kubernetes:core/v1:PersistentVolume": "the volume (as its reclaim policy says)",
    "kubernetes:apps/v1:StatefulSet": "its pods, and with them the claims of its volume templates",
    "kubernetes:core/v1:Namespace": "every object in the namespace",
    "kubernetes:helm.sh/v3:Release": "every object of the release (uninstalled, then installed again)",
    "pulumi:providers:kubernetes": "every Kubernetes object of the stack",
    "azure-native:containerservice:ManagedCluster": "the cluster and everything running in it",
    "azure-native:resources:ResourceGroup": "every Azure resource in the group",
    "random:index/randomPassword:RandomPassword": "the generated secret (whoever holds the old one is locked out)",
    "azure-native:storage:StorageAccount": "every file share in it (API definitions, policies, middleware)",
    "azure-native:redisenterprise:RedisEnterprise": "every API key and rate-limit counter",
    "azure-native:redisenterprise:Database": "every API key and rate-limit counter",
}

_K8S_METADATA = ("metadata.name", "metadata.namespace")
_LABEL_SELECTOR = ("spec.selector",)

# pulumi-kubernetes forceNewProperties, by `group/Kind` (the version doesn't change them for the kinds below).
_K8S_FORCE_NEW: dict[str, tuple[str, ...]] = {
    "core/PersistentVolumeClaim": (
        "spec.accessModes",
        "spec.selector",
        "spec.storageClassName",
        "spec.volumeName",
    ),
    "core/PersistentVolume": tuple(
        f"spec.{source}"
        for source in [
            "awsElasticBlockStore",
            "azureDisk",
            "azureFile",
            "cephfs",
            "cinder",
            "csi",
            "fc",
            "flexVolume",
            "flocker",
            "gcePersistentDisk",
            "glusterfs",
            "hostPath",
            "iscsi",
            "local",
            "nfs",
            "photonPersistentDisk",
            "portworxVolume",
            "quobyte",
            "rbd",
            "scaleIO",
            "storageos",
            "vsphereVolume",
        ]
    ),
    "core/Service": ("spec.clusterIP",),
    "core/ResourceQuota": ("spec.scopes",),
    "core/Secret": ("type",),
    "apps/Deployment": _LABEL_SELECTOR,
    "apps/DaemonSet": _LABEL_SELECTOR,
    "apps/StatefulSet": ("spec.podManagementPolicy", "spec.revisionHistoryLimit", *_LABEL_SELECTOR),
    "batch/Job": ("spec.completions", "spec.parallelism", "spec.template", *_LABEL_SELECTOR),
    "rbac.authorization.k8s.io/RoleBinding": ("roleRef",),
    "rbac.authorization.k8s.io/ClusterRoleBinding": ("roleRef",),
    "storage.k8s.io/StorageClass": ("parameters", "provisioner"),
}

# Updates the Kubernetes API server refuses although pulumi-kubernetes plans them as updates.
_K8S_REFUSED: dict[str, dict[str, str]] = {
    "storage.k8s.io/StorageClass": {
        "reclaimPolicy": "updates to reclaimPolicy are forbidden",
        "volumeBindingMode": "volumeBindingMode is immutable",
    },
    "core/PersistentVolumeClaim": {
        "spec.volumeMode": "a claim's volumeMode is immutable",
        "spec.dataSource": "a claim's dataSource is immutable",
        "spec.dataSourceRef": "a claim's dataSourceRef is immutable",
    },
    "apps/StatefulSet": {
        "spec.serviceName": "StatefulSet spec.serviceName is immutable",
        "spec.volumeClaimTemplates": "StatefulSet spec.volumeClaimTemplates is immutable",
    },
    "networking.k8s.io/IngressClass": {"spec.controller": "IngressClass spec.controller is immutable"},
}

_AZURE_FORCE_NEW: dict[str, tuple[str, ...]] = {
    "azure-native:resources:ResourceGroup": ("resourceGroupName", "location"),
    "azure-native:containerservice:ManagedCluster": (
        "resourceGroupName",
        "resourceName",
        "location",
        "dnsPrefix",
        "fqdnSubdomain",
        "nodeResourceGroup",
        "linuxProfile",
        "windowsProfile",
        "diskEncryptionSetID",
        *(
            f"networkProfile.{field}"
            for field in [
                "serviceCidr",
                "serviceCidrs",
                "dnsServiceIP",
                "networkMode",
                "networkPlugin",
                "networkPluginMode",
                "podCidr",
                "networkDataplane",
                "networkPolicy",
                "outboundType",
            ]
        ),
    ),
}
_AZURE_REFUSED: dict[str, dict[str, str]] = {
    "azure-native:containerservice:ManagedCluster": {
        "agentPoolProfiles[].vmSize": "Azure can't change the VM size of an existing node pool (add a new pool)",
    },
}

_KUBERNETES_PROVIDER_FORCE_NEW = (
    "context",
    "cluster",
    "clusterIdentifier",
    "kubeconfig",
    "renderYamlToDirectory",
)

# The program's dynamic resources and the provider classes whose `diff` decides (imported when needed).
DYNAMIC_PROVIDERS: dict[str, tuple[str, str]] = {
    "pulumi-python:dynamic/tyk:Api": ("tyk_gateway.provider", "TykApiProvider"),
    "pulumi-python:dynamic/tyk:Policy": ("tyk_gateway.provider", "TykPolicyProvider"),
}

_LIST_INDEX = re.compile(r"\[(?:\d+|name=[^\]]*)\]")


def normalised(path: str) -> str:
    """A diff path with list positions generalised: `agentPoolProfiles[0].vmSize` -> `agentPoolProfiles[].vmSize`."""
    return _LIST_INDEX.sub("[]", path)


def under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or inside it (`spec.selector.matchLabels.app` is under `spec.selector`)."""
    path = normalised(path)
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _first(path: str, prefixes: Iterable[str]) -> str | None:
    return next((prefix for prefix in prefixes if under(path, prefix)), None)


def _kubernetes_kind(type_: str) -> str | None:
    """`kubernetes:storage.k8s.io/v1:StorageClass` -> `storage.k8s.io/StorageClass`."""
    match = re.fullmatch(r"kubernetes:([^/:]+)/[^:]+:(\w+)", type_)
    return f"{match[1]}/{match[2]}" if match else None


def _data_is_immutable(resource: Mapping[str, Any], mutable_flag: str, providers: Mapping[str, Any]) -> bool:
    inputs = resource.get("inputs") or {}
    if inputs.get("immutable") is True:
        return True
    provider = providers.get(resource.get("provider") or "") or {}
    return (provider.get("inputs") or {}).get(mutable_flag) not in (True, "true")


def _pvc_size(
    change_path: str, old: Any, new: Any, new_inputs: Mapping[str, Any], classes: Mapping[Any, Any]
) -> Effect | None:
    """A claim can grow when its class allows expansion, never shrink."""
    from components.settings import quantity_value

    try:
        before, after = quantity_value(str(old)), quantity_value(str(new))
    except ValueError:
        return None
    if after < before:
        return Effect(REFUSED, f"a claim can't shrink ({old} → {new})")
    class_name = (new_inputs.get("spec") or {}).get("storageClassName")
    storage_class = classes.get(class_name) if isinstance(class_name, str) else None
    if storage_class is not None and not (storage_class.get("inputs") or {}).get("allowVolumeExpansion"):
        return Effect(REFUSED, f"StorageClass {class_name} doesn't set allowVolumeExpansion")
    return None


def _dynamic_replaces(type_: str, old_inputs: Mapping[str, Any], new_inputs: Mapping[str, Any]) -> list[str]:
    import importlib

    module_name, class_name = DYNAMIC_PROVIDERS[type_]
    provider = getattr(importlib.import_module(module_name), class_name)()
    result = provider.diff("", dict(old_inputs), dict(new_inputs))
    return list(result.replaces or [])


def effects(
    type_: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    changes: Iterable[tuple[str, Any, Any]],
    plan: Mapping[str, Any],
) -> dict[str, Effect]:
    """The effect of each changed path of one resource (paths that update in place are left out).

    `old`/`new` are the resource's entries of the two plans (`inputs`, `options`, `provider`); `changes` its
    `(path, old value, new value)` differences; `plan` the new plan's resources (classes, providers).
    """
    old_inputs, new_inputs = old.get("inputs") or {}, new.get("inputs") or {}
    force_new: tuple[str, ...] = ()
    refused: Mapping[str, str] = {}
    special: Callable[[str, Any, Any], Effect | None] | None = None
    why = ""
    kind = _kubernetes_kind(type_)
    if type_ == "kubernetes:helm.sh/v3:Release":
        force_new, why = ("name", "namespace"), "a release's name and namespace force a new release"
    elif type_ == "pulumi:providers:kubernetes":
        force_new = _KUBERNETES_PROVIDER_FORCE_NEW
        why = "another cluster: the provider and every object it manages are replaced"
    elif kind is not None:
        providers = {k: r for k, r in plan.items() if r.get("type") == "pulumi:providers:kubernetes"}
        force_new = (*_K8S_METADATA, *_K8S_FORCE_NEW.get(kind, ()))
        if kind == "core/Secret" and _data_is_immutable(new, "enableSecretMutable", providers):
            force_new += ("data", "stringData")
        if kind == "core/ConfigMap" and _data_is_immutable(new, "enableConfigMapMutable", providers):
            force_new += ("data", "binaryData")
        refused = _K8S_REFUSED.get(kind, {})
        if kind == "core/PersistentVolumeClaim":
            classes = {
                ((r.get("inputs") or {}).get("metadata") or {}).get("name"): r
                for r in plan.values()
                if r.get("type") == "kubernetes:storage.k8s.io/v1:StorageClass"
            }

            def special(path: str, before: Any, after: Any) -> Effect | None:
                if under(path, "spec.resources.requests.storage"):
                    return _pvc_size(path, before, after, new_inputs, classes)
                return None

    elif type_.startswith("azure-native:"):
        force_new = _AZURE_FORCE_NEW.get(type_, ("resourceGroupName", "location"))
        refused = _AZURE_REFUSED.get(type_, {})
    elif type_.startswith(("random:", "tls:")):
        force_new, why = ("",), "every input of this resource forces a new one"
    elif type_ in DYNAMIC_PROVIDERS:
        force_new = tuple(_dynamic_replaces(type_, old_inputs, new_inputs))
        why = "a new id is a new object on the gateway"

    replace_on_changes = tuple((new.get("options") or {}).get("replaceOnChanges") or ())
    found: dict[str, Effect] = {}
    for path, before, after in changes:
        if path == "(parent)":
            found[path] = Effect(REPLACE, "a new parent is a new URN: created anew, the old one deleted")
            continue
        if path.startswith("("):
            continue
        if "*" in replace_on_changes or _first(path, replace_on_changes):
            found[path] = Effect(REPLACE, "listed in the resource's replaceOnChanges")
        elif kind is not None and _first(path, _K8S_METADATA):
            found[path] = Effect(REPLACE, "a new name or namespace is a new object")
        elif type_.startswith("azure-native:") and path == "location" and _same_location(before, after):
            continue  # Azure compares locations without case and spaces ("West Europe" == "westeurope")
        elif force_new == ("",) or _first(path, force_new):
            found[path] = Effect(REPLACE, why)
        elif (reason := _refused(path, refused)) is not None:
            found[path] = Effect(REFUSED, reason)
        elif special is not None and (effect := special(path, before, after)) is not None:
            found[path] = effect
    return found


def _refused(path: str, refused: Mapping[str, str]) -> str | None:
    prefix = _first(path, refused)
    return refused[prefix] if prefix is not None else None


def _same_location(old: Any, new: Any) -> bool:
    def norm(value: Any) -> Any:
        return value.replace(" ", "").lower() if isinstance(value, str) else value

    return bool(norm(old) == norm(new))
