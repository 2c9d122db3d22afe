"""Mesh settings in the controller's config file (camelCase JSON, unknown keys refused) and fixed names.

The program writes these (components/webhook.py, components/controller.py) and the controller reads them, so
the names both sides must agree on live here, in a module that imports neither kopf nor aiohttp.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tyk_controller.rbac import Rule

# --- what a user writes on the pod template --------------------------------------------------------------------
INJECT_LABEL = "injector.tyk.io/inject"
"""Opt-in label (value "true"): the webhook's objectSelector, so the API server only calls it for these pods."""
INJECT_ANNOTATION = "injector.tyk.io/inject"
"""tyk-k8s's opt-in annotation (y/yes/true/on); optional here, `false`/`no`/`off` opts a pod back out."""
ROUTE_ANNOTATION = "injector.tyk.io/route"
"""The workload's mesh route (`/orders`); default `/<app label>`, as tyk-k8s did."""
PORT_ANNOTATION = "injector.tyk.io/port"
"""The app's container port (name or number) the sidecar fronts; default: see `sidecar.choose_port`."""

# --- what the webhook writes (under its own prefix) ------------------------------------------------------------
STATUS_ANNOTATION = "mesh.tyk.io/status"
"""`injected`: the pod has the sidecar; the webhook never patches such a pod again."""
GATEWAY_CONFIG_ANNOTATION = "mesh.tyk.io/gateway-config"
"""The sidecar's tyk.conf (JSON), projected to a file by a downwardAPI volume."""
INBOUND_API_ANNOTATION = "mesh.tyk.io/inbound-api"
"""The inbound API definition (JSON), projected into the sidecar's apps folder."""
ROUTE_STATUS_ANNOTATION = "mesh.tyk.io/route"
"""The validated route the pod serves (what the routes reconciler reads)."""
APP_PORT_ANNOTATION = "mesh.tyk.io/app-port"
"""`<container port number>/<original port name>` of the fronted app port (what Services target by name)."""

SIDECAR_LABEL = "tyk-aks.io/mesh-sidecar"
"""Label (value "true") on every injected pod: what NetworkPolicies select to let sidecars reach Redis."""
SIDECAR_NAME = "tyk-mesh"
"""Name of the injected (native sidecar) container."""
CONFIG_VOLUME = "tyk-mesh-config"
APPS_VOLUME = "tyk-mesh-apps"
TMP_VOLUME = "tyk-mesh-tmp"
TMP_DIR = "/tmp"
CONFIG_DIR = "/etc/tyk-mesh/config"
"""Not a parent of APPS_DIR: a read-only volume can't hold the mount point of another."""
CONFIG_FILE = "tyk.conf"
APPS_DIR = "/etc/tyk-mesh/apps"
INBOUND_FILE = "inbound.json"
ROUTE_FILE_SUFFIX = ".route.json"
"""Egress route files: `<route slug>.route.json` (never `*-oas.json`, which the loader treats as OAS
companions; always `*.json`, the only files its FromDir glob loads)."""

MESH_HOST = "mesh"
"""Host alias (-> 127.0.0.1) the app calls for egress, and the `domain` of every egress API."""
ROUTES_CONFIG_MAP = "tyk-mesh-routes"
"""Namespace-local ConfigMap of egress API definitions, maintained by the controller."""
NAMESPACE_SECRET = "tyk-mesh"
"""Namespace-local Secret the controller maintains: the Redis password and the sidecars' admin secret."""
REDIS_PASSWORD_KEY = "redisPassword"
SIDECAR_SECRET_KEY = "gatewaySecret"
REDIS_PASSWORD_ENV = "TYK_CONTROLLER_REDIS_PASSWORD"
"""The controller's environment variable holding the gateways' Redis password (copied into the Secret)."""
RUN_AS = 65532
"""The gateway image's `nonroot` user (distroless base)."""

FIELD_MANAGER = "tyk-mesh"
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
"""Never meshed: the webhook's namespaceSelector leaves them out (with the controller's own namespace)."""

# RBAC the reconciler uses, cluster-wide (meshed pods may be in any namespace): the controller's ClusterRole
# grants exactly these. Secrets: `create` anywhere (a create can't be limited by name) and get/update/delete
# only of the one named `tyk-mesh`; never list or watch, so no Secret of the user's is ever readable.
CLUSTER_RULES: tuple[Rule, ...] = (
    Rule(("",), ("pods", "services"), ("list", "watch")),
    Rule(("",), ("configmaps",), ("get", "list", "create", "update", "delete")),
    Rule(("",), ("secrets",), ("create",)),
    Rule(("",), ("secrets",), ("get", "update", "delete"), resource_names=(NAMESPACE_SECRET,)),
    Rule(("",), ("events",), ("create",)),
)


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SidecarResources(_Camel):
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    memory_limit: str = "256Mi"


class MeshConfig(_Camel):
    """The `mesh` section of the controller config: present means the mesh is on."""

    sidecar_image: str
    """The gateways' own image and tag (`tykio/tyk-gateway:v5.x`): the sidecar is a Gateway OSS."""
    redis_addrs: list[str] = Field(min_length=1)
    """`host:port` of the gateways' Redis: the gateway refuses to run without Redis."""
    redis_tls: bool = False
    """TLS to Redis (Azure Managed Redis), as the gateways' `storage.use_ssl`."""
    redis_cluster: bool = False
    """Redis cluster client (Azure Managed Redis with the OSS clustering policy), as `storage.enable_cluster`."""
    hash_key_function: Literal["murmur32", "murmur64", "murmur128", "sha256"] = "murmur128"
    """Must match the gateways' (the tyk-oss chart's `hashKeyFunction`, murmur128): keys live in the shared
    Redis under their hash, so a sidecar hashing differently finds none of them."""
    org_id: str = "default"
    egress_port: int = Field(default=80, ge=1, le=65535)
    """Where the sidecar serves `http://mesh/<route>/...` (port 80 so the URL needs no port)."""
    inbound_port: int = Field(default=15080, ge=1024, le=65535)
    """The sidecar's inbound listener; it takes over the name of the app's port."""
    control_port: int = Field(default=15090, ge=1024, le=65535)
    """The sidecar's control API (health `/hello`, admin API behind its own secret)."""
    resync_seconds: float = Field(default=10.0, gt=0)
    """How often the routes reconciler looks at the meshed pods (it lists, it doesn't watch): the longest a
    namespace's first meshed pod waits for its Secret, and a new route for its ConfigMap entry."""
    reload_delay_seconds: float = Field(default=90.0, ge=0)
    """After a routes change, wait this long (kubelet's ConfigMap propagation: sync period + cache TTL) before
    asking the gateways' Redis group to reload."""
    resources: SidecarResources = SidecarResources()
