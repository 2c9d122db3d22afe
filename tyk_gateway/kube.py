"""Reaching the control API through the Kubernetes API server: service proxy, pod proxy, pod list.

The control API is a ClusterIP Service on purpose. Instead of a port-forward loop next to
``pulumi up``, the provider sends its calls through the API server's proxy subresources:

* ``/api/v1/namespaces/<ns>/services/<service>:<port>/proxy/tyk/...`` for every write, read and
  the group reload (RBAC ``services/proxy``, the verb follows the HTTP method);
* ``/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/tyk/...`` to reload and list one replica
  (``pods/proxy`` get) after each batch, with the ready pods found by the Service's selector
  (``services`` get on the control Service, ``pods`` list).

The API server authenticates us with the cluster credentials (``Authorization`` is consumed
there and never reaches the gateway) and passes ``X-Tyk-Authorization`` through, so the admin
secret still authenticates us to the gateway. Why the proxy and not a port-forward:
docs/api-management.md#why-the-service-proxy (plain HTTPS requests, no websocket, no pod
pinning, one connection pool for every call; measured by benchmarks/access_bench.py).

Answers that come from the API server itself are Kubernetes ``Status`` objects; they become
errors that name the cause (unreachable, credentials rejected, which RBAC verb on which
resource is missing, no ready gateway pod) instead of gateway errors.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .client import ClientSettings, TykGatewayError
from .kubeconfig import ClusterCredentials, CredentialsError

SCHEME = "kubernetes"
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}


class KubernetesAccessError(TykGatewayError):
    """The Kubernetes API server (not the gateway) refused or failed a call."""

    def _describe(self) -> str:
        return self.message


@dataclass(frozen=True)
class KubeTarget:
    """``kubernetes://<namespace>/<service>:<port>``: the control Service, as recorded in each resource."""

    namespace: str
    service: str
    port: int

    @classmethod
    def parse(cls, url: str) -> KubeTarget:
        parts = urlsplit(url)
        name, _, port = parts.path.strip("/").partition(":")
        if parts.scheme != SCHEME or not parts.hostname or not name or "/" in name or not port.isdigit():
            raise ValueError(f"expected kubernetes://<namespace>/<service>:<port>, got {url!r}")
        return cls(parts.hostname, name, int(port))

    def __str__(self) -> str:
        return f"{SCHEME}://{self.namespace}/{self.service}:{self.port}"


def kubernetes_target(namespace: str, service: str, port: int) -> str:
    return str(KubeTarget(namespace, service, port))


def _status(response: requests.Response) -> dict[str, Any] | None:
    """The body when it is a Kubernetes Status (the API server's own answer), else None."""
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1":
        return body
    return None


class KubeTransport:
    """Credentials and error mapping for calls through the API server (``client.Transport``)."""

    def __init__(self, credentials: ClusterCredentials, settings: ClientSettings) -> None:
        self.credentials = credentials
        self.settings = settings

    def __repr__(self) -> str:
        return f"KubeTransport({self.credentials.server!r})"

    def prepare(self, session: requests.Session) -> None:
        c = self.credentials
        session.verify = False if c.insecure else (c.ca_file or True)
        if c.client_cert is not None:
            session.cert = c.client_cert

    def headers(self) -> Mapping[str, str]:
        try:
            token = self.credentials.token()
        except CredentialsError as error:
            raise KubernetesAccessError("GET", "", None, str(error), self.credentials.server) from None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def unreachable(self, method: str, path: str, detail: str) -> Exception:
        return KubernetesAccessError(
            method,
            path,
            None,
            f"Kubernetes API server {self.credentials.server} unreachable for {method} {path}: {detail} "
            f"(credentials from {self.credentials.source})",
            self.credentials.server,
        )

    def failure(self, method: str, path: str, response: requests.Response) -> Exception | None:
        status = _status(response)
        if status is None:
            return None
        api_path = urlsplit(response.request.url or "").path if response.request is not None else path
        return self.status_error(method, path, response.status_code, status, api_path)

    def status_error(
        self, method: str, path: str, code: int, status: Mapping[str, Any], api_path: str | None = None
    ) -> Exception:
        message = str(status.get("message") or status.get("reason") or "(no message)")
        server = self.credentials.server
        details = status.get("details") or {}
        if code == 401:
            text = (
                f"Kubernetes API server {server} rejected the credentials from {self.credentials.source} "
                f"(401 Unauthorized) for {method} {path}"
            )
        elif code == 403:
            resource = _resource_of(api_path or path)
            text = (
                f"Kubernetes RBAC denied {method} {path}: verb {_VERBS.get(method, method.lower())!r} on "
                f"{resource} is missing ({message}); see docs/api-management.md#rbac"
            )
        elif code == 503 or "no endpoints available" in message or "error trying to reach" in message:
            text = (
                f"no ready gateway pod answered {method} {path} through {server} ({code}: {message}); "
                "is the gateway release running?"
            )
        elif code == 404:
            kind, name = details.get("kind", "object"), details.get("name", "?")
            text = f"Kubernetes {kind} {name!r} not found for {method} {path} ({message})"
        else:
            text = f"Kubernetes API server {server} failed {method} {path} ({code}): {message}"
        return KubernetesAccessError(method, path, code, text, server)


