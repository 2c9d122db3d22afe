"""Declare Tyk resources from a folder of JSON/YAML files, one object per file.

Layout::

    <directory>/apis/*.json|*.yaml|*.yml       -> one TykApi each (classic API definition)
    <directory>/oas/*.json|*.yaml|*.yml        -> one TykOasApi each (OpenAPI 3.0/3.1 + x-tyk-api-gateway)
    <directory>/policies/*.json|*.yaml|*.yml   -> one TykPolicy each (after the APIs it grants)

The resource name is the file stem (``apis/httpbin.yaml`` -> ``TykApi("httpbin")``).
Every file is read and validated before any resource is declared: bad files stop the program
with one ``file:line:column: problem`` line per problem (all of them at once) and declare
nothing. Besides each file on its own, the folder as a whole must be consistent: distinct
resource names and ids (classic and OAS APIs share one id space, as on the gateway), no two APIs
on the same listen path of the same domain, and policies granting only APIs the folder declares.
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
from .oas import EXTENSION, normalize_oas, oas_api_id
from .problems import InputError, Problem, located, shown_path, syntax_problem
from .resources import TykApi, TykOasApi, TykPolicy

SUFFIXES = (".json", ".yaml", ".yml")
#: libyaml's loader when PyYAML was built with it (the wheels are): parses about 10x faster than the pure-Python
#: one, which dominated evaluation with thousands of files. Same YAML 1.1 safe subset either way.
YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DefinitionFileError(InputError):
    """Definition files are unreadable or invalid: one `file:line:column: problem` line per problem."""


@dataclass(frozen=True)
class LoadedDefinitions:
    """Validated, normalised definitions keyed by file stem."""

    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    oas_apis: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeclaredDefinitions:
    """The resources declared from a folder, keyed by file stem."""

    apis: dict[str, TykApi]
    policies: dict[str, TykPolicy]
    oas_apis: dict[str, TykOasApi] = field(default_factory=dict)
    #: The ids as plain strings (client-chosen, known from the files), for stack outputs: exporting the
    #: resources' id Outputs instead cost about 1 ms each at evaluation, a fifth of a 10,000-API program.
    ids: dict[str, dict[str, str]] = field(default_factory=dict)


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionFileError([Problem(f"cannot read: {error}", shown_path(path))]) from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=YamlLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise DefinitionFileError([syntax_problem(path, error)]) from None


# --- error reporting: positions are looked up only here, when a file is reported -----------------------------


def _field_problem(path: Path, line: str) -> Problem:
    """A `definition.<field path>: <reason>` line of DefinitionError, at the field's place in the file."""
    field_path, _, _ = line.partition(": ")
    keys: list[str | int] = [int(part) if part.isdigit() else part for part in field_path.split(".")[1:]]
    return located(line, path, keys)


def _route(definition: Mapping[str, Any]) -> tuple[str, str, list[str | int]]:
    """(domain, listen path, where the listen path is in the file) of a classic or an OAS definition.

    For OAS the classic fields are the ones the gateway's ExtractTo fills: server.listenPath.value, and
    server.customDomain.name when the custom domain is enabled.
    """
    server = (definition.get(EXTENSION) or {}).get("server") if EXTENSION in definition else None
    if isinstance(server, Mapping):
        custom = server.get("customDomain") or {}
        domain = custom.get("name") if custom.get("enabled") else ""
        listen_path = (server.get("listenPath") or {}).get("value")
        return str(domain or ""), str(listen_path or ""), [EXTENSION, "server", "listenPath", "value"]
    listen_path = (definition.get("proxy") or {}).get("listen_path")
    return str(definition.get("domain") or ""), str(listen_path or ""), ["proxy", "listen_path"]


def _listen_path_key(definition: Mapping[str, Any]) -> tuple[str, str]:
    # The gateway matches listen paths as prefixes: "/a" and "/a/" take the same requests.
    domain, listen_path, _ = _route(definition)
    return domain, listen_path.rstrip("/") or "/"


