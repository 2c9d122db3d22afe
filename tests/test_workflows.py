"""The GitHub workflows: valid against the vendored workflow schema (offline), and the essentials in place."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import parse_settings
from offline.plan import read_stack_config

PROJECT_DIR = Path(__file__).resolve().parent.parent
WORKFLOWS_DIR = PROJECT_DIR / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml")) + sorted(WORKFLOWS_DIR.glob("*.yaml"))
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in PROJECT_DIR.glob("Pulumi.*.yaml")
)

# Inputs of pulumi/actions v7 (its action.yml, v7.0.0): GitHub ignores a misspelt input with only a warning.
PULUMI_ACTION_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
    "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel",
    "message", "config-map", "expect-no-changes", "diff", "replace", "exclude", "exclude-dependents", "target",
    "target-dependents", "policyPacks", "policyPackConfigs", "refresh", "upsert", "remove", "edit-pr-comment",
    "color", "exclude-protected", "plan", "suppress-outputs", "suppress-progress", "always-include-summary",
    "continue-on-error", "log-verbosity", "log-flow", "debug",
}  # fmt: skip
PULUMI_ACTION = "pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d"  # v7.0.0
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def load(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS_DIR / name)


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).split("@")[0] == action]


def pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    [step] = steps_using(job, "pulumi/actions")
    return step


def deploys_to_azure(stack: str) -> bool:
    """A stack that needs Azure: it creates an AKS cluster or an Azure Files StorageClass."""
    config, _, _ = read_stack_config(stack)
    settings = parse_settings(config)
    return settings.cluster.mode == "aks" or settings.storage.create_storage_class


def all_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *all_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    return [str(value)] if value is not None else []


# --- schema and syntax ---------------------------------------------------------------------------------------


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"preview.yml", "deploy.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_valid_against_the_github_workflow_schema(path: Path) -> None:
    # check-jsonschema vendors SchemaStore's github-workflow schema: no network needed.
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_run_scripts_are_valid_bash(path: Path) -> None:
    for job_id, job in load(path)["jobs"].items():
        for step in job["steps"]:
            if "run" not in step:
                continue
            script = EXPRESSION.sub("EXPR", step["run"])  # expressions are substituted before bash runs
            result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
            assert result.returncode == 0, (
                f"{path.name} {job_id} / {step.get('name', step['run'][:40])}: {result.stderr}"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_major_version(path: Path) -> None:
    for job in load(path)["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", step["uses"]), step[
                    "uses"
                ]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_expressions_use_known_contexts(path: Path) -> None:
    known = {
        "github",
        "env",
        "vars",
        "secrets",
        "matrix",
        "needs",
        "steps",
        "runner",
        "job",
        "strategy",
        "inputs",
    }
    functions = {"format", "contains", "startsWith", "endsWith", "toJSON", "fromJSON", "hashFiles", "join"}
    functions |= {"success", "failure", "always", "cancelled", "true", "false", "null"}
    text = path.read_text()
    for expression in EXPRESSION.findall(text):
        unquoted = re.sub(r"'[^']*'", "", expression)
        for word in re.findall(r"(?<![\w.-])([A-Za-z_][\w-]*)", unquoted):
            assert word in known | functions, f"{path.name}: unknown name {word!r} in ${{{{{expression}}}}}"


# --- no secrets inline ---------------------------------------------------------------------------------------

SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSPHRASE|_KEY$|CLIENT_ID|TENANT_ID|SUBSCRIPTION_ID)", re.I
)
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def _env_and_with(document: dict[str, Any]) -> list[tuple[str, Any]]:
    pairs = list((document.get("env") or {}).items())
    for job in document["jobs"].values():
        pairs += list((job.get("env") or {}).items())
        for step in job["steps"]:
            pairs += list((step.get("env") or {}).items()) + list((step.get("with") or {}).items())
    return pairs


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_secret_values_inline(path: Path) -> None:
    text = path.read_text()
    assert not GUID.search(text), "a tenant/client/subscription id belongs in repository variables"
    assert not re.search(r"pul-[0-9a-f]{20,}", text), "a Pulumi access token"
    for key, value in _env_and_with(load(path)):
        if SECRET_NAME.search(key) and key != "ARM_USE_OIDC":
            assert re.fullmatch(
                r"\$\{\{\s*(secrets|vars)\.[A-Z0-9_]+\s*\}\}|\$\{\{\s*github\.token\s*\}\}", str(value)
            ), f"{path.name}: {key} must come from secrets/vars, not be written inline"
    # Secrets only ever come from the secrets context, and only the Pulumi token is one.
    assert set(re.findall(r"secrets\.([A-Z0-9_]+)", text)) <= {"PULUMI_ACCESS_TOKEN"}


# --- preview.yml ---------------------------------------------------------------------------------------------


def test_preview_runs_on_pull_requests() -> None:
    document = workflow("preview.yml")
    assert set(document["on"]) == {"pull_request"}
    assert document["permissions"] == {"contents": "read"}  # least privilege unless a job asks for more


def test_preview_matrix_is_every_azure_stack() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    matrix = job["strategy"]["matrix"]["stack"]
    assert sorted(matrix) == sorted(s for s in STACKS if deploys_to_azure(s))
    assert "local" not in matrix  # kind/minikube has no cloud to preview against
    assert job["strategy"]["fail-fast"] is False  # one stack's failure must not hide the others' previews


def test_preview_job_permissions_and_oidc() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    assert job["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    env = job["env"]
    assert env["ARM_USE_OIDC"] == "true"
    for name, variable in [
        ("ARM_CLIENT_ID", "AZURE_CLIENT_ID"),
        ("ARM_TENANT_ID", "AZURE_TENANT_ID"),
        ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID"),
    ]:
        assert env[name] == f"${{{{ vars.{variable} }}}}"
    assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    # Pull requests from forks get neither secrets nor OIDC tokens: only the offline jobs run for them.
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


def test_preview_uses_the_pulumi_action() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    step = pulumi_step(job)
    assert step["uses"] == PULUMI_ACTION
    inputs = step["with"]
    assert inputs["command"] == "preview"
    assert inputs["comment-on-pr"] is True
    assert inputs["diff"] is True
    assert "matrix.stack" in inputs["stack-name"]
    assert set(inputs) <= PULUMI_ACTION_INPUTS


def test_preview_runs_the_offline_checks_first() -> None:
    jobs = workflow("preview.yml")["jobs"]
    assert jobs["preview"]["needs"] == "test"
    assert any(s.get("run", "").strip() == "./run test" for s in jobs["test"]["steps"])
    # Python first, then the program's dependencies into the virtualenv Pulumi.yaml names, then the action.
    steps = jobs["preview"]["steps"]
    uses = [str(s.get("uses", "")).split("@")[0] for s in steps]
    setup = uses.index("actions/setup-python")
    install = next(i for i, s in enumerate(steps) if "-r requirements.lock" in s.get("run", ""))
    assert setup < install < uses.index("pulumi/actions")
    assert steps[setup]["with"]["python-version"] == "3.11"
    assert ".venv" in steps[install]["run"]
    virtualenv = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    assert virtualenv == ".venv"


def test_existing_cluster_stacks_get_a_kubeconfig() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    existing = [
        s
        for s in job["strategy"]["matrix"]["stack"]
        if parse_settings(read_stack_config(s)[0]).cluster.mode == "existing"
    ]
    assert existing == ["dev"]
    assert "AKS_CLUSTER_{0}" in job["env"]["AKS_CLUSTER"]
    [login] = steps_using(job, "azure/login")
    assert "if" not in login  # every stack's cluster is an Entra ID cluster: kubelogin needs the `az` login
    kubeconfig = next(s for s in job["steps"] if "az aks get-credentials" in s.get("run", ""))
    assert "KUBECONFIG=" in kubeconfig["run"] and "GITHUB_ENV" in kubeconfig["run"]
    steps = job["steps"]
    assert steps.index(login) < steps.index(kubeconfig) < steps.index(pulumi_step(job))


def test_offline_plan_diff_job_needs_no_credentials() -> None:
    job = workflow("preview.yml")["jobs"]["plan-diff"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}  # no id-token
    text = yaml.safe_dump(job)
    assert "secrets." not in text and "ARM_" not in text and "pulumi/actions" not in text
    [checkout] = steps_using(job, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0  # the base commit must be in the clone
    diff_step = next(s for s in job["steps"] if "diff --base" in s.get("run", ""))
    assert diff_step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert "./run diff --base" in diff_step["run"] and "--format markdown" in diff_step["run"]
    assert "GITHUB_STEP_SUMMARY" in diff_step["run"]


def test_offline_diff_command_of_the_workflow_works(capsys: pytest.CaptureFixture[str]) -> None:
    """The arguments the plan-diff job passes are accepted (`./run diff` is `python -m offline.diff`)."""
    from offline import diff

    run = (PROJECT_DIR / "run").read_text()
    assert 'exec "$venv/bin/python" -m offline.diff "$@"' in run
    old, new = diff.sources_from_args(["dev"], "0123abc")
    assert (old.stack, old.revision, new.stack, new.revision) == ("dev", "0123abc", "dev", None)


# --- deploy.yml ----------------------------------------------------------------------------------------------


def test_deploy_runs_up_for_dev_on_main() -> None:
    document = workflow("deploy.yml")
    assert document["on"]["push"]["branches"] == ["main"]
    job = document["jobs"]["up"]
    assert job["needs"] == "test"
    assert job["environment"] == "dev"
    assert job["concurrency"]["group"] == "pulumi-up-dev"
    assert job["concurrency"]["cancel-in-progress"] is False  # never cancel an `up` halfway
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    step = pulumi_step(job)
    assert step["uses"] == PULUMI_ACTION
    assert step["with"]["command"] == "up"
    assert job["env"]["STACK"] == "dev"
    assert "env.STACK" in step["with"]["stack-name"]
    assert set(step["with"]) <= PULUMI_ACTION_INPUTS
    env = job["env"]
    assert env["ARM_USE_OIDC"] == "true"
    assert {"ARM_CLIENT_ID", "ARM_TENANT_ID", "ARM_SUBSCRIPTION_ID", "PULUMI_ACCESS_TOKEN"} <= set(env)


def test_deploy_logs_in_to_the_registry_dev_pushes_the_controller_image_to() -> None:
    # `source: registry` pushes with the runner's Docker credentials: without a login, `up` fails at the push.
    config, _, _ = read_stack_config("dev")
    assert parse_settings(config).controller.image.source == "registry"
    steps = workflow("deploy.yml")["jobs"]["up"]["steps"]
    [login] = [i for i, step in enumerate(steps) if "az acr login" in step.get("run", "")]
    assert steps[login]["if"] == "vars.CONTROLLER_ACR_DEV != ''"
    assert steps[login]["env"] == {"CONTROLLER_ACR": "${{ vars.CONTROLLER_ACR_DEV }}"}  # not inlined in `run`
    azure_login = next(
        i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("azure/login@")
    )
    up = next(i for i, step in enumerate(steps) if step.get("uses") == PULUMI_ACTION)
    assert azure_login < login < up


def test_no_port_forward_anywhere() -> None:
    """API management goes through the API server in every stack: no port-forward loop to keep alive."""
    for path in [*WORKFLOWS, PROJECT_DIR / "README.md"]:
        assert "port-forward" not in path.read_text(), path
    for stack in ("dev", "prod", "local"):
        settings = parse_settings(read_stack_config(stack)[0])
        assert settings.api_management.enabled and settings.api_management.access == "kubernetes", stack


def test_previews_refresh_so_drift_shows_on_the_pull_request() -> None:
    step = pulumi_step(workflow("preview.yml")["jobs"]["preview"])
    assert step["with"]["command"] == "preview"
    assert step["with"]["refresh"] is True


def test_ci_docs_list_every_setting_the_workflows_read() -> None:
    readme = (PROJECT_DIR / "docs" / "ci.md").read_text()
    names = set()
    for path in WORKFLOWS:
        names |= set(re.findall(r"(?:vars|secrets)\.([A-Z0-9_]+)", path.read_text()))
    assert names
    for name in names:
        assert f"`{name}`" in readme or name in readme, f"docs/ci.md doesn't document {name}"


# --- supply chain --------------------------------------------------------------------------------------------

USES = re.compile(r"^\s*-?\s*uses:\s*(?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+)(?P<comment>.*)$")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha_with_the_version_in_a_comment(path: Path) -> None:
    found = 0
    for line in path.read_text().splitlines():
        match = USES.match(line)
        if match:
            found += 1
            assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), line  # a tag can be moved, a commit can't
            assert re.fullmatch(r"\s+# v\d+(\.\d+)*", match["comment"]), line
    assert found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_keep_no_credentials(path: Path) -> None:
    for job in load(path)["jobs"].values():
        for step in steps_using(job, "actions/checkout"):
            assert step["with"]["persist-credentials"] is False


def test_zizmor_finds_nothing() -> None:
    pinned = re.search(r"^zizmor==(\S+)", (PROJECT_DIR / "requirements-dev.txt").read_text(), re.MULTILINE)
    assert pinned, "zizmor must be pinned in requirements-dev.txt"
    zizmor = Path(sys.executable).parent / "zizmor"
    version = subprocess.run([str(zizmor), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split()[-1] == pinned[1]
    result = subprocess.run(
        [str(zizmor), "--offline", "--no-progress", "--format", "plain", str(WORKFLOWS_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_previews_run_with_the_read_only_identity_only() -> None:
    preview = workflow("preview.yml")["jobs"]
    assert preview["preview"]["environment"] == "preview"
    assert workflow("deploy.yml")["jobs"]["up"]["environment"] == "dev"
    # No pull-request job reaches the deploy environment, and secrets are only read inside `preview`.
    for job_id, job in preview.items():
        assert job.get("environment") in (None, "preview"), job_id
        if job.get("environment") is None:
            assert "secrets." not in yaml.safe_dump(job), job_id


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_dependencies_are_installed_from_the_hashed_lock(path: Path) -> None:
    for job in load(path)["jobs"].values():
        for step in job["steps"]:
            if "pip install" in step.get("run", ""):
                assert "--require-hashes -r requirements.lock" in step["run"]
            elif "run" in step and "./run" in step["run"]:
                assert re.search(r"^\s*\./run (test|diff)", step["run"], re.MULTILINE)
    run = (PROJECT_DIR / "run").read_text()
    assert 'install "$venv" requirements-dev.lock' in run and "--require-hashes" in run


@pytest.mark.parametrize(
    ("requirements", "lock"),
    [
        ("requirements.txt", "requirements.lock"),
        ("requirements-dev.txt", "requirements-dev.lock"),
        ("requirements-checkov.txt", "requirements-checkov.lock"),
    ],
)
def test_lock_files_pin_every_requirement_with_hashes(requirements: str, lock: str) -> None:
    def names(text: str) -> set[str]:
        found = set()
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                found.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
        return found

    wanted = names((PROJECT_DIR / requirements).read_text())
    if requirements == "requirements-dev.txt":
        wanted |= names((PROJECT_DIR / "requirements.txt").read_text())
    text = (PROJECT_DIR / lock).read_text()
    pinned = {
        m[1].lower().replace("_", "-"): m[0] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+", text, re.M)
    }
    missing = wanted - set(pinned)
    assert not missing, f"{lock} lacks {sorted(missing)}: run `./run lock`"
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 2)[2])
    for block in blocks:
        if block.strip():
            assert "--hash=sha256:" in block, block.splitlines()[0]


# --- e2e-kind.yml and scripts/e2e-kind.sh --------------------------------------------------------------------

E2E_SCRIPT = PROJECT_DIR / "scripts" / "e2e-kind.sh"


def _script_value(name: str) -> str:
    match = re.search(rf"^{name}=([^\s#]+)", E2E_SCRIPT.read_text(), re.M)
    assert match, f"scripts/e2e-kind.sh sets no {name}"
    return match.group(1)


def test_e2e_workflow_runs_the_one_command_script() -> None:
    document = workflow("e2e-kind.yml")
    assert {"workflow_dispatch", "pull_request"} <= set(document["on"])
    assert document["permissions"] == {"contents": "read"}
    [job] = document["jobs"].values()
    assert [s["run"].strip() for s in job["steps"] if "run" in s] == ["scripts/e2e-kind.sh"]
    [checkout] = steps_using(job, "actions/checkout")
    assert checkout["with"]["persist-credentials"] is False
    [kind] = steps_using(job, "helm/kind-action")
    assert kind["with"]["install_only"] is True  # the script creates the cluster (local registry settings)
    [pulumi] = steps_using(job, "pulumi/actions")
    assert "with" not in pulumi or "command" not in pulumi["with"]  # install the CLI only


def test_e2e_workflow_pins_every_action_by_commit_with_its_version() -> None:
    for line in (WORKFLOWS_DIR / "e2e-kind.yml").read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_e2e_script_is_valid_bash_and_executable() -> None:
    assert E2E_SCRIPT.stat().st_mode & 0o111
    result = subprocess.run(["bash", "-n", str(E2E_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert E2E_SCRIPT.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in E2E_SCRIPT.read_text()


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "shellcheck").exists() and shutil.which("shellcheck") is None,
    reason="shellcheck is not installed",
)
def test_e2e_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    result = subprocess.run([shellcheck, str(E2E_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_e2e_script_has_no_port_forward_loop() -> None:
    text = E2E_SCRIPT.read_text()
    assert "while true" not in text and "until " not in text
    assert len(re.findall(r"kubectl .*port-forward", text)) <= 1


def test_e2e_script_matches_the_local_stack() -> None:
    from components.controller import DEPLOYMENT_NAME
    from components.entry_point import SERVICE_NAME
    from components.gateway import CONTROL_SERVICE_NAME

    settings = parse_settings(read_stack_config("local")[0])
    text = E2E_SCRIPT.read_text()
    assert settings.cluster.context == f"kind-{_script_value('cluster')}"
    assert settings.controller.enabled and settings.controller.image.source == "registry"
    assert settings.controller.image.registry == f"localhost:{_script_value('registry_port')}"
    assert _script_value("namespace") == settings.namespace
    assert _script_value("stack") == "local"
    # One `pulumi up`: API management reaches the control API through the API server, not a port-forward.
    assert settings.api_management.access == "kubernetes"
    assert text.count("pulumi up ") == 1
    assert f"service {SERVICE_NAME} " in text and f"deployment/{DEPLOYMENT_NAME} " in text
    assert f"svc/{CONTROL_SERVICE_NAME} 9696:{settings.gateway.control_port}" in text
    for example in re.findall(r"-f (examples/[\w.-]+\.yaml)", text):
        assert (PROJECT_DIR / example).is_file(), example
    # The API and policy it calls come from definitions/.
    policy = yaml.safe_load((PROJECT_DIR / "definitions" / "policies" / "httpbin-basic.yaml").read_text())
    api = yaml.safe_load((PROJECT_DIR / "definitions" / "apis" / "httpbin.yaml").read_text())
    assert f'"apply_policies": ["{policy["id"]}"]' in text
    assert f"/{api['proxy']['listen_path'].strip('/')}/get" in text
    assert "PULUMI_BACKEND_URL=" in text and "pulumi destroy" in text


def test_e2e_script_reaches_what_the_examples_declare() -> None:
    text = E2E_SCRIPT.read_text()
    hosts = {
        rule["host"]
        for path in (PROJECT_DIR / "examples").glob("ingress-*.yaml")
        for document in yaml.safe_load_all(path.read_text())
        if document and document["kind"] == "Ingress"
        for rule in document["spec"]["rules"]
    }
    assert "Host: httpbin.localtest.me" in text and "httpbin.localtest.me" in hosts
    assert "secure.localtest.me:443" in text and "secure.localtest.me" in hosts
