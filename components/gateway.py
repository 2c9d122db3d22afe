"""The Tyk gateways: a Helm release of the `tyk-oss` chart wired to the shared volumes, Redis and the API secret.

Every value key below was checked against TykTechnologies/tyk-charts (`tyk-oss/values.yaml`,
`components/tyk-gateway/values.yaml` and the rendered `deployment-gw-repset.yaml`): the chart ignores keys it
doesn't know, so a misspelt key is a silent bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.secrets import single_value_secret
from components.settings import GatewaySettings, Resources
from components.storage import GATEWAY_FOLDERS

RELEASE_NAME = "tyk-gateway"
# The sub-chart's fullname is the release name when that contains the chart name ("tyk-gateway"), which makes
# every object name below predictable.
FULLNAME = RELEASE_NAME
DEPLOYMENT_NAME = f"gateway-{FULLNAME}"
PROXY_SERVICE_NAME = f"gateway-svc-{FULLNAME}"
CONTROL_SERVICE_NAME = f"gateway-control-svc-{FULLNAME}"
POD_LABELS = {"app": DEPLOYMENT_NAME, "release": RELEASE_NAME}
PROXY_PORT = 8080
API_SECRET_KEY = "APISecret"  # the key the chart reads from `global.secrets.useSecretName`
API_SECRET_NAME = "tyk-gateway-api-secret"
SERVICE_ACCOUNT_NAME = "tyk-gateway"


@dataclass
class TykGatewayArgs:
    namespace: pulumi.Input[str]
    settings: GatewaySettings
    api_secret: pulumi.Input[str]
    """The gateway's admin secret (`secret` and `node_secret` in tyk.conf); a Pulumi secret."""
    redis_addrs: list[str]
    redis_password_secret_name: str
    redis_password_secret_key: str
    redis_use_ssl: bool
    redis_enable_cluster: bool
    claim_names: dict[str, str]
    """PersistentVolumeClaim per folder of GATEWAY_FOLDERS."""
    wait_for: Sequence[pulumi.Resource]
    """The claims and Redis: the release starts after them (the names above are plain strings, so that the
    Helm values are known at preview time and `pulumi preview` shows every value change)."""
    labels: dict[str, str]
    image_tag: pulumi.Input[str]
    """The gateway image's chart tag, `<tag>@sha256:...` when pulled by digest (components.images)."""
    init_image_tag: pulumi.Input[str]
    """The init container's chart tag, likewise."""
    sharding_tags: list[str] = field(default_factory=list)
    """Tags this gateway group loads APIs for (the ingress controller's APIs carry `ingress`)."""
    extra_env: list[dict[str, str]] = field(default_factory=list)
    """Extra gateway environment (`extraEnvs`), e.g. the entry point's TLS port and default certificate."""
    extra_volumes: list[dict[str, Any]] = field(default_factory=list)
    """Extra pod volumes next to the shared folders, with their mounts in `extra_volume_mounts`."""
    extra_volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    file_certificates: list[dict[str, str]] | None = None
    """`http_server_options.certificates` (the chart's `gateway.tls.certificates`); None keeps the chart's."""
    pod_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations of the gateway pods; a change restarts them (e.g. the Redis password generation)."""
    run_as_user: int | None = None
    """UID of the gateway processes (the owner the shared SMB mounts present); None keeps the chart's 1000."""
    fs_group: int | None = None
    """The pods' fsGroup (the group the shared SMB mounts present); None keeps the chart's 2000."""


INIT_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
"""The init container only runs mkdir and touch."""


def _resources(resources: Resources | None) -> dict[str, Any]:
    if resources is None:
        return {}
    return {
        kind: {k: v for k, v in getattr(resources, kind).model_dump().items() if v is not None}
        for kind in ("requests", "limits")
        if any(v is not None for v in getattr(resources, kind).model_dump().values())
    }


def _topology_spread(settings: GatewaySettings) -> list[dict[str, Any]]:
    # Prefer distinct nodes always; distinct zones when asked. ScheduleAnyway: a full zone must not stop a rollout.
    keys = ["kubernetes.io/hostname"] + (
        ["topology.kubernetes.io/zone"] if settings.spread_across_zones else []
    )
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(POD_LABELS)},
        }
        for key in keys
    ]


