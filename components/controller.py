"""The tyk-k8s controller: turns Ingresses of class `tyk` into gateway API definitions, serves the injector webhook.

Everything below was read in TykTechnologies/tyk-k8s (archived; last tag v0.9.0), not taken from docs:

- Config (`cmd/root.go`): viper, file from `--config <path>` (else `tyk-k8s.<ext>` in `.`, `$HOME`,
  `/etc/tyk-k8s`). Sections are decoded by mapstructure, which matches *Go field names* case-insensitively and
  ignores the structs' `yaml` tags: `Tyk.isGateway` works, `is_gateway` is silently dropped. Environment
  variables `TK8S_<SECTION>_<KEY>` override keys present in the file, which is how the API secret arrives
  (`TK8S_TYK_SECRET` from the gateway's Secret) while the ConfigMap holds a placeholder.
- `Tyk` (`tyk/tyk.go`): `url`, `secret`, `org`, `templates`, `isGateway` (true: the Gateway's /tyk/ API instead
  of a Dashboard's). With `templates` set, every `*.json` in the folder is parsed as Go text/template and the
  built-in templates are no longer used: the folder must define `default` (Ingresses without the template
  annotation use it); an empty folder makes the controller panic at start.
- `Ingress` (`ingress/ingress.go`): `watchNamespaces` (empty: all). Informers on Ingresses (list/watch) and
  Pods (list/watch; pod deletions clean mesh routes), `get` on the Secrets named in an Ingress's `tls`. Only
  Ingresses annotated `kubernetes.io/ingress.class: tyk` (fixed in the code) are handled; their API
  definitions carry the tag `ingress` (fixed too), which the gateways shard on (see `gateway_tags`).
- `Server` (`webserver/server.go`): `addr`, `certFile`, `keyFile`; the webhook is `POST /inject`. The web
  server starts only after the Ingress informer has synced and has no health endpoint, so the probes are TCP.

Caveat kept visible: the controller lists Ingresses as `networking.k8s.io/v1beta1` (extensions/v1beta1 before
Kubernetes 1.14). The API server stopped serving that version in Kubernetes 1.22, so on current clusters the
informer never syncs, the web server never starts and the pod never becomes ready. The image stays configurable
(`controller.image`/`tag`) for a build that lists `networking.k8s.io/v1`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.settings import ControllerSettings, Resources
from components.webhook import (
    SidecarInjectorWebhook,
    SidecarInjectorWebhookArgs,
    WebhookCertificates,
    WebhookCertificatesArgs,
    object_name,
)

NAME = "tyk-k8s"
SERVICE_ACCOUNT_NAME = NAME
DEPLOYMENT_NAME = NAME
CONFIG_MAP_NAME = f"{NAME}-config"
TEMPLATES_CONFIG_MAP_NAME = f"{NAME}-templates"
CLUSTER_ROLE_PREFIX = f"{NAME}-controller-"
"""ClusterRole/ClusterRoleBinding names end with the controller's namespace (cluster-scoped, must not collide)."""
ROLE_NAME = f"{NAME}-controller"

LABELS = {
    "app.kubernetes.io/name": NAME,
    "app.kubernetes.io/component": "ingress-controller",
    "app.kubernetes.io/part-of": "tyk-aks",
    "app.kubernetes.io/managed-by": "pulumi",
}
SELECTOR = {key: LABELS[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/component")}

INGRESS_TAGS: tuple[str, ...] = ("ingress",)
"""Tags of the API definitions the controller creates (ingress.go: `tags := []string{"ingress"}`)."""
INGRESS_CLASS = "tyk"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
TEMPLATE_ANNOTATION = "template.service.tyk.io"
DEFAULT_TEMPLATE = "default"

CONFIG_DIR = "/etc/tyk-k8s/config"
CONFIG_FILE = "tyk-k8s.yaml"
TEMPLATES_DIR = "/etc/tyk-k8s/templates"
CERTS_DIR = "/etc/tyk-k8s/certs"
SERVER_PORT = 8443
"""Unprivileged, so the non-root container can bind it; the webhook Service maps 443 to it."""
PORT_NAME = "webhook"

API_SECRET_KEY = "APISecret"
SECRET_ENV = "TK8S_TYK_SECRET"
SECRET_PLACEHOLDER = f"from-environment-{SECRET_ENV}"
"""The key must exist in the file for viper to apply the environment override (cmd/root.go)."""
RUN_AS = 65532

PROJECT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "controller_templates"
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DEFINE = re.compile(r"""\{\{-?\s*define\s+"([^"]+)"\s*-?\}\}""")

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "128Mi"},
}


# --- pure helpers (tested directly) --------------------------------------------------------------------------


