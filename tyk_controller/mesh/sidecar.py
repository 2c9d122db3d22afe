"""What an opted-in pod gets: the sidecar's gateway config, its inbound API, and the JSON patch that adds them.

Pure functions (no I/O): the admission handler and the routes reconciler both call `plan_injection`, the
reconciler for pods that lack the sidecar, so a pod the webhook left alone gets an Event that says why.

The design (docs/mesh.md has the why):
- The sidecar is a Gateway OSS of the gateways' own image, run as a native sidecar (an init container with
  `restartPolicy: Always`): it starts, and passes its startup probe, before the app's containers start.
- Inbound without iptables: the sidecar takes over the *name* of the app's container port (the app's port is
  renamed `tyk-app-<n>`), so a Service whose `targetPort` names that port now reaches the sidecar, which
  proxies to the app on 127.0.0.1.
- Egress without iptables: `hostAliases` `mesh` -> 127.0.0.1 and the sidecar listens on port 80, which a
  non-root process may bind once the pod sets the namespaced sysctl `net.ipv4.ip_unprivileged_port_start`
  (a "safe" sysctl, allowed by the restricted Pod Security Standard).
- Config without side effects: the gateway config and the inbound API definition are written into the pod's
  own annotations and projected into files by downwardAPI volumes; the egress routes come from a
  namespace-local ConfigMap (optional in the volume) that the controller maintains.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tyk_controller.annotations import TEMPLATE_ANNOTATION, apply_setters, parse_setters
from tyk_controller.mesh.config import (
    APP_PORT_ANNOTATION,
    APPS_DIR,
    APPS_VOLUME,
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_VOLUME,
    GATEWAY_CONFIG_ANNOTATION,
    INBOUND_API_ANNOTATION,
    INBOUND_FILE,
    INJECT_ANNOTATION,
    MESH_HOST,
    NAMESPACE_SECRET,
    PORT_ANNOTATION,
    REDIS_PASSWORD_KEY,
    ROUTE_ANNOTATION,
    ROUTE_STATUS_ANNOTATION,
    ROUTES_CONFIG_MAP,
    RUN_AS,
    SIDECAR_LABEL,
    SIDECAR_NAME,
    SIDECAR_SECRET_KEY,
    STATUS_ANNOTATION,
    TMP_DIR,
    TMP_VOLUME,
    MeshConfig,
)
from tyk_controller.templates import deep_merge
from tyk_gateway.models import ApiDefinition, format_errors

INJECTED = "injected"
UNPRIVILEGED_PORT_SYSCTL = "net.ipv4.ip_unprivileged_port_start"
APP_PORT_PREFIX = "tyk-app-"
EGRESS_PORT_NAME = "mesh-egress"
CONTROL_PORT_NAME = "mesh-control"
HEALTH_PATH = "/hello"
"""The gateway's liveness endpoint on its control port (`health_check_endpoint_name`, default `hello`)."""

_TRUE = {"y", "yes", "true", "on"}
_FALSE = {"n", "no", "false", "off"}
_ROUTE = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Problem:
    """Why an opted-in pod was admitted without the sidecar: an admission warning and a Warning Event."""

    field: str
    """Where: `metadata.annotations[injector.tyk.io/route]`, `spec.containers[0].ports`."""
    reason: str
    """Event reason, CamelCase."""
    message: str
    """One line naming the value and what was done about it."""


@dataclass(frozen=True)
class AppPort:
    container: int
    """Index in spec.containers."""
    index: int
    """Index in that container's ports."""
    number: int
    name: str


@dataclass(frozen=True)
class OptIn:
    """A valid opt-in: the route the workload serves and the app port its sidecar fronts; both None for a
    pod without container ports (a client: egress only, no inbound listener, no route)."""

    route: str | None
    port: AppPort | None


@dataclass
class Injection:
    """The admission verdict for one pod: a patch (None: admit unchanged) and the warnings to return."""

    patch: list[dict[str, Any]] | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        # The API server may truncate a warning past 256 characters; the Event carries the whole message.
        return [_shorten(f"{SIDECAR_NAME}: {p.message}", WARNING_LIMIT) for p in self.problems]


WARNING_LIMIT = 256


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


Customise = Callable[[dict[str, Any], Mapping[str, str]], tuple[dict[str, Any], list[Problem]]]
"""Applies the setter/template annotations to the inbound API (the ingress controller's rules)."""


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("annotations") or {}


