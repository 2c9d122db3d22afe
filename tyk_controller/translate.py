"""Ingress (``networking.k8s.io/v1``) -> Tyk classic API definitions. Pure functions, no I/O.

How the Kubernetes semantics map onto the gateway's router (``gateway/api_loader.go``, gorilla/mux v1.8.1):

* One API definition per (host, path, pathType, scheme) of an Ingress. Its ``domain`` is the rule's host
  (``*.foo.com`` becomes the mux host template ``{wildcard}.foo.com``: ``{x}`` matches exactly one DNS label;
  precise hosts under it are left out of the label pattern, so they take precedence, ``gateway_domain``);
  a rule without host has no ``domain``. The gateway puts every API with a ``domain`` before every API
  without one (``sortSpecsByListenPath`` with ``enable_custom_domains``), so host rules take precedence over
  host-less rules, as in Kubernetes.
* Within those two groups the gateway orders APIs by listen-path length, longest first, and matches the
  listen path as a plain string prefix. A Kubernetes path becomes a listen path ending in a mux variable:
  ``Prefix /foo`` -> ``/foo{http:/|$}`` (element-wise: ``/foo`` and ``/foo/...``, never ``/foobar``),
  ``Exact /foo`` -> ``/foo{http_exact:$}``. The Exact suffix is longer than the Prefix suffix, so for one
  path Exact sorts first, and a longer matching path always sorts before a shorter one: the gateway's
  first match is Kubernetes' longest match (the gateway's sort is not stable, so no two listen paths that can
  match the same request have equal length; see ``listen_path_length``).
* HTTPS APIs (hosts of ``spec.tls``) listen on ``config.https_port`` with ``protocol: https``; their variable
  is named ``https``/``https_exact`` so that their listen-path strings differ from the HTTP ones (the
  gateway's listen-path collision check ignores ports and would otherwise rename both).
* The Ingress's backend port is the Service port: by number, or by name through the Service's
  ``spec.ports``. The target is ``http://<service>.<namespace>.svc:<port>``; paths are passed on unchanged
  (``strip_listen_path: false``), as Kubernetes specifies.
* Across Ingresses, ``resolve_conflicts`` keeps two of them from claiming the same host and path (the
  gateway would rename both and serve neither).

User-facing description: ``docs/ingress-controller.md``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tyk_controller.annotations import (
    TEMPLATE_ANNOTATION,
    AnnotationError,
    Setter,
    apply_setters,
    parse_setters,
)
from tyk_controller.certs import CertificateError, certificate_from_secret, covers
from tyk_controller.config import ControllerConfig
from tyk_controller.templates import deep_merge
from tyk_gateway.models import DefinitionError, normalize_api

#: ``config_data`` key that records the owning Ingress (``<namespace>/<name>``) in every definition written.
#: ``config_data`` is a field of ``apidef.APIDefinition``, so the gateway keeps it through its file round
#: trip (unknown top-level fields are dropped when the gateway decodes a definition).
OWNER_KEY = "tyk-aks.io/ingress"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"

#: Mux variables appended to a Kubernetes path to get Kubernetes matching from a prefix router.
PREFIX_MATCHER = {"http": "{http:/|$}", "https": "{https:/|$}"}
EXACT_MATCHER = {"http": "{http_exact:$}", "https": "{https_exact:$}"}
#: ``Prefix /`` when the same host also has ``Exact /``: every path but ``/`` itself (``listen_path_for``).
ROOT_BUT_EXACT = {"http": "/{http:.+}", "https": "/{https:.+}"}
#: ``Prefix /``; the HTTPS one matches the same but is another string (the collision check ignores ports).
ROOT_PREFIX = {"http": "/", "https": "/{https:.*}"}

_API_ID_PREFIX = "ingress"
_WILDCARD_LABEL = "{wildcard}"
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Characters the mux template syntax or the gateway's loader would misread in a literal path.
_UNSAFE_PATH_CHARS = set("{} \t\r\n")
_REGEX_CHARS = set("*+?()[]^$|\\")


@dataclass(frozen=True)
class Problem:
    """Something the controller could not express as asked; becomes a Warning Event on the Ingress."""

    field: str
    reason: str
    message: str
    fatal: bool = False


@dataclass(frozen=True)
class Translation:
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def fatal(self) -> bool:
        """True when the runtime must leave this Ingress's APIs on the gateway as they are."""
        return any(problem.fatal for problem in self.problems)


