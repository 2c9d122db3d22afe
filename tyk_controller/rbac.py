"""The exact Kubernetes permissions the controller's runtime uses, as data.

The deployment component turns these into Role/ClusterRole objects, and the runtime tests run the controller
against a fake API server that refuses (403) every request these rules do not allow, so the grant and the code
cannot drift apart. What each rule is for:

* Ingresses: ``list``/``watch`` (kopf's list-then-watch), and ``patch`` of ``ingresses/status`` (the only write
  to an Ingress: ``status.loadBalancer``). No ``get``, no ``update``: the controller never writes spec or
  metadata.
* Services: ``list``/``watch`` in watched namespaces (named service ports, and the port numbers behind them).
* Secrets: ``list``/``watch`` in watched namespaces only (the TLS Secrets Ingresses name). With
  ``watchNamespaces`` set there is no cluster-wide Secret access at all.
* Events: ``create`` (Warning/Normal Events on Ingresses; the gateway-unreachable Event on the controller Pod).
* Leases: ``get``/``create``/``update`` of the leader-election Lease in the controller's namespace.
* The publish Service: ``get`` (its ``status.loadBalancer`` is copied to the Ingresses).
* IngressClasses: ``list``/``watch`` (cluster-scoped; which classes name this controller).

No ``pods``, ``namespaces``, ``customresourcedefinitions`` or kopf peering resources: scanning and peering
are switched off in the runtime. Discovery (``/api``, ``/apis``, ``/version``) is open to every authenticated
client (``system:discovery``).

This module imports neither kopf nor aiohttp: the Pulumi program imports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    """Limits the rule to these object names (a ClusterRole's `resourceNames`); () means any name."""

    def allows(self, api_group: str, resource: str, verb: str) -> bool:
        return api_group in self.api_groups and resource in self.resources and verb in self.verbs


WATCHED_NAMESPACE_RULES: tuple[Rule, ...] = (
    Rule(("networking.k8s.io",), ("ingresses",), ("list", "watch")),
    Rule(("networking.k8s.io",), ("ingresses/status",), ("patch",)),
    Rule(("",), ("services", "secrets"), ("list", "watch")),
    Rule(("",), ("events",), ("create",)),
)
OWN_NAMESPACE_RULES: tuple[Rule, ...] = (
    Rule(("coordination.k8s.io",), ("leases",), ("get", "create", "update")),
    Rule(("",), ("services",), ("get",)),
    Rule(("",), ("events",), ("create",)),
)
CLUSTER_RULES: tuple[Rule, ...] = (Rule(("networking.k8s.io",), ("ingressclasses",), ("list", "watch")),)


def allowed(rules: tuple[Rule, ...], api_group: str, resource: str, verb: str) -> bool:
    return any(rule.allows(api_group, resource, verb) for rule in rules)