def _labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def is_injected(pod: Mapping[str, Any]) -> bool:
    """True once a pod has the sidecar (by marker or by container name): it is never patched twice."""
    if _annotations(pod).get(STATUS_ANNOTATION) == INJECTED:
        return True
    spec = pod.get("spec") or {}
    return any(
        c.get("name") == SIDECAR_NAME
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    )


def opted_out(pod: Mapping[str, Any]) -> bool:
    """The annotation `injector.tyk.io/inject: "false"` overrides the label (as Istio's does)."""
    value = _annotations(pod).get(INJECT_ANNOTATION)
    return value is not None and value.strip().lower() in _FALSE


def route_slug(route: str) -> str:
    """`/orders/v1` -> `orders.v1`: a ConfigMap key, file name and API id part."""
    return route.strip("/").replace("/", ".")


def _route(pod: Mapping[str, Any]) -> tuple[str | None, Problem | None]:
    field_name = f"metadata.annotations[{ROUTE_ANNOTATION}]"
    value = _annotations(pod).get(ROUTE_ANNOTATION)
    if value is None:
        labels = _labels(pod)
        app = labels.get("app") or labels.get("app.kubernetes.io/name")
        if not app:
            return None, Problem(
                field_name,
                "NoRoute",
                f"no {ROUTE_ANNOTATION} annotation and no `app` label to derive the mesh route from; "
                "pod admitted without the sidecar",
            )
        value = f"/{app}"
    route = value.strip().rstrip("/")
    if not _ROUTE.match(route) or any(part in {".", ".."} for part in route.split("/")):
        return None, Problem(
            field_name,
            "InvalidRoute",
            f"route {value!r} is not a path like /orders (segments of letters, digits, '.', '_', '~', '-'); "
            "pod admitted without the sidecar",
        )
    return route, None


def _container_ports(pod: Mapping[str, Any]) -> list[AppPort]:
    ports = []
    for c, container in enumerate((pod.get("spec") or {}).get("containers") or []):
        for i, port in enumerate(container.get("ports") or []):
            ports.append(AppPort(c, i, int(port.get("containerPort", 0)), port.get("name") or ""))
    return ports


def choose_port(pod: Mapping[str, Any]) -> tuple[AppPort | None, Problem | None]:
    """The app port the sidecar fronts: `injector.tyk.io/port` (name or number), else the pod's only port,
    else the port named `http`. It must be named: Services reach the sidecar by targeting that name."""
    field_name = f"metadata.annotations[{PORT_ANNOTATION}]"
    ports = _container_ports(pod)
    requested = _annotations(pod).get(PORT_ANNOTATION)
    if requested is not None:
        wanted = requested.strip()
        matches = [
            p for p in ports if (p.name == wanted if not wanted.isdigit() else p.number == int(wanted))
        ]
        if not matches:
            return None, Problem(
                field_name,
                "PortNotFound",
                f"no container port {requested!r} in the pod; pod admitted without the sidecar",
            )
        port = matches[0]
    elif len(ports) == 1:
        port = ports[0]
    else:
        named_http = [p for p in ports if p.name == "http"]
        if not named_http:
            return None, Problem(
                field_name,
                "PortNotFound",
                f"{len(ports)} container ports and none named `http`: set {PORT_ANNOTATION} to the port "
                "the Service targets; pod admitted without the sidecar",
            )
        port = named_http[0]
    if not port.name:
        return None, Problem(
            f"spec.containers[{port.container}].ports[{port.index}]",
            "UnnamedPort",
            f"container port {port.number} has no name: the sidecar takes over the port's name, which the "
            "Service must target; name the port; pod admitted without the sidecar",
        )
    return port, None


def _conflicts(pod: Mapping[str, Any], mesh: MeshConfig) -> list[Problem]:
    spec = pod.get("spec") or {}
    problems = []
    if spec.get("hostNetwork"):
        problems.append(
            Problem(
                "spec.hostNetwork",
                "HostNetwork",
                "a hostNetwork pod would bind the sidecar's ports on the node; pod admitted without the sidecar",
            )
        )
    reserved = {mesh.egress_port, mesh.inbound_port, mesh.control_port}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    taken = sorted(
        {int(p.get("containerPort", 0)) for c in containers for p in c.get("ports") or []} & reserved
    )
    if taken:
        problems.append(
            Problem(
                "spec.containers[*].ports",
                "PortConflict",
                f"the pod already uses port(s) {taken}, which the sidecar needs; pod admitted without the sidecar",
            )
        )
    for sysctl in (spec.get("securityContext") or {}).get("sysctls") or []:
        if sysctl.get("name") == UNPRIVILEGED_PORT_SYSCTL and mesh.egress_port < 1024:
            value = str(sysctl.get("value", ""))
            if not value.isdigit() or int(value) > mesh.egress_port:
                problems.append(
                    Problem(
                        f"spec.securityContext.sysctls[{UNPRIVILEGED_PORT_SYSCTL}]",
                        "SysctlConflict",
                        f"{UNPRIVILEGED_PORT_SYSCTL}={value} keeps the non-root sidecar off port "
                        f"{mesh.egress_port}; pod admitted without the sidecar",
                    )
                )
    for alias in spec.get("hostAliases") or []:
        if MESH_HOST in (alias.get("hostnames") or []) and alias.get("ip") != "127.0.0.1":
            problems.append(
                Problem(
                    "spec.hostAliases",
                    "HostAliasConflict",
                    f"host alias {MESH_HOST!r} already points to {alias.get('ip')}; pod admitted without the sidecar",
                )
            )
    return problems


