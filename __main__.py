"""tyk-aks: Tyk Gateway OSS with shared API storage, Redis and the ingress controller, one stack per environment.

Thin on purpose: validate the stack config, compose the components, export what operators need.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.api_access import ApiManagementAccess, ApiManagementAccessArgs
from components.cluster import KubernetesCluster, KubernetesClusterArgs
from components.controller import IngressController, IngressControllerArgs
from components.controller_image import ControllerImage, ControllerImageArgs
from components.entry_point import GatewayEntryPoint, GatewayEntryPointArgs
from components.gateway import CONTROL_SERVICE_NAME, TykGateway, TykGatewayArgs
from components.gateway import POD_LABELS as GATEWAY_POD_LABELS
from components.images import ContainerImages, ContainerImagesArgs
from components.network import NetworkPolicies, NetworkPoliciesArgs
from components.redis import GENERATION_ANNOTATION, ManagedRedisTarget, Redis, RedisArgs
from components.redis import POD_LABELS as REDIS_POD_LABELS
from components.settings import (
    ConfigError,
    config_problem,
    parse_settings,
    raw_secret_keys,
    raw_stack_config,
    required_secrets,
)
from components.storage import AzureTarget, SharedStorage, SharedStorageArgs
from components.webhook import mesh_hooks
from tyk_gateway.kube import kubernetes_target
from tyk_gateway.loader import declare_definitions
from tyk_gateway.problems import InputError, debug_enabled

PROJECT_DIR = Path(__file__).resolve().parent


def secret_or_generated(config: pulumi.Config, key: str, length: int) -> pulumi.Output[str]:
    """The stack's secret `key` when set, else a generated one (kept in state, encrypted like any secret)."""
    value = config.get_secret(key)
    if value is not None:
        return value
    return random.RandomPassword(key, length=length, special=False).result


