"""Run the Pulumi program for one stack file under Pulumi's mocks and print what `pulumi up` would declare.

No cluster, cloud account or Pulumi CLI is needed: the engine is replaced by `offline.mocks`, which records every
registration. Secrets are masked; an encrypted (`secure:`) value, which can't be decrypted without the stack's
secrets provider, is replaced by a placeholder secret, as is `apiSecret` when the stack manages API
definitions and doesn't set it.

The output is deterministic: resources in the order the program declares them, keys sorted, generated keys
and certificates derived from their inputs. Bad input (stack file, definition files) prints one
`error: file:line:column: problem` line per problem and exits 1 (`TYK_AKS_DEBUG=1` adds the traceback).

    python -m offline.plan dev                # tree of resources with their inputs
    python -m offline.plan prod --json        # the same as JSON (input of `python -m offline.diff`)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import runpy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings

from components.settings import PROJECT, ConfigError, parse_settings, required_secrets
from offline.mocks import OfflineMocks, RecordedResource, RecordingMonitor, mask
from tyk_gateway.problems import InputError, Problem, debug_enabled, shown_path, syntax_problem

PROJECT_DIR = Path(__file__).resolve().parent.parent
PLACEHOLDER_PREFIX = "offline-placeholder-"
# Environment variables that would make a plan depend on the machine rather than on the code and the stack
# file: the Kubernetes SDK copies $KUBECONFIG and PULUMI_K8S_* into provider inputs, and PULUMI_CONFIG*
# adds config keys.
# Errors the program raises for bad input (stack file, definition files): reported as one line per problem,
# without a traceback unless TYK_AKS_DEBUG is set.
PROGRAM_ERRORS: tuple[type[Exception], ...] = (InputError,)


def problem_lines(error: BaseException) -> list[str]:
    """One line per problem of a bad-input error."""
    if isinstance(error, InputError):
        return error.lines
    return [line.strip() for line in str(error).splitlines() if line.strip()]


MACHINE_ENV = re.compile(r"^(KUBECONFIG|PULUMI_K8S_.*|PULUMI_CONFIG.*|PYTHONPATH)$")


@contextlib.contextmanager
def machine_independent_environment() -> Iterator[dict[str, str]]:
    """Temporarily drop the variables that leak machine state into a plan; yields the cleaned environment."""
    removed = {key: value for key, value in os.environ.items() if MACHINE_ENV.match(key)}
    for key in removed:
        del os.environ[key]
    try:
        yield dict(os.environ)
    finally:
        os.environ.update(removed)


@contextlib.contextmanager
def own_event_loops(monitor: RecordingMonitor) -> Iterator[None]:
    """Run a plan on a fresh event loop and close every loop the run created, the mock monitor's included.

    The SDK sends registrations through the loop's default thread pool, and the mock monitor gives each pool
    thread an event loop of its own that nothing closes. Left open, those loops are finalized during interpreter
    shutdown, after their self-pipe sockets, and `BaseEventLoop.__del__` prints "Exception ignored ... Invalid
    file descriptor". Closing them here, when the run ends, removes that.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())  # joins the pool threads
        for thread_loop in monitor.thread_loops():
            if thread_loop is not loop and not thread_loop.is_running():
                thread_loop.close()
        loop.close()
        asyncio.set_event_loop(None)


@dataclass
class Plan:
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def find(self, type_: str, name: str | None = None) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_ and (name is None or r.name == name)]

    def one(self, type_: str, name: str | None = None) -> RecordedResource:
        found = self.find(type_, name)
        if len(found) != 1:
            raise LookupError(f"expected one {type_} {name or ''}, found {[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        return next(r for r in self.resources if r.urn == urn)

    def to_json(self) -> dict[str, Any]:
        """The plan with secrets masked: what the offline diff compares.

        `order` is each resource's place in declaration order, so a plan read back from (key-sorted) JSON
        prints and diffs in the same order as the plan it was saved from.
        """
        urn_keys = {r.urn: r.key for r in self.resources}
        return {
            "stack": self.stack,
            "resources": {
                r.key: {
                    "order": index,
                    "type": r.type,
                    "name": r.name,
                    "parent": urn_keys.get(r.parent_urn),
                    "provider": urn_keys.get(r.provider.rsplit("::", 1)[0]) if r.provider else None,
                    "dependsOn": sorted(urn_keys.get(u, u) for u in r.dependencies),
                    "inputs": integral_floats_as_ints(mask(_without_provider_blob(r.inputs))),
                    **_options(r),
                }
                for index, r in enumerate(self.resources)
            },
            "outputs": integral_floats_as_ints(mask(self.outputs)),
            "notes": self.notes,
        }


def _options(resource: RecordedResource) -> dict[str, Any]:
    # Only the options that change what a diff means (a replacement), and only when set.
    replace_on_changes = resource.options.get("replaceOnChanges") or []
    return {"options": {"replaceOnChanges": sorted(replace_on_changes)}} if replace_on_changes else {}


def integral_floats_as_ints(value: Any) -> Any:
    # The wire format (protobuf Struct) carries every number as a double; 2.0 replicas reads badly in a plan.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_floats_as_ints(v) for v in value]
    return value


def _without_provider_blob(inputs: Mapping[str, Any]) -> dict[str, Any]:
    # A dynamic resource's pickled provider is an implementation detail; it is always a secret blob.
    return {k: v for k, v in inputs.items() if k != "__provider"}


def read_stack_config(
    stack: str, project_dir: Path = PROJECT_DIR
) -> tuple[dict[str, str], list[str], list[str]]:
    """Config of `Pulumi.<stack>.yaml` as Pulumi hands it to a program: strings, objects as JSON.

    Returns (config, secret keys, notes).
    """
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in project_dir.glob("Pulumi.*.yaml")
        )
        raise SystemExit(f"no stack file {path.name} (stacks here: {', '.join(known)})")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError([syntax_problem(path, error)]) from None
    if not isinstance(document, dict) or not isinstance(document.get("config") or {}, dict):
        raise ConfigError([Problem("expected a mapping with a `config:` mapping", shown_path(path))])
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    notes: list[str] = []
    for key, value in (document.get("config") or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full_key] = PLACEHOLDER_PREFIX + full_key.split(":", 1)[1]
            secret_keys.append(full_key)
            notes.append(f"{full_key} is encrypted in {path.name}; the offline plan uses a placeholder")
        elif isinstance(value, dict | list):
            config[full_key] = json.dumps(value)
        else:
            config[full_key] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys, notes


