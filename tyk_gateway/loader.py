"""Declare Tyk resources from a folder of JSON/YAML files, one object per file.

Layout::

    <directory>/apis/*.json|*.yaml|*.yml       -> one TykApi each (classic API definition)
    <directory>/oas/*.json|*.yaml|*.yml        -> one TykOasApi each (OpenAPI 3.0/3.1 + x-tyk-api-gateway)
    <directory>/policies/*.json|*.yaml|*.yml   -> one TykPolicy each (after the APIs it grants)

The resource name is the file stem (``apis/httpbin.yaml`` -> ``TykApi("httpbin")``).
Every file is read and validated before any resource is declared, so one bad file stops
the program with an error naming the file and the field, and declares nothing.
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
from .oas import normalize_oas, oas_api_id
from .resources import TykApi, TykOasApi, TykPolicy

SUFFIXES = (".json", ".yaml", ".yml")
#: libyaml's loader when PyYAML was built with it (the wheels are): parses about 10x faster than the pure-Python
#: one, which dominated evaluation with thousands of files. Same YAML 1.1 safe subset either way.
YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DefinitionFileError(ValueError):
    """A definition file is unreadable or invalid; the message names the file and the field."""


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


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionFileError(f"{path}: cannot read: {error}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=YamlLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise DefinitionFileError(f"{path}: not valid {path.suffix[1:].upper()}: {error}") from None


def _load_kind(
    folder: Path,
    normalize: Callable[[Any], dict[str, Any]],
    id_field: str,
    owners: dict[str, Path] | None = None,
    id_of: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every file of ``folder``, validated once; ``owners`` (id -> file) is shared by kinds with one id space."""
    loaded: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    owners = {} if owners is None else owners
    if not folder.is_dir():
        return loaded
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES):
        if path.stem in sources:
            raise DefinitionFileError(f"{path}: same resource name as {sources[path.stem].name}")
        try:
            definition = normalize(_parse(path))
        except DefinitionError as error:
            raise DefinitionFileError(f"{path}: {error}") from None
        object_id = id_of(definition) if id_of else definition[id_field]
        if object_id in owners:
            raise DefinitionFileError(
                f"{path}: definition.{id_field} {object_id!r} also used by {owners[object_id]}"
            )
        sources[path.stem] = owners[object_id] = path
        loaded[path.stem] = definition
    return loaded


def load_definitions(directory: Path) -> LoadedDefinitions:
    """Read and validate every definition file (no Pulumi calls; usable in tests and CI)."""
    if not directory.is_dir():
        raise DefinitionFileError(f"{directory}: definitions folder not found")
    # Classic and OAS APIs share the gateway's one api_id space (one apps folder, one /tyk/apis list).
    api_owners: dict[str, Path] = {}
    return LoadedDefinitions(
        apis=_load_kind(directory / "apis", normalize_api, "api_id", api_owners),
        oas_apis=_load_kind(
            directory / "oas", normalize_oas, "x-tyk-api-gateway.info.id", api_owners, oas_api_id
        ),
        policies=_load_kind(directory / "policies", normalize_policy, "id"),
    )


def declare_definitions(
    directory: Path,
    gateway_url: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> DeclaredDefinitions:
    """Declare one TykApi / TykPolicy per file in ``directory`` (see the module docstring).

    A policy depends on the folder's APIs it grants (its ``access_rights``), so it is created after them and
    deleted before them; only on those, which keeps the dependency count linear in the number of files.
    """
    loaded = load_definitions(directory)
    apis = {name: TykApi(name, definition, gateway_url, opts) for name, definition in loaded.apis.items()}
    oas_apis = {
        name: TykOasApi(name, document, gateway_url, opts) for name, document in loaded.oas_apis.items()
    }
    by_id: dict[str, pulumi.Resource] = {
        definition["api_id"]: apis[name] for name, definition in loaded.apis.items()
    }
    by_id.update({oas_api_id(document): oas_apis[name] for name, document in loaded.oas_apis.items()})
    policies: dict[str, TykPolicy] = {}
    for name, definition in loaded.policies.items():
        rights: Mapping[str, Any] = definition.get("access_rights") or {}
        outside = sorted(set(rights) - by_id.keys())
        if outside:
            pulumi.log.info(
                f"policy {name}: access_rights name APIs not in {directory}: {', '.join(outside)}"
            )
        granted: list[pulumi.Resource] = [by_id[api_id] for api_id in rights if api_id in by_id]
        policy_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=granted))
        policies[name] = TykPolicy(name, definition, gateway_url, policy_opts)
    return DeclaredDefinitions(apis=apis, policies=policies, oas_apis=oas_apis)
