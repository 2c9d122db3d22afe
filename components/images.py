"""The images the stack runs besides its own controller: the gateways' (also the mesh sidecars'), the chart's
init container, and the in-cluster Redis, each pulled by tag, by a digest from the stack file, or by a digest
pinned in the stack's state (`images.pinDigests`, components/image_pin.py). And the base the controller image is
built on (the controller itself always runs by the digest its build pushed).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.controller_image import base_image
from components.image_pin import PinnedImage
from components.settings import ControllerSettings, GatewaySettings, ImageSettings, RedisSettings

GATEWAY_REPOSITORY = "docker.tyk.io/tyk-gateway/tyk-gateway"
"""The `tyk-oss` chart's gateway image (`gateway.image.repository`); the mesh sidecars run it too."""


@dataclass(frozen=True)
class Image:
    """`repository:tag`, and the digest the kubelet pulls when there is one."""

    repository: str
    tag: str
    digest: str | pulumi.Output[str] | None = None

    @property
    def tag_value(self) -> pulumi.Input[str]:
        """`<tag>@sha256:...` for charts that render `repository:tag` (the kubelet pulls the digest)."""
        return self._with_digest(self.tag)

    @property
    def reference(self) -> pulumi.Input[str]:
        """`repository:tag[@sha256:...]`: what a container's `image` says."""
        return self._with_digest(f"{self.repository}:{self.tag}")

    def _with_digest(self, name: str) -> pulumi.Input[str]:
        # A digest from the stack file stays a plain string; a pinned one is its resource's Output.
        if self.digest is None:
            return name
        if isinstance(self.digest, str):
            return f"{name}@{self.digest}"
        return self.digest.apply(lambda digest: f"{name}@{digest}")


@dataclass
class ContainerImagesArgs:
    settings: ImageSettings
    gateway: GatewaySettings
    redis: RedisSettings
    controller: ControllerSettings


class ContainerImages(pulumi.ComponentResource):
    """One `PinnedImage` per image without a digest in the stack file, when `images.pinDigests` is on."""

    gateway: Image
    gateway_init: Image
    redis: Image | None
    """None when Redis isn't a StatefulSet of this stack (Azure Managed Redis, or an existing one)."""
    controller_base: Image | None
    """The controller build's base, pinned; None when nothing is built or pinning is off (the Dockerfile's tag)."""

    def __init__(
        self, name: str, args: ContainerImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:ContainerImages", name, None, opts)
        gateway, redis = args.gateway, args.redis

        def image(key: str, repository: str, tag: str, digest: str | None) -> Image:
            if digest is not None or not args.settings.pin_digests:
                return Image(repository, tag, digest)
            pin = PinnedImage(
                f"{name}-{key}",
                f"{repository}:{tag}",
                args.settings.pin_generation,
                pulumi.ResourceOptions(parent=self),
            )
            return Image(repository, tag, pin.digest)

        self.gateway = image("gateway", GATEWAY_REPOSITORY, gateway.image_tag, gateway.image_digest)
        self.gateway_init = image(
            "gateway-init", gateway.init_image_repository, gateway.init_image_tag, gateway.init_image_digest
        )
        in_cluster_redis = redis.enabled and redis.managed is None
        self.redis = (
            image("redis", redis.image_repository, redis.image_tag, redis.image_digest)
            if in_cluster_redis
            else None
        )
        controller = args.controller
        builds = controller.enabled and controller.image.source != "prebuilt"
        base_repository, _, base_tag = base_image().rpartition(":")
        self.controller_base = (
            image("controller-base", base_repository, base_tag, None)
            if builds and args.settings.pin_digests
            else None
        )
        self.register_outputs({})
