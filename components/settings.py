"""The stack configuration, as one pydantic model validated before any resource is declared.

Every `tyk-aks:<key>` in `Pulumi.<stack>.yaml` maps to one field of `StackSettings` (structured keys are YAML
objects, which Pulumi hands over as JSON strings). Unknown keys are errors, so a typo never becomes a silently
ignored setting. Secrets (`apiSecret`, `redisPassword`) are not part of the model: they stay Pulumi secrets
and are read by `__main__` with `Config.get_secret`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import typing
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tyk_gateway.client import ClientSettings
from tyk_gateway.problems import InputError, Problem, located

PROJECT = "tyk-aks"
SECRET_KEYS = frozenset({"apiSecret", "redisPassword", "redisPasswordPrevious"})
# Config namespaces a stack file may use besides the project's own: those of the providers the program uses.
# Any other namespace is a typo (`tyk_aks:storage`) that would otherwise be silently ignored.
PROVIDER_NAMESPACES = frozenset({"pulumi", "kubernetes", "azure-native", "random", "tls", "docker-build"})

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})+$")
_DNS_1123_LABEL = re.compile(rf"^{_DNS_LABEL}$")
_DNS_1123_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
# Kubernetes resource.Quantity (apimachinery/pkg/api/resource/quantity.go): a signed decimal number, then a
# binary suffix, a decimal suffix, or a decimal exponent (`1e3`).
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


class ConfigError(InputError):
    """Invalid stack configuration: one line per problem, naming the `tyk-aks:` key and its value, at its
    `file:line:column` in the stack file when the file is known."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when one candidate is close to `word`, else an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _hostname(value: str) -> str:
    if value.startswith("*."):
        # The first hostname is the gateway's own hostname setting (it then serves only that host) and the
        # exported URL; neither can be a pattern.
        raise ValueError("wildcard hostnames are not supported; list each hostname")
    if len(value) > 253 or not _DNS_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a DNS name (lowercase labels separated by dots, e.g. api.example.com)"
        )
    return value


def _dns_label(value: str) -> str:
    if not _DNS_1123_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)")
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_1123_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes object name (DNS-1123 subdomain)")
    return value


