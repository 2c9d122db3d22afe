"""Image digests: the registry client and the `PinnedImage` provider against the registry double."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Literal

import dill
import pytest
import requests
from pulumi.dynamic.dynamic import serialize_provider

from components.image_pin import (
    DIGEST,
    MANIFEST_MEDIA_TYPES,
    ImageLookupError,
    ImageName,
    PinnedImageProvider,
    parse_reference,
    resolve_digest,
)
from tests.registry_double import MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, SCHEMA2, RegistryDouble, digest_of

NAME = "tyk/gateway"


@pytest.fixture
def registry() -> Iterator[RegistryDouble]:
    double = RegistryDouble().start()
    yield double
    double.down()


def plugin_provider() -> PinnedImageProvider:
    """What the plugin process does with the state's `__provider` blob."""
    provider = dill.loads(base64.b64decode(serialize_provider(PinnedImageProvider())))
    assert isinstance(provider, PinnedImageProvider)
    return provider


# --- references ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected", "api"),
    [
        (
            "busybox:1.37.0",
            ImageName("docker.io", "library/busybox", "1.37.0"),
            "https://registry-1.docker.io",
        ),
        ("tykio/tyk-gateway:v5.13.1", ImageName("docker.io", "tykio/tyk-gateway", "v5.13.1"), None),
        (
            "index.docker.io/library/redis:7.4.6-alpine",
            ImageName("docker.io", "library/redis", "7.4.6-alpine"),
            None,
        ),
        (
            "docker.tyk.io/tyk-gateway/tyk-gateway:v5.13.1",
            ImageName("docker.tyk.io", "tyk-gateway/tyk-gateway", "v5.13.1"),
            "https://docker.tyk.io",
        ),
        (
            "localhost:5001/tyk-controller:dev",
            ImageName("localhost:5001", "tyk-controller", "dev"),
            "http://localhost:5001",
        ),
        ("localhost/app:1", ImageName("localhost", "app", "1"), "http://localhost"),
    ],
)
def test_references_are_normalised_as_docker_does(
    reference: str, expected: ImageName, api: str | None
) -> None:
    assert parse_reference(reference) == expected
    if api is not None:
        assert expected.api == api


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("busybox", "needs a tag"),
        ("localhost:5001/app", "needs a tag"),
        ("Busybox:1", "not a valid"),
        ("busybox:-1", "not a valid"),
        ("busybox:1@sha256:" + "0" * 64, "already has a digest"),
    ],
)
def test_bad_references_are_refused_naming_them(reference: str, message: str) -> None:
    with pytest.raises(ImageLookupError, match=message) as error:
        parse_reference(reference)
    assert repr(reference) in str(error.value) and "\n" not in str(error.value)


# --- the registry conversation -------------------------------------------------------------------------------


@pytest.mark.parametrize("index_type", [MANIFEST_LIST, OCI_INDEX])
def test_a_multi_platform_image_resolves_to_its_index(registry: RegistryDouble, index_type: str) -> None:
    index = registry.push(NAME, "v1", index_type)
    assert resolve_digest(f"{registry.host}/{NAME}:v1") == index
    assert index not in (
        registry.platform_digest(NAME, "v1", "amd64"),
        registry.platform_digest(NAME, "v1", "arm64"),
    )


def test_without_the_index_types_the_registry_would_give_one_platform(registry: RegistryDouble) -> None:
    # Why Accept names the index types: a client that doesn't gets linux/amd64's manifest, whose digest arm64
    # nodes can't run. (The double's side of the contract the test above relies on.)
    registry.push(NAME, "v1", MANIFEST_LIST)
    single_platform = tuple(t for t in MANIFEST_MEDIA_TYPES if t not in (MANIFEST_LIST, OCI_INDEX))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("components.image_pin.MANIFEST_MEDIA_TYPES", single_platform)
        assert resolve_digest(f"{registry.host}/{NAME}:v1") == registry.platform_digest(NAME, "v1", "amd64")


@pytest.mark.parametrize("media_type", [SCHEMA2, OCI_MANIFEST])
def test_a_single_platform_image_resolves_to_its_manifest(registry: RegistryDouble, media_type: str) -> None:
    digest = registry.push(NAME, "v1", media_type)
    assert resolve_digest(f"{registry.host}/{NAME}:v1") == digest


def test_the_anonymous_token_flow_follows_the_challenge(registry: RegistryDouble) -> None:
    registry.push(NAME, "v1", OCI_INDEX)
    resolve_digest(f"{registry.host}/{NAME}:v1")
    first, token, second = registry.seen
    # HEADs only: the digest header is the answer, and a HEAD isn't a pull in Docker Hub's rate limit.
    assert [seen.method for seen in registry.seen] == ["HEAD", "GET", "HEAD"]
    assert (first.path, first.authorization) == (f"/v2/{NAME}/manifests/v1", "")
    assert token.path == f"/token?scope=repository%3A{NAME.replace('/', '%2F')}%3Apull&service=registry.test"
    assert second.path == first.path and second.authorization.startswith("Bearer token-pull-")
    assert second.accept.split(", ")[:2] == [OCI_INDEX, MANIFEST_LIST]


def _public_image(registry: RegistryDouble) -> None:
    registry.push(NAME, "v1")


def _nothing(registry: RegistryDouble) -> None:
    pass


def _wants_credentials(registry: RegistryDouble) -> None:
    registry.basic_auth = True


def _lies_about_the_digest_it_serves(registry: RegistryDouble) -> None:
    registry.push(NAME, "v1")
    registry.digest_header = "get"  # so the body is fetched, and checked
    registry.lying_digest = True


