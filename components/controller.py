"""The project's ingress controller (`python -m tyk_controller`) deployed next to the gateways.

What the component declares, and why each piece looks the way it does:

- RBAC from `tyk_controller.rbac`, the rules the runtime's tests prove it needs and nothing more:
  `WATCHED_NAMESPACE_RULES` as a Role in each `watchNamespaces` entry (Ingresses, their Services and TLS
  Secrets, Events), or in a ClusterRole only when every namespace is watched; `OWN_NAMESPACE_RULES` as a Role
  in the controller's namespace (leader Lease, the publish Service, Events); `CLUSTER_RULES` (IngressClasses)
  in a ClusterRole. Secrets are therefore readable only where Ingresses are watched.
- The config file is `ControllerConfig(...).model_dump_json(by_alias=True)`: the same model the controller
  validates at start, so a field the controller doesn't know fails here, at preview. No secret in it: the
  gateway's admin secret arrives as `TYK_CONTROLLER_GATEWAY_SECRET` from the gateway's own Secret.
- The templates ConfigMap holds `ingress_templates/` (partial API definitions), validated at plan time.
- The Deployment passes the restricted Pod Security Standard (non-root, read-only root filesystem, no
  capabilities, RuntimeDefault seccomp), gets its identity from the downward API (`POD_NAME`/`POD_NAMESPACE`
  for the leader Lease and Events), and is probed on the controller's health port: readiness `/readyz` (a
  leader or standby that reaches Kubernetes and the gateway), liveness `/healthz`. Config and templates are
  read once at start, so their hashes are pod annotations: a change rolls the pods.
- With more than one replica: leader election (one writer), spread over nodes, a PodDisruptionBudget.
- The IngressClass the controller serves (`spec.controller` = `ControllerConfig.controller_name`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.settings import ControllerSettings, Resources
from components.webhook import (
    SidecarInjectorWebhook,
    SidecarInjectorWebhookArgs,
    WebhookCertificates,
    WebhookCertificatesArgs,
    object_name,
)
from tyk_controller import rbac
from tyk_controller.config import (
    CONFIG_ENV_VAR,
    POD_NAME_ENV_VAR,
    POD_NAMESPACE_ENV_VAR,
    SECRET_ENV_VAR,
    ControllerConfig,
    LeaderElection,
    WebhookServer,
)
from tyk_controller.templates import SUFFIXES, load_templates

NAME = "tyk-controller"
SERVICE_ACCOUNT_NAME = NAME
DEPLOYMENT_NAME = NAME
CONFIG_MAP_NAME = f"{NAME}-config"
TEMPLATES_CONFIG_MAP_NAME = f"{NAME}-templates"
OWN_ROLE_NAME = NAME
WATCH_ROLE_NAME = f"{NAME}-watch"
"""Role name in each watched namespace (distinct from OWN_ROLE_NAME: the own namespace may be watched too)."""
CLUSTER_ROLE_PREFIX = f"{NAME}-"
"""ClusterRole/ClusterRoleBinding names end with the controller's namespace (cluster-scoped, must not collide)."""
PDB_NAME = NAME
CONTROLLER_NAME = ControllerConfig.model_fields["controller_name"].default
"""`spec.controller` of the IngressClass: the name the controller recognises its classes by."""
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"

