"""checkov's Kubernetes checks over every object the program declares itself, per shipped stack.

The objects are the offline plan's Kubernetes resources written out as manifests (what the provider would
apply). The `tyk-oss` release is rendered by Helm inside the provider at deploy time; with helm-python-sdk and a
tyk-charts checkout (`TYK_CHARTS_DIR`, as for `offline.chart_check`) the rendered chart is checked together with
the program's objects, otherwise (CI) that test is skipped.

checkov pins ~100 packages, so it has a virtualenv of its own (`.venv-checkov`, made by `./run test` from
requirements-checkov.lock).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import parse_settings
from offline.plan import PROJECT_DIR, integral_floats_as_ints, read_stack_config
from tests.conftest import stack_plan
from tests.k8s_schema import is_kubernetes_object, manifest

CHECKOV = PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"

# Every skipped check, with why it doesn't apply.
SKIPPED = {
    "CKV_K8S_11": "CPU limits: CFS throttling stalls Redis's single thread; the CPU request reserves its share",
    "CKV_K8S_15": "pullPolicy Always: images are pinned (by digest where set), IfNotPresent pulls the same bytes",
}
# Only for the rendered chart: what tyk-oss 5.3.0 can't express.
SKIPPED_IN_CHART = {
    "CKV_K8S_35": "secrets as env: the chart passes the Redis password and API secret as secretKeyRef env only",
    "CKV_K8S_38": "token mount: the chart can't set the pod field; its ServiceAccount tyk-gateway has it false",
}
CHARTS_DIR = os.environ.get("TYK_CHARTS_DIR")
# Only for a stack with `images.pinDigests` off (local: a kind cluster follows the tags while iterating).
SKIPPED_UNPINNED = {
    "CKV_K8S_43": "image digests: the stack pulls by tag (images.pinDigests off)",
}


def skipped_checks(stack: str, *extra: dict[str, str]) -> dict[str, str]:
    config, _, _ = read_stack_config(stack)
    pinned = parse_settings(config).images.pin_digests
    return SKIPPED | {k: v for e in extra for k, v in e.items()} | ({} if pinned else SKIPPED_UNPINNED)


def manifests(stack: str) -> list[dict[str, Any]]:
    documents = []
    for resource in stack_plan(stack).resources:
        if is_kubernetes_object(resource):
            # The wire format carries every number as a double; a manifest has integers (runAsUser: 10001).
            body = integral_floats_as_ints(manifest(resource))
            body.setdefault("metadata", {}).setdefault("name", resource.name)  # Pulumi auto-names the rest
            documents.append(body)
    return documents


def run_checkov(directory: Path, skipped: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "kubernetes",
            "--directory",
            str(directory),
            "--skip-download",  # offline: no guideline or policy downloads
            "--skip-check",
            ",".join(sorted(skipped)),
            "--output",
            "json",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov's virtualenv is made by `./run test`")
@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_checkov_finds_nothing(stack: str, tmp_path: Path) -> None:
    documents = manifests(stack)
    assert any(d["kind"] == "NetworkPolicy" for d in documents)
    (tmp_path / f"{stack}.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    report = run_checkov(tmp_path, skipped_checks(stack))
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert summary["passed"] > 0  # it did check something


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov's virtualenv is made by `./run test`")
def test_checkov_would_flag_a_secret_in_the_environment(tmp_path: Path) -> None:
    # The harness really reports failures: a pod that checkov must reject.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "tyk"},
        "spec": {
            "containers": [
                {
                    "name": "bad",
                    "image": "redis:7.4.6-alpine",
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                }
            ]
        },
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(pod))
    report = run_checkov(tmp_path, SKIPPED)
    assert "CKV_K8S_35" in {c["check_id"] for c in report["results"]["failed_checks"]}


@pytest.mark.skipif(
    not (CHECKOV.exists() and CHARTS_DIR and importlib.util.find_spec("helm_python")),
    reason="needs .venv-checkov, helm-python-sdk and TYK_CHARTS_DIR (a tyk-charts checkout)",
)
@pytest.mark.parametrize("stack", ["dev", "local", "prod"])
def test_checkov_finds_nothing_in_the_rendered_chart(stack: str, tmp_path: Path) -> None:
    from offline.chart_check import render

    assert CHARTS_DIR is not None
    release = stack_plan(stack).one("kubernetes:helm.sh/v3:Release", "gateway-release")
    chart = [
        d
        for d in render(Path(CHARTS_DIR) / "tyk-oss", release.inputs["values"], release.inputs["namespace"])
        if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})  # `helm test` pods aren't deployed
    ]
    assert any(d["kind"] == "Deployment" for d in chart)
    for document in chart:
        document["metadata"].setdefault("namespace", release.inputs["namespace"])  # Helm installs it there
    # Together with the program's objects: the NetworkPolicies select the chart's pods.
    documents = manifests(stack) + chart
    (tmp_path / f"{stack}.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    report = run_checkov(tmp_path, skipped_checks(stack, SKIPPED_IN_CHART))
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
