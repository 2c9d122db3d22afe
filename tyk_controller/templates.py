"""Ingress templates: partial classic API definitions (YAML or JSON files), named by file stem.

An Ingress picks one with ``template.service.tyk.io: <name>``; the controller merges it under the fields it
generates from the Ingress (generated fields win), then applies the setter annotations. Each template is
validated here, at load, with the same model as ``TykApi`` (``tyk_gateway.models.ApiDefinition``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tyk_gateway.models import ApiDefinition, canonical, format_errors

SUFFIXES = (".yaml", ".yml", ".json")
#: Stands in for the generated fields when a template is validated on its own.
_PLACEHOLDER: dict[str, Any] = {
    "api_id": "template-check",
    "name": "template-check",
    "proxy": {"listen_path": "/", "target_url": "http://service.namespace.svc:80"},
}


class TemplateError(ValueError):
    """A template file can't be used; the message names the file and the field."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: objects merge key by key, anything else is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_template(name: str, template: Any, source: str) -> dict[str, Any]:
    if not isinstance(template, Mapping):
        raise TemplateError(f"{source}: a template must be an object (got {type(template).__name__})")
    try:
        ApiDefinition.model_validate(canonical(deep_merge(template, _PLACEHOLDER)))
    except ValidationError as error:
        raise TemplateError(
            "; ".join(f"{source}: {line}" for line in format_errors(error, prefix="template"))
        ) from None
    return dict(template)


def load_templates(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Every template in ``directory`` by name; raise TemplateError naming the file and field."""
    folder = Path(directory)
    if not folder.is_dir():
        raise TemplateError(f"{folder}: templates folder not found")
    templates: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in SUFFIXES or path.name.startswith("."):
            continue
        if path.stem in sources:
            raise TemplateError(
                f"{path}: template {path.stem!r} is also defined by {sources[path.stem].name}"
            )
        try:
            text = path.read_text(encoding="utf-8")
            content = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except OSError as error:
            raise TemplateError(f"{path}: can't read: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise TemplateError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            raise TemplateError(f"{path}{where}: not YAML: {getattr(error, 'problem', error)}") from None
        templates[path.stem] = validate_template(path.stem, content, str(path))
        sources[path.stem] = path
    return templates
