"""Compare what the gateway returns with what Pulumi recorded, so only real drift shows.

The gateway returns the whole Go struct: every field, zero values included (``""``,
``0``, ``false``, ``null``), and drops fields it does not know. Reads therefore project
the live object onto the fields the user manages:

* a managed field takes its live value (that is how edits made behind Pulumi's back show);
* a managed field the gateway does not return at all (unknown to this gateway version)
  keeps its recorded value: there is nothing to compare it with;
* unmanaged fields are ignored, except inside maps keyed by data (``MAP_PATHS``) such as
  a policy's ``access_rights``, where a non-empty extra entry is real drift;
* a recorded secret reference (``env://``, ``secrets://``, ``vault://``, ``consul://``) is
  kept: the gateway resolves those when it loads the file (``replaceSecrets`` and the KV
  lookups in gateway/api_definition.go), so the live value is the secret itself, which
  must neither show as drift nor end up in the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .models import canonical

Path = tuple[str, ...]

#: Maps whose keys are data, not struct fields: extra live entries there are drift.
API_MAP_PATHS: frozenset[Path] = frozenset()
POLICY_MAP_PATHS: frozenset[Path] = frozenset({("access_rights",)})
#: An OAS API's operations are keyed by path: an operation added behind Pulumi's back is drift.
OAS_MAP_PATHS: frozenset[Path] = frozenset({("paths",)})
SECRET_REFERENCES = ("env://", "secrets://", "vault://", "consul://")


def is_zero(value: Any) -> bool:
    """Go's zero values as they appear in JSON (omitempty semantics)."""
    if isinstance(value, Mapping):
        return all(is_zero(v) for v in value.values())
    if isinstance(value, list):
        return not value
    return value is None or value == "" or value is False or (type(value) in (int, float) and value == 0)


def strip_zero(value: Any) -> Any:
    """Drop zero-valued fields recursively (used when there is no recorded definition, e.g. import)."""
    if isinstance(value, Mapping):
        return {k: strip_zero(v) for k, v in value.items() if not is_zero(v)}
    if isinstance(value, list):
        return [strip_zero(v) for v in value]
    return canonical(value)


def project(live: Any, recorded: Any, map_paths: frozenset[Path] = frozenset(), path: Path = ()) -> Any:
    """The live object seen through the shape of the recorded one."""
    if isinstance(recorded, str) and recorded.startswith(SECRET_REFERENCES):
        return recorded
    if isinstance(recorded, Mapping) and isinstance(live, Mapping):
        out: dict[str, Any] = {}
        for key, wanted in recorded.items():
            out[key] = project(live[key], wanted, map_paths, (*path, key)) if key in live else wanted
        if path in map_paths:
            for key, extra in live.items():
                if key not in recorded and not is_zero(extra):
                    out[key] = strip_zero(extra)
        return out
    if isinstance(recorded, list) and isinstance(live, list) and len(recorded) == len(live):
        return [project(lv, rv, map_paths, path) for lv, rv in zip(live, recorded, strict=True)]
    if live is None and isinstance(recorded, list | Mapping) and not recorded:
        return recorded  # Go writes an empty slice or map back as null
    return canonical(live)
