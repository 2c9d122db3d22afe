"""Redis for the gateways (API keys, rate-limit counters, the reload pub/sub channel).

Three ways, chosen by `tyk-aks:redis`:

- in-cluster (dev, local): one StatefulSet of the Redis Docker Official Image with an AOF volume, no chart. Bitnami's
  chart only runs Bitnami's images, whose versioned tags are frozen without security fixes.
- `managed` (prod): Azure Managed Redis, TLS on port 10000, AOF persistence, zone-redundant; its access key is
  copied into the password Secret. Azure retires every Azure Cache for Redis tier (Enterprise 2027-03-31,
  Basic/Standard/Premium 2028-09-30) in favour of it.
- `enabled: false`: an existing Redis at `addrs`.

The gateways read the password from a Secret by name (`global.redis.passSecret`), so no secret sits in Helm values.

Rotation without lock-out: the in-cluster Redis accepts every password in its ACL file, the current one
(`redisPassword`) and, during a rotation, the previous one (`redisPasswordPrevious`); the managed one always accepts
both access keys. Gateways restart with the new password when `passwordGeneration` changes, after Redis accepts it
(the release depends on Redis). docs/production.md has the procedure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from pulumi.output import UNKNOWN
from pulumi_azure_native import redisenterprise

from components.secrets import single_value_secret
from components.settings import (
    ManagedRedisSettings,
    RedisSettings,
    ResourceList,
    Resources,
    quantity_value,
)

PASSWORD_KEY = "redis-password"  # the key the gateway chart reads (`global.redis.passSecret.keyName`)
PASSWORD_SECRET_NAME = "tyk-redis-password"
ACL_SECRET_NAME = "tyk-redis-acl"
ACL_KEY = "users.acl"
CONFIG_NAME = "tyk-redis-config"
NAME = "tyk-redis"
PORT = 6379
# Same namespace as the gateways, so the Service's short name resolves.
ADDRESS = f"{NAME}:{PORT}"
POD_LABELS = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": NAME}
MANAGED_PORT = 10000  # Azure Managed Redis: TLS only, port 10000
MANAGED_DATABASE = "default"  # the only database name Azure Managed Redis accepts
# Not the image's `redis` user (999): a UID above 10000 can't collide with a host account. Redis is started
# directly (no entrypoint chown), and fsGroup makes the data volume writable for it.
REDIS_UID = 10001
DEFAULT_RESOURCES = Resources(
    requests=ResourceList(cpu="100m", memory="256Mi"), limits=ResourceList(memory="512Mi")
)
GENERATION_ANNOTATION = "tyk-aks.io/redis-password-generation"
"""Pod annotation of the gateways; a new value restarts them with the password Secret's current value."""


@dataclass
class ManagedRedisTarget:
    """Where `managed` creates Azure Managed Redis: the stack's resource group."""

    resource_group_name: pulumi.Input[str]
    location: str
    zones: list[str]


@dataclass
class RedisArgs:
    namespace: pulumi.Input[str]
    settings: RedisSettings
    password: pulumi.Input[str]
    """A Pulumi secret: the password the gateways use (in-cluster Redis)."""
    labels: dict[str, str]
    previous_password: pulumi.Input[str] | None = None
    """A Pulumi secret: also accepted by the in-cluster Redis while a rotation is under way."""
    managed: ManagedRedisTarget | None = None
    image: pulumi.Input[str] | None = None
    """The in-cluster Redis's image reference, `repo:tag[@sha256:...]` (components.images); None otherwise."""


def acl_file(passwords: list[str]) -> str:
    """Redis ACL file: the default user, every command and key, any of the given passwords (stored as SHA-256)."""
    hashes = " ".join(f"#{hashlib.sha256(p.encode()).hexdigest()}" for p in passwords)
    return f"user default on {hashes} ~* &* +@all\n"


def redis_conf(settings: RedisSettings) -> str:
    resources = settings.resources or DEFAULT_RESOURCES
    memory_limit = resources.limits.memory or DEFAULT_RESOURCES.limits.memory
    assert memory_limit is not None
    max_memory = int(quantity_value(memory_limit) * 0.75)
    return "\n".join(
        [
            f"port {PORT}",
            "bind * -::*",
            f"aclfile /etc/redis/acl/{ACL_KEY}",
            "dir /data",
            # AOF, fsync every second: a restart loses at most a second of keys and counters.
            "appendonly yes",
            "appendfsync everysec",
            # Writes fail when full, instead of an OOM kill or an evicted API key.
            f"maxmemory {max_memory}",
            "maxmemory-policy noeviction",
            "",
        ]
    )


def managed_hostname(settings: ManagedRedisSettings, location: str) -> str:
    """Azure Managed Redis's endpoint: fixed by name and region, so Helm values are known at preview time."""
    return f"{settings.name}.{location}.redis.azure.net"


