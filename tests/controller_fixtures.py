"""Helpers for the controller and webhook tests: run the component under the offline mocks, read what it declared.

`build()` runs a small program: a stand-in for the gateway's API-secret Secret (with a known secret value) and the
`IngressController` wired to it, the way `__main__` wires the real gateway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

import offline.tls_outputs  # noqa: F401  (real keys and certificates for the pulumi-tls types)
from components.controller import PROJECT_TEMPLATES_DIR, IngressController, IngressControllerArgs
from components.settings import ControllerSettings
from components.webhook import mesh_hooks
from offline.mocks import OfflineMocks, RecordedResource, RecordingMonitor, reveal

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = PROJECT_DIR / "examples"
NAMESPACE = "tyk"
CONTROL_URL = "http://gateway-control-svc-tyk-gateway.tyk.svc:9696"
GATEWAY_SECRET_NAME = "tyk-gateway-api-secret"
GATEWAY_SECRET_VALUE = "gateway-admin-secret-0f3c9a"
COMPONENT = "ingress-controller"
IMAGE = "registry.example.com/tyk-controller@sha256:" + "ab" * 32
PUBLISH_SERVICE = "tyk/tyk-gateway-entry"
REDIS_ADDR = "redis-master.tyk.svc:6379"
REDIS_SECRET_NAME = "redis-password"


@dataclass
class Built:
    monitor: RecordingMonitor
    controller: IngressController

    @property
    def recorded(self) -> list[RecordedResource]:
        return self.monitor.recorded

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.recorded if r.type == type_]

    def one(self, type_: str) -> RecordedResource:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def kubernetes_objects(self) -> list[RecordedResource]:
        return [r for r in self.recorded if r.custom and r.type.startswith("kubernetes:")]

    def controller_children(self) -> list[RecordedResource]:
        """Everything the component declared (the gateway stand-in excluded)."""
        return [r for r in self.recorded if r.name.startswith(COMPONENT)]

    def config_map(self, name: str) -> dict[str, str]:
        for resource in self.of_type("kubernetes:core/v1:ConfigMap"):
            if reveal(resource.inputs)["metadata"]["name"] == name:
                data: dict[str, str] = reveal(resource.inputs)["data"]
                return data
        raise LookupError(name)

    def deployment(self) -> dict[str, Any]:
        spec: dict[str, Any] = reveal(self.one("kubernetes:apps/v1:Deployment").inputs)
        return spec

    def container(self) -> dict[str, Any]:
        [container] = self.deployment()["spec"]["template"]["spec"]["containers"]
        return dict(container)


def build(
    settings: Mapping[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    watch_namespaces: Sequence[str] = (),
    templates_dir: Path = PROJECT_TEMPLATES_DIR,
    image: str = IMAGE,
    publish_service: str | None = PUBLISH_SERVICE,
    **hooks: Any,
) -> Built:
    monitor = RecordingMonitor(OfflineMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project="tyk-aks", stack="dev", preview=False, monitor=monitor)
    holder: list[IngressController] = []

    @pulumi.runtime.test
    def run() -> Any:
        gateway_secret = k8s.core.v1.Secret(
            "gateway-api-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GATEWAY_SECRET_NAME, namespace=namespace),
            string_data={"APISecret": pulumi.Output.secret(GATEWAY_SECRET_VALUE)},
        )
        controller_settings = ControllerSettings.model_validate(
            {
                "enabled": True,
                "watchNamespaces": list(watch_namespaces),
                "image": {"source": "prebuilt", "reference": image},
                **(settings or {}),
            }
        )
        mesh = mesh_hooks(
            controller_settings.webhook,
            namespace=namespace,
            sidecar_image="docker.tyk.io/tyk-gateway/tyk-gateway:v5.13.1",
            redis_addrs=[REDIS_ADDR],
            redis_password_secret=(REDIS_SECRET_NAME, "redis-password"),
            org_id=controller_settings.org_id,
        )
        controller = IngressController(
            COMPONENT,
            IngressControllerArgs(
                namespace=namespace,
                settings=controller_settings,
                gateway_control_url=pulumi.Output.from_input(CONTROL_URL),
                api_secret_name=gateway_secret.metadata.apply(lambda m: m["name"]),
                image=image,
                publish_service=publish_service,
                templates_dir=templates_dir,
                # The mesh's hooks as the program passes them, unless the test gives its own.
                **{
                    "config_fields": mesh.config_fields,
                    "extra_env": mesh.env,
                    "extra_cluster_rules": mesh.cluster_rules,
                    **hooks,
                },
            ),
        )
        holder.append(controller)
        return controller.deployment_name

    run()
    return Built(monitor, holder[0])


def example_documents(pattern: str = "*.yaml") -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every YAML document of the files under examples/ that match ``pattern``."""
    documents = []
    for path in sorted(EXAMPLES_DIR.glob(pattern)):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                documents.append((path.name, document))
    return documents
