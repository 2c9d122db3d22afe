"""The mesh's sidecar-injector webhook: its CA and serving certificate, Service and MutatingWebhookConfiguration.

The webhook is served by the project's controller image (`tyk_controller.mesh.server`, every replica) over
TLS: `POST /mutate-pods` decodes and answers `admission.k8s.io/v1` AdmissionReviews for Pod CREATE and
never denies (a bad opt-in is an admission warning plus an Event). docs/mesh.md has the design.

Certificates come from pulumi-tls (no shell scripts, no CertificateSigningRequest round trip): a CA and a serving
certificate for `<service>.<namespace>.svc`, the name the API server dials and verifies for a service reference.
The controller re-reads the mounted pair when kubelet updates the Secret, so a renewal needs no restart; the
stack exports when the serving certificate expires.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.settings import WebhookSettings
from tyk_controller.config import WebhookServer
from tyk_controller.mesh.config import CLUSTER_RULES as MESH_CLUSTER_RULES
from tyk_controller.mesh.config import (
    INJECT_ANNOTATION,
    INJECT_LABEL,
    REDIS_PASSWORD_ENV,
    ROUTE_ANNOTATION,
    SYSTEM_NAMESPACES,
    MeshConfig,
    SidecarResources,
)
from tyk_controller.rbac import Rule

__all__ = ["INJECT_ANNOTATION", "ROUTE_ANNOTATION"]

SERVICE_NAME = "tyk-controller-webhook"
TLS_SECRET_NAME = "tyk-controller-webhook-tls"
CONFIGURATION_PREFIX = "tyk-mesh-injector-"
"""The MutatingWebhookConfiguration is cluster-scoped: its name ends with the controller's namespace."""
WEBHOOK_NAME = "injector.mesh.tyk.io"
SERVER = WebhookServer()
"""Where the controller serves the webhook: port, path, and the mounted certificate files."""
WEBHOOK_PATH = SERVER.path
CERTS_DIR = str(PurePosixPath(SERVER.cert_file).parent)
"""Mount the TLS Secret here (its `tls.crt`/`tls.key` are the files `SERVER` names)."""
SERVICE_PORT = 443

