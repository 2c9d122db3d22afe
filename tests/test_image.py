"""The controller image's recipe, offline: hadolint, the entry point, what it copies and what it installs."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.controller import RUN_AS
from components.controller_image import BUILD_INPUTS, base_image
from offline.plan import PROJECT_DIR

DOCKERFILE = PROJECT_DIR / "Dockerfile"
REQUIREMENTS = PROJECT_DIR / "requirements-controller.in"
LOCK = PROJECT_DIR / "requirements-controller.txt"
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].split("\\", 1)[0].strip()
        if requirement and not requirement.startswith("--"):
            name, _, version = requirement.partition("==")
            assert version, f"{path.name}: {requirement!r} is not pinned with =="
            found[name.strip().lower().replace("_", "-")] = version.strip()
    return found


@pytest.mark.skipif(not Path(HADOLINT).exists(), reason="hadolint is not installed")
def test_hadolint_passes() -> None:
    result = subprocess.run(
        [HADOLINT, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_entry_point_is_the_module_the_tests_run() -> None:
    entrypoints = [args for keyword, args in instructions() if keyword == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["python", "-m", "tyk_controller"]]
    spec = importlib.util.find_spec("tyk_controller.__main__")
    assert spec is not None and spec.origin == str(PROJECT_DIR / "tyk_controller" / "__main__.py")
    # `python -m` resolves the package from WORKDIR (and PYTHONPATH): the copied folder must be there.
    workdir = [args for keyword, args in instructions() if keyword == "WORKDIR"][-1]
    copies = [args.split() for keyword, args in instructions() if keyword == "COPY"]
    assert ["tyk_controller/", "./tyk_controller/"] in copies
    assert workdir == "/app" and "PYTHONPATH=/app" in " ".join(a for k, a in instructions() if k == "ENV")


def test_image_copies_only_the_build_inputs() -> None:
    copied = {args.split()[0].rstrip("/") for keyword, args in instructions() if keyword in {"COPY", "ADD"}}
    assert copied | {"Dockerfile"} == set(BUILD_INPUTS)
    assert not any(keyword == "ADD" for keyword, _ in instructions())
    ignore = [
        line for line in (PROJECT_DIR / ".dockerignore").read_text().splitlines() if line and line[0] != "#"
    ]
    assert ignore[0] == "*", "the context must exclude everything by default"
    assert {line[1:] for line in ignore if line.startswith("!")} == set(BUILD_INPUTS)


def test_runs_as_the_numeric_non_root_user_the_pod_expects() -> None:
    [user] = [args for keyword, args in instructions() if keyword == "USER"]
    assert user == f"{RUN_AS}:{RUN_AS}"
    assert instructions()[-1][0] == "ENTRYPOINT"
    # The base is an ARG (a stack with `images.pinDigests` passes the digest it pinned) with the tag as default.
    (arg, default), (keyword, source) = instructions()[:2]
    assert (arg, keyword, source) == ("ARG", "FROM", "${BASE_IMAGE}")
    assert default == f"BASE_IMAGE={base_image()}"
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", base_image()), base_image()
    assert base_image().startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}-"), (
        "same Python as tests"
    )


def _project_modules(package: str) -> list[Path]:
    return sorted((PROJECT_DIR / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_requirements_cover_what_the_controller_imports_at_the_tested_versions() -> None:
    # Third-party modules imported by the controller and by the tyk_gateway modules it imports.
    used_gateway = {
        f"{node.module.split('.')[1]}.py"
        for path in _project_modules("tyk_controller")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tyk_gateway.")
    }
    files = _project_modules("tyk_controller") + [PROJECT_DIR / "tyk_gateway" / name for name in used_gateway]
    modules = set().union(*(_imports(p) for p in files)) - set(sys.stdlib_module_names)
    modules -= {"tyk_controller", "tyk_gateway", "__future__"}
    distributions = importlib.metadata.packages_distributions()
    needed = {distributions[m][0].lower().replace("_", "-") for m in modules}
    pinned = pins()
    assert needed <= set(pinned), f"imported but not in requirements-controller.in: {needed - set(pinned)}"
    assert "pulumi" not in needed, "the controller must not need the Pulumi SDK"
    locked = pins(LOCK)
    for name, version in pinned.items():
        assert locked.get(name) == version, f"{name}: the lock has {locked.get(name)}, the .in pins {version}"
    for name, version in locked.items():
        assert importlib.metadata.version(name) == version, (
            f"{name}: tests run another version than the image"
        )


def test_lock_is_complete_and_every_line_hashed() -> None:
    text = LOCK.read_text()
    entries = re.findall(
        r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, re.M
    )
    assert len(entries) == len(pins(LOCK)) >= len(pins())
    assert "file:" not in text and "--index-url" not in text and "--find-links" not in text
    # Closed under dependencies (markers evaluated for this Python on Linux, as in the image): --require-hashes
    # refuses to install anything the lock doesn't hold.
    from packaging.requirements import Requirement

    locked = set(pins(LOCK))
    for name in locked:
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = requirement.name.lower().replace("_", "-")
            assert dependency in locked, f"{name} needs {dependency}, which the lock doesn't hold"