def gateway_values(
    settings: GatewaySettings,
    *,
    redis_addrs: list[str],
    redis_secret_name: str,
    redis_secret_key: str,
    api_secret_name: str,
    claim_names: dict[str, str],
    sharding_tags: list[str],
    extra_env: list[dict[str, str]] | None = None,
    extra_volumes: list[dict[str, Any]] | None = None,
    extra_volume_mounts: list[dict[str, Any]] | None = None,
    file_certificates: list[dict[str, str]] | None = None,
    redis_use_ssl: bool = False,
    redis_enable_cluster: bool = False,
    pod_annotations: dict[str, str] | None = None,
    run_as_user: int | None = None,
    fs_group: int | None = None,
    image_tag: pulumi.Input[str],
    init_image_tag: pulumi.Input[str],
) -> dict[str, Any]:
    """Values for the `tyk-oss` chart. Only Secret *names* go in: values never carry a secret. The image tags
    default to the settings' (`<tag>@<imageDigest>` when set); a pinned digest comes in as an Output."""
    ingress = settings.ingress
    gateway: dict[str, Any] = {
        "replicaCount": settings.replicas,
        "hostName": settings.hostnames[0],
        # A digest rides on the tag (`<tag>@sha256:...`): the chart renders `repository:tag`, the kubelet pulls
        # the digest. The init container too: it runs in every gateway pod.
        "image": {"tag": image_tag},
        "initContainers": {
            "setupDirectories": {
                "repository": settings.init_image_repository,
                "tag": init_image_tag,
                "resources": INIT_RESOURCES,
            }
        },
        # /ready (gateway >= v5.9.0, on the control port when it is separate) answers 503 while Redis is down or
        # before the first successful API load; /hello stays 200 in both cases, so it only serves liveness.
        "readinessProbe": {
            "httpGet": {"scheme": "HTTP", "path": "/ready", "port": settings.control_port},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        # Loading many definitions from the shares can take a while: up to 5 minutes before liveness applies.
        "startupProbe": {
            "httpGet": {"scheme": "HTTP", "path": "/hello", "port": settings.control_port},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 60,
        },
        # The control API (/tyk/*) gets its own port and ClusterIP service; the proxy port and its ingress
        # never serve it (TYK_GW_CONTROLAPIPORT moves /tyk/* and /hello off the listen port).
        "control": {
            "enabled": True,
            "containerPort": settings.control_port,
            "port": settings.control_port,
            "type": "ClusterIP",
        },
        "service": {"type": settings.service_type},
        "ingress": {
            "enabled": ingress.enabled,
            "className": ingress.class_name,
            "annotations": dict(ingress.annotations),
            "hosts": [
                {"host": host, "paths": [{"path": "/", "pathType": "Prefix"}]} for host in settings.hostnames
            ],
            "tls": (
                [{"secretName": ingress.tls_secret_name, "hosts": list(settings.hostnames)}]
                if ingress.tls_secret_name
                else []
            ),
        },
        # The chart keeps /mnt/tyk-gateway on an emptyDir; these mounts put the three folders on the shared
        # ReadWriteMany claims so every replica loads the same API definitions and policies.
        "extraVolumes": [
            {"name": f"tyk-{folder}", "persistentVolumeClaim": {"claimName": claim_names[folder]}}
            for folder in GATEWAY_FOLDERS
        ]
        + list(extra_volumes or []),
        "extraVolumeMounts": [
            {"name": f"tyk-{folder}", "mountPath": path} for folder, path in GATEWAY_FOLDERS.items()
        ]
        + list(extra_volume_mounts or []),
        "topologySpreadConstraints": _topology_spread(settings),
        "log": {"level": settings.log_level, "format": "json"},
    }
    resources = _resources(settings.resources)
    if resources:
        gateway["resources"] = resources
    if settings.pdb_min_available is not None:
        gateway["pdb"] = {"enabled": True, "minAvailable": settings.pdb_min_available}
    if extra_env:
        gateway["extraEnvs"] = list(extra_env)
    if file_certificates is not None:
        gateway["tls"] = {"certificates": list(file_certificates)}
    if sharding_tags:
        gateway["sharding"] = {"enabled": True, "tags": ",".join(sharding_tags)}
    if pod_annotations:
        gateway["podAnnotations"] = dict(pod_annotations)
    # Helm merges these onto the chart's restricted defaults (non-root, no privilege escalation, no capabilities,
    # read-only root, RuntimeDefault seccomp): only the identity changes, to the owner of the shared mounts.
    pod_security = {"runAsUser": run_as_user} if run_as_user is not None else {}
    if fs_group is not None:
        pod_security["fsGroup"] = fs_group
    if pod_security:
        gateway["securityContext"] = pod_security
    if run_as_user is not None:
        gateway["containerSecurityContext"] = {"runAsUser": run_as_user}
    # The gateways never call the Kubernetes API: their ServiceAccount mounts no token.
    gateway["serviceAccountName"] = SERVICE_ACCOUNT_NAME
    redis: dict[str, Any] = {
        "addrs": list(redis_addrs),
        "passSecret": {"name": redis_secret_name, "keyName": redis_secret_key},
    }
    if redis_use_ssl:
        # TYK_GW_STORAGE_USESSL / TLSMINVERSION; the certificate is verified against the system roots.
        redis |= {"useSSL": True, "tlsMinVersion": "1.2"}
    if redis_enable_cluster:
        redis["enableCluster"] = True  # TYK_GW_STORAGE_ENABLECLUSTER: go-redis's cluster client
    return {
        "global": {
            "secrets": {"useSecretName": api_secret_name},
            "redis": redis,
            # TLS terminates at the ingress; the pods speak plain HTTP inside the cluster.
            "tls": {"gateway": False},
        },
        # The umbrella chart would otherwise create a `tyk-operator-conf` Secret for an operator we don't run.
        "operatorSecret": {"enabled": False},
        "tyk-gateway": {"gateway": gateway},
    }


class TykGateway(pulumi.ComponentResource):
    """The API-secret Secret and the `tyk-oss` release."""

    control_api_url: pulumi.Output[str]
    """In-cluster URL of the control API (/tyk/*), e.g. http://gateway-control-svc-tyk-gateway.tyk.svc:9696."""
    public_url: pulumi.Output[str]
    """The first hostname, as clients reach the gateway through the ingress."""
    api_secret_name: pulumi.Output[str]
    """Secret (key `APISecret`) holding the admin secret, for other in-cluster clients."""
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: TykGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tyk-aks:index:TykGateway", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        api_secret = single_value_secret(
            f"{name}-api-secret",
            name=API_SECRET_NAME,
            namespace=args.namespace,
            labels=args.labels,
            key=API_SECRET_KEY,
            value=args.api_secret,
            opts=child,
        )
        self.api_secret_name = api_secret.metadata["name"]

        values = gateway_values(
            settings,
            redis_addrs=args.redis_addrs,
            redis_secret_name=args.redis_password_secret_name,
            redis_secret_key=args.redis_password_secret_key,
            api_secret_name=API_SECRET_NAME,
            claim_names=args.claim_names,
            sharding_tags=args.sharding_tags,
            extra_env=args.extra_env,
            extra_volumes=args.extra_volumes,
            extra_volume_mounts=args.extra_volume_mounts,
            file_certificates=args.file_certificates,
            redis_use_ssl=args.redis_use_ssl,
            redis_enable_cluster=args.redis_enable_cluster,
            pod_annotations=args.pod_annotations,
            run_as_user=args.run_as_user,
            fs_group=args.fs_group,
            image_tag=args.image_tag,
            init_image_tag=args.init_image_tag,
        )
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SERVICE_ACCOUNT_NAME, namespace=args.namespace, labels=args.labels
            ),
            automount_service_account_token=False,
            opts=child,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart="tyk-oss",
            version=settings.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=settings.chart_repo),
            namespace=args.namespace,
            values=values,
            max_history=10,
            # Wait for every replica to be ready (the default); a rollout that can't mount its share fails here.
            timeout=900,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[api_secret, service_account, *args.wait_for]
            ),
        )
        namespace = pulumi.Output.from_input(args.namespace)
        # Derived from the release on purpose: whatever is built from this URL (the controller's config) waits
        # for the gateways to be deployed.
        self.control_api_url = pulumi.Output.all(self.release.name, namespace).apply(
            lambda parts: f"http://{CONTROL_SERVICE_NAME}.{parts[1]}.svc:{settings.control_port}"
        )
        scheme = "https" if settings.ingress.tls_secret_name else "http"
        self.public_url = pulumi.Output.from_input(f"{scheme}://{settings.hostnames[0]}/")
        self.register_outputs(
            {
                "control_api_url": self.control_api_url,
                "public_url": self.public_url,
                "api_secret_name": self.api_secret_name,
            }
        )
