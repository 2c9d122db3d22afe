"""`PinnedImage`: a container image tag resolved to its registry digest once, and kept in the stack's state.

Why a resource and not a lookup on every run: a pin must not move when the tag does. Image publishers re-push
tags (busybox and redis rebuild theirs for base-image fixes), and a lookup at every `pulumi up` would roll every
gateway pod whenever that happened, unasked. Here the digest is resolved when the resource is first declared
and whenever its reference or its `generation` changes (a reviewed commit: a new tag, or asking for the tag's
current image), and never otherwise: every node and every restart pulls the same bytes until then.

Why in `check`: the engine calls it in previews too, so the preview already shows the digest that `up` deploys
(the Helm values and pod specs carry it, not an unknown). On later runs `check` gets the stored inputs back as
`olds` and keeps their digest without asking the registry.

Why our own few lines of registry client: docker-py asks a Docker daemon (there is none where previews run),
and pulumi-docker's `getRegistryImage` is an invoke, which can't hold a value across runs. What is spoken is the
distribution API (`HEAD`, else `GET /v2/<name>/manifests/<tag>`) with the registry token flow (a 401 naming a
`Bearer` realm, an anonymous token for `repository:<name>:pull`), as in the distribution spec (docs/spec/api.md,
docs/spec/auth/token.md) and the OCI distribution spec.

Public images only: a registry that wants credentials is refused with a message saying to set the digest in the
stack file instead (`gateway.imageDigest` and friends), which needs no lookup at all.

No `from __future__ import annotations` here: the SDK reads the Resource subclass's annotations at runtime.
"""

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import requests
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "https://registry-1.docker.io"  # where docker.io's distribution API is served
# Index types first: the digest of a multi-platform image must be its index's, so every node picks its own
# platform. A registry that doesn't see them in Accept answers with one platform's manifest (distribution's
# manifests handler rewrites a list to the linux/amd64 manifest), whose digest would break arm64 nodes.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DIGEST_HEADER = "Docker-Content-Digest"
TIMEOUT = (10.0, 30.0)  # (connect, read) seconds
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

# distribution/reference's grammar: path components of lowercase alphanumerics with single separators, and a
# tag of up to 128 word characters, dots and dashes.
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^\w[\w.-]{0,127}$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class ImageLookupError(ValueError):
    """A reference that can't be resolved; the message is one line, naming the image."""


@dataclass(frozen=True)
class ImageName:
    """`<domain>/<path>:<tag>`, normalised as Docker normalises a name (distribution/reference, normalize.go)."""

    domain: str
    path: str
    tag: str

    @property
    def api(self) -> str:
        """Base URL of the registry's distribution API."""
        if self.domain == DOCKER_HUB:
            return DOCKER_HUB_API
        # Docker itself talks plain HTTP to a registry on the local machine (kind's local registry).
        host = self.domain.split(":")[0]
        scheme = "http" if host in ("localhost", "127.0.0.1") else "https"
        return f"{scheme}://{self.domain}"


def parse_reference(reference: str) -> ImageName:
    """`busybox:1.37.0` -> docker.io, library/busybox, 1.37.0; `ghcr.io/org/app:v1` -> ghcr.io, org/app, v1."""
    if "@" in reference:
        raise ImageLookupError(f"image {reference!r}: already has a digest; nothing to resolve")
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        raise ImageLookupError(f"image {reference!r}: needs a tag (<repository>:<tag>)")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DOCKER_HUB, name
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"  # official images
    if not _PATH.match(path) or not _TAG.match(tag):
        raise ImageLookupError(f"image {reference!r}: not a valid <repository>:<tag>")
    return ImageName(domain, path, tag)


