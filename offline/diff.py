"""Compare two offline plans and print what `pulumi up` would do: create, update, replace, delete.

Runs the program under mocks (`offline.plan`), so it needs no cluster, cloud account, Pulumi CLI or secrets:
usable on any pull request. Secrets are masked (a changed secret shows as unchanged `[secret]`). Each changed
input is classified by `offline.replacements` (the providers' rules): updated in place, forcing a
replacement (`+-`), or refused by the API. Replacements and deletions of stateful resources come first.

    python -m offline.diff dev prod                      # two stacks of the working tree
    python -m offline.diff --base origin/main dev        # stack dev at a git revision vs the working tree
    python -m offline.diff --base origin/main dev prod   # several stacks against one revision, one report
    python -m offline.diff dev@origin/main dev@HEAD      # two revisions (any of: stack, stack@rev, plan.json)
    python -m offline.diff old.json new.json             # two saved `python -m offline.plan <stack> --json`

Exit code 0 whatever the difference (1 with --exit-code when there is one); 2 when a plan can't be computed,
with one line per problem. A revision is exported with `git archive` into a temporary folder and planned
there by its own code, in a subprocess; the repository and the working tree are left untouched.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.replacements import REFUSED, REPLACE, STATEFUL, effects

PROJECT_DIR = Path(__file__).resolve().parent.parent


class PlanError(RuntimeError):
    """A plan could not be computed (bad revision, failing program, ...)."""


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


# --- plan sources --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a plan comes from: a stack of the working tree, a stack at a git revision, or a saved JSON plan."""

    stack: str | None = None
    revision: str | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> Source:
        if text.endswith(".json"):
            return cls(path=Path(text))
        stack, _, revision = text.partition("@")
        if not stack:
            raise ValueError(f"{text!r}: expected <stack>, <stack>@<git revision> or <plan>.json")
        return cls(stack=stack, revision=revision or None)

    @property
    def label(self) -> str:
        if self.path is not None:
            return str(self.path)
        if not self.revision:
            return f"{self.stack} (working tree)"
        revision = self.revision[:12] if re.fullmatch(r"[0-9a-f]{40}", self.revision) else self.revision
        return f"{self.stack}@{revision}"


