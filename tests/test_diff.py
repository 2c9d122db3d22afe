"""The offline plan diff: synthetic plans for the edge cases, real plans (stacks, revisions) end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from offline import diff
from offline.diff import MISSING, Change, PlanError, Source, compare, diff_values, render
from offline.plan import Plan, machine_independent_environment, run_program

PROJECT_DIR = Path(__file__).resolve().parent.parent
RELEASE = "kubernetes:helm.sh/v3:Release"


def resource(type_: str, name: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": type_, "name": name, "parent": None, "dependsOn": [], "inputs": inputs, **extra}


def plan(*resources: dict[str, Any], outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "stack": "test",
        "resources": {f"{r['type']}::{r['name']}": r for r in resources},
        "outputs": outputs or {},
        "notes": [],
    }


def paths(changes: list[Change]) -> dict[str, tuple[Any, Any]]:
    return {c.path: (c.old, c.new) for c in changes}


# --- comparing values ----------------------------------------------------------------------------------------


def test_nested_paths() -> None:
    old = {"values": {"gateway": {"replicaCount": 2, "image": {"tag": "v5"}}}, "version": "5.3.0"}
    new = {"values": {"gateway": {"replicaCount": 3, "image": {"tag": "v5"}, "pdb": {"minAvailable": 2}}}}
    assert paths(diff_values(old, new)) == {
        "values.gateway.replicaCount": (2, 3),
        "values.gateway.pdb.minAvailable": (MISSING, 2),  # a new object is listed leaf by leaf
        "version": ("5.3.0", MISSING),
    }


def test_keys_that_are_not_identifiers_are_quoted() -> None:
    old = {"metadata": {"annotations": {"pulumi.com/skipAwait": "true"}}}
    new = {"metadata": {"annotations": {"pulumi.com/skipAwait": "false"}}}
    assert paths(diff_values(old, new)) == {'metadata.annotations["pulumi.com/skipAwait"]': ("true", "false")}


def test_lists_of_named_objects_match_by_name() -> None:
    old = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    new = {"env": [{"name": "Z", "value": "0"}, {"name": "A", "value": "1"}, {"name": "B", "value": "3"}]}
    # Inserting Z first is one addition, not three changed items.
    assert paths(diff_values(old, new)) == {
        "env[name=B].value": ("2", "3"),
        "env[name=Z].name": (MISSING, "Z"),
        "env[name=Z].value": (MISSING, "0"),
    }


def test_other_lists_compare_by_index() -> None:
    assert paths(diff_values({"hosts": ["a", "b"]}, {"hosts": ["a", "c", "d"]})) == {
        "hosts[1]": ("b", "c"),
        "hosts[2]": (MISSING, "d"),
    }


def test_bool_and_number_are_different_but_int_and_float_are_not() -> None:
    assert paths(diff_values({"x": 1}, {"x": True})) == {"x": (1, True)}
    assert diff_values({"minCount": 2}, {"minCount": 2.0}) == []  # the RPC layer turns ints into floats


def test_type_changes_and_null() -> None:
    assert paths(diff_values({"a": {"b": 1}}, {"a": "[secret]"})) == {"a": ({"b": 1}, "[secret]")}
    assert paths(diff_values({"a": None}, {"a": MISSING})) == {"a": (None, MISSING)}
    assert diff_values({"a": []}, {"a": []}) == []


# --- comparing plans -----------------------------------------------------------------------------------------


def test_added_removed_changed_unchanged() -> None:
    old = plan(
        resource(RELEASE, "gateway", {"values": {"replicaCount": 2}}),
        resource("kubernetes:core/v1:Namespace", "namespace", {"metadata": {"name": "tyk"}}),
        resource(
            "kubernetes:storage.k8s.io/v1:StorageClass",
            "storage-class",
            {"provisioner": "file.csi.azure.com"},
        ),
    )
    new = plan(
        resource(RELEASE, "gateway", {"values": {"replicaCount": 3}}),
        resource("kubernetes:core/v1:Namespace", "namespace", {"metadata": {"name": "tyk"}}),
        resource("azure-native:resources:ResourceGroup", "cluster-rg", {"location": "westeurope"}),
    )
    result = compare(old, new, "dev", "prod")
    assert [r.name for r in result.added] == ["cluster-rg"]
    assert paths(result.added[0].changes) == {"location": (MISSING, "westeurope")}
    assert [r.name for r in result.removed] == ["storage-class"]
    assert [r.name for r in result.changed] == ["gateway"]
    assert paths(result.changed[0].changes) == {"values.replicaCount": (2, 3)}
    assert result.unchanged == 1
    assert result.has_changes

    text = render(result)
    assert "1 to create, 1 to update, 0 to replace, 1 to delete, 1 unchanged" in text
    assert "+ azure-native:resources:ResourceGroup  cluster-rg" in text
    assert '+     location: "westeurope"' in text
    assert "- kubernetes:storage.k8s.io/v1:StorageClass  storage-class" in text
    assert "~ kubernetes:helm.sh/v3:Release  gateway" in text
    assert "values.replicaCount: 2 → 3" in text


def test_same_name_other_type_is_a_replacement() -> None:
    old = plan(resource("kubernetes:apps/v1:Deployment", "redis", {}))
    new = plan(resource(RELEASE, "redis", {}))
    result = compare(old, new)
    assert [r.key for r in result.added] == [f"{RELEASE}::redis"]
    assert [r.key for r in result.removed] == ["kubernetes:apps/v1:Deployment::redis"]
    assert result.added[0].changes == []  # no inputs, nothing listed


def test_parent_and_dependencies() -> None:
    old = plan(resource(RELEASE, "gateway", {}, dependsOn=["a::storage"], parent=None))
    new = plan(
        resource(RELEASE, "gateway", {}, dependsOn=["a::redis"], parent="tyk-aks:index:TykGateway::gateway")
    )
    [changed] = compare(old, new).changed
    assert paths(changed.changes)["(parent)"] == (None, "tyk-aks:index:TykGateway::gateway")
    text = render(compare(old, new))
    assert "dependsOn - a::storage" in text
    assert "dependsOn + a::redis" in text


def test_outputs() -> None:
    old = plan(outputs={"gateway_replicas": 2, "kubeconfig": "[secret]"})
    new = plan(outputs={"gateway_replicas": 3})
    result = compare(old, new)
    assert not result.changed
    assert paths(result.outputs) == {"gateway_replicas": (2, 3), "kubeconfig": ("[secret]", MISSING)}
    assert "Outputs:" in render(result)


def test_identical_plans() -> None:
    same = plan(resource(RELEASE, "gateway", {"values": {"a": 1}}))
    result = compare(same, same)
    assert not result.has_changes
    assert "No changes." in render(result)
    assert "No changes." in render(result, "markdown")


def test_secrets_stay_masked() -> None:
    old = plan(resource("kubernetes:core/v1:Secret", "api", {"stringData": "[secret]", "type": "Opaque"}))
    new = plan(resource("kubernetes:core/v1:Secret", "api", {"stringData": "[secret]", "type": "Opaque"}))
    assert not compare(old, new).has_changes  # a rotated secret is invisible offline, by design
    plain = plan(
        resource("kubernetes:core/v1:Secret", "api", {"stringData": {"key": "visible"}, "type": "Opaque"})
    )
    text = render(compare(plain, new))
    assert 'stringData: {"key": "visible"} → [secret]' in text  # became a secret: the new value is not shown


def test_multiline_strings_as_text_diff() -> None:
    old = plan(resource(RELEASE, "r", {"valuesYaml": "a: 1\nb: 2\nc: 3\n"}))
    new = plan(resource(RELEASE, "r", {"valuesYaml": "a: 1\nb: 5\nc: 3\n"}))
    text = render(compare(old, new))
    assert "valuesYaml: (text)" in text
    assert "-b: 2" in text and "+b: 5" in text


def test_long_values_and_many_added_leaves_are_shortened() -> None:
    long = "x" * 500
    old = plan(resource(RELEASE, "r", {"blob": "short"}))
    new = plan(
        resource(RELEASE, "r", {"blob": long}),
        resource(RELEASE, "big", {f"k{i}": i for i in range(60)}),
    )
    result = compare(old, new)
    text = render(result)
    assert "(502 chars)" in text and long not in text
    assert "… 20 more (--full shows all)" in text
    full = render(result, full=True)
    assert long in full and "k59: 59" in full


def test_markdown_is_a_diff_block() -> None:
    old = plan(resource(RELEASE, "gateway", {"values": {"replicaCount": 2}}))
    new = plan(resource(RELEASE, "gateway", {"values": {"replicaCount": 3}}))
    text = render(compare(old, new, "dev@main", "dev (working tree)"), "markdown")
    assert text.startswith("#### Offline plan: `dev@main` → `dev (working tree)`")
    assert (
        "```diff\n~ kubernetes:helm.sh/v3:Release  gateway\n-     values.replicaCount: 2\n+     values.replicaCount: 3\n```"
        in text
    )


# --- command line --------------------------------------------------------------------------------------------


def write_plans(tmp_path: Path, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str]:
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    return str(tmp_path / "old.json"), str(tmp_path / "new.json")


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = write_plans(
        tmp_path,
        plan(resource(RELEASE, "gateway", {"values": {"replicaCount": 2}})),
        plan(resource(RELEASE, "gateway", {"values": {"replicaCount": 3}})),
    )
    assert diff.main([old, new]) == 0  # a difference is not an error
    assert "values.replicaCount: 2 → 3" in capsys.readouterr().out
    assert diff.main([old, new, "--exit-code"]) == 1
    capsys.readouterr()
    assert diff.main([old, old, "--exit-code"]) == 0
    capsys.readouterr()
    assert diff.main([old, str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_cli_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = write_plans(
        tmp_path,
        plan(resource(RELEASE, "gateway", {"values": {"replicaCount": 2, "gone": True}})),
        plan(resource(RELEASE, "gateway", {"values": {"replicaCount": 3}}), resource(RELEASE, "redis", {})),
    )
    assert diff.main([old, new, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == [f"{RELEASE}::redis"]
    assert out["changed"][f"{RELEASE}::gateway"] == [
        {"path": "values.gone", "old": True},  # paths in sorted order
        {"path": "values.replicaCount", "old": 2, "new": 3},
    ]


def test_cli_argument_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["dev"],
        ["dev", "prod", "local"],
        ["--base", "main", "dev@x"],
        ["--base", "main", "dev", "prod.json"],
    ):
        with pytest.raises(SystemExit) as error:
            diff.main(argv)
        assert error.value.code == 2
    capsys.readouterr()


def test_sources() -> None:
    assert Source.parse("dev") == Source(stack="dev")
    assert Source.parse("dev@origin/main") == Source(stack="dev", revision="origin/main")
    assert Source.parse("dev@HEAD@{1}") == Source(stack="dev", revision="HEAD@{1}")
    assert Source.parse("plans/dev.json") == Source(path=Path("plans/dev.json"))
    assert Source.parse("dev").label == "dev (working tree)"
    assert Source.parse("dev@main").label == "dev@main"
    with pytest.raises(ValueError):
        Source.parse("@main")
    assert diff.sources_from_args(["dev"], "main") == (Source("dev", "main"), Source("dev"))
    # With --base, several stacks: one diff each (the pull-request comment covers every stack file).
    assert diff.pairs_from_args(["dev", "prod"], "main") == [
        (Source("dev", "main"), Source("dev")),
        (Source("prod", "main"), Source("prod")),
    ]


def test_machine_environment_is_dropped_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/home/someone/.kube/config")
    monkeypatch.setenv("PULUMI_K8S_DELETE_UNREACHABLE", "true")
    monkeypatch.setenv("PULUMI_CONFIG", '{"tyk-aks:namespace": "elsewhere"}')
    with machine_independent_environment() as env:
        assert "KUBECONFIG" not in os.environ and "KUBECONFIG" not in env
        assert "PULUMI_K8S_DELETE_UNREACHABLE" not in os.environ
        assert "PULUMI_CONFIG" not in os.environ
    assert os.environ["KUBECONFIG"] == "/home/someone/.kube/config"


def test_a_plan_does_not_depend_on_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/home/someone/.kube/config")
    monkeypatch.setenv("PULUMI_CONFIG", '{"tyk-aks:namespace": "elsewhere"}')
    plan = json.dumps(run_program("dev").to_json())
    assert "/home/someone" not in plan
    assert "elsewhere" not in plan


# --- revisions (a throw-away repository with a stand-in planner) ---------------------------------------------

STAND_IN_PLAN = textwrap.dedent(
    """
    import json, os, sys
    import yaml
    stack = sys.argv[1]
    config = yaml.safe_load(open(f"Pulumi.{stack}.yaml"))["config"]
    if config.get("fail"):
        raise SystemExit("boom: the program failed")
    resources = {"r::gateway": {"type": "r", "name": "gateway", "parent": None, "dependsOn": [],
                                "inputs": {"replicas": config["replicas"], "kubeconfig": os.environ.get("KUBECONFIG")}}}
    print(json.dumps({"stack": stack, "resources": resources, "outputs": {}, "notes": []}))
    """
)


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Callable[[str], Path]:
    """A repository whose project lives in `subdir` (or the top), with a stand-in `offline/plan.py`."""

    def make(subdir: str = ".") -> Path:
        top = tmp_path / "repo"
        project = top / subdir
        (project / "offline").mkdir(parents=True)
        (project / "offline" / "__init__.py").write_text("")
        (project / "offline" / "plan.py").write_text(STAND_IN_PLAN)
        (project / "Pulumi.dev.yaml").write_text("config:\n  replicas: 2\n")
        git(top, "init", "--quiet", "--initial-branch=main")
        git(top, "add", ".")
        git(top, "commit", "--quiet", "-m", "one")
        (project / "Pulumi.dev.yaml").write_text("config:\n  replicas: 3\n")
        git(top, "commit", "--quiet", "-am", "two")
        return project

    return make


@pytest.mark.parametrize("subdir", [".", "infra/tyk"])
def test_plan_at_revision(repo: Callable[[str], Path], subdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    project = repo(subdir)
    monkeypatch.setenv("KUBECONFIG", "/home/someone/.kube/config")
    first = diff.plan_at_revision("dev", "HEAD~1", project)
    second = diff.plan_at_revision("dev", "HEAD", project)
    assert first["resources"]["r::gateway"]["inputs"] == {
        "replicas": 2,
        "kubeconfig": None,
    }  # no machine state
    assert second["resources"]["r::gateway"]["inputs"]["replicas"] == 3
    assert git(project, "status", "--porcelain") == ""  # nothing written into the repository
    assert "offline-diff" not in git(project, "worktree", "list")


def test_plan_at_revision_errors(repo: Callable[[str], Path]) -> None:
    project = repo(".")
    with pytest.raises(PlanError, match="no-such-rev"):
        diff.plan_at_revision("dev", "no-such-rev", project)
    missing = diff.plan_at_revision("local", "HEAD", project)  # a stack the revision doesn't have yet
    assert missing["resources"] == {}
    assert "Pulumi.local.yaml does not exist at HEAD" in missing["notes"][0]

    (project / "Pulumi.dev.yaml").write_text("config:\n  replicas: 3\n  fail: true\n")
    git(project, "commit", "--quiet", "-am", "broken")
    with pytest.raises(PlanError, match="boom: the program failed"):
        diff.plan_at_revision("dev", "HEAD", project)

    (project / "offline" / "plan.py").unlink()
    git(project, "commit", "--quiet", "-am", "no planner")
    with pytest.raises(PlanError, match=r"has no offline/plan\.py"):
        diff.plan_at_revision("dev", "HEAD", project)


# --- real plans ----------------------------------------------------------------------------------------------


def _release(result: diff.PlanDiff, name: str) -> dict[str, tuple[Any, Any]]:
    [changed] = [r for r in result.changed if r.type == RELEASE and r.name == name]
    return paths(changed.changes)


def test_dev_vs_prod(plan_of: Callable[[str], Plan]) -> None:
    result = compare(plan_of("dev").to_json(), plan_of("prod").to_json(), "dev", "prod")
    gateway = _release(result, "gateway-release")
    assert gateway["values.tyk-gateway.gateway.replicaCount"] == (2, 3)
    assert gateway["values.tyk-gateway.gateway.pdb.minAvailable"] == (MISSING, 2)
    added = {r.type for r in result.added}
    assert {"azure-native:resources:ResourceGroup", "azure-native:containerservice:ManagedCluster"} <= added
    text = render(result)
    assert "values.tyk-gateway.gateway.replicaCount: 2 → 3" in text
    assert "placeholder" not in text  # placeholders for secrets are masked like real secrets


def test_secret_values_never_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    from offline.plan import read_stack_config, run_program

    monkeypatch.delenv("KUBECONFIG", raising=False)
    config, secret_keys, _ = read_stack_config("dev")
    plans = []
    for value in ("first-secret-value-1", "second-secret-value-2"):
        plans.append(
            run_program(
                "dev", {**config, "tyk-aks:apiSecret": value}, [*secret_keys, "tyk-aks:apiSecret"]
            ).to_json()
        )
    result = compare(plans[0], plans[1])
    for style in ("text", "markdown"):
        text = render(result, style, full=True)
        assert "first-secret-value-1" not in text and "second-secret-value-2" not in text
    assert "first-secret-value-1" not in json.dumps(plans[0])


def test_cli_base_revision_end_to_end(tmp_path: Path) -> None:
    """`python -m offline.diff --base HEAD dev` in a copy of this project: one committed change of replicas."""
    copy = tmp_path / "project"
    shutil.copytree(
        PROJECT_DIR,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache", "plans"),
    )
    git(copy, "init", "--quiet", "--initial-branch=main")
    git(copy, "add", ".")
    git(copy, "commit", "--quiet", "-m", "base")
    stack_file = copy / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("replicas: 2", "replicas: 4"))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KUBECONFIG")}
    result = subprocess.run(
        [sys.executable, "-m", "offline.diff", "--base", "HEAD", "dev", "--exit-code"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Offline plan: dev@HEAD → dev (working tree)" in result.stdout
    assert "0 to create, 1 to update, 0 to replace, 0 to delete" in result.stdout
    assert "values.tyk-gateway.gateway.replicaCount: 2 → 4" in result.stdout