def load_templates(directory: Path) -> dict[str, str]:
    """Every file of the templates folder, by file name: the data of the templates ConfigMap.

    Raises ValueError for what the controller would get wrong silently or fatally: a file not named `*.json`
    (its glob skips it), a name that can't be a ConfigMap key, a template name defined twice (the later one
    wins), no files at all (it panics) or no `default` template (every Ingress without the template
    annotation fails).
    """
    files = sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []
    if not files:
        raise ValueError(
            f"{directory}: no template files (the controller panics on an empty templates folder)"
        )
    templates: dict[str, str] = {}
    defined: dict[str, str] = {}
    for path in files:
        if not path.name.endswith(".json") or not _CONFIG_MAP_KEY.match(path.name):
            raise ValueError(
                f"{path}: template files must be named <name>.json (the controller loads *.json)"
            )
        text = path.read_text(encoding="utf-8")
        for template in _DEFINE.findall(text):
            if template in defined:
                raise ValueError(f"{path}: template {template!r} is already defined in {defined[template]}")
            defined[template] = path.name
        templates[path.name] = text
    if DEFAULT_TEMPLATE not in defined:
        raise ValueError(
            f"{directory}: no template defines {DEFAULT_TEMPLATE!r}; with a templates folder the controller "
            "uses it for every Ingress without the template annotation"
        )
    return templates


def template_names(templates: Mapping[str, str]) -> list[str]:
    """Names usable in the `template.service.tyk.io` annotation (`{{ define "<name>" }}` in the files)."""
    return [name for text in templates.values() for name in _DEFINE.findall(text)]


def controller_config(
    *, gateway_control_url: str, org_id: str, watch_namespaces: Sequence[str], webhook: bool
) -> dict[str, Any]:
    """The controller's config file. No secret: `Tyk.secret` is a placeholder replaced from the environment."""
    server: dict[str, Any] = {"addr": f":{SERVER_PORT}"}
    if webhook:
        server["certFile"] = f"{CERTS_DIR}/tls.crt"
        server["keyFile"] = f"{CERTS_DIR}/tls.key"
    return {
        "Server": server,
        "Tyk": {
            "url": gateway_control_url,
            "secret": SECRET_PLACEHOLDER,
            "org": org_id,
            "templates": TEMPLATES_DIR,
            "isGateway": True,
        },
        "Ingress": {"watchNamespaces": list(watch_namespaces)},
        # No sidecar: the upstream sidecar image loads its APIs from a Tyk Dashboard, which Gateway OSS lacks.
        # createRoutes off as in the Tyk charts' OSS (headless) flavour; mesh TLS needs CFSSL and MongoDB.
        "Injector": {"createRoutes": False, "enableMeshTLS": False, "containers": [], "initContainers": []},
    }


def render_config(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def controller_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """Exactly what the controller's client calls (ingress/ingress.go); nothing else."""
    return [
        # Shared informer (list + watch) on networking.k8s.io Ingresses; the extensions group is only used by
        # the controller on Kubernetes < 1.14.
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["networking.k8s.io"], resources=["ingresses"], verbs=["list", "watch"]
        ),
        # Pod informer (deletions of injected pods) and the pod list in handlePodDeleteForMesh.
        k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=["list", "watch"]),
        # handleTLS reads each Secret named in an Ingress's spec.tls to push it to the gateway.
        k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["secrets"], verbs=["get"]),
    ]


def container_resources(resources: Resources | None) -> dict[str, dict[str, str]]:
    if resources is None:
        return {kind: dict(values) for kind, values in DEFAULT_RESOURCES.items()}
    result: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        values = {k: v for k, v in getattr(resources, kind).model_dump().items() if v is not None}
        if values:
            result[kind] = values
    return result


def _sha256(text: str | None) -> str:
    # None only under mocks that give pulumi-tls no outputs (the engine always returns the PEM).
    return hashlib.sha256((text or "").encode()).hexdigest()


# --- component -----------------------------------------------------------------------------------------------


