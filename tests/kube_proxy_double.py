"""A fake Kubernetes API server for the provider's access path, over real HTTP on 127.0.0.1.

Written from the API server's behaviour (kubernetes/kubernetes, staging/src/k8s.io/apiserver):

* authentication first: a missing or wrong bearer token is 401 with a ``Status`` body; after
  authenticating, the API server deletes ``Authorization`` from the request
  (``filters/authentication.go``), so it never reaches the proxied pod; other headers
  (``X-Tyk-Authorization``) pass through;
* RBAC: the verb follows the HTTP method (GET get, POST create, PUT update, DELETE delete,
  PATCH patch; a GET of a collection is list); a denied request is 403 with the message
  ``<resource> "<name>" is forbidden: User "<user>" cannot <verb> resource "<resource>" in API
  group "" in the namespace "<ns>"``;
* ``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>`` forwards to one ready endpoint
  of the Service (503 ``no endpoints available for service "<name>"`` when there is none);
* ``/api/v1/namespaces/<ns>/pods/<name>:<port>/proxy/<path>`` forwards to that pod (404 for an
  unknown pod, 503 ``error trying to reach service`` when it doesn't answer);
* ``GET /api/v1/namespaces/<ns>/services/<name>`` and ``GET /api/v1/namespaces/<ns>/pods``
  (``labelSelector``) return the objects, pods with their ``Ready`` condition;
* ``down()`` stops answering (connection refused), as an unreachable API server.

Every request is recorded as (verb, resource, namespace, name) so tests can assert that the
provider needs no more than the documented RBAC rules.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import itertools
import json
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.gateway_cluster import GatewayCluster
from tests.kube_api_double import status_body

VERBS = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}
POD_LABELS = {"app": "gateway-tyk-gateway", "release": "gateway"}


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str
    namespace: str
    name: str


@dataclass
class KubeProxyDouble:
    cluster: GatewayCluster
    namespace: str = "tyk"
    service: str = "gateway-control-svc-tyk-gateway"
    port: int = 9696
    token: str = "kube-bearer-token"
    user: str = "ci@example.com"
    #: (verb, resource) pairs the user may use; None allows everything.
    allowed: set[tuple[str, str]] | None = None
    requests: list[Request] = field(default_factory=list)
    forwarded_headers: list[dict[str, str]] = field(default_factory=list)
    #: Serve HTTPS with a certificate for 127.0.0.1 from a CA of its own (``ca_pem``), as an API server does.
    tls: bool = False
    ca_pem: bytes = b""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._round_robin = itertools.count()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go's net/http does

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                double._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            self.ca_pem, context = _serving_context()
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._up = True

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def down(self) -> None:
        if self._up:
            self._up = False
            self._server.shutdown()
            self._server.server_close()

    def kubeconfig(self) -> dict[str, Any]:
        cluster: dict[str, Any] = {"server": self.url}
        if self.tls:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "ci", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "ci"}}],
        }

    # --- objects ---------------------------------------------------------------------------------

    def service_object(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.service, "namespace": self.namespace},
            "spec": {
                "type": "ClusterIP",
                "selector": POD_LABELS,
                "ports": [{"name": "http", "port": self.port, "targetPort": "control", "protocol": "TCP"}],
            },
        }

    def pod_object(self, name: str) -> dict[str, Any]:
        replica = self.cluster.replicas[name]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": dict(POD_LABELS)},
            "spec": {
                "containers": [{"name": "gateway", "ports": [{"name": "control", "containerPort": 9696}]}]
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if replica.ready else "False"}],
            },
        }

    # --- request handling ------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(handler, 401, "Unauthorized", "Unauthorized")
        url = urlsplit(handler.path)
        parts = url.path.strip("/").split("/")
        if len(parts) < 5 or parts[:3] != ["api", "v1", "namespaces"]:
            return self._status(handler, 404, "NotFound", "the server could not find the requested resource")
        namespace, resource = parts[3], parts[4]
        name = parts[5] if len(parts) > 5 else ""
        proxied = len(parts) > 6 and parts[6] == "proxy"
        verb = VERBS.get(handler.command, handler.command.lower())
        if not name and verb == "get":
            verb = "list"
        full_resource = f"{resource}/proxy" if proxied else resource
        object_name = name.split(":")[0]
        with self._lock:
            self.requests.append(Request(verb, full_resource, namespace, object_name))
        if self.allowed is not None and (verb, full_resource) not in self.allowed:
            message = (
                f'{resource} "{object_name}" is forbidden: User "{self.user}" cannot {verb} resource '
                f'"{full_resource}" in API group "" in the namespace "{namespace}"'
            )
            return self._status(handler, 403, "Forbidden", message, {"name": object_name, "kind": resource})
        if namespace != self.namespace:
            return self._status(handler, 404, "NotFound", f'{resource} "{object_name}" not found')
        if proxied:
            rest = "/" + "/".join(parts[7:]) + (f"?{url.query}" if url.query else "")
            return self._proxy(handler, resource, name, rest, body)
        if resource == "services" and object_name == self.service and handler.command == "GET":
            return self._json(handler, 200, self.service_object())
        if resource == "pods" and not name and handler.command == "GET":
            selector = parse_qs(url.query).get("labelSelector", [""])[0]
            wanted = dict(pair.split("=", 1) for pair in selector.split(",") if pair)
            items = [
                self.pod_object(n)
                for n in list(self.cluster.replicas)
                if all(POD_LABELS.get(k) == v for k, v in wanted.items())
            ]
            return self._json(handler, 200, {"apiVersion": "v1", "kind": "PodList", "items": items})
        return self._status(handler, 404, "NotFound", f'{resource} "{object_name}" not found')

    def _proxy(
        self, handler: BaseHTTPRequestHandler, resource: str, name: str, rest: str, body: bytes
    ) -> None:
        object_name, _, port = name.partition(":")
        if resource == "services":
            if object_name != self.service or port not in ("", str(self.port), "http"):
                return self._status(handler, 404, "NotFound", f'services "{object_name}" not found')
            ready = [r for r in list(self.cluster.replicas.values()) if r.ready]
            if not ready:
                return self._status(
                    handler, 503, "ServiceUnavailable", f'no endpoints available for service "{object_name}"'
                )
            replica = ready[next(self._round_robin) % len(ready)]
        elif resource == "pods":
            found = self.cluster.replicas.get(object_name)
            if found is None:
                return self._status(handler, 404, "NotFound", f'pods "{object_name}" not found')
            replica = found
        else:
            return self._status(handler, 404, "NotFound", "the server could not find the requested resource")
        # The API server has already removed Authorization; everything else is passed on.
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in {"authorization", "host", "connection"}
        }
        with self._lock:
            self.forwarded_headers.append(headers)
        target = urlsplit(replica.url)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        try:
            connection.request(handler.command, rest, body=body or None, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        except OSError as error:
            return self._status(
                handler,
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {target.netloc}: {error}",
            )
        finally:
            connection.close()
        handler.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in {"content-length", "connection", "transfer-encoding"}:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        with contextlib.suppress(OSError):
            handler.wfile.write(data)

    def _status(
        self,
        handler: BaseHTTPRequestHandler,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        self._json(handler, code, status_body(code, reason, message, details))


def _serving_context() -> tuple[bytes, ssl.SSLContext]:
    """A CA and a server certificate for 127.0.0.1 signed by it (the API server's serving certificate)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    folder = tempfile.mkdtemp(prefix="kube-double-")
    cert_file, key_file = f"{folder}/server.crt", f"{folder}/server.key"
    with open(cert_file, "wb") as out:
        out.write(server.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca.public_bytes(serialization.Encoding.PEM), context
