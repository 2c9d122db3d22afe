"""Replacements and refused updates in the offline diff, per the providers' rules (see offline.replacements)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from offline import diff
from offline.diff import REFUSED, REPLACE, UPDATE, compare, render, render_all
from offline.plan import machine_independent_environment, read_stack_config, run_program

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
PROVIDER = "pulumi:providers:kubernetes"
PROVIDER_KEY = f"{PROVIDER}::cluster-k8s"


def resource(type_: str, name: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": type_, "name": name, "parent": None, "dependsOn": [], "inputs": inputs, **extra}


def plan(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "stack": "test",
        "resources": {f"{r['type']}::{r['name']}": {"order": i, **r} for i, r in enumerate(resources)},
        "outputs": {},
        "notes": [],
    }


def effects(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{resource name: {changed path: effect}} of the diff of two plans."""
    return {r.name: {c.path: c.effect for c in r.changes} for r in compare(old, new).changed}


def storage_class(name: str = "tyk-files", **fields: Any) -> dict[str, Any]:
    inputs = {
        "metadata": {"name": name},
        "provisioner": "file.csi.azure.com",
        "parameters": {"skuName": "Standard_LRS"},
        "reclaimPolicy": "Retain",
        "allowVolumeExpansion": True,
        **fields,
    }
    return resource(CLASS, "storage-class", inputs)


def claim(name: str, class_name: str = "tyk-files", size: str = "1Gi") -> dict[str, Any]:
    return resource(
        PVC,
        name,
        {
            "metadata": {"name": f"tyk-gateway-{name}", "namespace": "tyk"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": class_name,
                "resources": {"requests": {"storage": size}},
            },
        },
    )


# --- Kubernetes ----------------------------------------------------------------------------------------------


def test_renaming_the_storage_class_replaces_it_and_every_claim() -> None:
    old = plan(storage_class(), claim("apps"), claim("policies"))
    new = plan(
        storage_class("tyk-files-v2"), claim("apps", "tyk-files-v2"), claim("policies", "tyk-files-v2")
    )
    result = compare(old, new)
    assert effects(old, new) == {
        "storage-class": {"metadata.name": REPLACE},
        "apps": {"spec.storageClassName": REPLACE},
        "policies": {"spec.storageClassName": REPLACE},
    }
    assert result.summary() == "0 to create, 0 to update, 3 to replace, 0 to delete, 0 unchanged"
    # The claims hold data: they lead the output; the class doesn't.
    assert [(action, r.name) for action, r in result.losses] == [("replace", "apps"), ("replace", "policies")]
    text = render(result)
    assert text.index("! replaces kubernetes:core/v1:PersistentVolumeClaim  apps") < text.index(
        "+- kubernetes"
    )
    assert "+- kubernetes:storage.k8s.io/v1:StorageClass  storage-class" in text
    assert 'spec.storageClassName: "tyk-files" → "tyk-files-v2"  [forces replacement]' in text


def test_storage_class_fields() -> None:
    old = plan(storage_class())
    assert effects(old, plan(storage_class(parameters={"skuName": "Premium_ZRS"}))) == {
        "storage-class": {"parameters.skuName": REPLACE}
    }
    assert effects(old, plan(storage_class(provisioner="disk.csi.azure.com"))) == {
        "storage-class": {"provisioner": REPLACE}
    }
    # Kubernetes forbids these updates, pulumi-kubernetes sends them anyway: `pulumi up` fails.
    refused = compare(
        old, plan(storage_class(reclaimPolicy="Delete", volumeBindingMode="WaitForFirstConsumer"))
    )
    [item] = refused.changed
    assert {c.path: c.effect for c in item.changes} == {
        "reclaimPolicy": REFUSED,
        "volumeBindingMode": REFUSED,
    }
    assert not item.replaced
    assert any(
        "reclaimPolicy: updates to reclaimPolicy are forbidden" in line for line in diff.warnings(refused)
    )
    # Mutable fields update in place.
    assert effects(old, plan(storage_class(mountOptions=["mfsymlinks"]))) == {
        "storage-class": {"mountOptions[0]": UPDATE}
    }


@pytest.mark.parametrize(
    ("expansion", "old_size", "new_size", "effect"),
    [
        (True, "1Gi", "100Gi", UPDATE),  # grows in place
        (False, "1Gi", "100Gi", REFUSED),  # the class doesn't allow expansion
        (True, "100Gi", "1Gi", REFUSED),  # never shrinks
        (True, "1Gi", "1024Mi", UPDATE),  # the same size written differently: no problem
    ],
)
def test_claim_size(expansion: bool, old_size: str, new_size: str, effect: str) -> None:
    old = plan(storage_class(allowVolumeExpansion=expansion), claim("apps", size=old_size))
    new = plan(storage_class(allowVolumeExpansion=expansion), claim("apps", size=new_size))
    assert effects(old, new)["apps"] == {"spec.resources.requests.storage": effect}


def test_claim_access_mode_replaces() -> None:
    old = plan(claim("apps"))
    changed = claim("apps")
    changed["inputs"]["spec"]["accessModes"] = ["ReadWriteOnce"]
    assert effects(old, plan(changed)) == {"apps": {"spec.accessModes[0]": REPLACE}}


