"""A container registry over real HTTP on 127.0.0.1: the manifests endpoint and its token service.

Written from distribution/distribution, not from the client under test:

* ``GET``/``HEAD /v2/<name>/manifests/<tag>`` (``registry/handlers/manifests.go``, ``GetManifest`` serves
  both): the tag names a digest; the payload is served with ``Content-Type``, ``Content-Length``,
  ``Docker-Content-Digest`` and ``Etag``, a HEAD gets the same headers and no body (nor does an error). Accept decides
  what a client may get: a Docker manifest list asked for without its media type is rewritten to the
  linux/amd64 manifest (and that manifest's digest); an OCI index or OCI manifest without its media type is
  ``404 MANIFEST_UNKNOWN``; an unknown tag is ``404 MANIFEST_UNKNOWN``.
* errors are the spec's envelope ``{"errors": [{"code", "message", "detail"}]}``
  (``registry/api/errcode``).
* token auth (``docs/spec/auth/token.md``, ``registry/auth/token/accesscontroller.go``): a request without a
  token for the repository's ``pull`` scope is ``401 UNAUTHORIZED`` with
  ``WWW-Authenticate: Bearer realm="...",service="...",scope="repository:<name>:pull"`` (and
  ``error="insufficient_scope"`` when a token was sent); ``GET <realm>?service=&scope=`` answers
  ``{"token", "access_token", "expires_in", "issued_at"}``. The token service grants only what the client
  may have (an anonymous client: ``pull`` on public repositories, nothing on others), never an error for
  scope it doesn't grant.

Test knobs: ``basic_auth`` (a registry that wants credentials: a ``Basic`` challenge), ``rate_limited`` (that
many 429s with ``Retry-After: 0`` first, as Docker Hub's limit), ``digest_header`` (``"get"``: a registry or
proxy that sends ``Docker-Content-Digest`` only with a body, ``"never"``: not at all), ``lying_digest`` (a
``Docker-Content-Digest`` that isn't the payload's), ``down()`` (connection refused). Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SERVICE = "registry.test"
_MANIFEST_PATH = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_PLATFORM_TYPE = {MANIFEST_LIST: SCHEMA2, OCI_INDEX: OCI_MANIFEST}


def digest_of(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str
    accept: str


@dataclass
class RegistryDouble:
    public: set[str] = field(default_factory=set)
    """Repositories an anonymous client may pull; any other repository is private."""
    basic_auth: bool = False
    rate_limited: int = 0
    digest_header: Literal["always", "get", "never"] = "always"
    lying_digest: bool = False
    seen: list[Seen] = field(default_factory=list)
    _manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # digest -> (media type, payload)
    _tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, tag) -> digest
    _server: ThreadingHTTPServer | None = None

    # --- content ---------------------------------------------------------------------------------------------

    def push(self, name: str, tag: str, media_type: str = SCHEMA2, build: int = 1) -> str:
        """Push an image under `name:tag` (a multi-platform one for a list or index type); its digest.
        `build` makes a different image, as a rebuild pushed over the same tag."""
        self.public.add(name)
        if media_type in _PLATFORM_TYPE:
            platforms = []
            for arch in ("amd64", "arm64"):
                digest = self._store(name, _PLATFORM_TYPE[media_type], {"arch": arch, "build": build})
                size = len(self._manifests[digest][1])
                platforms.append(
                    {
                        "mediaType": _PLATFORM_TYPE[media_type],
                        "digest": digest,
                        "size": size,
                        "platform": {"architecture": arch, "os": "linux"},
                    }
                )
            body = {"schemaVersion": 2, "mediaType": media_type, "manifests": platforms}
        else:
            body = {"arch": "amd64", "build": build}
        digest = self._store(name, media_type, body)
        self._tags[(name, tag)] = digest
        return digest

    def platform_digest(self, name: str, tag: str, arch: str) -> str:
        _, payload = self._manifests[self._tags[(name, tag)]]
        manifests = json.loads(payload)["manifests"]
        return str(next(m["digest"] for m in manifests if m["platform"]["architecture"] == arch))

    def _store(self, name: str, media_type: str, body: dict[str, Any]) -> str:
        if media_type in (SCHEMA2, OCI_MANIFEST):
            body = {"schemaVersion": 2, "mediaType": media_type, "config": {"repo": name, **body}}
        payload = json.dumps(
            body, indent=3
        ).encode()  # registries serve the bytes pushed, whatever their format
        digest = digest_of(payload)
        self._manifests[digest] = (media_type, payload)
        return digest

    # --- server ----------------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> RegistryDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._record()
                double._answer(self)

            def do_HEAD(self) -> None:
                self._record()
                double._answer(self)

            def _record(self) -> None:
                double.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        self.headers.get("Authorization", ""),
                        ", ".join(self.headers.get_all("Accept") or []),
                    )
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- behaviour -------------------------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        if self.rate_limited > 0:
            self.rate_limited -= 1
            self._error(handler, 429, "TOOMANYREQUESTS", "too many requests", {"Retry-After": "0"})
            return
        if url.path == "/token":
            self._token(handler, parse_qs(url.query))
            return
        match = _MANIFEST_PATH.match(url.path)
        if match is None:
            self._error(handler, 404, "NAME_UNKNOWN", "repository name not known to registry")
            return
        name, reference = match["name"], match["reference"]
        if self.basic_auth:
            self._error(
                handler,
                401,
                "UNAUTHORIZED",
                "authentication required",
                {"WWW-Authenticate": f'Basic realm="{SERVICE}"'},
            )
            return
        authorization = handler.headers.get("Authorization", "")
        if authorization != f"Bearer {self._token_for(name)}" or name not in self.public:
            challenge = f'Bearer realm="{self.url}/token",service="{SERVICE}",scope="repository:{name}:pull"'
            if authorization:
                challenge += ',error="insufficient_scope"'
            self._error(
                handler, 401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}
            )
            return
        self._manifest(handler, name, reference)

    def _manifest(self, handler: BaseHTTPRequestHandler, name: str, tag: str) -> None:
        accepted = {
            part.split(";")[0].strip()
            for header in handler.headers.get_all("Accept") or []
            for part in header.split(",")
        }
        digest = self._tags.get((name, tag))
        if digest is None:
            self._error(handler, 404, "MANIFEST_UNKNOWN", "manifest unknown", detail={"Tag": tag})
            return
        media_type, payload = self._manifests[digest]
        if media_type == OCI_MANIFEST and OCI_MANIFEST not in accepted:
            self._error(
                handler,
                404,
                "MANIFEST_UNKNOWN",
                "OCI manifest found, but accept header does not support OCI manifests",
            )
            return
        if media_type == OCI_INDEX and OCI_INDEX not in accepted:
            self._error(
                handler,
                404,
                "MANIFEST_UNKNOWN",
                "OCI index found, but accept header does not support OCI indexes",
            )
            return
        if media_type == MANIFEST_LIST and MANIFEST_LIST not in accepted:
            # An old client: the list is rewritten to the default platform's manifest.
            digest = self.platform_digest(name, tag, "amd64")
            media_type, payload = self._manifests[digest]
        served = digest_of(b"tampered") if self.lying_digest else digest
        handler.send_response(200)
        handler.send_header("Content-Type", media_type)
        handler.send_header("Content-Length", str(len(payload)))
        if self.digest_header == "always" or (self.digest_header == "get" and handler.command == "GET"):
            handler.send_header("Docker-Content-Digest", served)
            handler.send_header("Etag", f'"{served}"')
        handler.end_headers()
        if handler.command == "GET":
            handler.wfile.write(payload)

    def _token(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        granted = [
            scope.split(":")[1]
            for scope in query.get("scope", [])
            if scope.startswith("repository:")
            and scope.endswith(":pull")
            and scope.split(":")[1] in self.public
        ]
        token = self._token_for(granted[0]) if granted else "token-without-access"
        body = {"token": token, "access_token": token, "expires_in": 300, "issued_at": "2026-11-29T00:00:00Z"}
        self._json(handler, 200, body)

    @staticmethod
    def _token_for(name: str) -> str:
        return "token-pull-" + hashlib.sha256(name.encode()).hexdigest()[:16]

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        detail: Any = None,
    ) -> None:
        self._json(
            handler, status, {"errors": [{"code": code, "message": message, "detail": detail}]}, headers
        )

    @staticmethod
    def _json(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)