LABELS = {
    "app.kubernetes.io/name": NAME,
    "app.kubernetes.io/component": "ingress-controller",
    "app.kubernetes.io/part-of": "tyk-aks",
    "app.kubernetes.io/managed-by": "pulumi",
}
SELECTOR = {key: LABELS[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/component")}

CONFIG_DIR = "/etc/tyk-controller/config"
CONFIG_FILE = "config.json"
TEMPLATES_DIR = ControllerConfig.model_fields["templates_dir"].default
WEBHOOK_CERTS_DIR = str(Path(WebhookServer().cert_file).parent)
HEALTH_PORT = ControllerConfig.model_fields["health_port"].default
HEALTH_PORT_NAME = "health"
WEBHOOK_PORT_NAME = "webhook"
API_SECRET_KEY = "APISecret"
RUN_AS = 65532
"""The image's numeric non-root user (Dockerfile `USER`); runAsNonRoot can only verify a numeric user."""

PROJECT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "ingress_templates"
TEMPLATE_SUFFIXES = SUFFIXES
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# checkov findings that are the design, suppressed on the objects themselves (`checkov.io/skipN`) with the reason.
DEPLOYMENT_CHECKOV_SKIPS = {
    "CKV_K8S_35": "the controller reads the gateway admin secret from TYK_CONTROLLER_GATEWAY_SECRET (its contract)",
    "CKV_K8S_38": "the controller talks to the Kubernetes API with this service account's token",
}
DEFAULT_NAMESPACE_CHECKOV_SKIPS = {
    "CKV_K8S_21": "RBAC for the Ingresses the stack serves from the default namespace goes where they are",
}

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}


# --- pure helpers (tested directly) --------------------------------------------------------------------------


def template_files(directory: Path) -> dict[str, str]:
    """The templates ConfigMap's data: every template file of `directory` by file name, validated.

    Raises ValueError naming the file for a name that can't be a ConfigMap key or a file the controller would
    not read, and for a template the controller's own loader refuses (`tyk_controller.templates`).
    """
    if not directory.is_dir():
        return {}
    files: dict[str, str] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.name.startswith("."):
            continue
        if path.suffix not in TEMPLATE_SUFFIXES or not _CONFIG_MAP_KEY.match(path.name):
            raise ValueError(
                f"{directory.name}/{path.name}: template files must be named <name>.yaml, .yml or .json "
                "(letters, digits, -._)"
            )
        files[path.name] = path.read_text(encoding="utf-8")
    _validate_with_controller(directory, files)
    return files


def _validate_with_controller(directory: Path, files: Mapping[str, str]) -> None:
    """Run the controller's own loader on the exact folder shipped: what it refuses at start fails the plan."""
    if files:
        load_templates(directory)


def controller_config(
    settings: ControllerSettings,
    *,
    gateway_url: str,
    publish_service: str | None,
    webhook: bool,
    extra: Mapping[str, Any] | None = None,
) -> ControllerConfig:
    """The controller's config file as the controller's own model (validated here, at plan time)."""
    fields: dict[str, Any] = {
        "gateway_url": gateway_url,
        "org_id": settings.org_id,
        "ingress_class": settings.ingress_class,
        "controller_name": CONTROLLER_NAME,
        "watch_namespaces": list(settings.watch_namespaces),
        "templates_dir": TEMPLATES_DIR,
        "publish_service": publish_service,
        "resync_seconds": settings.resync_seconds,
        "leader_election": LeaderElection(enabled=settings.leader_election, lease_name=NAME),
        "health_port": HEALTH_PORT,
        "webhook": WebhookServer() if webhook else None,
    }
    overlap = sorted(set(fields) & set(extra or {}))
    if overlap:
        raise ValueError(f"controller config fields {overlap} are set by the deployment, not by a feature")
    return ControllerConfig(**fields, **dict(extra or {}))


def render_config(config: ControllerConfig) -> str:
    return config.model_dump_json(by_alias=True, indent=2)


def policy_rules(rules: Iterable[rbac.Rule]) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """Kubernetes PolicyRules, one per `tyk_controller.rbac.Rule`, nothing added."""
    return [
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=list(rule.api_groups),
            resources=list(rule.resources),
            verbs=list(rule.verbs),
            resource_names=list(rule.resource_names) or None,
        )
        for rule in rules
    ]


def checkov_skips(skips: Mapping[str, str]) -> dict[str, str]:
    """checkov's per-object suppression annotations (`checkov.io/skip1: CHECK_ID=reason`, ...)."""
    return {
        f"checkov.io/skip{i}": f"{check}={reason}"
        for i, (check, reason) in enumerate(sorted(skips.items()), 1)
    }