def test_deployment_selector_and_service_cluster_ip() -> None:
    deployment = "kubernetes:apps/v1:Deployment"
    old = plan(
        resource(deployment, "d", {"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}}),
        resource("kubernetes:core/v1:Service", "s", {"spec": {"clusterIP": "10.0.0.1", "type": "ClusterIP"}}),
    )
    new = plan(
        resource(deployment, "d", {"spec": {"selector": {"matchLabels": {"app": "b"}}, "replicas": 2}}),
        resource("kubernetes:core/v1:Service", "s", {"spec": {"clusterIP": "10.0.0.2", "type": "NodePort"}}),
    )
    assert effects(old, new) == {
        "d": {"spec.selector.matchLabels.app": REPLACE, "spec.replicas": UPDATE},
        "s": {"spec.clusterIP": REPLACE, "spec.type": UPDATE},
    }


def test_secret_data_replaces_unless_the_provider_makes_secrets_mutable() -> None:
    secret = "kubernetes:core/v1:Secret"

    def secrets(data: dict[str, str], mutable: bool) -> dict[str, Any]:
        return plan(
            resource(PROVIDER, "cluster-k8s", {"enableSecretMutable": mutable}),
            resource(secret, "api", {"metadata": {"name": "api"}, "stringData": data}, provider=PROVIDER_KEY),
        )

    assert effects(secrets({"a": "1"}, False), secrets({"b": "1"}, False))["api"] == {
        "stringData.a": REPLACE,
        "stringData.b": REPLACE,
    }
    assert set(effects(secrets({"a": "1"}, True), secrets({"b": "1"}, True))["api"].values()) == {UPDATE}


def test_a_new_cluster_replaces_the_provider_and_everything_it_manages() -> None:
    def stack(context: str) -> dict[str, Any]:
        return plan(
            resource(PROVIDER, "cluster-k8s", {"context": context}),
            resource(
                "kubernetes:core/v1:Namespace",
                "namespace",
                {"metadata": {"name": "tyk"}},
                provider=PROVIDER_KEY,
            ),
            {**claim("apps"), "provider": PROVIDER_KEY},
            resource("random:index/randomPassword:RandomPassword", "apiSecret", {"length": 40}),
        )

    result = compare(stack("kind-tyk"), stack("aks-prod"))
    assert {r.name for r in result.replaced} == {"cluster-k8s", "namespace", "apps"}
    assert result.unchanged == 1  # the password has no Kubernetes provider
    assert {r.name for _, r in result.losses} == {"cluster-k8s", "namespace", "apps"}
    assert (
        "(provider)  [forces replacement: its provider pulumi:providers:kubernetes::cluster-k8s is replaced]"
        in render(result)
    )


def test_helm_release_name_and_namespace() -> None:
    old = plan(resource(RELEASE, "redis-release", {"name": "redis", "namespace": "tyk", "values": {"a": 1}}))
    new = plan(resource(RELEASE, "redis-release", {"name": "redis2", "namespace": "tyk", "values": {"a": 2}}))
    assert effects(old, new) == {"redis-release": {"name": REPLACE, "values.a": UPDATE}}
    values_only = plan(
        resource(RELEASE, "redis-release", {"name": "redis", "namespace": "tyk", "values": {"a": 2}})
    )
    assert not compare(old, values_only).replaced


def test_replace_on_changes_option() -> None:
    old = plan(resource("kubernetes:core/v1:ConfigMap", "c", {"metadata": {"labels": {"a": "1"}}}))
    new = plan(
        resource(
            "kubernetes:core/v1:ConfigMap",
            "c",
            {"metadata": {"labels": {"a": "2"}}},
            options={"replaceOnChanges": ["metadata.labels"]},
        )
    )
    assert effects(old, new) == {"c": {"metadata.labels.a": REPLACE}}


def test_a_new_parent_is_a_new_urn() -> None:
    old = plan(resource(RELEASE, "r", {"name": "r"}))
    new = plan(resource(RELEASE, "r", {"name": "r"}, parent="tyk-aks:index:Redis::redis"))
    assert effects(old, new) == {"r": {"(parent)": REPLACE}}


# --- Azure ---------------------------------------------------------------------------------------------------


def test_azure_force_new_properties() -> None:
    group = "azure-native:resources:ResourceGroup"
    cluster = "azure-native:containerservice:ManagedCluster"

    def stack(location: str, dns_prefix: str, vm_size: str, count: int) -> dict[str, Any]:
        return plan(
            resource(group, "rg", {"location": location, "resourceGroupName": "tyk"}),
            resource(
                cluster,
                "aks",
                {
                    "location": location,
                    "dnsPrefix": dns_prefix,
                    "resourceName": "tyk",
                    "agentPoolProfiles": [{"name": "system", "vmSize": vm_size, "count": count}],
                },
            ),
        )

    old = stack("westeurope", "tyk", "Standard_D2s_v5", 2)
    assert effects(old, stack("northeurope", "tyk", "Standard_D2s_v5", 2)) == {
        "rg": {"location": REPLACE},
        "aks": {"location": REPLACE},
    }
    assert effects(old, stack("West Europe", "tyk", "Standard_D2s_v5", 2)) == {
        "rg": {"location": UPDATE},  # listed as written, but Azure compares regions without case and spaces
        "aks": {"location": UPDATE},
    }
    assert effects(old, stack("westeurope", "tyk-2", "Standard_D4s_v5", 3)) == {
        "aks": {
            "dnsPrefix": REPLACE,
            "agentPoolProfiles[name=system].vmSize": REFUSED,
            "agentPoolProfiles[name=system].count": UPDATE,
        }
    }


# --- the program's own resources -----------------------------------------------------------------------------


def test_dynamic_resources_use_their_providers_diff() -> None:
    api = "pulumi-python:dynamic/tyk:Api"
    definition = {"api_id": "httpbin", "name": "httpbin", "proxy": {"listen_path": "/httpbin/"}}
    inputs = {"api_id": "httpbin", "definition": definition, "gateway_url": "http://localhost:9696"}
    old = plan(resource(api, "httpbin", inputs))
    renamed = {**inputs, "definition": {**definition, "name": "httpbin v2"}}
    assert effects(old, plan(resource(api, "httpbin", renamed))) == {"httpbin": {"definition.name": UPDATE}}
    new_id = {**inputs, "api_id": "httpbin2", "definition": {**definition, "api_id": "httpbin2"}}
    assert effects(old, plan(resource(api, "httpbin", new_id))) == {
        "httpbin": {"api_id": REPLACE, "definition.api_id": UPDATE}
    }
    policy = "pulumi-python:dynamic/tyk:Policy"
    old_policy = plan(
        resource(policy, "basic", {"policy_id": "basic", "definition": {"id": "basic", "rate": 1}})
    )
    new_policy = plan(
        resource(policy, "basic", {"policy_id": "basic-2", "definition": {"id": "basic-2", "rate": 1}})
    )
    assert effects(old_policy, new_policy)["basic"]["policy_id"] == REPLACE


def test_random_passwords_are_regenerated_by_any_input() -> None:
    password = "random:index/randomPassword:RandomPassword"
    result = compare(
        plan(resource(password, "apiSecret", {"length": 40})),
        plan(resource(password, "apiSecret", {"length": 48})),
    )
    assert [r.name for _, r in result.losses] == ["apiSecret"]


# --- real plans, rendering, command line ---------------------------------------------------------------------


def test_renaming_the_storage_class_in_a_stack_file_replaces_the_claims() -> None:
    config, secret_keys, _ = read_stack_config("dev")
    storage = json.loads(config["tyk-aks:storage"])
    renamed = {**config, "tyk-aks:storage": json.dumps({**storage, "storageClassName": "tyk-files-v2"})}
    before = json.loads(json.dumps(run_program("dev", config, secret_keys).to_json()))
    after = json.loads(json.dumps(run_program("dev", renamed, secret_keys).to_json()))
    result = compare(before, after, "dev", "dev renamed")
    assert {r.type for r in result.replaced} == {CLASS, PVC}
    assert len(result.replaced) == 4 and not result.updated
    assert [r.type for _, r in result.losses] == [PVC, PVC, PVC]
    markdown = render(result, "markdown")
    assert markdown.index("> [!CAUTION]") < markdown.index("```diff")
    assert "loses its volume and the files on it" in markdown


def test_every_stacks_warnings_come_first() -> None:
    calm = compare(plan(claim("apps")), plan(claim("apps", size="2Gi")), "dev@main", "dev")
    alarming = compare(plan(claim("apps")), plan(claim("apps", "other")), "prod@main", "prod")
    text = render_all([calm, alarming], "markdown")
    assert text.startswith("> [!CAUTION]")
    assert "prod: replaces `kubernetes:core/v1:PersistentVolumeClaim  apps`" in text
    assert text.count("[!CAUTION]") == 1


def test_json_lists_replacements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "old.json").write_text(json.dumps(plan(claim("apps"))))
    (tmp_path / "new.json").write_text(json.dumps(plan(claim("apps", "other"))))
    assert diff.main([str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["replaced"] == [f"{PVC}::apps"]
    assert out["summary"] == "0 to create, 0 to update, 1 to replace, 0 to delete, 0 unchanged"
    [change] = out["changed"][f"{PVC}::apps"]
    assert change["effect"] == "replace"


def test_a_broken_stack_exits_2_with_one_line(tmp_path: Path) -> None:
    """`./run diff dev broken` prints one line per problem, no traceback, and exits 2 (README promise)."""
    project = Path(__file__).resolve().parent.parent
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache"))
    (copy / "Pulumi.broken.yaml").write_text(
        (project / "Pulumi.dev.yaml").read_text().replace("replicas: 2", "replicas: 0")
    )
    with machine_independent_environment() as env:
        result = subprocess.run(
            [sys.executable, "-m", "offline.diff", "dev", "broken"],
            cwd=copy,
            env={**env, "PYTHONPATH": str(copy)},
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("offline.diff: broken: ") and "gateway.replicas" in line