def quantity_value(quantity: str) -> float:
    """The numeric value of a Kubernetes quantity ("100Gi" -> 107374182400.0)."""
    match = _QUANTITY.match(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity (e.g. 1Gi, 500Mi, 250m, 2)")
    suffix = match["suffix"] or ""
    if suffix[:1] in ("e", "E"):
        factor = 10.0 ** int(suffix[1:])
    else:
        factor = _BINARY.get(suffix) or _DECIMAL.get(suffix) or 1
    return (-1 if match["sign"] == "-" else 1) * float(match["number"]) * factor


def _number_as_quantity(value: Any) -> Any:
    # YAML reads `cpu: 2` or `size: 1` as a number; Kubernetes takes a bare number as a quantity, and so do we.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and "e" not in repr(value):
        return repr(value)
    return value


def _quantity(value: str) -> str:
    if quantity_value(value) < 0:
        raise ValueError("a resource quantity can't be negative")
    return value


def _positive_quantity(value: str) -> str:
    if quantity_value(value) <= 0:
        raise ValueError("a volume size must be more than 0")
    return value


Hostname = Annotated[str, AfterValidator(_hostname)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
ObjectName = Annotated[str, AfterValidator(_dns_subdomain)]
Quantity = Annotated[str, BeforeValidator(_number_as_quantity), AfterValidator(_quantity)]
"""A Kubernetes quantity (`500m`, `1Gi`, `2`); zero allowed (a request of nothing)."""
PositiveQuantity = Annotated[str, BeforeValidator(_number_as_quantity), AfterValidator(_positive_quantity)]
"""A Kubernetes quantity above zero: a volume size."""


class Model(BaseModel):
    """Base for every settings model: camelCase keys in YAML, snake_case in Python, no unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, validate_default=True
    )


# --- storage -------------------------------------------------------------------------------------------------


AccessMode = Literal["ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod", "ReadOnlyMany"]
AzureFilesSku = Literal[
    "Standard_LRS",
    "Standard_GRS",
    "Standard_ZRS",
    "Standard_RAGRS",
    "Standard_RAGZRS",
    "Premium_LRS",
    "Premium_ZRS",
]


class VolumeSizes(Model):
    apps: PositiveQuantity = "1Gi"
    """Size of the API-definitions share (/mnt/tyk-gateway/apps)."""
    policies: PositiveQuantity = "1Gi"
    """Size of the policies share (/mnt/tyk-gateway/policies)."""
    middleware: PositiveQuantity = "1Gi"
    """Size of the middleware share (/mnt/tyk-gateway/middleware)."""


_STORAGE_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


def _storage_account_name(value: str) -> str:
    if not _STORAGE_ACCOUNT_NAME.match(value):
        raise ValueError(f"{value!r} is not a storage account name (3-24 lowercase letters and digits)")
    return value


StorageAccountName = Annotated[str, AfterValidator(_storage_account_name)]


class StorageAccountSettings(Model):
    """The Azure storage account holding the shares (instead of one AKS creates in the node resource group)."""

    name: StorageAccountName
    """Globally unique account name. `aks` mode creates it in the stack's resource group; `existing` mode uses it."""
    resource_group_name: str | None = None
    """Only for `existing` clusters: the account's resource group (`aks` mode uses the stack's group)."""
    share_soft_delete_days: int = Field(default=14, ge=1, le=365)
    """`aks` mode: days a deleted share stays restorable (share soft delete)."""
    delete_lock: bool = False
    """`aks` mode: a CanNotDelete management lock on the account (also blocks deleting its resource group)."""


class StorageSettings(Model):
    """Shared volumes for /mnt/tyk-gateway/{apps,policies,middleware}."""

    protect: bool = True
    """Pulumi `protect` and `retainOnDelete` on the class, the claims and the storage account: a change that would
    replace or delete one fails in preview (docs/production.md says how to migrate), and a resource removed from
    the stack stays in the cluster/Azure with its data."""
    account: StorageAccountSettings | None = None
    """Storage account of the shares; None in `existing` mode lets the CSI driver pick one in the node resource
    group (which dies with the cluster). `aks` mode always creates one (default name from the cluster name)."""

    create_storage_class: bool = True
    """Create an Azure Files StorageClass; false uses `storageClassName` as it exists in the cluster."""
    storage_class_name: ObjectName = "tyk-gateway-files"
    """Name of the class to create, or of the existing class to use."""
    sku_name: AzureFilesSku = "Standard_LRS"
    """Azure Files SKU; Premium_* shares need at least 100Gi each."""
    access_mode: AccessMode = "ReadWriteMany"
    """ReadWriteMany for several replicas; ReadWriteOnce only with one replica (e.g. kind's local-path class)."""
    sizes: VolumeSizes = VolumeSizes()
    """Requested size of each share."""
    mount_uid: int = Field(default=65532, ge=0)
    """The gateway image's non-root user (distroless `nonroot`); SMB mounts ignore fsGroup, so it goes in options."""
    mount_gid: int = Field(default=2000, ge=0)
    """The chart's pod `fsGroup`; files are group-writable for it."""

    @model_validator(mode="after")
    def _premium_minimum(self) -> StorageSettings:
        if self.create_storage_class and self.sku_name.startswith("Premium"):
            for name in ("apps", "policies", "middleware"):
                size = getattr(self.sizes, name)
                if quantity_value(size) < 100 * 2**30:
                    raise ValueError(
                        f"sizes.{name} = {size!r}: premium Azure file shares have a 100Gi minimum"
                    )
        return self


# --- redis ---------------------------------------------------------------------------------------------------


class ResourceList(Model):
    cpu: Quantity | None = None
    """CPU quantity (e.g. 500m, 2)."""
    memory: Quantity | None = None
    """Memory quantity (e.g. 512Mi)."""


class Resources(Model):
    requests: ResourceList = ResourceList()
    """What the scheduler reserves for the pod."""
    limits: ResourceList = ResourceList()
    """The most the pod may use."""


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _digest(value: str) -> str:
    if not _DIGEST.match(value):
        raise ValueError(f"{value!r} is not an image digest (sha256: and 64 hex digits)")
    return value


Digest = Annotated[str, AfterValidator(_digest)]
# distribution/reference's grammar (what the kubelet accepts): lowercase path components with single separators,
# an optional registry host first; a tag of up to 128 word characters, dots and dashes.
_IMAGE_REPOSITORY = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_IMAGE_TAG = re.compile(r"^\w[\w.-]{0,127}$")


def _image_repository(value: str) -> str:
    if not _IMAGE_REPOSITORY.match(value):
        raise ValueError(f"{value!r} is not an image repository (e.g. busybox, ghcr.io/org/app)")
    return value


def _image_tag(value: str) -> str:
    if not _IMAGE_TAG.match(value):
        raise ValueError(
            f"{value!r} is not an image tag (letters, digits, _ . -; a digest goes in its own key)"
        )
    return value


ImageRepository = Annotated[str, AfterValidator(_image_repository)]
ImageTag = Annotated[str, AfterValidator(_image_tag)]
_MANAGED_REDIS_NAME = re.compile(r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$")


def _managed_redis_name(value: str) -> str:
    if len(value) > 60 or not _MANAGED_REDIS_NAME.match(value):
        raise ValueError(
            f"{value!r} is not an Azure Managed Redis name (1-60 letters, digits, single hyphens)"
        )
    return value


class ManagedRedisSettings(Model):
    """Azure Managed Redis (Microsoft.Cache/redisEnterprise), the successor Azure names for every Azure Cache for
    Redis tier; only with `cluster.mode: aks` (created in the stack's resource group)."""

    name: Annotated[str, AfterValidator(_managed_redis_name)]
    """Instance name; the gateways connect to `<name>.<location>.redis.azure.net:10000` over TLS."""
    sku: str = "Balanced_B1"
    """Azure Managed Redis SKU (Balanced_B0 ... MemoryOptimized_M*, ComputeOptimized_X*)."""
    clustering_policy: Literal["NoCluster", "OSSCluster"] = "NoCluster"
    """NoCluster (instances up to 25 GB): a plain Redis to the gateway. OSSCluster: the gateway's cluster client
    (`enableCluster`). Enterprise clustering is refused: it hides the topology behind a proxy that doesn't serve
    every multi-key command the gateway uses."""
    high_availability: bool = True
    """A replica in another zone; without it a node failure loses the keys written since the last AOF write."""
    public_network_access: bool = True
    """Reach it on its public endpoint (TLS and access key). False needs a private endpoint in the cluster's
    network, which this stack doesn't create (the AKS VNet is managed by AKS)."""
    active_key: Literal["primary", "secondary"] = "primary"
    """Access key the gateways use; switch it (then regenerate the other key) to rotate without lock-out."""


class RedisSettings(Model):
    """Redis for the gateways: a small StatefulSet of the maintained Redis image (dev/local), Azure Managed Redis
    (`managed`, prod), or an existing Redis (`enabled: false`)."""

    enabled: bool = True
    """Provide Redis with the program; false connects the gateways to `addrs`."""
    image_repository: ImageRepository = "redis"
    """The Redis Docker Official Image (maintained, patched per Redis release); not Bitnami's frozen images."""
    image_tag: ImageTag = "7.4.6-alpine"
    """7.4.6 carries the fixes for CVE-2025-49844, CVE-2025-46817/46818/46819 and CVE-2025-21605."""
    image_digest: Digest | None = None
    """sha256 digest of the image, pulled by digest without a lookup (see also `images.pinDigests`)."""
    persistence_size: PositiveQuantity = "1Gi"
    """Size of Redis's data volume (AOF, fsync every second)."""
    storage_class_name: ObjectName | None = None
    """Storage class of Redis's own (ReadWriteOnce) volume; None takes the cluster default."""
    resources: Resources | None = None
    """Requests/limits of the Redis pod; None uses 100m/256Mi requests and a 512Mi memory limit. Redis's
    `maxmemory` is 75% of the memory limit with `noeviction`: writes fail before the pod is OOM-killed, and no
    API key is ever evicted."""
    password_generation: int = Field(default=1, ge=1)
    """Bump it when the Redis password (or `managed.activeKey`) changes: the gateways restart with the new one.
    docs/production.md, "Rotating the Redis password"."""
    managed: ManagedRedisSettings | None = None
    """Use Azure Managed Redis instead of the in-cluster StatefulSet (needs `cluster.mode: aks`)."""
    addrs: list[str] = []
    """Only with `enabled: false`: existing Redis addresses (host:port) the gateway connects to."""
    password_secret_name: ObjectName | None = None
    """Only with `enabled: false`: existing Secret holding the Redis password under key `redis-password`."""
    use_ssl: bool = False
    """Only with `enabled: false`: the existing Redis speaks TLS."""
    enable_cluster: bool = False
    """Only with `enabled: false`: the existing Redis is a Redis Cluster."""

    @model_validator(mode="after")
    def _external_needs_address(self) -> RedisSettings:
        if not self.enabled and not self.addrs:
            raise ValueError("addrs = []: with enabled false, name the existing Redis (host:port)")
        if not self.enabled and self.managed is not None:
            raise ValueError("managed: with enabled false the gateways use `addrs`; remove `managed`")
        return self


# --- gateway -------------------------------------------------------------------------------------------------


class IngressSettings(Model):
    enabled: bool = True
    """Create the chart's Ingress for `hostnames`."""
    class_name: str = "webapprouting.kubernetes.azure.com"
    """AKS's application routing add-on; `nginx` for ingress-nginx on kind/minikube."""
    annotations: dict[str, str] = {}
    """Extra Ingress annotations (e.g. cert-manager's issuer)."""
    tls_secret_name: ObjectName | None = None
    """A TLS Secret (e.g. from cert-manager) for the hostnames; None serves plain HTTP."""


class GatewaySettings(Model):
    chart_repo: str = "https://helm.tyk.io/public/helm/charts/"
    """Helm repository of the `tyk-oss` chart."""
    chart_version: str = "5.3.0"
    """Version of the `tyk-oss` chart; check new versions with `python -m offline.chart_check`."""
    image_tag: ImageTag = "v5.13.1"
    """Tyk Gateway image tag (v5.9.0 or later: the readiness probe uses the gateway's `/ready`)."""
    image_digest: Digest | None = None
    """sha256 digest of the chart's `docker.tyk.io/tyk-gateway/tyk-gateway:<imageTag>`, pulled by digest without
    a lookup (see also `images.pinDigests`)."""
    init_image_repository: ImageRepository = "busybox"
    """Image of the chart's `setup-directories` init container."""
    init_image_tag: ImageTag = "1.37.0"
    """Tag of the init container image (the chart's default, 1.32, dates from 2020)."""
    init_image_digest: Digest | None = None
    """sha256 digest of the init container image, pulled by digest without a lookup."""
    replicas: int = Field(default=1, ge=1, le=100)
    """Number of gateway pods, all sharing the three volumes."""
    hostnames: list[Hostname] = Field(min_length=1)
    """Public hostnames the ingress routes to the gateway's proxy port; the first is the exported URL."""
    ingress: IngressSettings = IngressSettings()
    """The ingress in front of the proxy port (never the control API)."""
    control_port: int = Field(default=9696, ge=1024, le=65535)
    """Port of the control API (/tyk/*), served only by a ClusterIP service."""
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Type of the proxy service; ClusterIP when the ingress is the way in."""
    resources: Resources | None = None
    """CPU and memory requests/limits of each gateway pod; None sets none."""
    pdb_min_available: int | None = Field(default=None, ge=1)
    """A PodDisruptionBudget keeping this many gateways up during node drains (None: no PDB)."""
    spread_across_zones: bool = False
    """Topology spread of replicas over zones as well as nodes (nodes are always preferred to be distinct)."""
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    """Gateway log level (logs are JSON)."""

    @model_validator(mode="after")
    def _has_readiness_endpoint(self) -> GatewaySettings:
        match = re.match(r"^v?(\d+)\.(\d+)", self.image_tag)
        if match and (int(match[1]), int(match[2])) < (5, 9):
            raise ValueError(
                f"imageTag = {self.image_tag!r}: the readiness probe needs the gateway's /ready endpoint "
                "(Tyk Gateway v5.9.0 or later)"
            )
        return self

    @model_validator(mode="after")
    def _pdb_leaves_room(self) -> GatewaySettings:
        if self.pdb_min_available is not None and self.pdb_min_available >= self.replicas:
            raise ValueError(
                f"pdbMinAvailable = {self.pdb_min_available}: must be below replicas ({self.replicas}), "
                "or no node could ever be drained"
            )
        return self


# --- ingress controller, its image and entry point, and the webhook ---------------------------------------------


class SidecarResources(Model):
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    memory_limit: str = "256Mi"


class WebhookSettings(Model):
    enabled: bool = False
    """The service mesh: the controller injects a Gateway OSS sidecar into pods labelled
    `injector.tyk.io/inject: "true"` and maintains their egress routes (docs/mesh.md). Needs the controller."""
    failure_policy: Literal["Ignore", "Fail"] = "Ignore"
    """Ignore: while no controller replica answers, opted-in pods start without the sidecar (and get an Event).
    Fail: they are not created at all until one answers (also during the controller's own rollout)."""
    timeout_seconds: int = Field(default=5, ge=1, le=5)
    """How long the API server waits for the injector before applying the failure policy."""
    cert_validity_hours: int = Field(default=8760, ge=24)
    """Validity of the serving certificate; a `pulumi up` in its last quarter renews it (no restart needed)."""
    reload_delay_seconds: float = Field(default=90.0, ge=0, le=600)
    """After the egress routes change, wait this long (kubelet's ConfigMap propagation) before the group reload."""
    sidecar_resources: SidecarResources = SidecarResources()
    """Requests/limits of each injected sidecar."""


_IMAGE_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$")
_REGISTRY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9][-a-z0-9._/]*)?$")


class ControllerImageSettings(Model):
    source: Literal["acr", "registry", "prebuilt"] = "registry"
    """Where the controller image comes from. `acr`: built by `pulumi up` and pushed to an Azure Container Registry
    the program creates next to the AKS cluster (cluster.mode aks only; the kubelet gets AcrPull). `registry`:
    built by `pulumi up` and pushed to `registry` with the Docker credentials of the machine running it.
    `prebuilt`: no build, deploy `reference`."""
    registry: str | None = None
    """With `source: registry`: registry host (and optional path) to push to, e.g. `myregistry.azurecr.io` or
    `localhost:5001` (kind's local registry)."""
    repository: DnsLabel = "tyk-controller"
    """Repository name of the image inside the registry."""
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    """Platform the image is built for (the cluster's nodes)."""
    reference: str | None = None
    """With `source: prebuilt`: `<repository>@sha256:<digest>`; a tag alone is refused (deploys are by digest)."""

    @model_validator(mode="after")
    def _source_needs(self) -> ControllerImageSettings:
        if self.registry is not None:
            if self.source != "registry":
                raise ValueError(f"registry = {self.registry!r}: only used with `source: registry`")
            if not _REGISTRY.match(self.registry):
                raise ValueError(f"registry = {self.registry!r}: not a registry host[:port][/path]")
        if self.reference is not None:
            if self.source != "prebuilt":
                raise ValueError(f"reference = {self.reference!r}: only used with `source: prebuilt`")
            if not _IMAGE_DIGEST.match(self.reference):
                raise ValueError(
                    f"reference = {self.reference!r}: must be <repository>@sha256:<64 hex digits> (deploys are "
                    "by digest)"
                )
        return self

    def missing(self) -> str | None:
        """What an enabled controller still lacks to get its image, as `key = value: reason`, or None."""
        if self.source == "registry" and self.registry is None:
            return "image.registry = None: `source: registry` needs the registry to push the image to"
        if self.source == "prebuilt" and self.reference is None:
            return "image.reference = None: `source: prebuilt` needs <repository>@sha256:<digest>"
        return None


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR block (e.g. 203.0.113.0/24)") from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


class EntryPointSettings(Model):
    """The Service of type LoadBalancer in front of the gateways for Tyk-class Ingresses (80 and 443)."""

    internal: bool = False
    """Azure internal load balancer (a private IP in the cluster's VNet) instead of a public IP."""
    annotations: dict[str, str] = {}
    """Extra Service annotations (e.g. `service.beta.kubernetes.io/azure-dns-label-name`)."""
    external_traffic_policy: Literal["Cluster", "Local"] = "Local"
    """`Local` keeps the client's source IP (the gateway's IP allow lists and analytics see it) and skips a
    second hop; Azure's health probe sends traffic only to nodes running a gateway."""
    load_balancer_source_ranges: list[Cidr] = []
    """CIDRs allowed to reach the load balancer; [] allows everyone."""


class ControllerSettings(Model):
    enabled: bool = False
    """Run the project's ingress controller (Ingresses of class `ingressClass` become gateway APIs)."""
    org_id: str = "default"
    """Org id the controller puts on the API definitions it creates."""
    ingress_class: DnsLabel = "tyk"
    """Name of the IngressClass the program creates and the controller serves (also accepted as the legacy
    `kubernetes.io/ingress.class` annotation)."""
    default_class: bool = False
    """Mark the IngressClass as the cluster default (`ingressclass.kubernetes.io/is-default-class`): Ingresses
    without a class are then served by the gateways."""
    watch_namespaces: list[DnsLabel] = []
    """Namespaces whose Ingresses, Services and TLS Secrets the controller reads (namespaced Roles, each
    namespace must exist); [] means every namespace and a ClusterRole that can read every Secret."""
    replicas: int = Field(default=1, ge=1, le=5)
    """Controller pods; with more than one, one leader reconciles and the others stand by (leader election)."""
    leader_election: bool = True
    """Elect one active replica on a Lease; required with more than one replica."""
    resync_seconds: float = Field(default=300.0, ge=10)
    """Full resync period: desired APIs recomputed and compared with the gateway's."""
    resources: Resources | None = None
    """CPU and memory requests/limits of the controller pod; None uses 50m/128Mi requests, a 256Mi limit."""
    image: ControllerImageSettings = ControllerImageSettings()
    """The controller image: built and pushed by `pulumi up`, or prebuilt; always deployed by digest."""
    entry_point: EntryPointSettings = EntryPointSettings()
    """How clients reach the gateways for Tyk-class Ingresses."""
    webhook: WebhookSettings = WebhookSettings()
    """The mesh admission webhook served by the controller."""

    @model_validator(mode="after")
    def _consistent(self) -> ControllerSettings:
        missing = self.image.missing() if self.enabled else None
        if missing:
            raise ValueError(missing)
        if self.replicas > 1 and not self.leader_election:
            raise ValueError(
                f"leaderElection = False: {self.replicas} replicas without it would all write to the gateway"
            )
        if len(set(self.watch_namespaces)) != len(self.watch_namespaces):
            raise ValueError(f"watchNamespaces = {self.watch_namespaces!r}: a namespace is listed twice")
        return self


# --- cluster -------------------------------------------------------------------------------------------------


class AksSettings(Model):
    location: str = "westeurope"
    """Azure region of the resource group and the cluster."""
    resource_group_name: str = "tyk-aks"
    """Resource group created for the cluster."""
    cluster_name: str = "tyk-aks"
    """Name of the AKS cluster (also its DNS prefix)."""
    kubernetes_version: str | None = None
    """None lets AKS pick its default version."""
    vm_size: str = "Standard_D2s_v5"
    """VM size of the system node pool."""
    min_count: int = Field(default=2, ge=1)
    """Lower bound of the cluster autoscaler."""
    max_count: int = Field(default=4, ge=1)
    """Upper bound of the cluster autoscaler."""
    zones: list[str] = []
    """Availability zones of the node pool (e.g. ["1", "2", "3"]); [] for a zonal-agnostic pool."""
    network_policy: Literal["cilium", "azure"] = "cilium"
    """NetworkPolicy engine: `cilium` (Azure CNI Overlay powered by Cilium, eBPF) or `azure` (Azure NPM on Azure
    CNI Overlay). Without one, NetworkPolicies are stored but never enforced."""
    admin_group_object_ids: list[str] = []
    """Entra ID groups that are cluster admins (in addition to the Azure RBAC role assignments)."""
    disable_local_accounts: bool = False
    """Refuse the static cluster-admin credential: every access is an Entra ID identity under Azure RBAC."""
    deployer_principal_type: Literal["User", "ServicePrincipal"] = "User"
    """Kind of identity that first runs `pulumi up` (it becomes cluster admin): `User` by hand, `ServicePrincipal`
    from CI. Azure refuses a role assignment whose principal type doesn't match the principal."""
    protect: bool = True
    """Pulumi `protect` on the resource group and the cluster: a change that would replace either, or a `pulumi
    destroy`, fails. The group also holds the shares' storage account and Azure Managed Redis."""
    reader_principal_ids: list[str] = []
    """Object ids of service principals (e.g. the pull-request preview identity) given read access: Azure
    Kubernetes Service RBAC Reader and Cluster User on the cluster, Reader on the resource group."""

    @model_validator(mode="after")
    def _bounds(self) -> AksSettings:
        if self.max_count < self.min_count:
            raise ValueError(f"maxCount = {self.max_count}: must be at least minCount ({self.min_count})")
        return self


class ClusterSettings(Model):
    mode: Literal["existing", "aks"] = "existing"
    """`existing`: deploy into the cluster of a kubeconfig; `aks`: create an AKS cluster first."""
    kubeconfig: str | None = None
    """Path to a kubeconfig for `existing`; None uses $KUBECONFIG / ~/.kube/config as kubectl does."""
    context: str | None = None
    """kubeconfig context for `existing`; None uses the current context."""
    aks: AksSettings | None = None
    """The cluster to create with `mode: aks`."""

    @model_validator(mode="after")
    def _aks_settings(self) -> ClusterSettings:
        if self.mode == "aks" and self.aks is None:
            return self.model_copy(update={"aks": AksSettings()})
        return self


# --- API definitions managed by the dynamic provider ---------------------------------------------------------


class RbacSubject(Model):
    """A Kubernetes RBAC subject (an Entra ID user/group object id on AKS, a CI service account, ...)."""

    kind: Literal["User", "Group", "ServiceAccount"]
    name: str = Field(min_length=1)
    namespace: DnsLabel | None = None
    """Only for `ServiceAccount`: its namespace."""

    @model_validator(mode="after")
    def _namespace(self) -> RbacSubject:
        if self.kind == "ServiceAccount" and self.namespace is None:
            raise ValueError(
                f"namespace = None: a ServiceAccount subject ({self.name!r}) needs its namespace"
            )
        if self.kind != "ServiceAccount" and self.namespace is not None:
            raise ValueError(f"namespace = {self.namespace!r}: only ServiceAccount subjects have a namespace")
        return self


class ApiManagementSettings(Model):
    enabled: bool = False
    """Declare the definitions of `definitionsDir` as TykApi/TykPolicy resources (needs the `apiSecret` secret)."""
    access: Literal["kubernetes", "url"] = "kubernetes"
    """`kubernetes`: through the cluster's API server (service proxy) with the stack's cluster credentials, for
    every command including refresh/destroy; `url`: straight to `gatewayUrl` (internal load balancer, VPN)."""
    gateway_url: str | None = None
    """Control-API URL for `access: url`, reachable from where `pulumi` runs (never the public ingress)."""
    definitions_dir: str = "definitions"
    """Folder (relative to the project) with apis/ and policies/ subfolders, one object per file."""
    verify_replicas: bool = True
    """After each batch of writes, check that every ready gateway pod serves it (one list call per pod)."""
    replica_wait_seconds: float = Field(default=30.0, ge=0, le=600)
    """How long a replica may take to serve a batch (reloaded directly meanwhile) before `pulumi up` fails."""
    adopt: list[str] = []
    """Ids of existing gateway objects that `pulumi up` may take over; otherwise create refuses to overwrite."""
    rbac_subjects: list[RbacSubject] = []
    """Who runs `pulumi up`/`destroy`: granted exactly the provider's Kubernetes RBAC rules in the namespace."""
    preview_subjects: list[RbacSubject] = []
    """Who runs `pulumi preview --refresh` (e.g. CI's identity): granted `get` on the control Service's proxy only."""

    @model_validator(mode="after")
    def _url(self) -> ApiManagementSettings:
        if self.gateway_url is not None and not re.match(r"^https?://[^\s/]+", self.gateway_url):
            raise ValueError(f"gatewayUrl = {self.gateway_url!r}: must be an http(s) URL")
        if self.access == "url" and self.gateway_url is None:
            raise ValueError("gatewayUrl = None: `access: url` needs the control-API URL")
        if self.access == "kubernetes" and self.gateway_url is not None:
            raise ValueError(
                f"gatewayUrl = {self.gateway_url!r}: only used with `access: url` (access is 'kubernetes')"
            )
        if self.access == "url" and (self.rbac_subjects or self.preview_subjects):
            raise ValueError(
                "rbacSubjects = [...]: Kubernetes RBAC grants only apply to `access: kubernetes`"
            )
        return self


# --- network policies and pod security ----------------------------------------------------------------------


class NetworkPolicySettings(Model):
    """NetworkPolicies of the namespace: default deny, then only the paths the components use."""

    enabled: bool = True
    """Create them (they need a policy engine: `cluster.aks.networkPolicy`, or the existing cluster's CNI)."""
    proxy_ports: list[int] = [8080, 8443]
    """Gateway ports open to every source (the ingress controller, a LoadBalancer, other namespaces)."""
    control_api_from_cidrs: list[str] = []
    """Extra sources of the control API (9696), e.g. the API server subnet with AKS API Server VNet Integration.
    The controller and kube-system's konnectivity agents (the API server's service proxy) are always allowed."""
    sidecar_namespaces: list[DnsLabel] = []
    """Namespaces whose mesh sidecars (label `tyk-aks.io/mesh-sidecar: "true"`) may reach Redis; [] for any."""


class PodSecuritySettings(Model):
    """Pod Security Admission labels of the namespace."""

    enforce: Literal["restricted", "baseline", "privileged"] = "restricted"
    """Level the API server enforces for pods in the namespace."""
    version: str = "latest"
    """Pod Security Standards version the level refers to (e.g. v1.31), `latest` for the cluster's own."""


# --- images --------------------------------------------------------------------------------------------------


class ImageSettings(Model):
    """How the gateway, init container and Redis images are pulled, and the controller image built (its base);
    the controller image itself always runs by the digest its build pushed."""

    pin_digests: bool = False
    """Pull by digest: each `repository:tag` without an `imageDigest` setting is resolved to its registry digest
    when the stack first deploys it (the preview shows it) and kept in the stack's state. A re-pushed tag changes
    nothing; a new tag resolves anew (docs/production.md, "Images")."""
    pin_generation: int = Field(default=1, ge=1)
    """Bump it to resolve every pinned tag again (to take an image re-pushed under the same tag on purpose)."""


# --- the whole stack -----------------------------------------------------------------------------------------


class StackSettings(Model):
    namespace: DnsLabel = "tyk"
    """Namespace of Redis, the gateways and the controller (created by the program)."""
    cluster: ClusterSettings = ClusterSettings()
    """Where to deploy."""
    storage: StorageSettings = StorageSettings()
    redis: RedisSettings = RedisSettings()
    gateway: GatewaySettings
    """The Tyk gateways (`tyk-oss` chart)."""
    controller: ControllerSettings = ControllerSettings()
    """The project's ingress controller, its image, the gateways' entry point and the mesh webhook."""
    api_management: ApiManagementSettings = ApiManagementSettings()
    """API definitions and policies managed as Pulumi resources through the control API."""
    gateway_client: ClientSettings = ClientSettings()
    """Timeouts and retries of the provider's control-API calls (read again by the provider's own process)."""
    network_policies: NetworkPolicySettings = NetworkPolicySettings()
    """Closed by default: which pods may reach the control API and Redis."""
    pod_security: PodSecuritySettings = PodSecuritySettings()
    """Pod Security Admission level of the namespace."""
    images: ImageSettings = ImageSettings()
    """Whether images are pinned by digest."""

    @model_validator(mode="after")
    def _acr_needs_aks(self) -> StackSettings:
        if self.controller.enabled and self.controller.image.source == "acr" and self.cluster.mode != "aks":
            raise ValueError(
                "controller.image.source = 'acr': the program creates the registry only with cluster.mode aks; "
                "use `source: registry` with your registry for an existing cluster"
            )
        return self

    @model_validator(mode="after")
    def _shared_volume_reaches_every_replica(self) -> StackSettings:
        if self.gateway.replicas > 1 and self.storage.access_mode != "ReadWriteMany":
            raise ValueError(
                f"storage.accessMode = {self.storage.access_mode!r}: {self.gateway.replicas} gateway replicas "
                "on several nodes need ReadWriteMany (Azure Files); a ReadWriteOnce disk attaches to one node"
            )
        return self

    @model_validator(mode="after")
    def _managed_redis_needs_aks(self) -> StackSettings:
        if self.redis.managed is not None and self.cluster.mode != "aks":
            raise ValueError(
                f"redis.managed = {self.redis.managed.name!r}: Azure Managed Redis is created in the stack's "
                "resource group, which only `cluster.mode: aks` has; use `enabled: false` + `addrs` for one you own"
            )
        return self

    @model_validator(mode="after")
    def _storage_account_fits_the_cluster_mode(self) -> StackSettings:
        account = self.storage.account
        if self.cluster.mode == "aks":
            if account is not None and account.resource_group_name is not None:
                raise ValueError(
                    f"storage.account.resourceGroupName = {account.resource_group_name!r}: in aks mode the "
                    "account is created in the stack's own resource group; remove the key"
                )
            if account is None and self.storage.create_storage_class and self.cluster.aks is not None:
                name = re.sub(r"[^a-z0-9]", "", self.cluster.aks.cluster_name.lower())[:19] + "files"
                storage = self.storage.model_copy(update={"account": StorageAccountSettings(name=name)})
                return self.model_copy(update={"storage": storage})
        elif account is not None and account.resource_group_name is None:
            raise ValueError(
                f"storage.account.resourceGroupName = None: an existing cluster's StorageClass must name the "
                f"resource group of account {account.name!r}"
            )
        return self


_RELATIVE_KEY = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_.]*) = (?P<value>.+?): (?P<reason>.+)$", re.DOTALL)

