"""Tyk OAS API definitions: an OpenAPI 3.0/3.1 document with the ``x-tyk-api-gateway`` extension.

Validation follows the gateway's own (``apidef/oas/validator.go``, Tyk v5.14.0): the document is checked
against the OpenAPI schema of its minor version (``openapi: 3.0.x`` or ``3.1.x``) with the extension's
schema plugged in as the ``x-tyk-api-gateway`` property, using the schema files the gateway embeds
(``schemas/``, see ``schemas/NOTICE.md``). On top, like ``api_id`` for classic APIs, this project requires
the extension's ``info.id`` (client-chosen ids make every write an idempotent upsert).

Not reproduced here: the gateway's second pass (``oas.Validate``, kin-openapi's document checks such as
path-parameter consistency) and its KV-reference syntax check; a document failing those is refused by the
gateway at ``up`` with its own message.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from .models import DefinitionError, canonical, dig, is_unknown, validate_api_id

EXTENSION = "x-tyk-api-gateway"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
#: The gateway picks the schema by "major.minor" of the document's ``openapi`` field.
_MINOR = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?(?:-.+)?$")
DEFAULT_VERSION = "3.0"  # the gateway's default while 3.1 support matures (setDefaultVersion)
MAX_PROBLEMS = 5


def _tuple_items_as_prefix_items(schema: Any) -> Any:
    """The draft-04 extension schema in 2020-12 terms (the 3.1 document schema's dialect).

    Draft-04 ``items: [S]`` (tuple form: the first item matches S, the rest anything) is ``prefixItems: [S]``
    in 2020-12, where an array under ``items`` is not a schema at all. gojsonschema, which the gateway uses,
    reads both the draft-04 way; this keeps that meaning.
    """
    if isinstance(schema, dict):
        return {
            (
                "prefixItems" if key == "items" and isinstance(value, list) else key
            ): _tuple_items_as_prefix_items(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_tuple_items_as_prefix_items(item) for item in schema]
    return schema


@functools.cache
def _validator(minor: str) -> Validator:
    """The OpenAPI schema of ``minor`` with the Tyk extension plugged in, as loadOASSchema builds it."""
    path = SCHEMA_DIR / f"{minor}.json"
    if not path.is_file():
        known = sorted(p.stem for p in SCHEMA_DIR.glob("3.*.json"))
        raise DefinitionError(
            [f"definition.openapi: no schema for OpenAPI {minor} (supported: {', '.join(known)})"]
        )
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    extension: dict[str, Any] = json.loads((SCHEMA_DIR / f"{EXTENSION}.json").read_text(encoding="utf-8"))
    cls = validator_for(schema)
    if cls is not Draft4Validator:
        extension = _tuple_items_as_prefix_items(extension)
    definitions = extension.pop("definitions")
    # Its "$schema" (draft-04) would make this validator switch dialects inside the extension; gojsonschema
    # reads the whole combined schema in one dialect, and so does this.
    extension.pop("$schema", None)
    schema.setdefault("properties", {})[EXTENSION] = extension
    # The extension's $refs are "#/definitions/X-Tyk-..."; the gateway adds its definitions to the document
    # schema's definitions key ("definitions" in 3.0, "$defs" in 3.1). Here they go where those refs point.
    schema.setdefault("definitions", {}).update(definitions)
    cls.check_schema(schema)
    validator: Validator = cls(schema, format_checker=FormatChecker())
    return validator


def minor_version(document: Mapping[str, Any]) -> str:
    version = document.get("openapi")
    if version is None:
        return DEFAULT_VERSION
    match = _MINOR.match(version) if isinstance(version, str) else None
    if not match:
        raise DefinitionError([f"definition.openapi: not an OpenAPI version (got {version!r})"])
    return f"{match[1]}.{match[2]}"


def _location(error: ValidationError) -> str:
    # Dotted like the classic models' errors (list indices too), so the loader can point at the line.
    return ".".join(["definition", *(str(part) for part in error.absolute_path)])


def _describe(error: ValidationError) -> str:
    # Errors under anyOf/oneOf are most useful as their deepest cause.
    best = min(error.context or [error], key=lambda e: -len(e.absolute_path))
    message = best.message
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{_location(best)}: {message}"


def oas_problems(document: Any, skip_unknown: bool = False) -> list[str]:
    """Everything the gateway's schema check would refuse, as ``definition.<path>: <reason>`` lines."""
    if not isinstance(document, Mapping):
        return [f"definition: must be an object (got {type(document).__name__})"]
    try:
        validator = _validator(minor_version(document))
    except DefinitionError as error:
        return error.problems
    problems: list[str] = []
    extension = document.get(EXTENSION)
    api_id = oas_api_id(document)
    if not isinstance(extension, Mapping):
        problems.append(f"definition.{EXTENSION}: required (the gateway refuses an OAS API without it)")
    elif api_id is None:
        problems.append(f"definition.{EXTENSION}.info.id: required (the API's id, chosen here)")
    elif not isinstance(api_id, str):
        pass  # reported by the schema check
    else:
        try:
            validate_api_id(api_id)
        except ValueError as error:
            problems.append(f"definition.{EXTENSION}.info.id: {error} (got {api_id!r})")
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    # A preview placeholder (a string) where the schema wants something else is not an error yet.
    problems += [_describe(e) for e in errors if not (skip_unknown and is_unknown(e.instance))]
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
    return problems


def normalize_oas(document: Any) -> dict[str, Any]:
    """Validate an OAS API definition; return it in canonical JSON form or raise DefinitionError."""
    problems = oas_problems(document)
    if problems:
        raise DefinitionError(problems)
    result: dict[str, Any] = canonical(document)
    return result


def oas_api_id(document: Any) -> Any:
    return dig(document, EXTENSION, "info", "id")


def oas_summary(document: Any) -> dict[str, Any]:
    """The id-like fields a TykOasApi mirrors as outputs (same names as TykApi's)."""
    return {
        "api_id": oas_api_id(document),
        "name": dig(document, EXTENSION, "info", "name"),
        "listen_path": dig(document, EXTENSION, "server", "listenPath", "value"),
        "target_url": dig(document, EXTENSION, "upstream", "url"),
    }