def container_resources(resources: Resources | None) -> dict[str, dict[str, str]]:
    if resources is None:
        return {kind: dict(values) for kind, values in DEFAULT_RESOURCES.items()}
    result: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        values = {k: v for k, v in getattr(resources, kind).model_dump().items() if v is not None}
        if values:
            result[kind] = values
    return result


def checksum(text: str | None) -> str:
    # None only under mocks that give pulumi-tls no outputs (the engine always returns the PEM).
    return hashlib.sha256((text or "").encode()).hexdigest()


def templates_checksum(files: Mapping[str, str]) -> str:
    return checksum("".join(f"{name}\n{text}\n" for name, text in sorted(files.items())))


# --- component -----------------------------------------------------------------------------------------------


@dataclass
class IngressControllerArgs:
    namespace: pulumi.Input[str]
    settings: ControllerSettings
    gateway_control_url: pulumi.Input[str]
    """The gateway's control API (/tyk/*), e.g. http://gateway-control-svc-tyk-gateway.tyk.svc:9696."""
    api_secret_name: pulumi.Input[str]
    """Secret in `namespace` whose key `APISecret` is the gateway's admin secret."""
    image: pulumi.Input[str]
    """The controller image by digest (`<repository>@sha256:...`)."""
    publish_service: pulumi.Input[str] | None = None
    """`<namespace>/<name>` of the gateways' entry Service, whose address the Ingresses report."""
    templates_dir: Path = PROJECT_TEMPLATES_DIR
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels for every object (the selector labels are fixed)."""
    wait_for: list[pulumi.Resource] = field(default_factory=list)
    """What the pods need first (e.g. the registry pull permission)."""
    # Hook points for features running in the controller process (the mesh): more config, env and grants.
    config_fields: Mapping[str, Any] = field(default_factory=dict)
    """Extra `ControllerConfig` fields (validated by the model like the rest), e.g. `{"mesh": MeshConfig(...)}`;
    a value may be an Output (the mesh's, while the sidecar image's digest is)."""
    extra_env: list[k8s.core.v1.EnvVarArgs] = field(default_factory=list)
    """Extra container environment (e.g. a secret the feature needs, by secretKeyRef)."""
    extra_cluster_rules: tuple[rbac.Rule, ...] = ()
    """Extra rules for the controller's ClusterRole (the feature's own `tyk_controller` rules, as data)."""


class IngressController(pulumi.ComponentResource):
    """ServiceAccount, RBAC, config and templates ConfigMaps, the Deployment, its PDB, the IngressClass and,
    if enabled, the mesh webhook. With `settings.enabled` false the component declares nothing."""

    deployment_name: pulumi.Output[str | None]
    """Name of the controller's Deployment (None when disabled)."""
    ingress_class_name: pulumi.Output[str | None]
    """The IngressClass the controller serves (None when disabled)."""
    webhook_service_host: pulumi.Output[str | None]
    """`<service>.<namespace>.svc` the API server calls for admission (None without the webhook)."""
    webhook_ca_pem: pulumi.Output[str | None]
    """The webhook CA certificate (None without the webhook)."""
    webhook_cert_expires_at: pulumi.Output[str | None]
    """When the webhook's serving certificate expires (None without the webhook)."""

    def __init__(
        self, name: str, args: IngressControllerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:IngressController", name, None, opts)
        settings = args.settings
        self.deployment_name = pulumi.Output.from_input(None)
        self.ingress_class_name = pulumi.Output.from_input(None)
        self.webhook_service_host = pulumi.Output.from_input(None)
        self.webhook_ca_pem = pulumi.Output.from_input(None)
        self.webhook_cert_expires_at = pulumi.Output.from_input(None)
        if not settings.enabled:
            self.register_outputs({})
            return
        templates = template_files(args.templates_dir)  # before any resource: a bad file fails the preview
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, **LABELS}
        webhook_enabled = settings.webhook.enabled

        ingress_class = k8s.networking.v1.IngressClass(
            f"{name}-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=settings.ingress_class,
                labels=labels,
                annotations={DEFAULT_CLASS_ANNOTATION: "true"} if settings.default_class else None,
            ),
            spec=k8s.networking.v1.IngressClassSpecArgs(controller=CONTROLLER_NAME),
            opts=child,
        )
        self.ingress_class_name = object_name(ingress_class, settings.ingress_class)

        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SERVICE_ACCOUNT_NAME, namespace=args.namespace, labels=labels
            ),
            # The token is mounted in the pod spec only (the controller uses in-cluster config).
            automount_service_account_token=False,
            opts=child,
        )
        grants = self._rbac(name, args, labels, account, child)

        config_text = pulumi.Output.all(
            args.gateway_control_url, args.publish_service, dict(args.config_fields)
        ).apply(
            lambda parts: render_config(
                controller_config(
                    settings,
                    gateway_url=parts[0],
                    publish_service=parts[1],
                    webhook=webhook_enabled,
                    extra=parts[2],
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

        annotations: dict[str, pulumi.Input[str]] = {
            "checksum/config": config_text.apply(checksum),
            "checksum/templates": templates_checksum(templates),
        }
        # No checksum of the webhook certificate: the server reloads a renewed pair itself (no pod restart).

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=DEPLOYMENT_NAME,
                namespace=args.namespace,
                labels=labels,
                annotations=checkov_skips(DEPLOYMENT_CHECKOV_SKIPS),
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=settings.replicas,
                strategy=_strategy(settings),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=SELECTOR),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=annotations),
                    spec=self._pod_spec(args, config_map, templates_map, account, certificates),
                ),
            ),
            # The pod can only run once it may read what it watches and pull its image.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*grants, ingress_class, *args.wait_for]),
        )
        self.deployment_name = object_name(deployment, DEPLOYMENT_NAME)

        if settings.replicas > 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=PDB_NAME, namespace=args.namespace, labels=labels),
                # One pod may go at a time: a drain never takes the leader and every standby at once.
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=SELECTOR)
                ),
                opts=child,
            )

        if certificates is not None:
            webhook = SidecarInjectorWebhook(
                f"{name}-webhook",
                SidecarInjectorWebhookArgs(
                    namespace=args.namespace,
                    settings=settings.webhook,
                    selector=SELECTOR,
                    target_port=WEBHOOK_PORT_NAME,
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
                "ingress_class_name": self.ingress_class_name,
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
    ) -> list[pulumi.Resource]:
        """The Roles/ClusterRoles and their bindings; returns the bindings (the pod waits for them)."""
        subject = k8s.rbac.v1.SubjectArgs(
            kind="ServiceAccount", name=object_name(account, SERVICE_ACCOUNT_NAME), namespace=args.namespace
        )
        watch_all = not args.settings.watch_namespaces
        cluster_role_name = pulumi.Output.concat(CLUSTER_ROLE_PREFIX, args.namespace)
        cluster_rules = [
            *rbac.CLUSTER_RULES,
            *(rbac.WATCHED_NAMESPACE_RULES if watch_all else ()),
            *args.extra_cluster_rules,
        ]
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-cluster-role",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=cluster_role_name, labels=dict(labels)),
            rules=policy_rules(cluster_rules),
            opts=child,
        )
        bindings: list[pulumi.Resource] = [
            k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-cluster-role-binding",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=cluster_role_name, labels=dict(labels)),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io",
                    kind="ClusterRole",
                    name=object_name(cluster_role, cluster_role_name),
                ),
                subjects=[subject],
                opts=child,
            )
        ]
        roles: list[tuple[str, pulumi.Input[str], str, tuple[rbac.Rule, ...]]] = [
            ("own", args.namespace, OWN_ROLE_NAME, rbac.OWN_NAMESPACE_RULES)
        ]
        roles += [
            (f"watch-{watched}", watched, WATCH_ROLE_NAME, rbac.WATCHED_NAMESPACE_RULES)
            for watched in args.settings.watch_namespaces
        ]
        for suffix, namespace, role_name, rules in roles:
            annotations = checkov_skips(DEFAULT_NAMESPACE_CHECKOV_SKIPS) if namespace == "default" else None
            role = k8s.rbac.v1.Role(
                f"{name}-role-{suffix}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=role_name, namespace=namespace, labels=dict(labels), annotations=annotations
                ),
                rules=policy_rules(rules),
                opts=child,
            )
            bindings.append(
                k8s.rbac.v1.RoleBinding(
                    f"{name}-role-binding-{suffix}",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=role_name, namespace=namespace, labels=dict(labels), annotations=annotations
                    ),
                    role_ref=k8s.rbac.v1.RoleRefArgs(
                        api_group="rbac.authorization.k8s.io", kind="Role", name=object_name(role, role_name)
                    ),
                    subjects=[subject],
                    opts=child,
                )
            )
        return bindings

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
            # The root filesystem is read-only; Python and the HTTP client may still want a temp dir.
            k8s.core.v1.VolumeArgs(
                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="16Mi")
            ),
        ]
        mounts = [
            k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="templates", mount_path=TEMPLATES_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        ]
        ports = [
            k8s.core.v1.ContainerPortArgs(name=HEALTH_PORT_NAME, container_port=HEALTH_PORT, protocol="TCP")
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
                k8s.core.v1.VolumeMountArgs(
                    name="webhook-certs", mount_path=WEBHOOK_CERTS_DIR, read_only=True
                )
            )
            ports.append(
                k8s.core.v1.ContainerPortArgs(
                    name=WEBHOOK_PORT_NAME, container_port=WebhookServer().port, protocol="TCP"
                )
            )

        def field_env(name: str, path: str) -> k8s.core.v1.EnvVarArgs:
            return k8s.core.v1.EnvVarArgs(
                name=name,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path=path)
                ),
            )

        env = [
            k8s.core.v1.EnvVarArgs(name=CONFIG_ENV_VAR, value=f"{CONFIG_DIR}/{CONFIG_FILE}"),
            k8s.core.v1.EnvVarArgs(
                name=SECRET_ENV_VAR,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                        name=args.api_secret_name, key=API_SECRET_KEY
                    )
                ),
            ),
            field_env(POD_NAME_ENV_VAR, "metadata.name"),
            field_env(POD_NAMESPACE_ENV_VAR, "metadata.namespace"),
            *args.extra_env,
        ]

        def probe(path: str, period: int, failures: int) -> k8s.core.v1.ProbeArgs:
            return k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=HEALTH_PORT_NAME),
                period_seconds=period,
                timeout_seconds=3,
                failure_threshold=failures,
            )

        resources = container_resources(settings.resources)
        container = k8s.core.v1.ContainerArgs(
            name=NAME,
            image=args.image,
            image_pull_policy="IfNotPresent",
            env=env,
            ports=ports,
            # Liveness starts after the process serves /healthz (the first list of a large cluster can take a while).
            startup_probe=probe("/healthz", 2, 60),
            readiness_probe=probe("/readyz", 5, 3),
            liveness_probe=probe("/healthz", 10, 3),
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests=resources.get("requests"), limits=resources.get("limits")
            ),
            security_context=k8s.core.v1.SecurityContextArgs(
                run_as_non_root=True,
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            volume_mounts=mounts,
        )
        spread = (
            [
                k8s.core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key="kubernetes.io/hostname",
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=SELECTOR),
                )
            ]
            if settings.replicas > 1
            else None
        )
        return k8s.core.v1.PodSpecArgs(
            service_account_name=object_name(account, SERVICE_ACCOUNT_NAME),
            automount_service_account_token=True,
            enable_service_links=False,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=RUN_AS,
                run_as_group=RUN_AS,
                fs_group=RUN_AS,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            topology_spread_constraints=spread,
            containers=[container],
            volumes=volumes,
        )


def _strategy(settings: ControllerSettings) -> k8s.apps.v1.DeploymentStrategyArgs:
    if settings.leader_election:
        # A new pod waits for the Lease (it is a standby until the old leader goes): rolling is safe.
        return k8s.apps.v1.DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
        )
    # Without election two pods would both write to the gateway: never more than one, even during a rollout.
    return k8s.apps.v1.DeploymentStrategyArgs(type="Recreate")