@dataclass(frozen=True)
class Route:
    """One (host, path) of an Ingress and where it goes."""

    host: str  # "" = every host
    path: str
    path_type: str  # "Exact" | "Prefix" (ImplementationSpecific is treated as Prefix)
    service: str
    port: int
    field: str  # where it came from, for Problems


# --- class selection and ownership ------------------------------------------------------------------


def ingress_handled(
    ingress: Mapping[str, Any],
    config: ControllerConfig,
    *,
    default_class: bool = False,
    classes: Collection[str] = (),
) -> bool:
    """Whether this controller serves the Ingress.

    ``spec.ingressClassName`` wins when set: it must be ``config.ingress_class`` or one of ``classes`` (the
    runtime may pass the names of the IngressClasses whose ``spec.controller`` is ``config.controller_name``).
    Without it, the legacy annotation ``kubernetes.io/ingress.class`` decides. With neither, the Ingress is
    served only when the IngressClass ``config.ingress_class`` is marked as the cluster default
    (``ingressclass.kubernetes.io/is-default-class: "true"``); the runtime passes that as ``default_class``.
    """
    spec = ingress.get("spec") or {}
    class_name = spec.get("ingressClassName")
    if class_name:
        return bool(class_name == config.ingress_class or class_name in classes)
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    legacy = annotations.get(LEGACY_CLASS_ANNOTATION)
    if legacy is not None:  # compared case-insensitively, as tyk-k8s did
        return bool(str(legacy).lower() == config.ingress_class)
    return default_class


