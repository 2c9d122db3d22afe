"""A deliberately small implementation of the translation contract of `tyk_controller.translate`, for the runtime's own tests.

The runtime's guarantees (what it writes, deletes, freezes, reports) don't depend on how an Ingress becomes
API definitions, only on the contract's shape: ``translate_ingress`` -> ``Translation(apis, certificates,
problems)``, ``owner_of``, ``ingress_handled``. This stand-in keeps those tests independent of the real
translation; the end-to-end tests run the real one (``tyk_controller.translate``) in the real process.

Test-only annotations: ``test.tyk-aks.io/fatal: <message>`` adds a fatal Problem, ``test.tyk-aks.io/warn:
<message>`` a non-fatal one, ``test.tyk-aks.io/allowed-ips: <list>`` an IP allow-list (which the gateway
validates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OWNER_KEY = "tyk-aks.io/test-owner"


@dataclass(frozen=True)
class Problem:
    field: str
    reason: str
    message: str
    fatal: bool


@dataclass(frozen=True)
class Translation:
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def ingress_handled(
    ingress: Mapping[str, Any], config: Any, *, default_class: bool = False, classes: Any = ()
) -> bool:
    spec = ingress.get("spec") or {}
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    name = spec.get("ingressClassName") or annotations.get("kubernetes.io/ingress.class")
    return bool(name == config.ingress_class or name in classes) if name else default_class


def owner_of(definition: Mapping[str, Any]) -> tuple[str, str] | None:
    owner = (definition.get("config_data") or {}).get(OWNER_KEY)
    if not isinstance(owner, str) or "/" not in owner:
        return None
    namespace, _, name = owner.partition("/")
    return namespace, name


def translate_ingress(
    ingress: Mapping[str, Any],
    *,
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    tls_secrets: Mapping[tuple[str, str], Mapping[str, Any]],
    templates: Mapping[str, Mapping[str, Any]],
    config: Any,
) -> Translation:
    meta = ingress["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    annotations = meta.get("annotations") or {}
    problems = []
    if "test.tyk-aks.io/fatal" in annotations:
        problems.append(
            Problem(
                "metadata.annotations[test.tyk-aks.io/fatal]",
                "InvalidAnnotation",
                annotations["test.tyk-aks.io/fatal"],
                True,
            )
        )
    if "test.tyk-aks.io/warn" in annotations:
        problems.append(
            Problem(
                "metadata.annotations[test.tyk-aks.io/warn]",
                "Unsupported",
                annotations["test.tyk-aks.io/warn"],
                False,
            )
        )
    certificates: dict[str, str] = {}
    for i, tls in enumerate(ingress["spec"].get("tls") or []):
        secret = tls_secrets.get((namespace, tls.get("secretName", "")))
        if secret is None:
            problems.append(
                Problem(
                    f"spec.tls[{i}].secretName",
                    "TLSSecret",
                    f"Secret {tls.get('secretName')!r} not found; APIs left as they are",
                    True,
                )
            )
            continue
        cert_id = config.org_id + hashlib.sha256(secret["data"]["tls.crt"].encode()).hexdigest()
        certificates[cert_id] = secret["data"]["tls.crt"] + secret["data"]["tls.key"]
    apis: dict[str, dict[str, Any]] = {}
    for rule in ingress["spec"].get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            backend = path["backend"]["service"]
            api_id = hashlib.sha256(
                f"{namespace}/{name}/{rule.get('host', '')}/{path['path']}".encode()
            ).hexdigest()[:24]
            apis[api_id] = {
                "api_id": api_id,
                "name": f"{namespace}/{name} {rule.get('host', '*')}{path['path']}",
                "org_id": config.org_id,
                "use_keyless": True,
                "active": True,
                "domain": rule.get("host", ""),
                "proxy": {
                    "listen_path": path["path"],
                    "target_url": f"http://{backend['name']}.{namespace}.svc:{backend['port'].get('number', 80)}",
                    "strip_listen_path": False,
                },
                "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
                "config_data": {OWNER_KEY: f"{namespace}/{name}"},
            }
            if "test.tyk-aks.io/allowed-ips" in annotations:
                apis[api_id] |= {
                    "enable_ip_whitelisting": True,
                    "allowed_ips": annotations["test.tyk-aks.io/allowed-ips"].split(","),
                }
    return Translation(apis, certificates, problems)
