"""The tyk-k8s sidecar injector's admission webhook: its CA and serving certificate, Service and configuration.

Read in TykTechnologies/tyk-k8s (archived), which is what the API server ends up talking to:

- `cmd/start.go`: the controller serves the webhook at `POST /inject` on `Server.addr`, with TLS from
  `Server.certFile`/`Server.keyFile` (`webserver/server.go`; plain HTTP when no cert file is set).
- `injector/injector.go`: `mutate` handles only the kinds `Pod` and `Service`; any other kind (a Deployment)
  gets `allowed: false` ("type not supported"), i.e. the request is *denied*. Opt-in is the annotation
  `injector.tyk.io/inject` (`y`/`yes`/`true`/`on`) on the Pod (a Deployment's pod template) or Service; the
  Pod needs an `app` label; `injector.tyk.io/route` (optional) names the mesh route. It speaks
  the beta AdmissionReview version only and answers without apiVersion/kind, which the API server
  accepts for beta reviews but not for v1 ones. kube-system and kube-public are skipped by the handler too.

Certificates come from pulumi-tls (no shell scripts, no CertificateSigningRequest round trip): a CA and a serving
certificate for `<service>.<namespace>.svc`, the name the API server dials and verifies for a service reference.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.settings import WebhookSettings

SERVICE_NAME = "tyk-k8s-webhook"
TLS_SECRET_NAME = "tyk-k8s-webhook-tls"
CONFIGURATION_PREFIX = "tyk-k8s-sidecar-injector-"
"""The MutatingWebhookConfiguration is cluster-scoped: its name ends with the controller's namespace."""
WEBHOOK_NAME = "sidecar-injector.tyk.io"
WEBHOOK_PATH = "/inject"
SERVICE_PORT = 443

INJECT_ANNOTATION = "injector.tyk.io/inject"
ROUTE_ANNOTATION = "injector.tyk.io/route"
OPT_IN_LABEL = INJECT_ANNOTATION
"""Label the API server filters on before it calls the webhook (see `_object_selector`); value `true`."""
OPT_IN_VALUE = "true"
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
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
    """The serving certificate (PEM); its hash restarts the controller when it is renewed."""

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
                common_name=pulumi.Output.concat("tyk-k8s webhook CA (", args.namespace, ")"),
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
            }
        )


def _object_selector(require_label: bool) -> k8s.meta.v1.LabelSelectorArgs | None:
    # An objectSelector sees labels only, and the controller's opt-in is an annotation that it checks itself
    # (injector.mutationRequired). Requiring the label as well means the API server never even calls the
    # webhook for a workload that didn't opt in: an outage or a slow webhook can't touch those, and neither can
    # the handler's own errors, which it returns as denials (allowed: false) that failurePolicy doesn't cover.
    # An opted-in workload therefore carries both: label `injector.tyk.io/inject: "true"` (the filter) and the
    # annotation of the same name (what the controller acts on).
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
            # The handler decodes and answers beta AdmissionReviews only (injector.Serve).
            admission_review_versions=["v1beta1"],
            client_config=k8s.admissionregistration.v1.WebhookClientConfigArgs(
                ca_bundle=args.ca_bundle,
                service=k8s.admissionregistration.v1.ServiceReferenceArgs(
                    name=object_name(service, args.service_name),
                    namespace=args.namespace,
                    path=WEBHOOK_PATH,
                    port=SERVICE_PORT,
                ),
            ),
            # Pods, not Deployments: the handler only patches Pods (the pod template's annotations reach it on
            # the ReplicaSet's pod creation) and denies every other kind. CREATE only: it replaces /spec, which
            # a Pod update may not change. Services (which it rewrites to the sidecar's port 8080) are left out
            # while no sidecar container is configured: the rewrite would cut an opted-in Service off its pods.
            rules=[
                k8s.admissionregistration.v1.RuleWithOperationsArgs(
                    operations=["CREATE"],
                    api_groups=[""],
                    api_versions=["v1"],
                    resources=["pods"],
                    scope="Namespaced",
                )
            ],
            # `Ignore` (the default) lets Pods be created without the sidecar while the controller is down or
            # being replaced (its Deployment uses Recreate); `Fail` would block every opted-in Pod meanwhile.
            failure_policy=settings.failure_policy,
            # admissionregistration/v1 allows only None/NoneOnDryRun. The handler writes nothing in the cluster;
            # with `Injector.createRoutes` (off here) it would create gateway routes even on dry runs.
            side_effects="None",
            timeout_seconds=settings.timeout_seconds,
            match_policy="Equivalent",
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