OPT_IN_LABEL = INJECT_LABEL
"""Label the API server filters on before it calls the webhook (see `_object_selector`); value `true`."""
OPT_IN_VALUE = "true"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace (Kubernetes >= 1.21) and not editable: safe to select on."""

# ECDSA P-256: accepted by the API server's Go TLS client, and an ECDSA key only signs (no key_encipherment).
KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
SERVING_USES = ["digital_signature", "server_auth"]


def object_name(resource: Any, fallback: pulumi.Input[str]) -> pulumi.Output[str]:
    """`metadata.name` of a Kubernetes resource as an Output, so that using the name is also a dependency."""
    # Output types are dicts (typed or plain, depending on how the value arrived): read the key.
    return pulumi.Output.all(resource.metadata, fallback).apply(
        lambda parts: (parts[0] or {}).get("name") or parts[1]
    )


def mesh_config(
    settings: WebhookSettings,
    *,
    sidecar_image: str,
    redis_addrs: Sequence[str],
    org_id: str,
    redis_tls: bool = False,
    redis_cluster: bool = False,
) -> MeshConfig:
    """The controller config's `mesh` section: the sidecar is the gateways' own image (same version and digest),
    on their Redis (the gateway refuses to run without one)."""
    resources = settings.sidecar_resources
    return MeshConfig(
        sidecar_image=sidecar_image,
        redis_addrs=list(redis_addrs),
        redis_tls=redis_tls,
        redis_cluster=redis_cluster,
        org_id=org_id,
        reload_delay_seconds=settings.reload_delay_seconds,
        resources=SidecarResources(
            cpu_request=resources.cpu_request,
            memory_request=resources.memory_request,
            memory_limit=resources.memory_limit,
        ),
    )


def qualified_address(address: str, namespace: str) -> str:
    """`redis-master:6379` -> `redis-master.<namespace>.svc:6379`: resolvable from any namespace. Addresses
    that already have a dot (a FQDN, an IP, a managed Redis) are left alone."""
    host, _, port = address.rpartition(":")
    if not host:
        host, port = address, ""
    if "." in host or host.startswith("["):
        return address
    return f"{host}.{namespace}.svc" + (f":{port}" if port else "")


@dataclass(frozen=True)
class MeshHooks:
    """What the mesh adds to the controller (through `IngressControllerArgs`' hook points)."""

    config_fields: Mapping[str, Any] = field(default_factory=dict)
    """`{"mesh": MeshConfig}` for the controller's config file (an Output while the image's digest is)."""
    env: list[k8s.core.v1.EnvVarArgs] = field(default_factory=list)
    """The gateways' Redis password (copied into meshed namespaces' `tyk-mesh` Secret)."""
    cluster_rules: tuple[Rule, ...] = ()
    """The routes reconciler's RBAC (`tyk_controller.mesh.config.CLUSTER_RULES`)."""


def mesh_hooks(
    settings: WebhookSettings,
    *,
    namespace: str,
    sidecar_image: pulumi.Input[str],
    redis_addrs: Sequence[str],
    redis_password_secret: tuple[pulumi.Input[str], str],
    org_id: str,
    redis_tls: bool = False,
    redis_cluster: bool = False,
) -> MeshHooks:
    """The mesh's config section, environment and grants; nothing when the webhook is off."""
    if not settings.enabled:
        return MeshHooks()
    if not redis_addrs:
        raise ValueError("controller.webhook: the mesh sidecars need the gateways' Redis (no Redis address)")
    secret_name, secret_key = redis_password_secret
    # Sidecars run in other namespaces: a short Service name must carry the namespace.
    addrs = [qualified_address(addr, namespace) for addr in redis_addrs]
    mesh = pulumi.Output.from_input(sidecar_image).apply(
        lambda image: mesh_config(
            settings,
            sidecar_image=image,
            redis_addrs=addrs,
            org_id=org_id,
            redis_tls=redis_tls,
            redis_cluster=redis_cluster,
        )
    )
    password = k8s.core.v1.EnvVarArgs(
        name=REDIS_PASSWORD_ENV,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret_name, key=secret_key)
        ),
    )
    return MeshHooks({"mesh": mesh}, [password], MESH_CLUSTER_RULES)


def service_dns_name(service_name: str, namespace: str) -> str:
    """The host name the API server verifies for a webhook `service` reference (`<svc>.<ns>.svc`)."""
    return f"{service_name}.{namespace}.svc"