def evaluate_opt_in(pod: Mapping[str, Any], mesh: MeshConfig) -> tuple[OptIn | None, list[Problem]]:
    """The route and port of a valid opt-in, or the problems that keep the sidecar out."""
    value = _annotations(pod).get(INJECT_ANNOTATION)
    if value is not None and value.strip().lower() not in _TRUE | _FALSE:
        return None, [
            Problem(
                f"metadata.annotations[{INJECT_ANNOTATION}]",
                "InvalidAnnotation",
                f"{INJECT_ANNOTATION}={value!r} is not one of true/false (y/yes/on, n/no/off); "
                "pod admitted without the sidecar",
            )
        ]
    if not _container_ports(pod) and PORT_ANNOTATION not in _annotations(pod):
        problems = _conflicts(pod, mesh)
        return (None, problems) if problems else (OptIn(None, None), [])
    route, route_problem = _route(pod)
    port, port_problem = choose_port(pod)
    problems = [p for p in (route_problem, port_problem) if p is not None] + _conflicts(pod, mesh)
    if problems or route is None or port is None:
        return None, problems
    return OptIn(route, port), []


# --- the sidecar's gateway config and inbound API -------------------------------------------------------------


def gateway_config(mesh: MeshConfig, *, inbound: bool = True) -> dict[str, Any]:
    """The sidecar's tyk.conf (validated against the gateway's cli/linter/schema.json in the tests).

    Secrets are not in it: `secret`, `node_secret` and `storage.password` come from the namespace's Secret as
    `TYK_GW_*` environment variables, which override the file.
    """
    host, _, port = mesh.redis_addrs[0].rpartition(":")
    return {
        "listen_port": mesh.egress_port,
        "control_api_port": mesh.control_port,
        # The inbound API listens on its own port; the gateway opens only whitelisted extra ports.
        "ports_whitelist": {"http": {"ports": [mesh.inbound_port] if inbound else []}},
        "app_path": APPS_DIR,
        "use_db_app_configs": False,
        "enable_custom_domains": True,
        "storage": {
            "type": "redis",
            "host": host,
            "port": int(port or 6379),
            "addrs": list(mesh.redis_addrs),
            "use_ssl": mesh.redis_tls,
            "enable_cluster": mesh.redis_cluster,
            "database": 0,
            # As the gateways (TYK_GW_STORAGE_TLSMINVERSION); the certificate is checked against system roots.
            **({"min_version": "1.2"} if mesh.redis_tls else {}),
        },
        # The gateways sign their group-reload notification with their node_secret, which sidecars must not
        # hold (it is the gateways' admin secret). Skipping the signature check lets a route change reach every
        # sidecar through one group reload; anyone who can publish on that Redis could already do far worse.
        "allow_insecure_configs": True,
        # Rate limits counted in Redis: otherwise the sidecar would join the gateways' distributed rate
        # limiter and divide each limit by the number of nodes it hears about.
        "enable_redis_rolling_limiter": True,
        "hash_keys": True,
        "hash_key_function": mesh.hash_key_function,
        "enable_analytics": False,
        "enable_jsvm": False,
        "pid_file_location": f"{TMP_DIR}/tyk-gateway.pid",
        "health_check_endpoint_name": HEALTH_PATH.lstrip("/"),
    }


INBOUND_DEFAULT_KEYS = frozenset({"active", "use_keyless", "version_data", "tags"})
"""Fields of the inbound API a template may override (auth, versions); the rest is identity and routing."""