ConfigPath = list[str | int]


def config_problem(
    path: ConfigPath, text: str, source: Path | None = None, full_key: str | None = None
) -> Problem:
    """A problem about the stack setting at `path` (`["gateway", "replicas"]`), located in `source` if given.

    `full_key` names a top-level key outside the project's namespace (`tyk_aks:storage`).
    """
    if source is None:
        return Problem(text)
    if full_key is not None:
        return located(text, source, ["config", full_key])
    head = str(path[0]) if path else ""
    return located(text, source, ["config", (f"{PROJECT}:{head}", head), *path[1:]] if path else ["config"])


def _model_at(path: ConfigPath) -> type[BaseModel] | None:
    """The settings model of the object at `path` (list positions skipped), if it is one."""
    model: type[BaseModel] = StackSettings
    for part in path:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def _unknown_key(path: ConfigPath) -> str:
    """`unknown key (did you mean 'x'?); known keys: ...` for a key the model at its place doesn't have."""
    model = _model_at(path[:-1])
    if model is None:
        return "unknown key"
    known = sorted(f.alias or name for name, f in model.model_fields.items())
    return f"unknown key{did_you_mean(str(path[-1]), known)}; known keys: {', '.join(known)}"


def _problems(error: ValidationError, source: Path | None) -> list[Problem]:
    problems = []
    for item in error.errors():
        path: ConfigPath = list(item["loc"])
        value = item.get("input")  # pydantic reports the value found at `loc`
        message = str(item["msg"]).removeprefix("Value error, ")
        shown = "(missing)" if item["type"] == "missing" else repr(value)
        # Cross-field validators name the offending sub-key themselves ("sizes.apps = '1Gi': ..."): use it.
        relative = _RELATIVE_KEY.match(message)
        if relative:
            path += [int(p) if p.isdigit() else p for p in relative["key"].split(".")]
            shown, message = relative["value"], relative["reason"]
        key = f"{PROJECT}:{'.'.join(map(str, path))}" if path else PROJECT
        if item["type"] == "extra_forbidden":
            problems.append(config_problem(path, f"{key}: {_unknown_key(path)}", source))
        else:
            problems.append(config_problem(path, f"{key} = {shown}: {message}", source))
    return problems


