"""The controller's container image: built from this repository by `pulumi up` and deployed by digest.

Why the program builds the image rather than deploying a published one: the controller and the program that
configures it change together (the config file's schema, the RBAC rules, the templates), so the image a stack
runs must be the one built from the same commit. A published tag would need a release step between a code
change and `pulumi up`, and a stack file edit per release. With pulumi-docker-build the image is one more
resource: rebuilt when the build context changes (the provider hashes it), pushed, and its registry digest is
what the Deployment references, so a pod never runs a different image than the one this `pulumi up` built.

Sources (`controller.image.source`):
- `acr` (cluster.mode aks): an Azure Container Registry next to the cluster, `AcrPull` for the kubelet identity
  (role 7f951dda-4ed3-4680-a7ca-43fe172d538d), push with the registry's admin credentials read by the program
  (no `docker login` on the machine running `pulumi up`).
- `registry`: any registry the nodes can pull from, e.g. an existing ACR attached to the cluster
  (`az aks update --attach-acr`), or kind's local registry `localhost:5001`; push uses the Docker credentials
  of the machine (`az acr login`, `docker login`).
- `prebuilt`: an image built elsewhere (CI), given as `<repository>@sha256:<digest>`; nothing is built.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build
import pulumi_random as random
from pulumi_azure_native import authorization, containerregistry

from components.settings import ControllerImageSettings

PROJECT_DIR = Path(__file__).resolve().parent.parent
BUILD_CONTEXT = "."
"""Relative to the project folder, where Pulumi runs the program (no machine path in inputs or state)."""
DOCKERFILE = "Dockerfile"
BUILD_INPUTS = ("Dockerfile", "requirements-controller.txt", "tyk_controller", "tyk_gateway")
"""requirements-controller.txt is the hashed lock generated from requirements-controller.in."""
"""Everything the Dockerfile copies (and all `.dockerignore` lets through): the image's content tag hashes it."""
BASE_IMAGE_ARG = "BASE_IMAGE"
"""The Dockerfile's build argument naming its base image (default: the tag; a pinned stack passes the digest)."""
ACR_PULL_ROLE_ID = "7f951dda-4ed3-4680-a7ca-43fe172d538d"