def renewal_hours(validity_hours: int) -> tuple[int, int, int]:
    """(CA validity, CA early renewal, serving early renewal) for a serving validity, in hours.

    The CA lives twice as long as the serving certificate and is renewed once less than one serving validity
    is left, so a serving certificate never outlives its CA, and renewing the serving certificate alone (the
    common case) keeps the caBundle unchanged. The serving certificate becomes renewable in its last quarter:
    a `pulumi up` in that window issues a new one (pulumi-tls plans a replacement once `ready_for_renewal`).
    """
    return 2 * validity_hours, validity_hours, max(1, validity_hours // 4)


@dataclass
class WebhookCertificatesArgs:
    namespace: pulumi.Input[str]
    validity_hours: int
    """Validity of the serving certificate (the CA gets twice that, see `renewal_hours`)."""
    service_name: str = SERVICE_NAME
    secret_name: str = TLS_SECRET_NAME
    labels: Mapping[str, str] = field(default_factory=dict)


class WebhookCertificates(pulumi.ComponentResource):
    """A private CA, the webhook's serving certificate signed by it, and a `kubernetes.io/tls` Secret.

    The Secret holds `tls.crt`, `tls.key` (the serving pair the controller loads) and `ca.crt`. Both private keys
    are Pulumi secrets from pulumi-tls on; the Secret's data is secret-wrapped as well.
    """

    dns_name: pulumi.Output[str]
    """`<service>.<namespace>.svc`: the serving certificate's subject and only SAN."""
    secret_name: pulumi.Output[str]
    """The TLS Secret to mount into the controller."""
    ca_cert_pem: pulumi.Output[str]
    """The CA certificate (PEM), i.e. what the webhook configuration's caBundle carries."""
    ca_bundle: pulumi.Output[str]
    """`ca_cert_pem` base64-encoded, as `clientConfig.caBundle` expects it."""
    cert_pem: pulumi.Output[str]
    """The serving certificate (PEM)."""
    expires_at: pulumi.Output[str]
    """RFC 3339 time the serving certificate expires (exported by the stack)."""

    def __init__(
        self, name: str, args: WebhookCertificatesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:WebhookCertificates", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_validity, ca_early_renewal, serving_early_renewal = renewal_hours(args.validity_hours)
        self.dns_name = pulumi.Output.from_input(args.namespace).apply(
            lambda namespace: service_dns_name(args.service_name, namespace)
        )

        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
        ca_cert = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=pulumi.Output.concat("tyk-aks mesh webhook CA (", args.namespace, ")"),
                organization="tyk-aks",
            ),
            allowed_uses=CA_USES,
            validity_period_hours=ca_validity,
            early_renewal_hours=ca_early_renewal,
            opts=child,
        )
        key = tls.PrivateKey(f"{name}-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
        request = tls.CertRequest(
            f"{name}-request",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=self.dns_name, organization="tyk-aks"),
            dns_names=[self.dns_name],
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca_cert.cert_pem,
            allowed_uses=SERVING_USES,
            validity_period_hours=args.validity_hours,
            early_renewal_hours=serving_early_renewal,
            opts=child,
        )
        self.ca_cert_pem = ca_cert.cert_pem
        self.cert_pem = cert.cert_pem
        self.expires_at = cert.validity_end_time
        self.ca_bundle = ca_cert.cert_pem.apply(lambda pem: base64.b64encode((pem or "").encode()).decode())

        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.secret_name, namespace=args.namespace, labels=dict(args.labels)
            ),
            type="kubernetes.io/tls",
            string_data=pulumi.Output.secret(
                {"tls.crt": cert.cert_pem, "tls.key": key.private_key_pem, "ca.crt": ca_cert.cert_pem}
            ),
            opts=child,
        )
        self.secret_name = object_name(secret, args.secret_name)
        self.register_outputs(
            {
                "dns_name": self.dns_name,
                "secret_name": self.secret_name,
                "ca_cert_pem": self.ca_cert_pem,
                "ca_bundle": self.ca_bundle,
                "cert_pem": self.cert_pem,
                "expires_at": self.expires_at,
            }
        )


def _object_selector(require_label: bool) -> k8s.meta.v1.LabelSelectorArgs | None:
    # An objectSelector sees labels only: requiring the opt-in label means the API server never even calls the
    # webhook for a pod that didn't opt in, so an outage or a slow webhook can't touch those pods.
    if not require_label:
        return None
    return k8s.meta.v1.LabelSelectorArgs(match_labels={OPT_IN_LABEL: OPT_IN_VALUE})


@dataclass
class SidecarInjectorWebhookArgs:
    namespace: pulumi.Input[str]
    """The controller's namespace: its Service lives there and the webhook never applies to it."""
    settings: WebhookSettings
    selector: Mapping[str, str]
    """Labels of the controller's pods (the Service's selector)."""
    target_port: int | str
    """The controller's webhook container port (number or name)."""
    ca_bundle: pulumi.Input[str]
    """Base64 PEM of the CA that signed the serving certificate (`WebhookCertificates.ca_bundle`)."""
    service_name: str = SERVICE_NAME
    path: str = WEBHOOK_PATH
    labels: Mapping[str, str] = field(default_factory=dict)
    require_opt_in_label: bool = True
    """Also require the opt-in label (objectSelector) before the API server calls the webhook."""
    wait_for: Sequence[pulumi.Resource] = ()
    """Created after these (the controller's Deployment): the configuration appears once something serves it."""