def owner_of(definition: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(namespace, ingress name)`` when the definition was written by this controller, else None."""
    config_data = definition.get("config_data")
    if not isinstance(config_data, Mapping):
        return None
    owner = config_data.get(OWNER_KEY)
    if not isinstance(owner, str) or owner.count("/") != 1:
        return None
    namespace, name = owner.split("/")
    if not namespace or not name:
        return None
    return namespace, name


def api_id_for(namespace: str, name: str, host: str, path: str, path_type: str, scheme: str) -> str:
    """Deterministic id: the same Ingress rule always maps to the same API, across restarts."""
    digest = hashlib.sha256(
        json.dumps([namespace, name, host, path, path_type, scheme], separators=(",", ":")).encode()
    ).hexdigest()[:20]
    readable = f"{_API_ID_PREFIX}-{namespace}-{name}"[:200]
    return f"{readable}-{digest}"


# --- paths and hosts --------------------------------------------------------------------------------


def gateway_domain(host: str, precise_hosts: Iterable[str] = ()) -> str:
    """The API ``domain`` for an Ingress host ("" for none): ``*.foo.com`` -> ``{wildcard}.foo.com``.

    A precise host takes precedence over a wildcard that also matches it (as in ingress-nginx and the Gateway
    API), but the gateway would pool both hosts' APIs and pick by path length. So when ``precise_hosts``
    has names under the wildcard, the wildcard's label pattern excludes their first labels:
    ``{wildcard:[^.a][^.]*|a[^.][^.]*}.foo.com`` for ``a.foo.com``. Plain alternatives without groups: mux
    refuses capturing groups, and a ``(?:`` would put a ``:`` in the host pattern, which makes mux compare
    the request's port too.
    """
    if not host.startswith("*."):
        return host
    suffix = host[1:]
    labels = sorted(
        {h[: -len(suffix)] for h in precise_hosts if h.endswith(suffix) and h[: -len(suffix)].count(".") == 0}
        - {""}
    )
    if not labels:
        return _WILDCARD_LABEL + suffix
    return "{wildcard:" + _label_not_in(labels) + "}" + suffix


def _label_not_in(labels: list[str]) -> str:
    """An RE2 alternation matching one DNS label that is none of ``labels`` (a complement over their trie)."""
    end = ""
    trie: dict[str, Any] = {}
    for label in labels:
        node = trie
        for char in label:
            node = node.setdefault(char, {})
        node[end] = {}
    alternatives: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        children = sorted(key for key in node if key != end)
        excluded = "".join("\\-" if c == "-" else re.escape(c) for c in children)
        alternatives.append(f"{re.escape(prefix)}[^.{excluded}][^.]*")
        if prefix and end not in node:
            alternatives.append(re.escape(prefix))
        for child in children:
            walk(node[child], prefix + child)

    walk(trie, "")
    return "|".join(alternatives)


def wildcard_host_of(domain: str) -> str | None:
    """``*.foo.com`` for a domain ``gateway_domain`` made from it, else None."""
    if domain.startswith("{wildcard") and "}" in domain:
        return "*" + domain[domain.rindex("}") + 1 :]
    return None


def listen_path_for(path: str, path_type: str, scheme: str, *, host_has_exact_root: bool = False) -> str:
    """The listen path that makes the gateway's prefix router match like Kubernetes' ``pathType``."""
    if path_type == "Exact":
        if path == "/":
            return "/" + EXACT_MATCHER[scheme]
        # A trailing "/" goes into the variable: a segment wholly inside {...} would not count towards the
        # gateway's sort key, and the Exact path would lose to shorter ones.
        if path.endswith("/"):
            return path[:-1] + EXACT_MATCHER[scheme].replace(":$}", ":/$}")
        return path + EXACT_MATCHER[scheme]
    trimmed = path.rstrip("/")  # Prefix ignores a trailing slash: /foo/ matches /foo
    if not trimmed:
        return ROOT_BUT_EXACT[scheme] if host_has_exact_root else ROOT_PREFIX[scheme]
    return trimmed + PREFIX_MATCHER[scheme]


def listen_path_length(listen_path: str) -> int:
    """The gateway's sort key (``listenPathLength`` in ``gateway/api_loader.go``)."""
    if "{" not in listen_path:
        return len(listen_path)
    length = listen_path.count("/")
    for segment in listen_path.split("/"):
        if len(segment) > 2 and segment[0] == "{" and segment[-1] == "}":
            continue
        length += len(segment)
    return length


# --- translation ------------------------------------------------------------------------------------


#: Under the template: what an API needs to route like an Ingress (a template or an annotation may change it).
BASE_DEFINITION: dict[str, Any] = {
    "active": True,
    "use_keyless": True,
    # The backend sees the client's Host header, as behind ingress-nginx or Traefik (the gateway would
    # otherwise send the Service's in-cluster name).
    "proxy": {"preserve_host_header": True},
    "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
}
DEFAULT_TEMPLATE = "default"


def translate_ingress(
    ingress: Mapping[str, Any],
    *,
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    tls_secrets: Mapping[tuple[str, str], Mapping[str, Any]],
    templates: Mapping[str, Mapping[str, Any]],
    config: ControllerConfig,
) -> Translation:
    """Every API definition (and certificate) the Ingress asks for, plus what could not be expressed.

    With a fatal problem, ``apis`` and ``certificates`` are empty: the runtime keeps what the gateway has.
    """
    metadata = ingress.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata.get("name") or "")
    annotations = metadata.get("annotations") or {}
    spec = ingress.get("spec") or {}
    problems: list[Problem] = []

    template = _template(annotations, templates, problems)
    setters, errors = parse_setters(annotations)
    problems += [_annotation_problem(error) for error in errors]
    routes = _routes(spec, namespace, services, problems)
    tls_hosts, certificates = _tls(spec, namespace, tls_secrets, config, routes, problems)
    if any(problem.fatal for problem in problems):
        return Translation(problems=problems)

    apis: dict[str, dict[str, Any]] = {}
    exact_roots = {route.host for route in routes if route.path_type == "Exact" and route.path == "/"}
    precise_hosts = {route.host for route in routes if route.host and not route.host.startswith("*.")}
    for route in routes:
        schemes: list[tuple[str, int, list[str]]] = [("http", config.http_port, [])]
        if route.host in tls_hosts:
            schemes.append(("https", config.https_port, tls_hosts[route.host]))
        for scheme, port, cert_ids in schemes:
            api_id = api_id_for(namespace, name, route.host, route.path, route.path_type, scheme)
            generated: dict[str, Any] = {
                "api_id": api_id,
                "name": f"{namespace}/{name} {scheme}://{route.host or '*'}{route.path} ({route.path_type})",
                "slug": api_id,
                "org_id": config.org_id,
                "protocol": scheme,
                "listen_port": port,
                "domain": gateway_domain(route.host, precise_hosts),
                "proxy": {
                    "listen_path": listen_path_for(
                        route.path, route.path_type, scheme, host_has_exact_root=route.host in exact_roots
                    ),
                    "target_url": f"http://{route.service}.{namespace}.svc:{route.port}",
                    "strip_listen_path": False,
                },
            }
            if cert_ids:
                generated["certificates"] = list(cert_ids)
            definition = _build(generated, template, setters, f"{namespace}/{name}", route, problems)
            if definition is not None:
                apis[api_id] = definition
    if any(problem.fatal for problem in problems):
        return Translation(problems=problems)
    return Translation(apis=apis, certificates=certificates, problems=problems)


def _template(
    annotations: Mapping[str, str], templates: Mapping[str, Mapping[str, Any]], problems: list[Problem]
) -> Mapping[str, Any]:
    chosen = annotations.get(TEMPLATE_ANNOTATION)
    if chosen is None:
        return templates.get(DEFAULT_TEMPLATE, {})
    if chosen not in templates:
        known = ", ".join(sorted(templates)) or "none"
        problems.append(
            Problem(
                f"metadata.annotations[{TEMPLATE_ANNOTATION}]",
                "UnknownTemplate",
                f"template {chosen!r} does not exist (known: {known}); the Ingress's APIs are left as they are",
                fatal=True,
            )
        )
        return {}
    return templates[chosen]


def _annotation_problem(error: AnnotationError) -> Problem:
    return Problem(
        f"metadata.annotations[{error.annotation}]",
        "InvalidAnnotation",
        f"{error}; the Ingress's APIs are left as they are",
        fatal=True,
    )


def _build(
    generated: dict[str, Any],
    template: Mapping[str, Any],
    setters: list[Setter],
    owner: str,
    route: Route,
    problems: list[Problem],
) -> dict[str, Any] | None:
    """Base < template < generated < annotations; then the ownership marker; validated like ``TykApi``.

    One validation per API; only when it fails is the definition validated again without the annotations, to
    tell a template's fault from an annotation's.
    """
    merged = deep_merge(deep_merge(BASE_DEFINITION, template), generated)
    definition = copy.deepcopy(merged)
    setter_errors = apply_setters(definition, setters)
    if setter_errors:
        problems += [_annotation_problem(setter_error) for setter_error in setter_errors]
        return None
    config_data = definition.get("config_data")
    definition["config_data"] = {
        **(config_data if isinstance(config_data, Mapping) else {}),
        OWNER_KEY: owner,
    }
    try:
        return normalize_api(definition)
    except DefinitionError as error:
        failure = error
    try:
        normalize_api(merged)
    except DefinitionError as error:
        problems.append(
            Problem(
                route.field, "InvalidDefinition", f"{error}; the Ingress's APIs are left as they are", True
            )
        )
        return None
    for line in failure.problems:
        field_path = line.split(":", 1)[0].removeprefix("definition.")
        culprits = [
            s.annotation
            for s in setters
            if field_path == ".".join(s.path)
            or field_path.startswith(".".join(s.path) + ".")
            or ".".join(s.path).startswith(field_path + ".")
        ] or [s.annotation for s in setters]
        problems.append(
            Problem(
                f"metadata.annotations[{culprits[0]}]",
                "InvalidAnnotation",
                f"{line} (set by {', '.join(culprits)}); the Ingress's APIs are left as they are",
                fatal=True,
            )
        )
    return None


def _tls(
    spec: Mapping[str, Any],
    namespace: str,
    tls_secrets: Mapping[tuple[str, str], Mapping[str, Any]],
    config: ControllerConfig,
    routes: list[Route],
    problems: list[Problem],
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Rule host -> certificate ids for its HTTPS APIs, and the certificates (id -> PEM) to push."""
    hosts: dict[str, list[str]] = {}
    certificates: dict[str, str] = {}
    rule_hosts = {route.host for route in routes}
    for index, entry in enumerate(spec.get("tls") or []):
        where = f"spec.tls[{index}]"
        secret_name = entry.get("secretName")
        if not secret_name:
            problems.append(
                Problem(
                    f"{where}.secretName",
                    "TLSSecret",
                    "no secretName: the gateway has no default certificate, so these hosts get no HTTPS API",
                )
            )
            continue
        secret = tls_secrets.get((namespace, secret_name))
        if secret is None:
            problems.append(
                Problem(
                    f"{where}.secretName",
                    "TLSSecret",
                    f"Secret {namespace}/{secret_name} not found; the Ingress's APIs are left as they are",
                    fatal=True,
                )
            )
            continue
        try:
            certificate = certificate_from_secret(secret, config.org_id)
        except CertificateError as error:
            problems.append(
                Problem(
                    f"{where}.secretName",
                    "TLSSecret",
                    f"Secret {namespace}/{secret_name}: {error}; the Ingress's APIs are left as they are",
                    fatal=True,
                )
            )
            continue
        certificates[certificate.cert_id] = certificate.pem
        for tls_host in entry.get("hosts") or [""]:
            # A rule host takes the entry when it is listed, or when a wildcard TLS host covers it.
            covered = sorted(h for h in rule_hosts if h == tls_host or (tls_host and covers((tls_host,), h)))
            if not covered:
                problems.append(
                    Problem(
                        f"{where}.hosts",
                        "TLSHostWithoutRule",
                        f"TLS host {tls_host or '(none)'!r} has no rule in this Ingress; nothing is served for it",
                    )
                )
                continue
            for host in covered:
                if host and not covers(certificate.dns_names, host):
                    problems.append(
                        Problem(
                            f"{where}.hosts",
                            "TLSHostMismatch",
                            f"certificate of Secret {namespace}/{secret_name} "
                            f"({', '.join(certificate.dns_names)}) does not cover {host!r}; clients will reject it",
                        )
                    )
                ids = hosts.setdefault(host, [])
                if certificate.cert_id not in ids:
                    ids.append(certificate.cert_id)
    return hosts, certificates


def _routes(
    spec: Mapping[str, Any],
    namespace: str,
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    problems: list[Problem],
) -> list[Route]:
    routes: list[Route] = []
    seen: dict[tuple[str, str, str], str] = {}

    def add(host: str, path: str, path_type: str, target: tuple[str, int] | None, where: str) -> None:
        if target is None:
            return
        key = (host, (path.rstrip("/") or "/") if path_type == "Prefix" else path, path_type)
        if key in seen:
            problems.append(
                Problem(
                    where,
                    "DuplicatePath",
                    f"{path_type} {path!r} on host {host or '*'!r} is already routed by {seen[key]}; "
                    "the first one is served",
                )
            )
            return
        seen[key] = where
        routes.append(Route(host, path, path_type, target[0], target[1], where))

    for index, rule in enumerate(spec.get("rules") or []):
        where = f"spec.rules[{index}]"
        host = str(rule.get("host") or "")
        if host and not _HOST_RE.fullmatch(host):
            problems.append(Problem(f"{where}.host", "UnsupportedHost", f"host {host!r} is not a DNS name"))
            continue
        http = rule.get("http")
        if not http:
            continue
        for path_index, item in enumerate(http.get("paths") or []):
            path_where = f"{where}.http.paths[{path_index}]"
            path = str(item.get("path") or "/")
            path_type = str(item.get("pathType") or "ImplementationSpecific")
            if path_type == "ImplementationSpecific":
                path_type = "Prefix"
                if _REGEX_CHARS & set(path):
                    problems.append(
                        Problem(
                            path_where,
                            "LiteralPath",
                            f"ImplementationSpecific path {path!r} is matched as a Prefix, character for "
                            "character: regular expressions are not supported",
                        )
                    )
            if path_type not in {"Exact", "Prefix"}:
                problems.append(
                    Problem(path_where, "UnsupportedPathType", f"pathType {path_type!r} is not served")
                )
                continue
            if not path.startswith("/") or _UNSAFE_PATH_CHARS & set(path):
                problems.append(
                    Problem(
                        path_where,
                        "UnsupportedPath",
                        f"path {path!r} is not served: it must start with '/' and contain no "
                        "braces or whitespace (the gateway reads braces as route variables)",
                    )
                )
                continue
            target = _backend(item.get("backend"), namespace, services, f"{path_where}.backend", problems)
            add(host, path, path_type, target, path_where)

    default = spec.get("defaultBackend")
    target = _backend(default, namespace, services, "spec.defaultBackend", problems) if default else None
    if target is not None:
        # Kubernetes sends a request whose host has rules but no matching path to the default backend, not to
        # the host-less rules: so each rule host gets its own catch-all, unless it routes "/" itself.
        hosts = {route.host for route in routes}
        for host in sorted(hosts | {""}):
            if (host, "/", "Prefix") not in seen:
                add(host, "/", "Prefix", target, "spec.defaultBackend")
    elif "" in {route.host for route in routes}:
        bare = sorted(
            {r.host for r in routes if r.host}
            - {r.host for r in routes if r.path_type == "Prefix" and r.path == "/"}
        )
        if bare:
            problems.append(
                Problem(
                    "spec.rules",
                    "HostFallthrough",
                    f"requests to {', '.join(bare)} that match none of that host's paths are served by the "
                    "rules without host (Kubernetes would answer 404); add a '/' path or a defaultBackend",
                )
            )
    return routes


def _backend(
    backend: Any,
    namespace: str,
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    where: str,
    problems: list[Problem],
) -> tuple[str, int] | None:
    """``(service, port number)`` of a backend, or None (with a Problem) when it can't be served."""
    backend = backend or {}
    if backend.get("resource"):
        kind = (backend["resource"] or {}).get("kind", "?")
        problems.append(
            Problem(
                f"{where}.resource",
                "UnsupportedBackend",
                f"resource backend ({kind}) can't be expressed as a gateway API; this path is not served",
            )
        )
        return None
    service = backend.get("service") or {}
    service_name = str(service.get("name") or "")
    port = service.get("port") or {}
    if "number" in port:
        return service_name, int(port["number"])
    port_name = port.get("name")
    found = services.get((namespace, service_name))
    if found is None:
        problems.append(
            Problem(
                f"{where}.service",
                "ServiceNotFound",
                f"Service {namespace}/{service_name} not found, so port {port_name!r} can't be resolved; "
                "this path is not served until the Service exists",
            )
        )
        return None
    for service_port in (found.get("spec") or {}).get("ports") or []:
        if service_port.get("name") == port_name:
            return service_name, int(service_port["port"])
    problems.append(
        Problem(
            f"{where}.service.port.name",
            "ServicePortNotFound",
            f"Service {namespace}/{service_name} has no port named {port_name!r}; this path is not served",
        )
    )
    return None


# --- across Ingresses ---------------------------------------------------------------------------------


def route_key(definition: Mapping[str, Any]) -> str:
    """The gateway's listen-path collision key (``countApisByListenHash``): domain + listen path, no port."""
    domain = "" if definition.get("domain_disabled") else str(definition.get("domain") or "")
    return domain + str((definition.get("proxy") or {}).get("listen_path") or "")


@dataclass(frozen=True)
class Resolution:
    apis: dict[str, dict[str, Any]]  # api_id -> definition, every Ingress's APIs that can be served together
    problems: dict[tuple[str, str], list[Problem]]  # (namespace, name) -> what was left out, and why


def resolve_conflicts(
    apis_by_ingress: Mapping[tuple[str, str], Mapping[str, Mapping[str, Any]]],
    *,
    order: list[tuple[str, str]],
    foreign: Iterable[Mapping[str, Any]] = (),
) -> Resolution:
    """Combine the translations of several Ingresses into one API set the gateway serves as intended.

    The gateway renames *every* API sharing a domain + listen path (they all stop answering on it), so two
    Ingresses routing the same host and path, or an Ingress and an API the controller doesn't own
    (``foreign``: ``TykApi`` resources, hand-made APIs), can't both be written. The Ingress first in ``order``
    (the runtime passes oldest ``creationTimestamp`` first, as ingress-nginx decides) keeps the route; the
    others lose that API and get a ``PathConflict`` problem. Foreign APIs always win: they are never touched.
    Also, ``Prefix /`` of one Ingress and ``Exact /`` of another on the same host would tie in the gateway's
    sort; the Prefix one is rewritten to leave ``/`` to the Exact one.
    """
    foreign = list(foreign)
    # Precise hosts beat wildcards across Ingresses too: rebuild every wildcard domain from all precise hosts.
    precise = {
        str(api.get("domain"))
        for apis in [*apis_by_ingress.values(), {str(a.get("api_id")): a for a in foreign}]
        for api in apis.values()
        if api.get("domain") and "{" not in str(api.get("domain"))
    }
    rewritten: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for owner, apis in apis_by_ingress.items():
        rewritten[owner] = {}
        for api_id, api in apis.items():
            wildcard = wildcard_host_of(str(api.get("domain") or ""))
            if wildcard is not None:
                api = {**api, "domain": gateway_domain(wildcard, precise)}
            rewritten[owner][api_id] = api
    apis_by_ingress = rewritten
    rank = {owner: index for index, owner in enumerate(order)}
    owners = sorted(apis_by_ingress, key=lambda owner: (rank.get(owner, len(rank)), owner))
    claimed: dict[str, str] = {
        route_key(api): f"API {api.get('api_id')!r} (not managed by this controller)" for api in foreign
    }
    result: dict[str, dict[str, Any]] = {}
    problems: dict[tuple[str, str], list[Problem]] = {}
    for owner in owners:
        for api_id, api in apis_by_ingress[owner].items():
            key = route_key(api)
            holder = claimed.get(key)
            if holder is not None:
                listen_path = (api.get("proxy") or {}).get("listen_path")
                problems.setdefault(owner, []).append(
                    Problem(
                        "spec.rules",
                        "PathConflict",
                        f"{api.get('name', api_id)}: host {api.get('domain') or '*'!r} with listen path "
                        f"{listen_path!r} is already served by {holder}; this route is not written",
                    )
                )
                continue
            claimed[key] = f"Ingress {owner[0]}/{owner[1]}"
            result[api_id] = dict(api)
    exact_roots = {
        (api.get("domain") or "", api.get("protocol"))
        for api in result.values()
        if (api.get("proxy") or {}).get("listen_path") in {"/" + m for m in EXACT_MATCHER.values()}
    }
    for api in result.values():
        scheme = str(api.get("protocol") or "http")
        proxy = api.get("proxy") or {}
        if (api.get("domain") or "", scheme) in exact_roots and proxy.get("listen_path") == ROOT_PREFIX.get(
            scheme
        ):
            api["proxy"] = {**proxy, "listen_path": ROOT_BUT_EXACT[scheme]}
    return Resolution(result, problems)