def run_program(
    stack: str,
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    project_dir: Path = PROJECT_DIR,
    monitor: RecordingMonitor | None = None,
    placeholder_secrets: bool = True,
    preview: bool = False,
) -> Plan:
    """Run `__main__.py` under mocks with the stack file's config (or the given config) and record everything."""
    notes: list[str] = []
    if config is None:
        config, secret_keys, notes = read_stack_config(stack, project_dir)
    config = dict(config)
    secret_keys = list(secret_keys or [])
    try:
        needed = required_secrets(parse_settings(config)) if placeholder_secrets else set()
    except ConfigError:
        needed = set()  # the program itself reports the bad config, before declaring anything
    for key in sorted(needed):
        full_key = f"{PROJECT}:{key}"
        if full_key not in config:
            config[full_key] = PLACEHOLDER_PREFIX + key
            secret_keys.append(full_key)
            notes.append(
                f"{full_key} is not set (`pulumi config set --secret {key}`); the offline plan uses a placeholder"
            )

    monitor = monitor or RecordingMonitor(OfflineMocks())
    program = project_dir / "__main__.py"
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))

    outputs: dict[str, Any] = {}

    async def collect_outputs() -> None:
        # The mocks never finish the root stack, so its exports are read here, keeping secrets wrapped.
        root = pulumi.runtime.get_root_resource()
        for name, value in getattr(root, "outputs", {}).items():
            output = pulumi.Output.from_input(value)
            resolved = await output.future(with_unknowns=True)
            outputs[name] = rpc.wrap_rpc_secret(resolved) if await output.is_secret() else resolved

    @pulumi.runtime.test
    def run() -> Any:
        runpy.run_path(str(program), run_name="__pulumi_program__")
        return asyncio.ensure_future(collect_outputs())

    with machine_independent_environment(), own_event_loops(monitor):
        # A new root stack per run: set_mocks keeps an existing one, and with it the previous run's exports.
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_mocks(
            monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor
        )
        pulumi.runtime.set_all_config(config, secret_keys)
        pulumi.runtime.register_stack_transformation(monitor.record_declaration)
        run()
    return Plan(stack=stack, resources=monitor.in_declaration_order(), outputs=outputs, notes=notes)


def _render_value(value: Any, indent: str) -> list[str]:
    text = yaml.safe_dump(value, sort_keys=True, default_flow_style=False, width=110).rstrip("\n")
    return [indent + line for line in text.splitlines()]


def render_tree(plan: Plan) -> str:
    """The resource tree, children under their component, each with its inputs (secrets masked)."""
    data = plan.to_json()
    children: dict[str | None, list[str]] = {}
    for key, resource in data["resources"].items():
        children.setdefault(resource["parent"], []).append(key)
    lines = [
        f"Stack {PROJECT}/{plan.stack}: {len(data['resources'])} resources (offline plan, secrets masked)"
    ]
    lines += [f"  note: {note}" for note in plan.notes]

    def walk(key: str, depth: int) -> None:
        resource = data["resources"][key]
        indent = "  " * depth
        lines.append(f"{indent}+ {resource['type']}  {resource['name']}")
        if resource["dependsOn"]:
            lines.append(f"{indent}    dependsOn: {', '.join(resource['dependsOn'])}")
        inputs = resource["inputs"]
        if inputs and not resource["type"].startswith("tyk-aks:"):  # components have no inputs worth printing
            lines.extend(_render_value(inputs, indent + "    "))
        for child in children.get(key, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 1)
    lines.append("Outputs:")
    lines.extend(_render_value(data["outputs"], "    ") if data["outputs"] else ["    (none)"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    args = parser.parse_args(argv)
    try:
        plan = run_program(args.stack)
    except PROGRAM_ERRORS as error:
        if debug_enabled():
            raise
        for line in problem_lines(error):
            print(f"error: {line}", file=sys.stderr)
        return 1
    print(json.dumps(plan.to_json(), indent=2, sort_keys=True) if args.json else render_tree(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
