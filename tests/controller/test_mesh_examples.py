"""examples/mesh-*.yaml: valid Kubernetes objects, opted in the way the webhook selects, injected into pods that
pass the restricted Pod Security Standard, and wired so the documented curl works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import yaml

from tests.controller.mesh_fixtures import MESH
from tests.controller.mesh_pss import restricted
from tests.k8s_schema import KUBERNETES_VERSION
from tyk_controller.config import WebhookServer
from tyk_controller.mesh.config import INJECT_LABEL
from tyk_controller.mesh.routes import plan_routes
from tyk_controller.mesh.sidecar import plan_injection

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("mesh-*.yaml"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "mesh.md"


def documents() -> list[dict[str, Any]]:
    return [doc for path in EXAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc]


def pods() -> list[dict[str, Any]]:
    """Each Deployment's pod as the API server hands it to the webhook, then as admitted."""
    admitted = []
    for deployment in (d for d in documents() if d["kind"] == "Deployment"):
        template = deployment["spec"]["template"]
        namespace = deployment["metadata"]["namespace"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**template["metadata"], "namespace": namespace},
        }
        pod["spec"] = template["spec"]
        injection = plan_injection(pod, namespace, MESH)
        assert injection.patch, (deployment["metadata"]["name"], injection.problems)
        new = jsonpatch.apply_patch(pod, injection.patch)
        new["metadata"]["name"] = f"{deployment['metadata']['name']}-1"
        new["status"] = {"phase": "Running"}
        admitted.append(new)
    return admitted


def test_examples_are_valid_kubernetes_objects() -> None:
    assert [p.name for p in EXAMPLES] == ["mesh-callee.yaml", "mesh-caller.yaml"]
    for doc in documents():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert "v1beta1" not in doc["apiVersion"]


def test_example_pods_are_opted_in_injected_and_restricted() -> None:
    admitted = pods()
    assert len(admitted) == 2
    for pod in admitted:
        assert pod["metadata"]["labels"][INJECT_LABEL] == "true"  # the webhook's objectSelector
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        assert restricted(pod) == []
    [namespace] = [d for d in documents() if d["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_documented_route_exists() -> None:
    services = [d for d in documents() if d["kind"] == "Service"]
    plan = plan_routes("shop", pods(), services, MESH)
    assert plan.problems == []
    assert plan.routes["/orders"].service == "orders"
    text = DOCS.read_text()
    assert "curl -s http://mesh/orders/get" in text
    assert WebhookServer().path in text