@pytest.mark.parametrize(
    ("setup", "reference", "message"),
    [
        (_public_image, f"{NAME}:v2", "answered 404 MANIFEST_UNKNOWN: manifest unknown"),
        (_nothing, "private/app:v1", "answered 401 UNAUTHORIZED: authentication required"),
        (_wants_credentials, f"{NAME}:v1", "wants credentials \\(Basic\\); set its digest"),
        (
            _lies_about_the_digest_it_serves,
            f"{NAME}:v1",
            f"says {digest_of(b'tampered')} but served the manifest sha256:",
        ),
    ],
)
def test_what_the_registry_refuses_is_one_line_naming_the_image(
    registry: RegistryDouble, setup: Callable[[RegistryDouble], None], reference: str, message: str
) -> None:
    setup(registry)
    with pytest.raises(ImageLookupError, match=message) as error:
        resolve_digest(f"{registry.host}/{reference}")
    assert str(error.value).startswith(f"image '{registry.host}/{reference}': ") and "\n" not in str(
        error.value
    )


@pytest.mark.parametrize("digest_header", ["get", "never"])
def test_without_the_digest_header_on_head_the_manifest_is_fetched_and_hashed(
    registry: RegistryDouble, digest_header: Literal["get", "never"]
) -> None:
    index = registry.push(NAME, "v1", OCI_INDEX)
    registry.digest_header = digest_header
    assert resolve_digest(f"{registry.host}/{NAME}:v1") == index
    assert [seen.method for seen in registry.seen if "/manifests/" in seen.path] == ["HEAD", "HEAD", "GET"]


def test_errors_carry_the_registry_code_though_a_head_has_no_body(registry: RegistryDouble) -> None:
    registry.push(NAME, "v1")
    with pytest.raises(ImageLookupError, match="404 MANIFEST_UNKNOWN: manifest unknown"):
        resolve_digest(f"{registry.host}/{NAME}:v9")
    assert [seen.method for seen in registry.seen if "/manifests/" in seen.path] == ["HEAD", "HEAD", "GET"]


def test_rate_limits_are_waited_out(registry: RegistryDouble) -> None:
    digest = registry.push(NAME, "v1", OCI_INDEX)
    registry.rate_limited = 2  # Docker Hub's 429, with Retry-After
    assert resolve_digest(f"{registry.host}/{NAME}:v1") == digest
    assert len(registry.seen) == 5  # two 429s, then the 401, the token and the manifest


def test_an_unreachable_registry_is_named(registry: RegistryDouble) -> None:
    host = registry.host
    registry.down()
    with pytest.raises(ImageLookupError, match=f"image '{host}/{NAME}:v1': can't reach {host}"):
        resolve_digest(f"{host}/{NAME}:v1", session=requests.Session())  # no retries: the same error, sooner


# --- the provider: resolve once, keep it -----------------------------------------------------------------------


def test_check_resolves_a_new_pin_and_keeps_it_when_the_tag_moves(registry: RegistryDouble) -> None:
    provider = plugin_provider()
    reference = f"{registry.host}/{NAME}:v1"
    first = registry.push(NAME, "v1", OCI_INDEX)

    checked = provider.check({}, {"reference": reference, "generation": 1, "digest": None, "image": None})
    assert not checked.failures
    assert checked.inputs == {
        "reference": reference,
        "generation": 1,
        "digest": first,
        "image": f"{reference}@{first}",
    }
    created = provider.create(checked.inputs)
    assert created.outs == checked.inputs

    # The publisher re-pushes the tag; this stack keeps what it deployed, without asking the registry.
    moved = registry.push(NAME, "v1", OCI_INDEX, build=2)
    assert moved != first
    registry.seen.clear()
    again = provider.check(
        checked.inputs, {"reference": reference, "generation": 1, "digest": None, "image": None}
    )
    assert again.inputs["digest"] == first and registry.seen == []
    assert provider.diff("id", created.outs or {}, again.inputs).changes is False
    assert provider.read("id", created.outs or {}).outs == created.outs  # refresh doesn't re-resolve either

    # A new tag (a reviewed commit) resolves anew, and is an in-place update.
    newer = registry.push(NAME, "v2", OCI_INDEX)
    retagged = provider.check(checked.inputs, {"reference": f"{registry.host}/{NAME}:v2", "generation": 1})
    assert retagged.inputs["digest"] == newer
    diff = provider.diff("id", created.outs or {}, retagged.inputs)
    assert diff.changes is True and not diff.replaces
    assert provider.update("id", created.outs or {}, retagged.inputs).outs == retagged.inputs

    # Asking for the tag's current image on purpose: a new generation resolves again.
    repinned = provider.check(checked.inputs, {"reference": reference, "generation": 2})
    assert repinned.inputs["digest"] == moved
    assert provider.diff("id", created.outs or {}, repinned.inputs).changes is True


def test_a_failed_lookup_is_a_check_failure_on_the_reference(registry: RegistryDouble) -> None:
    provider = plugin_provider()
    registry.push(NAME, "v1")
    reference = f"{registry.host}/{NAME}:missing"
    checked = provider.check({}, {"reference": reference})
    [failure] = checked.failures
    assert failure.property == "reference"
    assert (
        failure.reason
        == f"image '{reference}': {registry.host} answered 404 MANIFEST_UNKNOWN: manifest unknown"
    )


def test_a_kept_pin_must_be_a_digest() -> None:
    # State edited by hand (or from an older format) is resolved again, not trusted.
    provider = plugin_provider()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("components.image_pin.resolve_digest", lambda reference: "sha256:" + "a" * 64)
        checked = provider.check({"reference": "busybox:1", "digest": "latest"}, {"reference": "busybox:1"})
    assert checked.inputs["digest"] == "sha256:" + "a" * 64 and DIGEST.match(checked.inputs["digest"])