def _files(root: Path, inputs: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for name in inputs:
        path = root / name
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
        elif path.is_file():
            found.append(path)
    return found


def base_image(root: Path = PROJECT_DIR) -> str:
    """The Dockerfile's base image tag (the default of its `ARG BASE_IMAGE`): what a pin resolves."""
    match = re.search(rf"^ARG {BASE_IMAGE_ARG}=(\S+)$", (root / DOCKERFILE).read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{DOCKERFILE}: no `ARG {BASE_IMAGE_ARG}=<image>:<tag>` line")
    return match[1]


def content_tag(root: Path = PROJECT_DIR, inputs: Iterable[str] = BUILD_INPUTS) -> str:
    """A tag derived from the build inputs: the same sources always get the same tag (readable in the registry;
    the deploy itself is by digest)."""
    digest = hashlib.sha256()
    for path in _files(root, inputs):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def by_digest(repository: str, digest: str) -> str:
    """`<repository>@sha256:...` from a registry digest (what the pod spec references)."""
    if not digest.startswith("sha256:"):
        raise ValueError(f"image digest {digest!r} is not a sha256 digest")
    return f"{repository}@{digest}"


@dataclass
class ControllerImageArgs:
    settings: ControllerImageSettings
    resource_group_name: pulumi.Input[str] | None = None
    """With `source: acr`: the cluster's resource group (the registry goes next to it)."""
    location: pulumi.Input[str] | None = None
    kubelet_object_id: pulumi.Input[str] | None = None
    """With `source: acr`: object id of the cluster's kubelet identity, granted AcrPull."""
    pinned_base: pulumi.Input[str] | None = None
    """`<base_image()>@sha256:...` (components.images) to build on; None builds on the Dockerfile's tag."""


class ControllerImage(pulumi.ComponentResource):
    """The controller image reference by digest, building and pushing it when the source asks for it."""

    reference: pulumi.Output[str]
    """`<registry>/<repository>@sha256:<digest>`: what the Deployment runs."""
    pull_access: list[pulumi.Resource]
    """Resources the pods need before they can pull (the AcrPull role assignment)."""

    def __init__(
        self, name: str, args: ControllerImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:ControllerImage", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.pull_access = []

        if settings.source == "prebuilt":
            assert settings.reference is not None  # validated in settings
            self.reference = pulumi.Output.from_input(settings.reference)
            self.register_outputs({"reference": self.reference})
            return

        registries: list[docker_build.RegistryArgs] = []
        if settings.source == "acr":
            server = self._acr(name, args, child, registries)
        else:
            assert settings.registry is not None  # validated in settings
            server = pulumi.Output.from_input(settings.registry)

        repository = server.apply(lambda host: f"{host}/{settings.repository}")
        # The tag names the sources and, when pinned, the base's digest: another base is another tag.
        tag = pulumi.Output.all(repository, args.pinned_base).apply(
            lambda parts: (
                f"{parts[0]}:{content_tag()}"
                + (f"-{parts[1].rpartition('@sha256:')[2][:12]}" if parts[1] else "")
            )
        )
        image = docker_build.Image(
            f"{name}-build",
            context=docker_build.BuildContextArgs(location=BUILD_CONTEXT),
            dockerfile=docker_build.DockerfileArgs(location=DOCKERFILE),
            build_args={BASE_IMAGE_ARG: args.pinned_base} if args.pinned_base is not None else None,
            platforms=[docker_build.Platform(settings.platform)],
            tags=[tag],
            push=True,
            registries=registries or None,
            # A preview needs no Docker daemon and pushes nothing; the digest is known after the build.
            build_on_preview=False,
            labels={"org.opencontainers.image.title": "tyk-aks ingress controller"},
            opts=child,
        )
        self.reference = pulumi.Output.all(repository, image.digest).apply(lambda parts: by_digest(*parts))
        self.register_outputs({"reference": self.reference})

    def _acr(
        self,
        name: str,
        args: ControllerImageArgs,
        child: pulumi.ResourceOptions,
        registries: list[docker_build.RegistryArgs],
    ) -> pulumi.Output[str]:
        if args.resource_group_name is None or args.kubelet_object_id is None:
            raise ValueError("controller.image.source acr needs the AKS cluster (cluster.mode aks)")
        # Registry names are global, 5-50 letters and digits: a stable random suffix keeps them unique.
        suffix = random.RandomString(f"{name}-suffix", length=8, special=False, upper=False, opts=child)
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=suffix.result.apply(lambda s: f"tykaks{s}"),
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=containerregistry.SkuArgs(name=containerregistry.SkuName.BASIC),
            # The admin user only lets `pulumi up` push without a `docker login`; the cluster pulls with its
            # kubelet identity (AcrPull below), never with these credentials.
            admin_user_enabled=True,
            anonymous_pull_enabled=False,
            opts=child,
        )
        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        pull = authorization.RoleAssignment(
            f"{name}-acr-pull",
            principal_id=args.kubelet_object_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=client.subscription_id.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_ROLE_ID}"
                )
            ),
            scope=registry.id,
            opts=child,
        )
        self.pull_access.append(pull)
        credentials = containerregistry.list_registry_credentials_output(
            registry_name=registry.name,
            resource_group_name=args.resource_group_name,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        registries.append(
            docker_build.RegistryArgs(
                address=registry.login_server,
                # ACR's admin user is named after the registry; only the password is a secret.
                username=registry.name,
                password=pulumi.Output.secret(
                    credentials.apply(lambda c: (c.passwords or [])[0].value if c.passwords else "")
                ),
            )
        )
        return registry.login_server