def _resources(resources: Resources) -> k8s.core.v1.ResourceRequirementsArgs:
    requests, limits = (
        {k: v for k, v in getattr(resources, kind).model_dump().items() if v is not None}
        for kind in ("requests", "limits")
    )
    return k8s.core.v1.ResourceRequirementsArgs(requests=requests or None, limits=limits or None)


class Redis(pulumi.ComponentResource):
    """The password Secret and Redis (a StatefulSet, Azure Managed Redis, or only the address of an existing one)."""

    addrs: list[str]
    """host:port list for the gateway's `global.redis.addrs`."""
    password_secret_name: str
    password_secret_key: str = PASSWORD_KEY
    use_ssl: bool
    enable_cluster: bool
    in_cluster: bool
    """True when Redis runs as pods of this stack (selected by POD_LABELS)."""
    generation: str
    """Value of the gateways' GENERATION_ANNOTATION."""
    resources: list[pulumi.Resource]
    """What a client waits for: the password Secret and Redis itself (those that exist)."""

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tyk-aks:index:Redis", name, None, opts)
        settings = args.settings
        self.resources = []
        self.use_ssl = False
        self.enable_cluster = False
        self.in_cluster = False
        self.generation = str(settings.password_generation)
        self.password_secret_name = PASSWORD_SECRET_NAME

        if not settings.enabled:
            self.addrs = list(settings.addrs)
            self.use_ssl = settings.use_ssl
            self.enable_cluster = settings.enable_cluster
            if settings.password_secret_name:
                self.password_secret_name = settings.password_secret_name
            else:
                self.resources.append(self._password_secret(name, args, args.password))
        elif settings.managed is not None:
            if args.managed is None:
                raise ValueError("redis.managed needs the stack's resource group (cluster.mode aks)")
            self._managed(name, settings.managed, args)
        else:
            self._in_cluster(name, args)
        self.register_outputs({"addrs": self.addrs, "password_secret_name": self.password_secret_name})

    def _password_secret(self, name: str, args: RedisArgs, value: pulumi.Input[str]) -> k8s.core.v1.Secret:
        return single_value_secret(
            f"{name}-password",
            name=PASSWORD_SECRET_NAME,
            namespace=args.namespace,
            labels=args.labels,
            key=PASSWORD_KEY,
            value=value,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _managed(self, name: str, managed: ManagedRedisSettings, args: RedisArgs) -> None:
        target = args.managed
        assert target is not None
        # The keys and counters live here: protected like the shares (a replace would start empty).
        keep = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        cluster = redisenterprise.RedisEnterprise(
            f"{name}-managed",
            cluster_name=managed.name,
            resource_group_name=target.resource_group_name,
            location=target.location,
            sku=redisenterprise.SkuArgs(name=managed.sku),
            minimum_tls_version=redisenterprise.TlsVersion.TLS_VERSION_1_2,
            high_availability=(
                redisenterprise.HighAvailability.ENABLED
                if managed.high_availability
                else redisenterprise.HighAvailability.DISABLED
            ),
            zones=list(target.zones) or None,
            public_network_access=(
                redisenterprise.PublicNetworkAccess.ENABLED
                if managed.public_network_access
                else redisenterprise.PublicNetworkAccess.DISABLED
            ),
            opts=keep,
        )
        database = redisenterprise.Database(
            f"{name}-database",
            cluster_name=cluster.name,
            database_name=MANAGED_DATABASE,
            resource_group_name=target.resource_group_name,
            client_protocol=redisenterprise.Protocol.ENCRYPTED,
            clustering_policy=managed.clustering_policy,
            eviction_policy=redisenterprise.EvictionPolicy.NO_EVICTION,
            persistence=redisenterprise.PersistenceArgs(
                aof_enabled=True, aof_frequency=redisenterprise.AofFrequency.AOF_FREQUENCY_1S
            ),
            port=MANAGED_PORT,
            access_keys_authentication=redisenterprise.AccessKeysAuthentication.ENABLED,
            opts=keep,
        )
        active: pulumi.Output[str]
        if pulumi.runtime.is_dry_run():
            # Pull-request previews run branch code with a read-only identity, which must not read access keys
            # (listKeys is an action Reader lacks): in a preview the key is unknown, and only `up` lists it.
            active = database.name.apply(lambda _: cast(str, UNKNOWN))
        else:
            keys = redisenterprise.list_database_keys_output(
                cluster_name=cluster.name,
                database_name=database.name,
                resource_group_name=target.resource_group_name,
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            active = keys.apply(
                lambda k: (k.primary_key if managed.active_key == "primary" else k.secondary_key) or ""
            )
        secret = self._password_secret(name, args, pulumi.Output.secret(active))
        self.resources += [cluster, database, secret]
        self.addrs = [f"{managed_hostname(managed, target.location)}:{MANAGED_PORT}"]
        self.use_ssl = True
        self.enable_cluster = managed.clustering_policy == "OSSCluster"
        self.generation = f"{managed.active_key}-{self.generation}"

    def _in_cluster(self, name: str, args: RedisArgs) -> None:
        settings = args.settings
        if args.image is None:
            raise ValueError("RedisArgs.image: the in-cluster Redis needs its image (components.images)")
        image = args.image
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, **POD_LABELS}
        password_secret = self._password_secret(name, args, args.password)
        passwords = [args.password] + ([args.previous_password] if args.previous_password is not None else [])
        acl: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(*passwords).apply(acl_file))
        acl_secret = single_value_secret(
            f"{name}-acl",
            name=ACL_SECRET_NAME,
            namespace=args.namespace,
            labels=labels,
            key=ACL_KEY,
            value=acl,
            opts=child,
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=CONFIG_NAME, namespace=args.namespace, labels=labels),
            data={"redis.conf": redis_conf(settings)},
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=args.namespace, labels=labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=POD_LABELS,
                ports=[k8s.core.v1.ServicePortArgs(name="redis", port=PORT, target_port="redis")],
            ),
            opts=child,
        )
        # A new random revision whenever the accepted passwords change restarts Redis (it reads the ACL file at
        # start). Random rather than a hash of the file: nothing derived from a password shows in the pod spec,
        # and the spec stays a plain (diffable) value instead of one secret.
        acl_revision = random.RandomId(
            f"{name}-acl-revision", byte_length=8, keepers={"acl": acl}, opts=child
        ).hex
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=args.namespace, labels=labels),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=NAME,
                replicas=1,
                # The data volume outlives the StatefulSet (deleted or replaced) and scale-downs: the keys stay.
                persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                    when_deleted="Retain", when_scaled="Retain"
                ),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=POD_LABELS),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels, annotations={"tyk-aks.io/acl-revision": acl_revision}
                    ),
                    spec=self._pod_spec(settings, image),
                ),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=labels),
                        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                            access_modes=["ReadWriteOnce"],
                            storage_class_name=settings.storage_class_name,
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                requests={"storage": settings.persistence_size}
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[password_secret, acl_secret, config]),
        )
        self.resources += [password_secret, acl_secret, config, service, statefulset]
        self.addrs = [ADDRESS]
        self.in_cluster = True

    @staticmethod
    def _pod_spec(settings: RedisSettings, image: pulumi.Input[str]) -> k8s.core.v1.PodSpecArgs:
        """Restricted Pod Security: non-root, no privilege escalation, no capabilities, read-only root."""
        return k8s.core.v1.PodSpecArgs(
            automount_service_account_token=False,  # Redis never talks to the Kubernetes API
            enable_service_links=False,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=REDIS_UID,
                run_as_group=REDIS_UID,
                fs_group=REDIS_UID,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            containers=[
                k8s.core.v1.ContainerArgs(
                    name="redis",
                    image=image,
                    image_pull_policy="IfNotPresent",
                    command=["redis-server", "/etc/redis/redis.conf"],
                    ports=[k8s.core.v1.ContainerPortArgs(name="redis", container_port=PORT)],
                    resources=_resources(settings.resources or DEFAULT_RESOURCES),
                    readiness_probe=k8s.core.v1.ProbeArgs(
                        # redis-cli exits 0 on an error reply (e.g. NOAUTH): look for the PONG.
                        # The password from a file, not the environment; REDISCLI_AUTH keeps it off the command line.
                        exec_=k8s.core.v1.ExecActionArgs(
                            command=[
                                "sh",
                                "-c",
                                f'REDISCLI_AUTH="$(cat /etc/redis/auth/{PASSWORD_KEY})" '
                                "redis-cli -h 127.0.0.1 ping | grep -q PONG",
                            ]
                        ),
                        period_seconds=5,
                        timeout_seconds=3,
                    ),
                    liveness_probe=k8s.core.v1.ProbeArgs(
                        tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="redis"),
                        initial_delay_seconds=10,
                        period_seconds=10,
                        failure_threshold=6,
                    ),
                    security_context=k8s.core.v1.SecurityContextArgs(
                        run_as_user=REDIS_UID,
                        run_as_group=REDIS_UID,
                        allow_privilege_escalation=False,
                        read_only_root_filesystem=True,
                        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                    ),
                    volume_mounts=[
                        k8s.core.v1.VolumeMountArgs(name="data", mount_path="/data"),
                        k8s.core.v1.VolumeMountArgs(
                            name="config", mount_path="/etc/redis/redis.conf", sub_path="redis.conf"
                        ),
                        k8s.core.v1.VolumeMountArgs(name="acl", mount_path="/etc/redis/acl", read_only=True),
                        k8s.core.v1.VolumeMountArgs(
                            name="auth", mount_path="/etc/redis/auth", read_only=True
                        ),
                    ],
                )
            ],
            volumes=[
                k8s.core.v1.VolumeArgs(
                    name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=CONFIG_NAME)
                ),
                k8s.core.v1.VolumeArgs(
                    name="acl", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=ACL_SECRET_NAME)
                ),
                k8s.core.v1.VolumeArgs(
                    name="auth", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=PASSWORD_SECRET_NAME)
                ),
            ],
        )