@dataclass
class IngressControllerArgs:
    namespace: pulumi.Input[str]
    settings: ControllerSettings
    gateway_control_url: pulumi.Input[str]
    """The gateway's control API (/tyk/*), e.g. http://gateway-control-svc-tyk-gateway.tyk.svc:9696."""
    api_secret_name: pulumi.Input[str]
    """Secret in `namespace` whose key `APISecret` is the gateway's admin secret."""
    templates_dir: Path = PROJECT_TEMPLATES_DIR
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels for every object (the selector labels are fixed)."""


class IngressController(pulumi.ComponentResource):
    """ServiceAccount, RBAC, config and templates ConfigMaps, the Deployment and, if enabled, the webhook.

    With `settings.enabled` false the component declares nothing and its outputs are None.
    """

    deployment_name: pulumi.Output[str | None]
    """Name of the controller's Deployment (None when disabled)."""
    webhook_service_host: pulumi.Output[str | None]
    """`<service>.<namespace>.svc` the API server calls for injection (None without the webhook)."""
    webhook_ca_pem: pulumi.Output[str | None]
    webhook_cert_expires_at: pulumi.Output[str | None]
    """When the webhook's serving certificate expires (None without the webhook)."""
    """The webhook CA certificate (None without the webhook)."""

    @staticmethod
    def gateway_tags(settings: ControllerSettings) -> list[str]:
        """Sharding tags for the ingress gateways: the controller's `ingress` tag when it runs, else none.

        Tyk filters API definitions by these tags only when it loads them from a Dashboard or MDCB
        (`FromDashboardService`/`FromRPC` in TykTechnologies/tyk `gateway/api_definition.go`); the OSS file loader
        (`FromDir`) loads every file on the shared volume. So the tag keeps the layout the controller expects
        (and tags analytics) without hiding the APIs of `definitions/`, which need no tag.
        """
        return list(INGRESS_TAGS) if settings.enabled else []

    def __init__(
        self, name: str, args: IngressControllerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:IngressController", name, None, opts)
        settings = args.settings
        self.deployment_name = pulumi.Output.from_input(None)
        self.webhook_service_host = pulumi.Output.from_input(None)
        self.webhook_ca_pem = pulumi.Output.from_input(None)
        self.webhook_cert_expires_at = pulumi.Output.from_input(None)
        if not settings.enabled:
            self.register_outputs({})
            return
        templates = load_templates(args.templates_dir)  # before any resource: a bad folder fails the preview
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, **LABELS}
        webhook_enabled = settings.webhook.enabled

        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SERVICE_ACCOUNT_NAME, namespace=args.namespace, labels=labels
            ),
            # The token is mounted in the pod spec (the controller uses in-cluster config); nowhere else.
            automount_service_account_token=False,
            opts=child,
        )
        self._rbac(name, args, labels, account, child)

        config_text = pulumi.Output.from_input(args.gateway_control_url).apply(
            lambda url: render_config(
                controller_config(
                    gateway_control_url=url,
                    org_id=settings.org_id,
                    watch_namespaces=settings.watch_namespaces,
                    webhook=webhook_enabled,
                )
            )
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=CONFIG_MAP_NAME, namespace=args.namespace, labels=labels
            ),
            data={CONFIG_FILE: config_text},
            opts=child,
        )
        templates_map = k8s.core.v1.ConfigMap(
            f"{name}-templates",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=TEMPLATES_CONFIG_MAP_NAME, namespace=args.namespace, labels=labels
            ),
            data=templates,
            opts=child,
        )

        certificates: WebhookCertificates | None = None
        if webhook_enabled:
            certificates = WebhookCertificates(
                f"{name}-webhook-certs",
                WebhookCertificatesArgs(
                    namespace=args.namespace,
                    validity_hours=settings.webhook.cert_validity_hours,
                    labels=labels,
                ),
                opts=child,
            )

        # The controller reads its config, templates and certificate once at start: a change of any of them
        # must roll the pod, hence their hashes on the pod template (the certificate is public, its hash too).
        annotations: dict[str, pulumi.Input[str]] = {
            "checksum/config": config_text.apply(_sha256),
            "checksum/templates": _sha256("".join(f"{k}\n{v}" for k, v in sorted(templates.items()))),
        }
        if certificates is not None:
            annotations["checksum/webhook-cert"] = certificates.cert_pem.apply(_sha256)

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=DEPLOYMENT_NAME, namespace=args.namespace, labels=labels
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # One instance: the controller has no leader election, two would create every API twice. Recreate
                # keeps it at one during rollouts too (the webhook's failurePolicy covers the gap).
                replicas=1,
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=SELECTOR),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=annotations),
                    spec=self._pod_spec(args, config_map, templates_map, account, certificates),
                ),
            ),
            opts=child,
        )
        self.deployment_name = object_name(deployment, DEPLOYMENT_NAME)

        if certificates is not None:
            webhook = SidecarInjectorWebhook(
                f"{name}-webhook",
                SidecarInjectorWebhookArgs(
                    namespace=args.namespace,
                    settings=settings.webhook,
                    selector=SELECTOR,
                    target_port=PORT_NAME,
                    ca_bundle=certificates.ca_bundle,
                    labels=labels,
                    wait_for=[deployment],
                ),
                opts=child,
            )
            self.webhook_service_host = webhook.service_host
            self.webhook_ca_pem = certificates.ca_cert_pem
            self.webhook_cert_expires_at = certificates.expires_at
        self.register_outputs(
            {
                "deployment_name": self.deployment_name,
                "webhook_service_host": self.webhook_service_host,
                "webhook_ca_pem": self.webhook_ca_pem,
            }
        )

    def _rbac(
        self,
        name: str,
        args: IngressControllerArgs,
        labels: Mapping[str, str],
        account: k8s.core.v1.ServiceAccount,
        child: pulumi.ResourceOptions,
    ) -> None:
        subject = k8s.rbac.v1.SubjectArgs(
            kind="ServiceAccount",
            name=object_name(account, SERVICE_ACCOUNT_NAME),
            namespace=args.namespace,
        )
        if not args.settings.watch_namespaces:
            role_name = pulumi.Output.concat(CLUSTER_ROLE_PREFIX, args.namespace)
            role = k8s.rbac.v1.ClusterRole(
                f"{name}-cluster-role",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=role_name, labels=dict(labels)),
                rules=controller_rules(),
                opts=child,
            )
            k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-cluster-role-binding",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=role_name, labels=dict(labels)),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io",
                    kind="ClusterRole",
                    name=object_name(role, role_name),
                ),
                subjects=[subject],
                opts=child,
            )
            return
        # Informers per watched namespace (informers.WithNamespace): namespaced Roles are enough.
        for watched in args.settings.watch_namespaces:
            namespaced_role = k8s.rbac.v1.Role(
                f"{name}-role-{watched}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ROLE_NAME, namespace=watched, labels=dict(labels)),
                rules=controller_rules(),
                opts=child,
            )
            k8s.rbac.v1.RoleBinding(
                f"{name}-role-binding-{watched}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ROLE_NAME, namespace=watched, labels=dict(labels)),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io",
                    kind="Role",
                    name=object_name(namespaced_role, ROLE_NAME),
                ),
                subjects=[subject],
                opts=child,
            )

    @staticmethod
    def _pod_spec(
        args: IngressControllerArgs,
        config_map: k8s.core.v1.ConfigMap,
        templates_map: k8s.core.v1.ConfigMap,
        account: k8s.core.v1.ServiceAccount,
        certificates: WebhookCertificates | None,
    ) -> k8s.core.v1.PodSpecArgs:
        settings = args.settings

        volumes = [
            k8s.core.v1.VolumeArgs(
                name="config",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                    name=object_name(config_map, CONFIG_MAP_NAME)
                ),
            ),
            k8s.core.v1.VolumeArgs(
                name="templates",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                    name=object_name(templates_map, TEMPLATES_CONFIG_MAP_NAME)
                ),
            ),
        ]
        mounts = [
            k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="templates", mount_path=TEMPLATES_DIR, read_only=True),
        ]
        if certificates is not None:
            volumes.append(
                k8s.core.v1.VolumeArgs(
                    name="webhook-certs",
                    # 0440 + fsGroup: readable by the container's group, by no one else.
                    secret=k8s.core.v1.SecretVolumeSourceArgs(
                        secret_name=certificates.secret_name, default_mode=0o440
                    ),
                )
            )
            mounts.append(
                k8s.core.v1.VolumeMountArgs(name="webhook-certs", mount_path=CERTS_DIR, read_only=True)
            )

        port = k8s.core.v1.TCPSocketActionArgs(port=PORT_NAME)
        resources = container_resources(settings.resources)
        container = k8s.core.v1.ContainerArgs(
            name=NAME,
            image=f"{settings.image}:{settings.tag}",
            image_pull_policy="IfNotPresent",
            # The image's entrypoint is ./tyk-k8s. `start` first: main() runs Go's flag.Parse, which stops at the
            # first non-flag argument but would exit on a leading --config it doesn't know.
            args=["start", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
            env=[
                k8s.core.v1.EnvVarArgs(
                    name=SECRET_ENV,
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                            name=args.api_secret_name, key=API_SECRET_KEY
                        )
                    ),
                )
            ],
            ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=SERVER_PORT, protocol="TCP")],
            # The port opens once the Ingress informer has synced (cmd/start.go): up to 5 minutes on a big cluster.
            startup_probe=k8s.core.v1.ProbeArgs(tcp_socket=port, period_seconds=5, failure_threshold=60),
            readiness_probe=k8s.core.v1.ProbeArgs(tcp_socket=port, period_seconds=10, failure_threshold=3),
            liveness_probe=k8s.core.v1.ProbeArgs(tcp_socket=port, period_seconds=20, failure_threshold=3),
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests=resources.get("requests"), limits=resources.get("limits")
            ),
            security_context=k8s.core.v1.SecurityContextArgs(
                run_as_non_root=True,
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            ),
            volume_mounts=mounts,
        )
        return k8s.core.v1.PodSpecArgs(
            service_account_name=object_name(account, SERVICE_ACCOUNT_NAME),
            automount_service_account_token=True,
            # No service environment variables: viper reads every TK8S_* variable and ingress.go TYK_K8S_KUBECONF.
            enable_service_links=False,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=RUN_AS,
                run_as_group=RUN_AS,
                fs_group=RUN_AS,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            containers=[container],
            volumes=volumes,
        )