def inbound_api(namespace: str, route: str, app_port: int, mesh: MeshConfig) -> dict[str, Any]:
    """The sidecar's inbound API: every request on the inbound port to the app on 127.0.0.1 (keyless unless
    the pod's setter/template annotations say otherwise)."""
    return {
        "api_id": f"mesh-in.{namespace}.{route_slug(route)}",
        "name": f"mesh inbound {namespace}{route}",
        "org_id": mesh.org_id,
        "active": True,
        "use_keyless": True,
        "listen_port": mesh.inbound_port,
        "protocol": "http",
        "proxy": {
            "listen_path": "/",
            "target_url": f"http://127.0.0.1:{app_port}",
            "strip_listen_path": False,
            "preserve_host_header": True,
        },
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
        "tags": ["mesh"],
    }


# --- the patch -------------------------------------------------------------------------------------------------


def _sidecar_container(mesh: MeshConfig, port_name: str | None) -> dict[str, Any]:
    def from_secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": NAMESPACE_SECRET, "key": key}}}

    probe = {"httpGet": {"path": HEALTH_PATH, "port": CONTROL_PORT_NAME}}
    resources = mesh.resources
    return {
        "name": SIDECAR_NAME,
        "image": mesh.sidecar_image,
        "args": [f"--conf={CONFIG_DIR}/{CONFIG_FILE}"],
        # Native sidecar: started (startup probe passed) before the app's containers, stopped after them.
        "restartPolicy": "Always",
        "ports": [
            *(
                [{"name": port_name, "containerPort": mesh.inbound_port, "protocol": "TCP"}]
                if port_name
                else []
            ),
            {"name": EGRESS_PORT_NAME, "containerPort": mesh.egress_port, "protocol": "TCP"},
            {"name": CONTROL_PORT_NAME, "containerPort": mesh.control_port, "protocol": "TCP"},
        ],
        "env": [
            from_secret("TYK_GW_SECRET", SIDECAR_SECRET_KEY),
            from_secret("TYK_GW_NODESECRET", SIDECAR_SECRET_KEY),
            from_secret("TYK_GW_STORAGE_PASSWORD", REDIS_PASSWORD_KEY),
        ],
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": APPS_VOLUME, "mountPath": APPS_DIR, "readOnly": True},
            {"name": TMP_VOLUME, "mountPath": TMP_DIR},
        ],
        "startupProbe": {**probe, "periodSeconds": 1, "failureThreshold": 60},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {
            "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
            "limits": {"memory": resources.memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _volumes(inbound: bool) -> list[dict[str, Any]]:
    def annotation(path: str, key: str) -> dict[str, Any]:
        return {"path": path, "fieldRef": {"fieldPath": f"metadata.annotations['{key}']"}}

    return [
        {
            "name": CONFIG_VOLUME,
            "downwardAPI": {"items": [annotation(CONFIG_FILE, GATEWAY_CONFIG_ANNOTATION)]},
        },
        {
            "name": APPS_VOLUME,
            "projected": {
                "sources": [
                    *(
                        [{"downwardAPI": {"items": [annotation(INBOUND_FILE, INBOUND_API_ANNOTATION)]}}]
                        if inbound
                        else []
                    ),
                    # Optional: the first pod of a namespace starts before the controller wrote any route.
                    {"configMap": {"name": ROUTES_CONFIG_MAP, "optional": True}},
                ]
            },
        },
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "16Mi"}},
    ]


def injected_pod(
    pod: Mapping[str, Any], namespace: str, opt_in: OptIn, mesh: MeshConfig, inbound: dict[str, Any] | None
) -> dict[str, Any]:
    """The pod as it is after the patch (the patch is computed from it)."""
    new = copy.deepcopy(dict(pod))
    metadata = new.setdefault("metadata", {})
    spec = new.setdefault("spec", {})
    port = opt_in.port
    config = gateway_config(mesh, inbound=port is not None)
    annotations = {
        **(metadata.get("annotations") or {}),
        STATUS_ANNOTATION: INJECTED,
        GATEWAY_CONFIG_ANNOTATION: json.dumps(config, sort_keys=True, separators=(",", ":")),
    }
    if port is not None and opt_in.route is not None and inbound is not None:
        annotations[ROUTE_STATUS_ANNOTATION] = opt_in.route
        annotations[APP_PORT_ANNOTATION] = f"{port.number}/{port.name}"
        annotations[INBOUND_API_ANNOTATION] = json.dumps(inbound, sort_keys=True, separators=(",", ":"))
        spec["containers"][port.container]["ports"][port.index]["name"] = f"{APP_PORT_PREFIX}{port.number}"
    metadata["annotations"] = annotations
    metadata["labels"] = {**(metadata.get("labels") or {}), SIDECAR_LABEL: "true"}
    sidecar = _sidecar_container(mesh, port.name if port is not None else None)
    spec["initContainers"] = [sidecar, *(spec.get("initContainers") or [])]
    spec["volumes"] = [*(spec.get("volumes") or []), *_volumes(port is not None)]
    spec["hostAliases"] = [*(spec.get("hostAliases") or []), {"ip": "127.0.0.1", "hostnames": [MESH_HOST]}]
    if mesh.egress_port < 1024:
        security = spec.setdefault("securityContext", {})
        sysctls = [s for s in security.get("sysctls") or [] if s.get("name") != UNPRIVILEGED_PORT_SYSCTL]
        security["sysctls"] = [*sysctls, {"name": UNPRIVILEGED_PORT_SYSCTL, "value": str(mesh.egress_port)}]
    return new


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