def _git(args: Sequence[str], cwd: Path) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlanError(f"git {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def _empty_plan(stack: str, note: str) -> dict[str, Any]:
    return {"stack": stack, "resources": {}, "outputs": {}, "notes": [note]}


def plan_at_revision(stack: str, revision: str, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The masked plan of `stack` as the code at `revision` declares it (run in a subprocess, in an export)."""
    top = Path(_git(["rev-parse", "--show-toplevel"], project_dir))
    prefix = project_dir.resolve().relative_to(top.resolve()).as_posix()
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], project_dir)
    except PlanError:
        raise PlanError(f"{revision!r} is not a commit of this repository (fetch it first?)") from None
    inside = f"{prefix}/" if prefix != "." else ""
    listed = _git(
        ["ls-tree", "--name-only", commit, f"{inside}Pulumi.{stack}.yaml", f"{inside}offline/plan.py"], top
    )
    files = set(listed.splitlines())
    if f"{inside}Pulumi.{stack}.yaml" not in files:
        return _empty_plan(stack, f"Pulumi.{stack}.yaml does not exist at {revision}")
    if f"{inside}offline/plan.py" not in files:
        raise PlanError(f"{revision} has no offline/plan.py: its plan can't be computed offline")

    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "--", prefix if prefix != "." else "."],
        cwd=top,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise PlanError(f"git archive {revision}: {archive.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryDirectory(prefix="offline-diff-") as temp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links and paths leaving `temp`
                tar.extractall(temp, filter="data")
            else:  # pragma: no cover - our own repository's archive
                tar.extractall(temp)
        workdir = Path(temp) / prefix
        from offline.plan import machine_independent_environment  # imports pulumi: only when planning

        with machine_independent_environment() as env:
            env = {**env, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
            result = subprocess.run(
                [sys.executable, "-m", "offline.plan", stack, "--json"],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
    if result.returncode != 0:
        raise PlanError(
            "\n".join(
                f"{stack}@{revision}: {line}" for line in _failure_lines(result.stderr or result.stdout)
            )
        )
    try:
        plan: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise PlanError(f"offline plan of {stack}@{revision} printed no JSON: {error}") from None
    return plan


def _failure_lines(output: str) -> list[str]:
    """What a failed plan printed: its `error:` lines (one per problem), else the last line (an exception)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors or lines[-1:] or ["the offline plan failed without a message"]


def plan_of_working_tree(stack: str) -> dict[str, Any]:
    """The masked plan of `stack` as the working tree declares it (in this process)."""
    from offline.plan import PROGRAM_ERRORS, problem_lines, run_program

    try:
        # Through JSON, like a revision's plan, so both sides hold the same types.
        plan: dict[str, Any] = json.loads(json.dumps(run_program(stack).to_json()))
    except SystemExit as error:  # read_stack_config exits for an unknown stack
        raise PlanError(str(error)) from None
    except PROGRAM_ERRORS as error:
        raise PlanError("\n".join(f"{stack}: {line}" for line in problem_lines(error))) from None
    return plan


def load(source: Source) -> dict[str, Any]:
    if source.path is not None:
        try:
            plan: dict[str, Any] = json.loads(source.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise PlanError(f"{source.path}: {error}") from None
        return plan
    assert source.stack is not None
    if source.revision:
        return plan_at_revision(source.stack, source.revision)
    return plan_of_working_tree(source.stack)


# --- comparing -----------------------------------------------------------------------------------------------


UPDATE = "update"


@dataclass
class Change:
    path: str
    old: Any
    new: Any
    effect: str = UPDATE  # UPDATE, REPLACE (forces a new resource) or REFUSED (the API rejects it in place)
    why: str = ""


@dataclass
class ResourceDiff:
    key: str
    type: str
    name: str
    changes: list[Change] = field(default_factory=list)

    @property
    def replaced(self) -> bool:
        return any(c.effect == REPLACE for c in self.changes)

    @property
    def refused(self) -> list[Change]:
        return [c for c in self.changes if c.effect == REFUSED]

    @property
    def stateful(self) -> str | None:
        """What a replacement or deletion of this resource loses, for the types that hold state."""
        return STATEFUL.get(self.type)


@dataclass
class PlanDiff:
    old_label: str
    new_label: str
    added: list[ResourceDiff]
    removed: list[ResourceDiff]
    changed: list[ResourceDiff]  # updated or replaced
    unchanged: int
    outputs: list[Change]

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.outputs)

    @property
    def replaced(self) -> list[ResourceDiff]:
        return [r for r in self.changed if r.replaced]

    @property
    def updated(self) -> list[ResourceDiff]:
        return [r for r in self.changed if not r.replaced]

    @property
    def losses(self) -> list[tuple[str, ResourceDiff]]:
        """Stateful resources replaced or deleted: (`replace`/`delete`, resource), in plan order."""
        return [("replace", r) for r in self.replaced if r.stateful] + [
            ("delete", r) for r in self.removed if r.stateful
        ]

    @property
    def refusals(self) -> list[tuple[ResourceDiff, Change]]:
        return [(r, c) for r in self.changed for c in r.refused]

    def summary(self) -> str:
        """The counts as `pulumi preview` words them."""
        return (
            f"{len(self.added)} to create, {len(self.updated)} to update, {len(self.replaced)} to replace, "
            f"{len(self.removed)} to delete, {self.unchanged} unchanged"
        )


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _key_path(path: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _same(old: Any, new: Any) -> bool:
    # 1 == True and 2 == 2.0 in Python; a bool/number switch is a change, an int/float of equal value is not.
    if isinstance(old, bool) != isinstance(new, bool):
        return False
    return bool(old == new)


def _named_items(items: list[Any]) -> dict[str, Any] | None:
    """Items keyed by their `name` when every item is an object with a distinct name (containers, env, ports)."""
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    named = {i["name"]: i for i in items}
    return named if len(named) == len(items) else None


def diff_values(old: Any, new: Any, path: str = "") -> list[Change]:
    """Leaf-level differences between two JSON values; `MISSING` stands for an absent key or item."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in sorted({*old, *new}, key=str):  # sorted: the same plans always print the same way
            changes += diff_values(old.get(key, MISSING), new.get(key, MISSING), _key_path(path, str(key)))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        old_named, new_named = _named_items(old), _named_items(new)
        if old_named is not None and new_named is not None:
            changes = []
            for name in sorted({*old_named, *new_named}):
                changes += diff_values(
                    old_named.get(name, MISSING), new_named.get(name, MISSING), f"{path}[name={name}]"
                )
            return changes
        changes = []
        for index in range(max(len(old), len(new))):
            changes += diff_values(
                old[index] if index < len(old) else MISSING,
                new[index] if index < len(new) else MISSING,
                f"{path}[{index}]",
            )
        return changes
    if old is MISSING and isinstance(new, dict | list) and new:
        return [Change(c.path, MISSING, c.new) for c in _leaves(new, path)]
    if new is MISSING and isinstance(old, dict | list) and old:
        return [Change(c.path, c.new, MISSING) for c in _leaves(old, path)]
    return [] if _same(old, new) else [Change(path or "(value)", old, new)]


def in_plan_order(resources: Mapping[str, Any]) -> list[str]:
    """Resource keys in the order the program declares them (`order`), whatever order the mapping holds them
    in; plans saved before `order` existed sort by key. Either way the same plans always print the same way."""
    return sorted(resources, key=lambda key: (resources[key].get("order", len(resources)), key))


def compare(
    old: Mapping[str, Any], new: Mapping[str, Any], old_label: str = "old", new_label: str = "new"
) -> PlanDiff:
    """The difference between two masked plans (`Plan.to_json()`), resources matched by `type::name`.

    Each changed input path is classified by `offline.replacements`: an update in place, a replacement, or a
    change the API refuses. A replaced provider replaces every resource it manages.
    """
    old_resources: Mapping[str, Any] = old.get("resources") or {}
    new_resources: Mapping[str, Any] = new.get("resources") or {}

    def described(key: str, resource: Mapping[str, Any]) -> ResourceDiff:
        type_, _, name = key.partition("::")
        return ResourceDiff(key=key, type=resource.get("type", type_), name=resource.get("name", name))

    added = [described(k, new_resources[k]) for k in in_plan_order(new_resources) if k not in old_resources]
    for item in added:
        inputs = new_resources[item.key].get("inputs") or {}
        item.changes = _leaves(inputs) if inputs else []
    removed = [described(k, old_resources[k]) for k in in_plan_order(old_resources) if k not in new_resources]
    kept = [k for k in in_plan_order(new_resources) if k in old_resources]
    diffs: dict[str, ResourceDiff] = {}
    for key in kept:
        old_resource, new_resource = old_resources[key], new_resources[key]
        item = described(key, new_resource)
        item.changes = diff_values(old_resource.get("inputs") or {}, new_resource.get("inputs") or {})
        if old_resource.get("parent") != new_resource.get("parent"):
            item.changes.append(Change("(parent)", old_resource.get("parent"), new_resource.get("parent")))
        if old_resource.get("provider", MISSING) is not MISSING and old_resource.get(
            "provider"
        ) != new_resource.get("provider"):
            item.changes.append(
                Change("(provider)", old_resource.get("provider"), new_resource.get("provider"))
            )
        classified = effects(
            item.type,
            old_resource,
            new_resource,
            [(c.path, c.old, c.new) for c in item.changes],
            new_resources,
        )
        for change in item.changes:
            if change.path in classified:
                change.effect, change.why = classified[change.path].kind, classified[change.path].why
            elif change.path == "(provider)":
                change.effect, change.why = REPLACE, "another provider instance manages it"
        old_deps, new_deps = (
            set(old_resource.get("dependsOn") or []),
            set(new_resource.get("dependsOn") or []),
        )
        item.changes += [Change("(dependsOn)", dep, MISSING) for dep in sorted(old_deps - new_deps)]
        item.changes += [Change("(dependsOn)", MISSING, dep) for dep in sorted(new_deps - old_deps)]
        diffs[key] = item
    replaced_providers = {
        key for key, item in diffs.items() if item.replaced and item.type.startswith("pulumi:providers:")
    }
    for key, item in diffs.items():
        provider = new_resources[key].get("provider")
        if provider in replaced_providers and not item.replaced:
            item.changes.insert(
                0, Change("(provider)", provider, provider, REPLACE, f"its provider {provider} is replaced")
            )
    changed = [item for item in diffs.values() if item.changes]
    unchanged = len(diffs) - len(changed)
    outputs = diff_values(old.get("outputs") or {}, new.get("outputs") or {})
    return PlanDiff(old_label, new_label, added, removed, changed, unchanged, outputs)


def _leaves(value: Any, path: str = "") -> list[Change]:
    """Every leaf of a JSON value as an addition (an empty object or list is a leaf)."""
    if isinstance(value, dict) and value:
        return [c for key in sorted(value, key=str) for c in _leaves(value[key], _key_path(path, str(key)))]
    if isinstance(value, list) and value:
        return [c for index, item in enumerate(value) for c in _leaves(item, f"{path}[{index}]")]
    return [Change(path or "(value)", MISSING, value)]


# --- rendering -----------------------------------------------------------------------------------------------


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def format_value(value: Any, width: int | None = 120) -> str:
    if value is MISSING:
        return "(absent)"
    if value == "[secret]":
        return "[secret]"
    text = json.dumps(_normalise(value), sort_keys=True, ensure_ascii=False)
    if width is not None and len(text) > width:
        return f"{text[: width - 1]}… ({len(text)} chars)"
    return text


def _multiline(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value


def _marker(change: Change) -> str:
    if change.effect == REPLACE:
        return f"  [forces replacement: {change.why}]" if change.why else "  [forces replacement]"
    if change.effect == REFUSED:
        return f"  [refused: {change.why}]"
    return ""


def _change_lines(change: Change, indent: str, style: str, width: int | None) -> list[str]:
    if change.path == "(dependsOn)":
        sign, dep = ("+", change.new) if change.old is MISSING else ("-", change.old)
        if style == "markdown":
            return [f"{sign}{indent[1:]}dependsOn {dep}"]
        return [f"{indent}dependsOn {sign} {dep}"]
    if change.path == "(provider)" and change.old == change.new:
        return [f"{indent}(provider){_marker(change)}"]
    if _multiline(change.old) or _multiline(change.new):
        old_lines = change.old.splitlines() if isinstance(change.old, str) else []
        new_lines = change.new.splitlines() if isinstance(change.new, str) else []
        body = list(difflib.unified_diff(old_lines, new_lines, lineterm="", n=1))[2:]
        return [f"{indent}{change.path}: (text){_marker(change)}", *(f"{indent}  {line}" for line in body)]
    if style == "markdown":
        lines = []
        if change.old is not MISSING:
            lines.append(f"-{indent[1:]}{change.path}: {format_value(change.old, width)}")
        if change.new is not MISSING:
            lines.append(f"+{indent[1:]}{change.path}: {format_value(change.new, width)}")
        if lines and change.effect != UPDATE:
            lines[-1] += _marker(change)
        return lines
    return [
        f"{indent}{change.path}: {format_value(change.old, width)} → {format_value(change.new, width)}"
        + _marker(change)
    ]


def _forcing(item: ResourceDiff) -> str:
    causes = [
        "its provider is replaced" if c.path == "(provider)" else c.path
        for c in item.changes
        if c.effect == REPLACE
    ]
    return ", ".join(dict.fromkeys(causes))


def warnings(diff: PlanDiff, style: str = "text") -> list[str]:
    """What a reviewer must not miss: stateful resources replaced or deleted, changes the API refuses."""
    lines: list[str] = []
    for action, item in diff.losses:
        cause = f" ({_forcing(item)})" if action == "replace" else ""
        name = f"`{item.type}  {item.name}`" if style == "markdown" else f"{item.type}  {item.name}"
        lines.append(f"{action}s {name}{cause}: loses {item.stateful}")
    for item, change in diff.refusals:
        name = f"`{item.type}  {item.name}`" if style == "markdown" else f"{item.type}  {item.name}"
        lines.append(f"`pulumi up` fails: {name} {change.path}: {change.why}")
    return lines


def _warning_block(lines: list[str], style: str, label: str = "") -> list[str]:
    if not lines:
        return []
    prefix = f"{label}: " if label else ""
    if style == "markdown":
        return [
            "> [!CAUTION]",
            "> **Destructive or failing changes**",
            *(f"> - {prefix}{line}" for line in lines),
            "",
        ]
    return ["", *(f"  ! {prefix}{line}" for line in lines)]


def render(
    diff: PlanDiff, style: str = "text", full: bool = False, added_lines: int = 40, with_warnings: bool = True
) -> str:
    """Text for a terminal or a log (`text`), or a ```diff block for a pull-request comment (`markdown`).

    Resources are marked as `pulumi preview` marks them: `+` create, `~` update, `+-` replace, `-` delete; the
    input that forces a replacement, or that the API refuses, is marked on its line. Replacements and deletions
    of stateful resources, and refused changes, are listed first.
    """
    width = None if full else 120
    body: list[str] = []
    for item in diff.added:
        body.append(f"+ {item.type}  {item.name}")
        leaves = item.changes
        shown = leaves if full else leaves[:added_lines]
        body += [f"+     {c.path}: {format_value(c.new, width)}" for c in shown]
        if len(shown) < len(leaves):
            body.append(f"+     … {len(leaves) - len(shown)} more (--full shows all)")
    for item in diff.removed:
        body.append(f"- {item.type}  {item.name}")
    for item in diff.changed:
        body.append(f"{'+-' if item.replaced else '~'} {item.type}  {item.name}")
        for change in item.changes:
            body += _change_lines(change, "      ", style, width)
    if diff.outputs:
        body.append("Outputs:")
        for change in diff.outputs:
            body += _change_lines(change, "      ", style, width)

    alerts = warnings(diff, style) if with_warnings else []
    if style == "markdown":
        lines = [f"#### Offline plan: `{diff.old_label}` → `{diff.new_label}`", ""]
        if alerts:
            lines += _warning_block(alerts, style)
        lines.append(f"{diff.summary()} (offline plan under mocks; secrets masked)")
        if body:
            lines += ["", "```diff", *body, "```"]
        else:
            lines += ["", "No changes."]
        return "\n".join(lines) + "\n"
    lines = [f"Offline plan: {diff.old_label} → {diff.new_label}", f"  {diff.summary()} (secrets masked)"]
    lines += _warning_block(alerts, style)
    if body:
        lines += ["", *body]
    else:
        lines.append("  No changes.")
    return "\n".join(lines) + "\n"


def render_all(diffs: Sequence[PlanDiff], style: str = "text", full: bool = False) -> str:
    """Several diffs (one per stack): every stack's warnings first, so none is below the fold."""
    if len(diffs) == 1:
        return render(diffs[0], style, full)
    alerts: list[str] = []
    for d in diffs:
        alerts += [f"{d.new_label}: {line}" for line in warnings(d, style)]
    head = _warning_block(alerts, style)
    sections = [render(d, style, full, with_warnings=False) for d in diffs]
    return ("\n".join(head) + "\n" if head else "") + "\n".join(sections)


def to_json(diff: PlanDiff) -> dict[str, Any]:
    def change(c: Change) -> dict[str, Any]:
        item: dict[str, Any] = {"path": c.path}
        if c.old is not MISSING:
            item["old"] = c.old
        if c.new is not MISSING:
            item["new"] = c.new
        if c.effect != UPDATE:
            item["effect"], item["why"] = c.effect, c.why
        return item

    return {
        "old": diff.old_label,
        "new": diff.new_label,
        "summary": diff.summary(),
        "added": [r.key for r in diff.added],
        "removed": [r.key for r in diff.removed],
        "replaced": [r.key for r in diff.replaced],
        "changed": {r.key: [change(c) for c in r.changes] for r in diff.changed},
        "unchanged": diff.unchanged,
        "outputs": [change(c) for c in diff.outputs],
        "warnings": warnings(diff),
    }


# --- command line --------------------------------------------------------------------------------------------


def sources_from_args(plans: Sequence[str], base: str | None) -> tuple[Source, Source]:
    """The two sides of one diff: two plans, or with `base` one stack at that revision and in the working tree."""
    if base is not None:
        if len(plans) != 1:
            raise ValueError("with --base, name one stack: python -m offline.diff --base <rev> <stack>")
        new = Source.parse(plans[0])
        if new.stack is None or new.revision is not None:
            raise ValueError("with --base, name a stack of the working tree (no @revision, no .json)")
        return Source(stack=new.stack, revision=base), new
    if len(plans) != 2:
        raise ValueError("name two plans (e.g. `dev prod`), or one stack with --base <rev>")
    return Source.parse(plans[0]), Source.parse(plans[1])


def pairs_from_args(plans: Sequence[str], base: str | None) -> list[tuple[Source, Source]]:
    """With `--base`, one diff per named stack; otherwise the one diff of two plans."""
    if base is not None and len(plans) > 1:
        return [sources_from_args([stack], base) for stack in plans]
    return [sources_from_args(plans, base)]


def _error_lines(error: PlanError) -> list[str]:
    return [line for line in str(error).splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.diff",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:3]),
    )
    parser.add_argument(
        "plans",
        nargs="+",
        help="two of: <stack>, <stack>@<rev>, <plan>.json (with --base: one or more stacks)",
    )
    parser.add_argument(
        "--base", metavar="REV", help="compare each named stack at this git revision with the working tree"
    )
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    parser.add_argument("--full", action="store_true", help="don't shorten long values or added resources")
    parser.add_argument("--exit-code", action="store_true", help="exit 1 when the plans differ")
    args = parser.parse_args(argv)
    try:
        pairs = pairs_from_args(args.plans, args.base)
    except ValueError as error:
        parser.error(str(error))
    diffs: list[PlanDiff] = []
    for old_source, new_source in pairs:
        try:
            old_plan, new_plan = load(old_source), load(new_source)
        except PlanError as error:
            for line in _error_lines(error):
                print(f"offline.diff: {line}", file=sys.stderr)
            return 2
        diffs.append(compare(old_plan, new_plan, old_source.label, new_source.label))
    if args.format == "json":
        document: Any = to_json(diffs[0]) if len(diffs) == 1 else [to_json(d) for d in diffs]
        print(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        sys.stdout.write(render_all(diffs, args.format, full=args.full))
    return 1 if args.exit_code and any(d.has_changes for d in diffs) else 0


if __name__ == "__main__":
    sys.exit(main())