def registry_session() -> requests.Session:
    """Retries with backoff for connection errors, 429 (Docker Hub's rate limit) and 5xx; Retry-After honoured."""
    session = requests.Session()
    retry = Retry(
        total=4,
        backoff_factor=1.0,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _registry_errors(response: requests.Response) -> str:
    """`MANIFEST_UNKNOWN: manifest unknown` from the spec's error body, or the status line."""
    try:
        errors = response.json().get("errors") or []
        described = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        described = ""
    return f"{response.status_code} {described or response.reason}".strip()


def _anonymous_token(session: requests.Session, challenge: str, image: ImageName, reference: str) -> str:
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() != "bearer":
        raise ImageLookupError(
            f"image {reference!r}: {image.domain} wants credentials ({scheme or 'no challenge'}); "
            "set its digest in the stack file instead"
        )
    fields = dict(_CHALLENGE_PARAM.findall(params))
    realm = fields.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise ImageLookupError(f"image {reference!r}: {image.domain} named no token realm ({challenge!r})")
    query = {"scope": fields.get("scope") or f"repository:{image.path}:pull"}
    if "service" in fields:
        query["service"] = fields["service"]
    try:
        response = session.get(realm, params=query, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise ImageLookupError(
            f"image {reference!r}: can't reach {realm} ({type(error).__name__})"
        ) from error
    if response.status_code != 200:
        raise ImageLookupError(
            f"image {reference!r}: {realm} refused an anonymous pull token ({_registry_errors(response)}); "
            "set its digest in the stack file instead"
        )
    try:
        body = response.json()
        token = body.get("token") or body.get("access_token")  # either name (token.md)
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise ImageLookupError(f"image {reference!r}: {realm} answered without a token")
    return token


def resolve_digest(reference: str, session: requests.Session | None = None, api: str | None = None) -> str:
    """The registry digest of `<repository>:<tag>` (the index's for a multi-platform image). `api` replaces the
    registry's base URL (a mirror, or a test double).

    HEAD first, as containerd's resolver does: its `Docker-Content-Digest` is the answer, and a HEAD isn't a pull
    in Docker Hub's rate limit (a GET of a manifest is). A wrong digest can't substitute an image: the kubelet
    checks the bytes it pulls against it. Only a registry that leaves the header out is asked with a GET, and
    the digest is then the hash of the bytes served.
    """
    image = parse_reference(reference)
    session = session or registry_session()
    url = f"{api or image.api}/v2/{image.path}/manifests/{image.tag}"
    headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}

    def ask(method: str) -> requests.Response:
        try:
            response = session.request(method, url, headers=headers, timeout=TIMEOUT)
            if response.status_code == 401 and "Authorization" not in headers:
                token = _anonymous_token(
                    session, response.headers.get("WWW-Authenticate", ""), image, reference
                )
                headers["Authorization"] = f"Bearer {token}"
                response = session.request(method, url, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as error:
            raise ImageLookupError(
                f"image {reference!r}: can't reach {image.domain} ({type(error).__name__})"
            ) from error
        return response

    response = ask("HEAD")
    if response.status_code != 200:
        response = ask("GET")  # a HEAD has no body: the GET's carries the registry's error code and message
        if response.status_code != 200:
            raise ImageLookupError(
                f"image {reference!r}: {image.domain} answered {_registry_errors(response)}"
            )
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type not in MANIFEST_MEDIA_TYPES:
        # A schema1 manifest's digest isn't the hash of what is served; nothing else is an image.
        raise ImageLookupError(f"image {reference!r}: {image.domain} served {media_type or 'no media type'}")
    claimed = response.headers.get(DIGEST_HEADER)
    if response.request.method == "HEAD":
        if claimed is not None and DIGEST.match(claimed):
            return claimed
        response = ask("GET")
        if response.status_code != 200:
            raise ImageLookupError(
                f"image {reference!r}: {image.domain} answered {_registry_errors(response)}"
            )
        claimed = response.headers.get(DIGEST_HEADER)
    digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
    if claimed and claimed != digest:
        raise ImageLookupError(
            f"image {reference!r}: {image.domain} says {claimed} but served the manifest {digest}"
        )
    return digest


class PinnedImageProvider(ResourceProvider):
    """Resolve in `check`, keep what `olds` holds; create, update and read only echo (nothing lives outside
    the state, so deleting one forgets a pin and touches no registry)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        reference = news.get("reference")
        if not isinstance(reference, str):
            return CheckResult(
                news, [CheckFailure("reference", f"must be <repository>:<tag>, got {reference!r}")]
            )
        generation = news.get("generation", 1)
        kept = olds.get("digest")
        same_pin = olds.get("reference") == reference and olds.get("generation", 1) == generation
        if same_pin and isinstance(kept, str) and DIGEST.match(kept):
            digest = kept  # the pin: the tag may have moved since, this stack keeps what it deployed
        else:
            try:
                digest = resolve_digest(reference)
            except ImageLookupError as error:
                return CheckResult(news, [CheckFailure("reference", str(error))])
        return CheckResult(_pinned(reference, generation, digest), [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in ("reference", "generation", "digest") if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = _pinned(props["reference"], props.get("generation", 1), props["digest"])
        return CreateResult(id_=outs["image"], outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_pinned(news["reference"], news.get("generation", 1), news["digest"]))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # A refresh never re-resolves: the pin is what this stack deployed, not what the tag says today.
        return ReadResult(id_=id_, outs=props)


def _pinned(reference: str, generation: int, digest: str) -> dict[str, Any]:
    return {
        "reference": reference,
        "generation": generation,
        "digest": digest,
        "image": f"{reference}@{digest}",
    }


class PinnedImage(Resource, module="images", name="PinnedImage"):
    """`<repository>:<tag>` pinned to the digest it had when this stack first deployed it."""

    reference: pulumi.Output[str]
    generation: pulumi.Output[int]
    """Bumping it resolves the tag again (to take a re-pushed tag on purpose)."""
    digest: pulumi.Output[str]
    """`sha256:...`, the registry digest (an index's for a multi-platform image)."""
    image: pulumi.Output[str]
    """`<repository>:<tag>@sha256:...`: what a pod spec pulls."""

    def __init__(
        self,
        resource_name: str,
        reference: str,
        generation: int = 1,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        parse_reference(reference)  # a malformed reference fails the program, before anything is declared
        props = {"reference": reference, "generation": generation, "digest": None, "image": None}
        super().__init__(PinnedImageProvider(), resource_name, props, opts)