PATCHED_PATHS: Sequence[tuple[str, str]] = (
    ("metadata", "labels"),
    ("metadata", "annotations"),
    ("spec", "containers"),
    ("spec", "initContainers"),
    ("spec", "volumes"),
    ("spec", "hostAliases"),
    ("spec", "securityContext"),
)


def json_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`add` (which replaces an existing member) for each changed top-level field of metadata/spec."""
    patch = []
    for section, key in PATCHED_PATHS:
        before = (old.get(section) or {}).get(key)
        after = (new.get(section) or {}).get(key)
        if after != before:
            patch.append({"op": "add", "path": f"/{section}/{_escape(key)}", "value": after})
    return patch


def plan_injection(
    pod: Mapping[str, Any], namespace: str, mesh: MeshConfig, customise: Customise | None = None
) -> Injection:
    """The admission verdict for a Pod CREATE: never denies, never patches an injected pod twice."""
    if is_injected(pod) or opted_out(pod):
        return Injection(None)
    if not _DNS_LABEL.match(namespace):
        return Injection(
            None, [Problem("metadata.namespace", "InvalidNamespace", f"namespace {namespace!r}")]
        )
    opt_in, problems = evaluate_opt_in(pod, mesh)
    if opt_in is None:
        return Injection(None, problems)
    inbound = None
    if opt_in.route is not None and opt_in.port is not None:
        inbound = inbound_api(namespace, opt_in.route, opt_in.port.number, mesh)
        if customise is not None:
            inbound, problems = customise(inbound, _annotations(pod))
            if problems:
                return Injection(None, problems)
    new = injected_pod(pod, namespace, opt_in, mesh, inbound)
    return Injection(json_patch(pod, new))


def annotation_customiser(templates: Mapping[str, Mapping[str, Any]]) -> Customise:
    """The ingress controller's rules for the inbound API: `template.service.tyk.io: <name>` (a template of the
    controller's templates folder, merged under the generated fields) and the setter annotations
    (`bool.service.tyk.io/use-keyless: "false"`, ...) applied last; the result must be a valid API definition."""

    def customise(
        inbound: dict[str, Any], annotations: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[Problem]]:
        problems: list[Problem] = []
        setters, errors = parse_setters(annotations)
        problems += [
            Problem(
                f"metadata.annotations[{e.annotation}]",
                "InvalidAnnotation",
                f"{e}; pod admitted without the sidecar",
            )
            for e in errors
        ]
        template: Mapping[str, Any] = {}
        name = annotations.get(TEMPLATE_ANNOTATION)
        if name is not None:
            if name not in templates:
                known = ", ".join(sorted(templates)) or "none"
                problems.append(
                    Problem(
                        f"metadata.annotations[{TEMPLATE_ANNOTATION}]",
                        "UnknownTemplate",
                        f"template {name!r} does not exist (known: {known}); pod admitted without the sidecar",
                    )
                )
            else:
                template = templates[name]
        if problems:
            return inbound, problems
        # Defaults (keyless, the version block) under the template, identity and routing over it.
        defaults = {k: v for k, v in inbound.items() if k in INBOUND_DEFAULT_KEYS}
        generated = {k: v for k, v in inbound.items() if k not in INBOUND_DEFAULT_KEYS}
        definition = deep_merge(deep_merge(defaults, template), generated)
        problems += [
            Problem(
                f"metadata.annotations[{e.annotation}]",
                "InvalidAnnotation",
                f"{e}; pod admitted without the sidecar",
            )
            for e in apply_setters(definition, setters)
        ]
        try:
            ApiDefinition.model_validate(definition)
        except ValidationError as error:
            problems.append(
                Problem(
                    "metadata.annotations",
                    "InvalidApiDefinition",
                    "; ".join(format_errors(error, prefix="inbound API"))
                    + "; pod admitted without the sidecar",
                )
            )
        return definition, problems

    return customise
