"""NetworkPolicies of the namespace: nothing in or out unless a rule below says so.

- every pod: DNS to kube-system's CoreDNS (k8s-app: kube-dns), nothing else by default;
- gateways: the proxy ports from anywhere (ingress controller, LoadBalancer); the control API only from the
  ingress controller, from the API server's service proxy (the API-management access path) and from configured
  CIDRs; any egress (upstream APIs are wherever their definitions point, Redis may be Azure Managed Redis);
- Redis (in-cluster): only from the gateways, the ingress controller and mesh sidecars, on 6379;
- the ingress controller: the Kubernetes API, the gateways' control API and Redis; its webhook port from anywhere
  (the API server calls it).

The API server's service proxy on AKS reaches pods through the konnectivity agents in kube-system (label
`app: konnectivity-agent`); with API Server VNet Integration it connects from the API server subnet instead: add
that CIDR to `networkPolicies.controlApiFromCidrs`. Kubelet probes come from the node and are allowed by both
AKS engines (Cilium, Azure NPM) without a rule.

Policies are only enforced with a policy engine: `cluster.aks.networkPolicy`, or the existing cluster's CNI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.settings import NetworkPolicySettings

CONTROLLER_LABELS = {"app.kubernetes.io/name": "tyk-controller"}
"""The ingress controller's pods (agreed label of the controller Deployment)."""
SIDECAR_LABELS = {"tyk-aks.io/mesh-sidecar": "true"}
"""Pods with an injected mesh sidecar gateway (the mesh webhook adds this label)."""
KONNECTIVITY_AGENT = {"app": "konnectivity-agent"}
KUBE_DNS = {"k8s-app": "kube-dns"}
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
CONTROLLER_WEBHOOK_PORT = 9443
CONTROLLER_HEALTH_PORT = 8081
KUBERNETES_API_PORTS = (443, 6443)  # the `kubernetes` Service and, after DNAT, the API server itself


@dataclass
class NetworkPoliciesArgs:
    namespace: pulumi.Input[str]
    settings: NetworkPolicySettings
    labels: dict[str, str]
    gateway_labels: dict[str, str]
    control_port: int
    redis_labels: dict[str, str] | None
    """Pod labels of the in-cluster Redis; None when Redis is outside the cluster."""
    redis_port: int = 6379


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def policy_specs(args: NetworkPoliciesArgs) -> dict[str, dict[str, Any]]:
    """NetworkPolicy name -> spec (plain data, so tests and the static analysis read exactly what is applied)."""
    settings = args.settings
    controller = {"podSelector": {"matchLabels": CONTROLLER_LABELS}}
    gateways = {"podSelector": {"matchLabels": dict(args.gateway_labels)}}
    api_server_proxy = {
        "namespaceSelector": {"matchLabels": KUBE_SYSTEM},
        "podSelector": {"matchLabels": KONNECTIVITY_AGENT},
    }
    sidecar_namespaces: dict[str, Any] = (
        {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": sorted(settings.sidecar_namespaces),
                }
            ]
        }
        if settings.sidecar_namespaces
        else {}
    )
    sidecars = {"namespaceSelector": sidecar_namespaces, "podSelector": {"matchLabels": SIDECAR_LABELS}}

    specs: dict[str, dict[str, Any]] = {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": KUBE_SYSTEM},
                            "podSelector": {"matchLabels": KUBE_DNS},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
        "gateway": {
            "podSelector": {"matchLabels": dict(args.gateway_labels)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"ports": _tcp(*settings.proxy_ports)},  # no `from`: every source
                {
                    "from": [controller, api_server_proxy]
                    + [{"ipBlock": {"cidr": cidr}} for cidr in settings.control_api_from_cidrs],
                    "ports": _tcp(args.control_port),
                },
            ],
            "egress": [{}],  # upstream APIs and a managed Redis can be anywhere
        },
        "ingress-controller": {
            "podSelector": {"matchLabels": CONTROLLER_LABELS},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": _tcp(CONTROLLER_WEBHOOK_PORT)}],
            "egress": [
                {"ports": _tcp(*KUBERNETES_API_PORTS)},
                {"to": [gateways], "ports": _tcp(args.control_port)},
            ]
            + (
                [
                    {
                        "to": [{"podSelector": {"matchLabels": dict(args.redis_labels)}}],
                        "ports": _tcp(args.redis_port),
                    }
                ]
                if args.redis_labels
                else []
            ),
        },
    }
    if args.redis_labels:
        specs["redis"] = {
            "podSelector": {"matchLabels": dict(args.redis_labels)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [gateways, controller, sidecars], "ports": _tcp(args.redis_port)}],
            "egress": [],  # Redis opens no connection (DNS is allowed by `allow-dns`)
        }
    return specs


class NetworkPolicies(pulumi.ComponentResource):
    """The namespace's NetworkPolicies."""

    policies: dict[str, k8s.networking.v1.NetworkPolicy]

    def __init__(
        self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:NetworkPolicies", name, None, opts)
        self.policies = {
            policy: k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=policy, namespace=args.namespace, labels=args.labels
                ),
                spec=cast(Any, spec),  # plain data in the API's own field names
                opts=pulumi.ResourceOptions(parent=self),
            )
            for policy, spec in policy_specs(args).items()
        }
        self.register_outputs({"policies": list(self.policies)})