def main() -> None:
    # The SDK keeps every resource, Output and future alive until the program ends, and Python's cyclic GC
    # kept rescanning that growing heap: about 40% of the evaluation of 3,000 definitions. Collecting the
    # youngest generation every 20,000 allocations instead of 700 removes most of it (benchmarks/program_bench).
    gc.set_threshold(20_000, 50, 10)
    config = pulumi.Config()
    stack_file = PROJECT_DIR / f"Pulumi.{pulumi.get_stack()}.yaml"  # where config problems are located
    raw_config = raw_stack_config()
    # Raises ConfigError, one line per problem, before any resource is declared.
    settings = parse_settings(raw_config, stack_file, secret_keys=raw_secret_keys(raw_config))
    missing = [key for key in sorted(required_secrets(settings)) if config.get_secret(key) is None]
    if missing:
        raise ConfigError(
            config_problem(
                [key],
                f"tyk-aks:{key} = (missing): needed by apiManagement; run `pulumi config set --secret {key} ...`",
                stack_file,
            )
            for key in missing
        )
    labels = {"app.kubernetes.io/part-of": "tyk-aks", "app.kubernetes.io/managed-by": "pulumi"}

    cluster = KubernetesCluster("cluster", KubernetesClusterArgs(settings=settings.cluster))
    in_cluster = pulumi.ResourceOptions(provider=cluster.provider)

    pod_security = {
        f"pod-security.kubernetes.io/{mode}{suffix}": value
        for mode in ("enforce", "audit", "warn")
        for suffix, value in (
            ("", settings.pod_security.enforce),
            ("-version", settings.pod_security.version),
        )
    }
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=settings.namespace, labels={**labels, **pod_security}),
        opts=in_cluster,
    )
    namespace_name = namespace.metadata["name"]

    api_secret = secret_or_generated(config, "apiSecret", length=40)
    # Azure Managed Redis brings its own access keys.
    redis_password = (
        secret_or_generated(config, "redisPassword", length=32) if settings.redis.managed is None else ""
    )

    azure = None
    if (
        cluster.resource_group_name is not None
        and cluster.location is not None
        and cluster.principal_id is not None
    ):
        azure = AzureTarget(cluster.resource_group_name, cluster.location, cluster.principal_id)
    storage = SharedStorage(
        "storage",
        SharedStorageArgs(namespace=namespace_name, settings=settings.storage, labels=labels, azure=azure),
        opts=in_cluster,
    )
    managed_redis = None
    if cluster.resource_group_name is not None and settings.cluster.aks is not None:
        aks = settings.cluster.aks
        managed_redis = ManagedRedisTarget(cluster.resource_group_name, aks.location, list(aks.zones))
    images = ContainerImages(
        "images",
        ContainerImagesArgs(
            settings=settings.images,
            gateway=settings.gateway,
            redis=settings.redis,
            controller=settings.controller,
        ),
    )
    redis = Redis(
        "redis",
        RedisArgs(
            namespace=namespace_name,
            settings=settings.redis,
            password=redis_password,
            previous_password=config.get_secret("redisPasswordPrevious"),
            labels=labels,
            managed=managed_redis,
            image=images.redis.reference if images.redis else None,
        ),
        opts=in_cluster,
    )
    # With the controller on, the gateways are the entry point of Tyk-class Ingresses (a LoadBalancer on 80/443).
    entry_point = (
        GatewayEntryPoint(
            "gateway-entry",
            GatewayEntryPointArgs(
                namespace=namespace_name, settings=settings.controller.entry_point, labels=labels
            ),
            opts=in_cluster,
        )
        if settings.controller.enabled
        else None
    )
    gateway = TykGateway(
        "gateway",
        TykGatewayArgs(
            namespace=namespace_name,
            settings=settings.gateway,
            api_secret=api_secret,
            redis_addrs=redis.addrs,
            redis_password_secret_name=redis.password_secret_name,
            redis_password_secret_key=redis.password_secret_key,
            redis_use_ssl=redis.use_ssl,
            redis_enable_cluster=redis.enable_cluster,
            pod_annotations={GENERATION_ANNOTATION: redis.generation},
            # The SMB mounts present every file as mountUid:mountGid; the gateways run as that user.
            run_as_user=settings.storage.mount_uid,
            fs_group=settings.storage.mount_gid,
            claim_names=storage.claim_names,
            wait_for=[
                *storage.claims.values(),
                *redis.resources,
                *([entry_point.certificate_secret] if entry_point else []),
            ],
            labels=labels,
            extra_env=entry_point.gateway_env if entry_point else [],
            extra_volumes=entry_point.gateway_volumes if entry_point else [],
            extra_volume_mounts=entry_point.gateway_volume_mounts if entry_point else [],
            file_certificates=entry_point.gateway_file_certificates if entry_point else None,
            image_tag=images.gateway.tag_value,
            init_image_tag=images.gateway_init.tag_value,
        ),
        opts=in_cluster,
    )

    if settings.network_policies.enabled:
        NetworkPolicies(
            "network-policies",
            NetworkPoliciesArgs(
                namespace=namespace_name,
                settings=settings.network_policies,
                labels=labels,
                gateway_labels=GATEWAY_POD_LABELS,
                control_port=settings.gateway.control_port,
                redis_labels=REDIS_POD_LABELS if redis.in_cluster else None,
            ),
            opts=in_cluster,
        )

    if settings.controller.enabled and entry_point is not None:
        image = ControllerImage(
            "controller-image",
            ControllerImageArgs(
                settings=settings.controller.image,
                resource_group_name=cluster.resource_group_name,
                location=cluster.location,
                kubelet_object_id=cluster.kubelet_object_id,
                pinned_base=images.controller_base.reference if images.controller_base else None,
            ),
        )
        mesh = mesh_hooks(
            settings.controller.webhook,
            namespace=settings.namespace,
            sidecar_image=images.gateway.reference,
            redis_addrs=redis.addrs,
            redis_password_secret=(redis.password_secret_name, redis.password_secret_key),
            org_id=settings.controller.org_id,
            redis_tls=redis.use_ssl,
            redis_cluster=redis.enable_cluster,
        )
        controller = IngressController(
            "ingress-controller",
            IngressControllerArgs(
                namespace=namespace_name,
                settings=settings.controller,
                gateway_control_url=gateway.control_api_url,
                api_secret_name=gateway.api_secret_name,
                image=image.reference,
                publish_service=entry_point.publish_service,
                labels=labels,
                wait_for=image.pull_access,
                config_fields=mesh.config_fields,
                extra_env=mesh.env,
                extra_cluster_rules=mesh.cluster_rules,
            ),
            opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[gateway, entry_point.service]),
        )
        pulumi.export("controller_image", image.reference)
        pulumi.export("ingress_class", controller.ingress_class_name)
        if settings.controller.webhook.enabled:
            # Renewal is a `pulumi up` in the certificate's last quarter; alert on this export before it lapses.
            pulumi.export("webhook_certificate_expires_at", controller.webhook_cert_expires_at)

    if settings.api_management.enabled:
        management = settings.api_management
        # Through the API server (refresh/destroy find the cluster in stack config), or a plain URL.
        control_target = management.gateway_url or kubernetes_target(
            settings.namespace, CONTROL_SERVICE_NAME, settings.gateway.control_port
        )
        access = ApiManagementAccess(
            "api-management",
            ApiManagementAccessArgs(
                namespace=namespace_name,
                control_service=CONTROL_SERVICE_NAME,
                deploy_subjects=management.rbac_subjects,
                preview_subjects=management.preview_subjects,
                labels=labels,
            ),
            opts=in_cluster,
        )
        definitions = declare_definitions(
            PROJECT_DIR / management.definitions_dir,
            gateway_url=control_target,
            # The release, not the component: a component dependency expands to each of its children for every
            # resource, which made evaluation quadratic in the number of definitions.
            opts=pulumi.ResourceOptions(depends_on=[gateway.release, *access.resources]),
        )
        for output_name, ids in definitions.ids.items():  # api_ids, oas_api_ids, policy_ids: file stem -> id
            pulumi.export(output_name, ids)

    pulumi.export("namespace", namespace_name)
    pulumi.export("gateway_url", gateway.public_url)
    pulumi.export("control_api_url", gateway.control_api_url)
    pulumi.export("gateway_replicas", settings.gateway.replicas)
    pulumi.export("shared_claims", storage.claim_names)
    # No kubeconfig export: `az aks get-credentials` + kubelogin give each person their own Entra ID token.
    if cluster.cluster_name is not None:
        pulumi.export("aks_cluster_name", cluster.cluster_name)
        pulumi.export("aks_resource_group", cluster.resource_group_name)


try:
    main()
except InputError as error:
    if debug_enabled():  # the language host prints a traceback for anything but a pulumi.RunError
        raise RuntimeError(str(error)) from error
    raise  # a RunError: Pulumi prints its lines, no traceback