def _api_id(definition: Mapping[str, Any]) -> Any:
    return oas_api_id(definition) if EXTENSION in definition else definition["api_id"]


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
            _, listen_path, keys = _route(definition)
            problems.append(
                located(
                    f"definition.{'.'.join(map(str, keys))} {listen_path!r} on {domain} is also the listen path "
                    f"of {shown_path(routes[route])}: the gateway would route its requests to one of them",
                    path,
                    keys,
                )
            )
        else:
            routes[route] = path
    declared = {_api_id(definition) for definition in apis.values()}
    for path, definition in policies.items():
        for api_id in sorted(set(definition.get("access_rights") or {}) - declared):
            problems.append(
                located(
                    f"definition.access_rights grants API {api_id!r}, which no file of the apis or oas folders declares "
                    "(the policy would grant nothing)",
                    path,
                    ["access_rights", api_id],
                )
            )
    return problems


def _load_kind(
    folder: Path,
    normalize: Callable[[Any], dict[str, Any]],
    id_field: str,
    problems: list[Problem],
    owners: dict[str, Path] | None = None,
) -> dict[Path, dict[str, Any]]:
    """Every valid file of one folder keyed by path, each validated once; what is wrong goes to `problems`.

    ``id_field`` is a dotted path (``x-tyk-api-gateway.info.id``); kinds sharing one id space share ``owners``.
    """
    loaded: dict[Path, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    owners = {} if owners is None else owners
    id_keys = id_field.split(".")
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
        object_id: Any = definition
        for key in id_keys:
            object_id = object_id[key]
        if object_id in owners:
            problems.append(
                located(
                    f"definition.{id_field} {object_id!r} also used by {shown_path(owners[object_id])}",
                    path,
                    list(id_keys),
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
    api_owners: dict[str, Path] = {}  # one id space for classic and OAS APIs
    apis = _load_kind(directory / "apis", normalize_api, "api_id", problems, api_owners)
    oas_apis = _load_kind(directory / "oas", normalize_oas, f"{EXTENSION}.info.id", problems, api_owners)
    policies = _load_kind(directory / "policies", normalize_policy, "id", problems)
    problems += _cross_file_problems({**apis, **oas_apis}, policies)
    if problems:
        raise DefinitionFileError(problems)
    return LoadedDefinitions(
        apis={path.stem: definition for path, definition in apis.items()},
        policies={path.stem: definition for path, definition in policies.items()},
        oas_apis={path.stem: definition for path, definition in oas_apis.items()},
    )


def declare_definitions(
    directory: Path,
    gateway_url: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> DeclaredDefinitions:
    """Declare one TykApi / TykPolicy per file in ``directory`` (see the module docstring).

    A policy depends on the APIs it grants (its ``access_rights``), so it is created after them and deleted
    before them; only on those, which keeps the number of dependencies linear in the number of files.
    """
    loaded = load_definitions(directory)
    apis = {name: TykApi(name, definition, gateway_url, opts) for name, definition in loaded.apis.items()}
    oas_apis = {
        name: TykOasApi(name, document, gateway_url, opts) for name, document in loaded.oas_apis.items()
    }
    by_id: dict[str, pulumi.Resource] = {loaded.apis[name]["api_id"]: api for name, api in apis.items()}
    by_id.update({oas_api_id(loaded.oas_apis[name]): api for name, api in oas_apis.items()})
    policies: dict[str, TykPolicy] = {}
    for name, definition in loaded.policies.items():
        granted = [by_id[api_id] for api_id in definition.get("access_rights") or {}]  # all declared: checked
        policy_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=granted))
        policies[name] = TykPolicy(name, definition, gateway_url, policy_opts)
    ids = {
        "api_ids": {name: str(definition["api_id"]) for name, definition in loaded.apis.items()},
        "oas_api_ids": {name: str(oas_api_id(document)) for name, document in loaded.oas_apis.items()},
        "policy_ids": {name: str(definition["id"]) for name, definition in loaded.policies.items()},
    }
    return DeclaredDefinitions(apis=apis, policies=policies, oas_apis=oas_apis, ids=ids)
