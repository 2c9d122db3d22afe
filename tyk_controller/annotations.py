"""tyk-k8s-compatible setter annotations: ``<kind>.service.tyk.io/<path>: <value>``.

``<kind>`` is ``bool`` (``true``/``false``, any case), ``num`` (an integer, as Go's ``strconv.Atoi``),
``string``, ``object`` (a JSON object) or ``array`` (a JSON array): the value rules of tyk-k8s
(``processor/proc.go``, its last commit). ``<path>`` points into the API definition: dots
nest, ``-`` becomes ``_`` (``bool.service.tyk.io/use-keyless`` sets ``use_keyless``). Setters are applied
after the template and the generated fields. Fields the controller derives from the Ingress itself can't be
set this way (see ``PROTECTED``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

SUFFIX = ".service.tyk.io/"
TEMPLATE_ANNOTATION = "template.service.tyk.io"
KINDS = ("bool", "num", "string", "object", "array")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")

#: Derived from the Ingress (identity, routing, TLS binding): an annotation may not override them.
PROTECTED: dict[tuple[str, ...], str] = {
    ("api_id",): "the API id is derived from the Ingress rule",
    ("id",): "the gateway's object id is not ours to set",
    ("slug",): "the slug is the API id",
    ("org_id",): "the organisation is the controller's orgId",
    ("domain",): "the domain is the rule's host",
    ("listen_port",): "the port is the controller's httpPort/httpsPort",
    ("protocol",): "the protocol follows spec.tls",
    ("proxy", "listen_path"): "the listen path is the rule's path",
    ("proxy", "target_url"): "the target is the rule's backend Service",
    ("certificates",): "certificates come from spec.tls",
    ("is_oas",): "the controller writes classic API definitions",
}


@dataclass(frozen=True)
class Setter:
    annotation: str  # the full annotation key, for messages
    path: tuple[str, ...]
    value: Any


class AnnotationError(ValueError):
    def __init__(self, annotation: str, message: str) -> None:
        super().__init__(message)
        self.annotation = annotation


def parse_setters(annotations: Mapping[str, str]) -> tuple[list[Setter], list[AnnotationError]]:
    """Every setter annotation, in a stable order (sorted by key), and the ones that can't be used."""
    setters: list[Setter] = []
    errors: list[AnnotationError] = []
    for key in sorted(annotations):
        kind, sep, raw_path = key.partition(SUFFIX)
        if not sep or kind not in KINDS:
            continue
        raw = annotations[key]
        try:
            path = _path(raw_path)
            protected = PROTECTED.get(path[:1]) or PROTECTED.get(path)
            if protected is not None:
                raise ValueError(f"{'.'.join(path)} can't be set by annotation: {protected}")
            setters.append(Setter(key, path, _value(kind, raw)))
        except ValueError as error:
            errors.append(AnnotationError(key, f"annotation {key}={_show(raw)}: {error}"))
    return setters, errors


def apply_setters(definition: MutableMapping[str, Any], setters: list[Setter]) -> list[AnnotationError]:
    """Set each path in place, creating objects on the way; a path through a non-object is an error."""
    errors: list[AnnotationError] = []
    for setter in setters:
        node: MutableMapping[str, Any] = definition
        for depth, part in enumerate(setter.path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, MutableMapping):
                where = ".".join(setter.path[: depth + 1])
                errors.append(
                    AnnotationError(
                        setter.annotation,
                        f"annotation {setter.annotation}: {where} is a {type(child).__name__}, not an object",
                    )
                )
                break
            node = child
        else:
            node[setter.path[-1]] = setter.value
    return errors


def _path(raw: str) -> tuple[str, ...]:
    parts = tuple(part.replace("-", "_") for part in raw.split("."))
    if not raw or any(not part for part in parts):
        raise ValueError("the field path is empty or has an empty segment")
    return parts


def _value(kind: str, raw: str) -> Any:
    if kind == "string":
        return raw
    if kind == "bool":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError("not a boolean (true or false)")
    if kind == "num":
        if not _INTEGER.fullmatch(raw):
            raise ValueError("not an integer")
        return int(raw)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at character {error.pos}") from None
    expected = dict if kind == "object" else list
    if not isinstance(value, expected):
        raise ValueError(f"not a JSON {kind} (got {type(value).__name__})")
    return value


def _show(raw: str) -> str:
    shown = json.dumps(raw)
    return shown if len(shown) <= 80 else shown[:77] + '..."'
