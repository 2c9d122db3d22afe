"""The gateways' entry point for Tyk-class Ingresses: a LoadBalancer Service on 80/443 and a default certificate.

What the gateway needs to serve TLS APIs on its own, read in TykTechnologies/tyk (`gateway/proxy_muxer.go`,
`gateway/server.go`, `gateway/cert.go`, `config/config.go`), not taken from docs:

- An API definition with `protocol: https` and `listen_port: N` makes the gateway open a TLS listener on N
  (`proxyMux.setRouter`/`generateListener`); plain-HTTP APIs stay on `listen_port` (8080, the chart's
  `containerPort`). The ingress controller writes TLS Ingress hosts with `ControllerConfig.https_port` (8443).
- `generateListener` refuses every port that `ports_whitelist` doesn't list unless `disable_ports_whitelist`;
  `setupPortsWhitelist` adds only the listen and control ports. So the gateways get
  `TYK_GW_PORTWHITELIST={"https":{"ports":[8443]}}` (the `PortsWhiteList` env decoder takes JSON): the one
  extra port, for https only, instead of switching the check off for every port and protocol.
- `getTLSConfigForClient` serves `http_server_options.ssl_certificates` (certificate-store ids or paths of PEM
  files holding certificate *and* key) as the listener's base certificates, then adds each API's
  `certificates` by their CN/SANs for SNI. The first base certificate answers every other name: that is the
  default certificate, a self-signed one generated here (as ingress-nginx's "fake certificate").
- Before those it loads the deprecated `http_server_options.certificates` files; the `tyk-oss` chart points
  them at `/etc/certs/tyk-gateway/tls.{crt,key}` (`gateway.tls.certificates`), which it mounts only with
  `global.tls.gateway` on. So that list is emptied: no failed key load on every TLS listener.

The Service selects the gateway pods of the `tyk-oss` release (their labels are fixed by the chart) and maps
80 → 8080 and 443 → 8443. The chart's own Ingress for `gateway.hostnames` is left alone: it reaches the same
pods through the chart's ClusterIP Service (see docs/controller-deployment.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.gateway import POD_LABELS, PROXY_PORT
from components.settings import EntryPointSettings

SERVICE_NAME = "tyk-gateway-entry"
DEFAULT_CERT_SECRET_NAME = "tyk-gateway-default-tls"
DEFAULT_CERT_KEY = "default.pem"
DEFAULT_CERT_DIR = "/etc/tyk-gateway/default-tls"
DEFAULT_CERT_VOLUME = "tyk-default-tls"
HTTPS_PORT = 8443
"""The gateways' TLS port for Ingress hosts with `spec.tls` (`ControllerConfig.https_port`)."""
AZURE_INTERNAL_LB = "service.beta.kubernetes.io/azure-load-balancer-internal"
DEFAULT_CERT_VALIDITY_HOURS = 24 * 365
DEFAULT_CERT_COMMON_NAME = "tyk-gateway-default"


def gateway_env(https_port: int = HTTPS_PORT) -> list[dict[str, str]]:
    """The `extraEnvs` that make the gateways open `https_port` for TLS APIs with the default certificate."""
    return [
        {"name": "TYK_GW_PORTWHITELIST", "value": json.dumps({"https": {"ports": [https_port]}})},
        {
            "name": "TYK_GW_HTTPSERVEROPTIONS_SSLCERTIFICATES",
            "value": f"{DEFAULT_CERT_DIR}/{DEFAULT_CERT_KEY}",
        },
    ]


def gateway_volumes() -> list[dict[str, Any]]:
    # 0440 + the chart's pod fsGroup: readable by the gateway's group only.
    return [
        {
            "name": DEFAULT_CERT_VOLUME,
            "secret": {"secretName": DEFAULT_CERT_SECRET_NAME, "defaultMode": 0o440},
        }
    ]


def gateway_volume_mounts() -> list[dict[str, Any]]:
    return [{"name": DEFAULT_CERT_VOLUME, "mountPath": DEFAULT_CERT_DIR, "readOnly": True}]


def service_annotations(settings: EntryPointSettings) -> dict[str, str]:
    annotations = dict(settings.annotations)
    if settings.internal:
        annotations[AZURE_INTERNAL_LB] = "true"
    return annotations


@dataclass
class GatewayEntryPointArgs:
    namespace: pulumi.Input[str]
    settings: EntryPointSettings
    labels: Mapping[str, str] = field(default_factory=dict)
    https_port: int = HTTPS_PORT


class GatewayEntryPoint(pulumi.ComponentResource):
    """The default certificate Secret (mounted by the gateways) and the LoadBalancer Service in front of them."""

    service: k8s.core.v1.Service
    certificate_secret: k8s.core.v1.Secret
    publish_service: pulumi.Output[str]
    """`<namespace>/<name>` of the Service: the controller copies its `status.loadBalancer` to the Ingresses."""
    gateway_env: list[dict[str, str]]
    gateway_volumes: list[dict[str, Any]]
    gateway_volume_mounts: list[dict[str, Any]]
    gateway_file_certificates: list[dict[str, str]]
    """The chart's `gateway.tls.certificates`: none (the default certificate comes from `ssl_certificates`)."""

    def __init__(
        self, name: str, args: GatewayEntryPointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:GatewayEntryPoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, "app.kubernetes.io/component": "gateway-entry-point"}
        self.gateway_env = gateway_env(args.https_port)
        self.gateway_volumes = gateway_volumes()
        self.gateway_volume_mounts = gateway_volume_mounts()
        self.gateway_file_certificates = []

        key = tls.PrivateKey(f"{name}-default-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        certificate = tls.SelfSignedCert(
            f"{name}-default-cert",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=DEFAULT_CERT_COMMON_NAME, organization="tyk-aks"
            ),
            validity_period_hours=DEFAULT_CERT_VALIDITY_HOURS,
            early_renewal_hours=DEFAULT_CERT_VALIDITY_HOURS // 4,
            allowed_uses=["digital_signature", "server_auth"],
            opts=child,
        )
        bundle: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.concat(certificate.cert_pem, key.private_key_pem)
        )
        self.certificate_secret = k8s.core.v1.Secret(
            f"{name}-default-tls",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=DEFAULT_CERT_SECRET_NAME, namespace=args.namespace, labels=labels
            ),
            type="Opaque",
            # One PEM with certificate and key: what `ssl_certificates` paths must hold (cert.go).
            string_data={DEFAULT_CERT_KEY: bundle},
            opts=child,
        )

        settings = args.settings
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SERVICE_NAME,
                namespace=args.namespace,
                labels=labels,
                annotations=service_annotations(settings) or None,
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer",
                selector=dict(POD_LABELS),
                external_traffic_policy=settings.external_traffic_policy,
                load_balancer_source_ranges=list(settings.load_balancer_source_ranges) or None,
                ports=[
                    k8s.core.v1.ServicePortArgs(name="http", port=80, target_port=PROXY_PORT, protocol="TCP"),
                    k8s.core.v1.ServicePortArgs(
                        name="https", port=443, target_port=args.https_port, protocol="TCP"
                    ),
                ],
            ),
            # The address arrives from the cloud (or cloud-provider-kind) later; the controller publishes it.
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(create="15m")),
        )
        self.publish_service = pulumi.Output.all(self.service.metadata, args.namespace).apply(
            lambda parts: f"{parts[1]}/{(parts[0] or {}).get('name') or SERVICE_NAME}"
        )
        self.register_outputs({"publish_service": self.publish_service})
