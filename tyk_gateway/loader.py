"""Declare Tyk resources from a folder of JSON/YAML files, one object per file.

Layout::

    <directory>/apis/*.json|*.yaml|*.yml       -> one TykApi each
    <directory>/policies/*.json|*.yaml|*.yml   -> one TykPolicy each (after the folder's APIs)

The resource name is the file stem (``apis/httpbin.yaml`` -> ``TykApi("httpbin")``).
Every file is read and validated before any resource is declared: bad files stop the program
with one ``file:line:column: problem`` line per problem (all of them at once) and declare
nothing. Besides each file on its own, the folder as a whole must be consistent: distinct
resource names and ids, no two APIs on the same listen path of the same domain, and policies
granting only APIs the folder declares.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from .models import DefinitionError, normalize_api, normalize_policy
from .problems import InputError, Problem, located, shown_path, syntax_problem
from .resources import TykApi, TykPolicy

SUFFIXES = (".json", ".yaml", ".yml")


class DefinitionFileError(InputError):
    """Definition files are unreadable or invalid: one `file:line:column: problem` line per problem."""


@dataclass(frozen=True)
class LoadedDefinitions:
    """Validated, normalised definitions keyed by file stem."""

    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeclaredDefinitions:
    """The resources declared from a folder, keyed by file stem."""

    apis: dict[str, TykApi]
    policies: dict[str, TykPolicy]


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionFileError([Problem(f"cannot read: {error}", shown_path(path))]) from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise DefinitionFileError([syntax_problem(path, error)]) from None


# --- error reporting: positions are looked up only here, when a file is reported -----------------------------


def _field_problem(path: Path, line: str) -> Problem:
    """A `definition.<field path>: <reason>` line of DefinitionError, at the field's place in the file."""
    field_path, _, _ = line.partition(": ")
    keys: list[str | int] = [int(part) if part.isdigit() else part for part in field_path.split(".")[1:]]
    return located(line, path, keys)


def _listen_path_key(definition: Mapping[str, Any]) -> tuple[str, str]:
    # The gateway matches listen paths as prefixes: "/a" and "/a/" take the same requests.
    listen_path = str((definition.get("proxy") or {}).get("listen_path") or "")
    return str(definition.get("domain") or ""), listen_path.rstrip("/") or "/"


def _cross_file_problems(
    apis: Mapping[Path, Mapping[str, Any]], policies: Mapping[Path, Mapping[str, Any]]
) -> list[Problem]:
    """Problems no single file shows: two APIs on one route, policies granting APIs nobody declares."""
    problems: list[Problem] = []
    routes: dict[tuple[str, str], Path] = {}
    for path, definition in apis.items():
        route = _listen_path_key(definition)
        if route in routes:
            domain = f"domain {route[0]!r}" if route[0] else "no domain (every host)"
            listen_path = definition["proxy"]["listen_path"]
            problems.append(
                located(
                    f"definition.proxy.listen_path {listen_path!r} on {domain} is also the listen path of "
                    f"{shown_path(routes[route])}: the gateway would route its requests to one of them",
                    path,
                    ["proxy", "listen_path"],
                )
            )
        else:
            routes[route] = path
    declared = {definition["api_id"] for definition in apis.values()}
    for path, definition in policies.items():
        for api_id in sorted(set(definition.get("access_rights") or {}) - declared):
            problems.append(
                located(
                    f"definition.access_rights grants API {api_id!r}, which no file of the apis folder declares "
                    "(the policy would grant nothing)",
                    path,
                    ["access_rights", api_id],
                )
            )
    return problems


def _load_kind(
    folder: Path, normalize: Callable[[Any], dict[str, Any]], id_field: str, problems: list[Problem]
) -> dict[Path, dict[str, Any]]:
    """Every valid file of one folder keyed by path; what is wrong goes to `problems`."""
    loaded: dict[Path, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    owners: dict[str, Path] = {}
    if not folder.is_dir():
        return loaded
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES):
        if path.stem in sources:
            problems.append(located(f"same resource name as {sources[path.stem].name}", path))
            continue
        sources[path.stem] = path
        try:
            definition = normalize(_parse(path))
        except DefinitionFileError as error:
            problems += error.problems
            continue
        except DefinitionError as error:
            problems += [_field_problem(path, line) for line in error.problems]
            continue
        object_id = definition[id_field]
        if object_id in owners:
            problems.append(
                located(
                    f"definition.{id_field} {object_id!r} also used by {shown_path(owners[object_id])}",
                    path,
                    [id_field],
                )
            )
            continue
        owners[object_id] = path
        loaded[path] = definition
    return loaded


def load_definitions(directory: Path) -> LoadedDefinitions:
    """Read and validate every definition file (no Pulumi calls; usable in tests and CI).

    Raises DefinitionFileError listing every problem of every file.
    """
    if not directory.is_dir():
        raise DefinitionFileError([Problem("definitions folder not found", shown_path(directory))])
    problems: list[Problem] = []
    apis = _load_kind(directory / "apis", normalize_api, "api_id", problems)
    policies = _load_kind(directory / "policies", normalize_policy, "id", problems)
    problems += _cross_file_problems(apis, policies)
    if problems:
        raise DefinitionFileError(problems)
    return LoadedDefinitions(
        apis={path.stem: definition for path, definition in apis.items()},
        policies={path.stem: definition for path, definition in policies.items()},
    )


def declare_definitions(
    directory: Path,
    gateway_url: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> DeclaredDefinitions:
    """Declare one TykApi / TykPolicy per file in ``directory`` (see the module docstring).

    Policies depend on all of the folder's APIs, so they are created after them and
    deleted before them.
    """
    loaded = load_definitions(directory)
    apis = {name: TykApi(name, definition, gateway_url, opts) for name, definition in loaded.apis.items()}
    policy_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(apis.values())))
    policies = {
        name: TykPolicy(name, definition, gateway_url, policy_opts)
        for name, definition in loaded.policies.items()
    }
    return DeclaredDefinitions(apis=apis, policies=policies)