def parse_settings(
    raw_config: Mapping[str, str], source: Path | None = None, secret_keys: Collection[str] | None = None
) -> StackSettings:
    """Validate raw stack config (`{"tyk-aks:gateway": "<json>", ...}`, as Pulumi stores it).

    Raises ConfigError naming every bad key and value; with `source` (the stack file), each problem carries
    its position in the file. With `secret_keys` (the keys Pulumi holds encrypted), a secret of the program
    stored in plain text is a problem too. Keys of other namespaces must be those of the providers the
    program uses.
    """
    document: dict[str, Any] = {}
    problems: list[Problem] = []
    fields = {field.alias or name for name, field in StackSettings.model_fields.items()}
    for full_key, text in raw_config.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            if key and namespace not in PROVIDER_NAMESPACES:
                hint = did_you_mean(namespace, [PROJECT, *PROVIDER_NAMESPACES])
                problems.append(
                    config_problem(
                        [],
                        f"{full_key}: unknown config namespace {namespace!r}{hint}; the program reads "
                        f"`{PROJECT}:<key>` and the providers `{'`, `'.join(sorted(PROVIDER_NAMESPACES))}`",
                        source,
                        full_key=full_key,
                    )
                )
            continue
        if key in SECRET_KEYS:
            if secret_keys is not None and full_key not in secret_keys:
                problems.append(
                    config_problem(
                        [key],
                        f"{full_key} is in plain text: encrypt it with `pulumi config set --secret {key} <value>` "
                        "(and rotate it if it was ever committed)",
                        source,
                    )
                )
            continue
        if key not in fields:
            known = sorted(fields | SECRET_KEYS)
            hint = did_you_mean(key, known)
            problems.append(
                config_problem(
                    [key], f"{full_key}: unknown key{hint}; known keys: {', '.join(known)}", source
                )
            )
            continue
        try:
            document[key] = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            document[key] = text  # plain strings such as `namespace: tyk`
    try:
        settings = StackSettings.model_validate(document)
    except ValidationError as error:
        problems += _problems(error, source)
    if problems:
        raise ConfigError(problems)
    return settings


def required_secrets(settings: StackSettings) -> set[str]:
    """Secret keys the stack must set itself (the others are generated with pulumi-random when absent).

    The dynamic provider reads `apiSecret` from stack config in its own process, where a generated value can't
    reach it, so managing API definitions needs it set.
    """
    return {"apiSecret"} if settings.api_management.enabled else set()


def raw_secret_keys(raw_config: Mapping[str, str]) -> set[str]:
    """The keys of `raw_config` that Pulumi holds as secrets (encrypted in the stack file)."""
    from pulumi.runtime import config as runtime_config

    return {key for key in raw_config if runtime_config.is_config_secret(key)} | set(
        runtime_config.get_config_secret_keys_env()
    )


def raw_stack_config() -> dict[str, str]:
    """Every config value the Pulumi engine handed to this program, as strings keyed `namespace:key`."""
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
