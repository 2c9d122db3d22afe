"""Redis for the gateways (keys, rate limits, the reload pub/sub channel), as a Helm release of Bitnami's chart.

The password lives in a Kubernetes Secret created here and is handed to both charts by name, so no secret ever
sits inside Helm values (a secret there would make Pulumi treat the whole values map as one secret and hide every
value change from previews).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.secrets import single_value_secret
from components.settings import RedisSettings

PASSWORD_KEY = "redis-password"  # the key Bitnami's chart reads with auth.existingSecret
PASSWORD_SECRET_NAME = "tyk-redis-password"
RELEASE_NAME = "tyk-redis"
# The chart's fullname is the release name when that contains "redis"; `<fullname>-master` is the service of the
# (only) writable node in both architectures. Same namespace as the gateways, so the short name resolves.
MASTER_ADDRESS = f"{RELEASE_NAME}-master:6379"


@dataclass
class RedisArgs:
    namespace: pulumi.Input[str]
    settings: RedisSettings
    password: pulumi.Input[str]
    """A Pulumi secret."""
    labels: dict[str, str]


def redis_values(settings: RedisSettings, password_secret_name: str) -> dict[str, Any]:
    """Values for the Bitnami Redis chart (keys checked against bitnami/charts `bitnami/redis/values.yaml`)."""
    values: dict[str, Any] = {
        "architecture": settings.architecture,
        "auth": {
            "enabled": True,
            "existingSecret": password_secret_name,
            "existingSecretPasswordKey": PASSWORD_KEY,
        },
        "master": {"persistence": {"size": settings.persistence_size}},
    }
    if settings.storage_class_name:
        values["master"]["persistence"]["storageClass"] = settings.storage_class_name
    if settings.architecture == "replication":
        values["replica"] = {"replicaCount": 2, "persistence": {"size": settings.persistence_size}}
    image = {
        key: value
        for key, value in (("repository", settings.image_repository), ("tag", settings.image_tag))
        if value
    }
    if image:
        values["image"] = image
    return values


class Redis(pulumi.ComponentResource):
    """The password Secret and the Redis release (or only the address of an existing Redis)."""

    addrs: list[str]
    """host:port list for the gateway's `global.redis.addrs`."""
    password_secret_name: str
    password_secret_key: str = PASSWORD_KEY
    resources: list[pulumi.Resource]
    """What a client waits for: the password Secret and the release (those that exist)."""

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tyk-aks:index:Redis", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.resources = []

        if settings.enabled or not settings.password_secret_name:
            self.resources.append(
                single_value_secret(
                    f"{name}-password",
                    name=PASSWORD_SECRET_NAME,
                    namespace=args.namespace,
                    labels=args.labels,
                    key=PASSWORD_KEY,
                    value=args.password,
                    opts=child,
                )
            )
        if not settings.enabled:
            # An existing Redis: its password is in `passwordSecretName`, or in the Secret made above.
            self.addrs = list(settings.addrs)
            self.password_secret_name = settings.password_secret_name or PASSWORD_SECRET_NAME
            self.register_outputs({"addrs": self.addrs, "password_secret_name": self.password_secret_name})
            return

        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=settings.chart,
            version=settings.chart_version,
            namespace=args.namespace,
            values=redis_values(settings, PASSWORD_SECRET_NAME),
            max_history=10,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.resources),
        )
        self.resources.append(self.release)
        self.addrs = [MASTER_ADDRESS]
        self.password_secret_name = PASSWORD_SECRET_NAME
        self.register_outputs({"addrs": self.addrs, "password_secret_name": self.password_secret_name})
