"""Kubernetes Ingress routing as the specification states it, to compare the gateway's behaviour against.

Written from the Kubernetes documentation (concepts/services-networking/ingress: "Path types", "Examples",
"Multiple matches", "Hostname wildcards") and the networking.k8s.io/v1 API reference, independently of the
translation code:

* a request is considered against the rules whose host matches it precisely; when there are none, against
  the rules whose wildcard host (``*.foo.com``: exactly one more label) matches; when there are none either,
  against the rules without host;
* Exact: the path equals the request path; Prefix: element-wise prefix, a trailing slash ignored on either
  side; ImplementationSpecific: Prefix (this controller's choice);
* the longest matching path wins, Exact before Prefix on a tie;
* nothing matches: the Ingress's ``defaultBackend``, else no backend (the gateway answers 404).

The precedence of a precise host over a wildcard that also matches is not spelled out by the Ingress
specification; this reference follows ingress-nginx and the Gateway API (precise first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def host_matches(rule_host: str, request_host: str) -> bool:
    if rule_host.startswith("*."):
        label, _, rest = request_host.partition(".")
        return bool(label) and rest == rule_host[2:]
    return rule_host == request_host


def path_matches(path_type: str, rule_path: str, request_path: str) -> bool:
    if path_type == "Exact":
        return rule_path == request_path
    rule = [e for e in rule_path.split("/") if e]
    request = [e for e in request_path.split("/") if e]
    return request[: len(rule)] == rule


def backend_for(ingress: Mapping[str, Any], host: str, path: str) -> tuple[str, int] | None:
    """``(service name, port number)`` serving ``host`` + ``path``, or None (404). Named ports: not here."""
    spec = ingress.get("spec") or {}
    rules = spec.get("rules") or []
    candidates = [r for r in rules if r.get("host") == host]
    if not candidates:
        candidates = [
            r for r in rules if str(r.get("host") or "").startswith("*.") and host_matches(r["host"], host)
        ]
    if not candidates:
        candidates = [r for r in rules if not r.get("host")]
    best: tuple[int, int, Mapping[str, Any]] | None = None
    for rule in candidates:
        for item in (rule.get("http") or {}).get("paths") or []:
            path_type = item.get("pathType") or "ImplementationSpecific"
            path_type = "Prefix" if path_type == "ImplementationSpecific" else path_type
            rule_path = item.get("path") or "/"
            if not path_matches(path_type, rule_path, path):
                continue
            length = len("/".join(e for e in rule_path.split("/") if e))
            key = (length, 1 if path_type == "Exact" else 0)
            if best is None or key > best[:2]:
                best = (*key, item["backend"])
    backend = best[2] if best else spec.get("defaultBackend")
    if not backend or "service" not in backend:
        return None
    return backend["service"]["name"], backend["service"]["port"]["number"]
