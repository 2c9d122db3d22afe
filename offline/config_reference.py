"""The stack configuration reference, generated from the pydantic model in `components/settings.py`.

One Markdown table row per setting: the key path (as `pulumi config set --path` takes it), its type and
constraints, its default and its description. Descriptions are the field docstrings of the model (the string
literal right below a field), read from the source with `ast` because the model doesn't enable pydantic's
`use_attribute_docstrings`; a `Field(description=...)` wins when set.

    python -m offline.config_reference            # print the reference
    python -m offline.config_reference --write    # update docs/configuration.md between the config-reference markers
    python -m offline.config_reference --check    # exit 1 if docs/configuration.md is out of date
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import itertools
import json
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.settings import PROJECT, SECRET_KEYS, StackSettings

PROJECT_DIR = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT_DIR / "docs" / "configuration.md"
START_MARKER = "<!-- config-reference:start -->"
END_MARKER = "<!-- config-reference:end -->"

# Names for the validated string types of the settings module (by validator function).
VALIDATED_STRINGS = {
    "_hostname": "DNS name",
    "_dns_label": "DNS label",
    "_dns_subdomain": "object name",
    "_quantity": "quantity",
    "_positive_quantity": "quantity (> 0)",
}

# Secrets are Pulumi secrets, not model fields (`SECRET_KEYS`); described here, checked against the model.
SECRET_DESCRIPTIONS = {
    "apiSecret": "The gateway's control-API secret (`x-tyk-authorization`). Required when `apiManagement.enabled` "
    "is true (the provider reads it from stack config); otherwise generated and kept in the state.",
    "redisPassword": "The Redis password. Generated and kept in the state when not set.",
    "redisPasswordPrevious": "Only while rotating the in-cluster Redis's password: the old one, still accepted "
    "until every gateway uses the new one (docs/production.md).",
}


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


@functools.cache
def field_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """Attribute docstrings of a model class: `{field name: the string literal right after the field}`."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        class_def = ast.parse(source).body[0]
        if not isinstance(class_def, ast.ClassDef):
            continue
        body = class_def.body
        for node, following in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class of `Model` or `Model | None`, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1:
            return models[0]
    return None


def _constraints(metadata: list[Any]) -> list[str]:
    found: list[str] = []
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            found.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            found.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            found.append(f"≤ {item.le}")
        elif isinstance(item, annotated_types.Lt):
            found.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.MinLen):
            found.append(f"at least {item.min_length} item{'s' if item.min_length != 1 else ''}")
        elif isinstance(item, annotated_types.MaxLen):
            found.append(f"at most {item.max_length}")
    return found


def _validated_name(metadata: list[Any]) -> str | None:
    for item in metadata:
        if isinstance(item, AfterValidator):
            name = getattr(item.func, "__name__", "")
            if name in VALIDATED_STRINGS:
                return VALIDATED_STRINGS[name]
    return None


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A reader's name for a field type: `string`, `integer`, `"a" | "b"`, `list of DNS name`, `... | null`."""
    metadata = list(metadata or [])
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return type_name(base, [*extra, *metadata])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        names = [type_name(a, metadata) for a in args if a is not type(None)]
        return " | ".join(names) + (" | null" if type(None) in args else "")
    if origin is typing.Literal:
        return " | ".join(json.dumps(v) for v in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return f"list of {type_name(item)}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"map of {type_name(key)} to {type_name(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    simple = {str: "string", int: "integer", bool: "boolean", float: "number"}
    name = simple.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return _validated_name(metadata) or name


def _type_with_constraints(field: FieldInfo) -> str:
    name = type_name(field.annotation, field.metadata)
    constraints = _constraints(field.metadata)
    return f"{name} ({', '.join(constraints)})" if constraints else name


def _default(field: FieldInfo, model_default: bool) -> str:
    if field.is_required():
        return "**required**"
    if model_default:
        return ""  # an object whose fields are listed below, each with its own default
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return f"`{json.dumps(value)}`"


def _description(model: type[BaseModel], name: str, field: FieldInfo, nested: type[BaseModel] | None) -> str:
    text = field.description or field_docstrings(model).get(name)
    if not text and nested is not None and nested.__doc__ and nested.__module__ == model.__module__:
        text = inspect.cleandoc(nested.__doc__)
    return _one_line(text or "")


def rows(model: type[BaseModel] = StackSettings, prefix: str = "") -> Iterator[Row]:
    """Every setting of the model, depth first, in declaration order."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        nested = _model_of(field.annotation)
        always_present = nested is not None and isinstance(
            field.get_default(call_default_factory=True), BaseModel
        )
        yield Row(
            key=key,
            type=_type_with_constraints(field),
            default=_default(field, always_present),
            description=_description(model, name, field, nested),
        )
        if nested is not None:
            yield from rows(nested, key + ".")


def render() -> str:
    """The Markdown reference (without the markers)."""
    lines = [
        f"Generated from `components/settings.py` by `python -m offline.config_reference --write`. Keys are "
        f"`{PROJECT}:<key>` in `Pulumi.<stack>.yaml` (objects as YAML objects); from the CLI use "
        f"`pulumi config set --path '<key path>' <value>`. Unknown keys are errors.",
        "",
        "| Key | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    for row in rows():
        lines.append(f"| `{row.key}` | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.description)} |")
    lines += [
        "",
        "Secrets (`pulumi config set --secret <key> <value>`; never in plain text in the stack file):",
        "",
        "| Key | Description |",
        "|---|---|",
    ]
    for key in sorted(SECRET_KEYS):
        lines.append(f"| `{key}` | {_cell(SECRET_DESCRIPTIONS.get(key, ''))} |")
    return "\n".join(lines) + "\n"


def replace_block(document: str, generated: str) -> str:
    """The document with the text between the markers replaced by `generated`."""
    start = document.find(START_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"no {START_MARKER} ... {END_MARKER} block")
    return document[: start + len(START_MARKER)] + "\n" + generated + document[end:]


def current_block(document: str) -> str:
    """The text between the markers, as `replace_block` writes it."""
    start = document.find(START_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"no {START_MARKER} ... {END_MARKER} block")
    return document[start + len(START_MARKER) + 1 : end]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.config_reference", description=__doc__.split("\n\n")[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--write", action="store_true", help="update docs/configuration.md between the markers"
    )
    group.add_argument(
        "--check", action="store_true", help="exit 1 when docs/configuration.md is out of date"
    )
    args = parser.parse_args(argv)
    generated = render()
    if args.write:
        document = REFERENCE.read_text(encoding="utf-8")
        updated = replace_block(document, generated)
        if updated != document:
            REFERENCE.write_text(updated, encoding="utf-8")
            print(f"updated {REFERENCE.relative_to(PROJECT_DIR)}")
        else:
            print(f"{REFERENCE.relative_to(PROJECT_DIR)} is up to date")
        return 0
    if args.check:
        if current_block(REFERENCE.read_text(encoding="utf-8")) != generated:
            print(
                f"{REFERENCE.relative_to(PROJECT_DIR)}: the config reference is out of date; run `python -m offline.config_reference --write`"
            )
            return 1
        print(f"{REFERENCE.relative_to(PROJECT_DIR)}: the config reference is up to date")
        return 0
    sys.stdout.write(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
