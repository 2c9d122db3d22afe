"""Problems in the files people edit (stack files, definition files), reported as `file:line:column: what`.

Every check collects all the problems it finds and raises one `InputError`: its message is one line per
problem, and it is a `pulumi.RunError`, which the Pulumi language host reports as a plain error message
(`pulumi.log.error(str(e))`) instead of a stack trace. The offline tools print the same lines. A traceback is
shown only with `TYK_AKS_DEBUG=1`.

Positions are computed lazily: the fast path parses files once with whatever loader it likes; only when a file
is reported is it parsed again, with PyYAML's node composer (which keeps line and column marks), to find the
key a problem is about. JSON is YAML for this purpose.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pulumi import RunError

DEBUG_ENV = "TYK_AKS_DEBUG"


def debug_enabled() -> bool:
    """Whether `TYK_AKS_DEBUG` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def shown_path(path: Path | str) -> str:
    """A path as a reader wants it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file; `line` and `column` are 1-based, None when unknown."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.column or 1}: {self.message}"


class InputError(ValueError, RunError):
    """Bad input: every problem found, one line each; shown by Pulumi without a traceback."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @property
    def lines(self) -> list[str]:
        return [str(problem) for problem in self.problems]


# --- positions -----------------------------------------------------------------------------------------------

Key = str | int | tuple[str, ...]  # a tuple: alternatives for one level (`tyk-aks:gateway` or `gateway`)


def _compose(path: Path) -> yaml.Node | None:
    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _child(node: yaml.Node, key: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(the node marking `key`, its value node) inside a mapping or a sequence."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                return key_node, value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key], node.value[key]
    return None


def position(path: Path, keys: Sequence[Key]) -> tuple[int, int] | None:
    """1-based (line, column) of `keys` in a YAML/JSON file: the key itself, or the deepest part that exists."""
    node = _compose(path)
    if node is None:
        return None
    mark = node.start_mark
    for key in keys:
        options = key if isinstance(key, tuple) else (key,)
        found = next((c for option in options if (c := _child(node, option)) is not None), None)
        if found is None:
            break
        key_node, node = found
        mark = key_node.start_mark
    return mark.line + 1, mark.column + 1


def located(message: str, path: Path, keys: Sequence[Key] = ()) -> Problem:
    """A problem about `keys` of the file at `path`, with the position of the nearest key that exists."""
    where = position(path, keys) if keys else None
    line, column = where if where else (None, None)
    return Problem(message, shown_path(path), line, column)


def syntax_problem(path: Path, error: Exception) -> Problem:
    """The problem of a file that doesn't parse, at the position the parser reports."""
    if isinstance(error, json.JSONDecodeError):
        return Problem(f"not valid JSON: {error.msg}", shown_path(path), error.lineno, error.colno)
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        what = error.problem or error.context or "syntax error"
        if error.problem and error.context:
            where = f" at line {error.context_mark.line + 1}" if error.context_mark else ""
            what = f"{error.problem} ({error.context}{where})"
        if mark is None:
            return Problem(f"not valid YAML: {what}", shown_path(path))
        return Problem(f"not valid YAML: {what}", shown_path(path), mark.line + 1, mark.column + 1)
    return Problem(f"cannot read: {error}", shown_path(path))