def _resource_of(path: str) -> str:
    parts = path.split("?")[0].strip("/").split("/")
    # api/v1/namespaces/<ns>/<resource>/<name>[/<subresource>]
    if len(parts) >= 5 and parts[:3] == ["api", "v1", "namespaces"]:
        resource = parts[4] + (f"/{parts[6]}" if len(parts) > 6 else "")
        name = f" {parts[5].split(':')[0]!r}" if len(parts) > 5 else ""
        return f"{resource}{name} in namespace {parts[3]!r}"
    return path


@dataclass(frozen=True)
class Pod:
    name: str
    port: int


class KubeApi:
    """The few plain API calls the provider makes: the control Service and its ready pods."""

    def __init__(self, transport: KubeTransport) -> None:
        self.transport = transport
        self.server = transport.credentials.server
        self._local = threading.local()  # one Session per thread: requests.Session is not thread-safe
        self._services: dict[KubeTarget, tuple[str, Any]] = {}  # selector and target port, read once

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            s = self.transport.settings
            retry = Retry(
                total=s.retries,
                connect=s.retries,
                read=s.retries,
                status=s.retries,
                redirect=0,
                status_forcelist=(429, 500, 502, 503, 504),
                backoff_factor=s.backoff_factor,
                backoff_max=s.backoff_max,
                raise_on_status=False,
                raise_on_redirect=False,
            )
            session = self._local.session = requests.Session()
            session.mount("https://", HTTPAdapter(max_retries=retry))
            session.mount("http://", HTTPAdapter(max_retries=retry))
            self.transport.prepare(session)
        return session

    def service_proxy_url(self, target: KubeTarget) -> str:
        ns, name = quote(target.namespace, safe=""), quote(target.service, safe="")
        return f"{self.server}/api/v1/namespaces/{ns}/services/{name}:{target.port}/proxy"

    def pod_proxy_url(self, namespace: str, pod: Pod) -> str:
        ns, name = quote(namespace, safe=""), quote(pod.name, safe="")
        return f"{self.server}/api/v1/namespaces/{ns}/pods/{name}:{pod.port}/proxy"

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        s = self.transport.settings
        session = self._session()
        try:
            response = session.get(
                self.server + path,
                params=params,
                headers={"Accept": "application/json", **self.transport.headers()},
                timeout=(s.connect_timeout, s.read_timeout),
                allow_redirects=False,
                verify=session.verify,  # per request, or REQUESTS_CA_BUNDLE would replace the cluster's CA
            )
        except requests.RequestException as error:
            raise self.transport.unreachable("GET", path, f"{type(error).__name__}: {error}") from None
        status = _status(response)
        if response.status_code != 200 or status is not None:
            raise self.transport.status_error(
                "GET", path, response.status_code, status or {"message": response.text[:200]}
            )
        body = response.json()
        if not isinstance(body, dict):
            raise self.transport.status_error("GET", path, 200, {"message": "not a JSON object"})
        return body

    def ready_pods(self, target: KubeTarget) -> list[Pod]:
        """The ready pods behind the control Service (its selector), with the container port it targets."""
        ns = quote(target.namespace, safe="")
        if target not in self._services:
            service = self.get(f"/api/v1/namespaces/{ns}/services/{quote(target.service, safe='')}")
            spec = service.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector:
                raise KubernetesAccessError(
                    "GET",
                    "",
                    None,
                    f"service {target.namespace}/{target.service} has no pod selector",
                    self.server,
                )
            target_port: Any = target.port
            for port in spec.get("ports") or []:
                if port.get("port") == target.port:
                    target_port = port.get("targetPort", target.port)
            label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            self._services[target] = (label_selector, target_port)
        label_selector, target_port = self._services[target]
        pods = self.get(f"/api/v1/namespaces/{ns}/pods", {"labelSelector": label_selector})
        ready = []
        for item in pods.get("items") or []:
            meta, status = item.get("metadata") or {}, item.get("status") or {}
            if meta.get("deletionTimestamp"):
                continue
            conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            if conditions.get("Ready") != "True":
                continue
            ready.append(Pod(meta["name"], _container_port(item, target_port)))
        return sorted(ready, key=lambda pod: pod.name)


def _container_port(pod: Mapping[str, Any], target_port: Any) -> int:
    if isinstance(target_port, int):
        return target_port
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target_port:
                return int(port["containerPort"])
    raise KubernetesAccessError(
        "GET", "", None, f"pod {pod['metadata']['name']} has no container port named {target_port!r}", ""
    )


@dataclass(frozen=True)
class Rule:
    """One RBAC rule (core API group) the provider needs in the gateway's namespace."""

    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()


def provider_rules(control_service: str) -> tuple[Rule, ...]:
    """Exactly what the provider's requests need: docs/api-management.md#rbac explains each rule."""
    return (
        # Writes, reads and the group reload through the control Service (the verb follows the method).
        Rule(("services/proxy",), ("get", "create", "update", "delete"), (control_service,)),
        # The Service's selector, to find the replicas behind it.
        Rule(("services",), ("get",), (control_service,)),
        # Replica verification: the ready pods, then a blocking reload and a list on each.
        Rule(("pods",), ("list",)),
        Rule(("pods/proxy",), ("get",)),
    )


def allows(rules: tuple[Rule, ...], verb: str, resource: str, name: str) -> bool:
    return any(
        resource in rule.resources
        and verb in rule.verbs
        and (not rule.resource_names or name in rule.resource_names)
        for rule in rules
    )
