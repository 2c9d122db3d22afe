"""Validate the Kubernetes objects the program declares against Kubernetes' own OpenAPI schemas, offline."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from offline.mocks import RecordedResource, reveal

# Oldest Kubernetes minor the program supports (AKS keeps about three minors in support); strict schemas reject
# unknown fields, so a misspelt key fails here instead of being dropped by the API server.
KUBERNETES_VERSION = "1.31.0"


def manifest(resource: RecordedResource) -> dict[str, Any]:
    """The object as the Kubernetes provider would send it (secrets revealed, Pulumi-only keys dropped)."""
    body = {k: v for k, v in reveal(resource.inputs).items() if not k.startswith("__")}
    return body


def validate(resource: RecordedResource) -> None:
    """Raise kubernetes_validate.ValidationError (with the bad field) if the object is not valid."""
    body = manifest(resource)
    metadata = dict(body.get("metadata") or {})
    # Pulumi auto-names objects without metadata.name; the schema requires a name only of the API server.
    metadata.setdefault("name", resource.name)
    body["metadata"] = metadata
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)


def is_kubernetes_object(resource: RecordedResource) -> bool:
    """A plain Kubernetes object (not a Helm release, provider or component)."""
    return (
        resource.custom
        and resource.type.startswith("kubernetes:")
        and not resource.type.startswith("kubernetes:helm.sh/")
        and resource.type != "pulumi:providers:kubernetes"
    )