class SidecarInjectorWebhook(pulumi.ComponentResource):
    """The Service in front of the controller's webhook port and the MutatingWebhookConfiguration using it."""

    configuration_name: pulumi.Output[str]
    """Name of the (cluster-scoped) MutatingWebhookConfiguration."""
    service_host: pulumi.Output[str]
    """`<service>.<namespace>.svc`, the host the API server calls."""

    def __init__(
        self, name: str, args: SidecarInjectorWebhookArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:SidecarInjectorWebhook", name, None, opts)
        settings = args.settings
        after = pulumi.ResourceOptions(parent=self, depends_on=list(args.wait_for))

        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.service_name, namespace=args.namespace, labels=dict(args.labels)
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=dict(args.selector),
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="webhook", port=SERVICE_PORT, target_port=args.target_port, protocol="TCP"
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        namespace = pulumi.Output.from_input(args.namespace)
        self.service_host = namespace.apply(lambda ns: service_dns_name(args.service_name, ns))

        webhook = k8s.admissionregistration.v1.MutatingWebhookArgs(
            name=WEBHOOK_NAME,
            # tyk_controller.mesh.server decodes and answers admission.k8s.io/v1 only.
            admission_review_versions=["v1"],
            client_config=k8s.admissionregistration.v1.WebhookClientConfigArgs(
                ca_bundle=args.ca_bundle,
                service=k8s.admissionregistration.v1.ServiceReferenceArgs(
                    name=object_name(service, args.service_name),
                    namespace=args.namespace,
                    path=args.path,
                    port=SERVICE_PORT,
                ),
            ),
            # Pods on CREATE only: a Deployment's pod template reaches the webhook in each Pod it creates, and the
            # patch adds containers and volumes, which a Pod update may not change.
            rules=[
                k8s.admissionregistration.v1.RuleWithOperationsArgs(
                    operations=["CREATE"],
                    api_groups=[""],
                    api_versions=["v1"],
                    resources=["pods"],
                    scope="Namespaced",
                )
            ],
            # `Ignore` (the default): while no controller replica answers, opted-in Pods are created without the
            # sidecar (the routes reconciler then reports them with a NotInjected Event). `Fail` guarantees the
            # sidecar but blocks every opted-in Pod, including during a rollout of the controller itself.
            failure_policy=settings.failure_policy,
            # The handler writes nothing: Events about bad opt-ins come later, from the reconciler.
            side_effects="None",
            timeout_seconds=settings.timeout_seconds,
            match_policy="Equivalent",
            # The handler never patches a Pod that already has the sidecar, so a reinvocation would be a no-op:
            # Never spares the API server the call.
            reinvocation_policy="Never",
            # Never the controller's own namespace (the webhook must not gate its own pods) nor the system ones.
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_expressions=[
                    k8s.meta.v1.LabelSelectorRequirementArgs(
                        key=NAMESPACE_NAME_LABEL,
                        operator="NotIn",
                        values=namespace.apply(lambda ns: [ns, *SYSTEM_NAMESPACES]),
                    )
                ]
            ),
            object_selector=_object_selector(args.require_opt_in_label),
        )
        configuration = k8s.admissionregistration.v1.MutatingWebhookConfiguration(
            f"{name}-configuration",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=pulumi.Output.concat(CONFIGURATION_PREFIX, args.namespace), labels=dict(args.labels)
            ),
            webhooks=[webhook],
            opts=after,
        )
        self.configuration_name = object_name(
            configuration, pulumi.Output.concat(CONFIGURATION_PREFIX, args.namespace)
        )
        self.register_outputs(
            {"configuration_name": self.configuration_name, "service_host": self.service_host}
        )
