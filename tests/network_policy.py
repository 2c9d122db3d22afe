"""Who may talk to whom under a set of NetworkPolicies, following the Kubernetes semantics (networking.k8s.io/v1
API reference, "NetworkPolicy"; kubernetes/website `concepts/services-networking/network-policies.md`):

- a pod is isolated for ingress (egress) when some policy in its namespace selects it and lists that policy type;
  an isolated pod admits a connection only if some selecting policy has a rule that matches it;
- a rule matches when its `ports` (empty: every port) contain the port and its `from`/`to` (empty: every peer)
  contain the peer; a peer with both `namespaceSelector` and `podSelector` means pods matching both; a
  `podSelector` alone means pods of the policy's own namespace; `namespaceSelector: {}` means every namespace;
- a connection needs the source's egress and the destination's ingress to both allow it.

Only `matchLabels`, `matchExpressions` (In) and `ipBlock` (for sources outside the cluster) are needed here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = "10.244.0.10"


@dataclass(frozen=True)
class Policy:
    namespace: str
    spec: Mapping[str, Any]


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}  # set by the API server on every namespace


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Pod) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(c) for c in block.get("except") or [])
    namespace_selector = peer.get("namespaceSelector")
    pod_selector = peer.get("podSelector")
    if namespace_selector is None:
        in_namespace = other.namespace == policy_namespace
    else:
        in_namespace = _selects(namespace_selector, _namespace_labels(other.namespace))
    return in_namespace and (pod_selector is None or _selects(pod_selector, other.labels))


def _port_matches(ports: Iterable[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    ports = list(ports or [])
    return not ports or any(
        p.get("protocol", "TCP") == protocol and (p.get("port") is None or p.get("port") == port)
        for p in ports
    )


def _allowed(
    policies: Iterable[Policy], pod: Pod, other: Pod, port: int, protocol: str, direction: str
) -> bool:
    kind, rules_key, peers_key = (
        ("Ingress", "ingress", "from") if direction == "ingress" else ("Egress", "egress", "to")
    )
    selecting = [
        p
        for p in policies
        if p.namespace == pod.namespace
        and _selects(p.spec["podSelector"], pod.labels)
        and kind in p.spec.get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True  # not isolated
    for policy in selecting:
        for rule in policy.spec.get(rules_key) or []:
            peers = rule.get(peers_key)
            if not _port_matches(rule.get("ports"), port, protocol):
                continue
            if not peers or any(_peer_matches(peer, policy.namespace, other) for peer in peers):
                return True
    return False


def allows(
    policies: Iterable[Policy], source: Pod, destination: Pod, port: int, protocol: str = "TCP"
) -> bool:
    """Whether `source` may open a connection to `destination`'s `port` (pod-to-pod traffic)."""
    policies = list(policies)
    return _allowed(policies, source, destination, port, protocol, "egress") and _allowed(
        policies, destination, source, port, protocol, "ingress"
    )
