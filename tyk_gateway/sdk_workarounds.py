"""Undo a pickler patch the Pulumi Python SDK leaks on every dynamic resource.

``pulumi.dynamic.dynamic.serialize_provider`` (SDK 3.x, checked on 3.272) wraps
``pickle._Pickler._batch_setitems`` in a sorting wrapper around whatever is installed, and restores
``pickle.Pickler`` afterwards but not that method. Each dynamic resource constructed nests one more wrapper:
pickling gets slower with every resource and a program with roughly 950 of them dies with ``RecursionError``
(upstream report: https://github.com/pulumi/pulumi/issues/17803, closed as no-repro).

``unwrap_batch_setitems()`` puts the innermost (stdlib) method back. Called after each construction, the SDK's
next call wraps it exactly once again, so the sorting the SDK wants (deterministic provider blobs) still
happens while it serializes, and the depth never grows. Delete this module and its call in
``resources.py`` once the SDK restores the method itself (``tests/provider/test_scale.py`` then still passes
without it).
"""

from __future__ import annotations

import pickle
from typing import Any

#: ``__qualname__`` prefix of the wrappers ``serialize_provider`` defines.
_SDK_WRAPPER_PREFIX = "serialize_provider.<locals>."
#: The name of the wrapped method inside those wrappers' closures.
_WRAPPED = "unsorted_batch_setitems"


def _wrapped_method(function: Any) -> Any:
    """The method an SDK wrapper calls, or None when ``function`` is not one of them."""
    if not getattr(function, "__qualname__", "").startswith(_SDK_WRAPPER_PREFIX):
        return None
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None) or ()
    if code is None or _WRAPPED not in code.co_freevars:
        return None
    return closure[code.co_freevars.index(_WRAPPED)].cell_contents


def unwrap_batch_setitems() -> int:
    """Strip every SDK wrapper from ``pickle._Pickler._batch_setitems``; return how many there were."""
    method = pickle._Pickler.__dict__.get("_batch_setitems")
    depth = 0
    while (inner := _wrapped_method(method)) is not None:
        method, depth = inner, depth + 1
    if depth:
        pickle._Pickler._batch_setitems = method  # type: ignore[attr-defined]
    return depth
