"""The `./run` entry point: usage without a virtualenv, the bench verb (run on a copy that has no venv)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The script alone with the benchmark names: anything past argument checking would fail here, not install."""
    shutil.copy(PROJECT_DIR / "run", tmp_path / "run")
    (tmp_path / "benchmarks").mkdir()
    for bench in (PROJECT_DIR / "benchmarks").glob("*_bench.py"):
        (tmp_path / "benchmarks" / bench.name).write_text("")
    return tmp_path


def run(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "./run", *args], cwd=copy, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("args", [(), ("bogus",), ("--help",)])
def test_usage_is_clean_and_needs_no_setup(copy: Path, args: tuple[str, ...]) -> None:
    result = run(copy, *args)
    assert result.returncode == 2
    assert result.stderr.startswith("Developer entry point.")
    for verb in ("./run plan", "./run diff", "./run test", "./run bench"):
        assert verb in result.stderr
    assert "set -euo" not in result.stderr and "setting up" not in result.stderr


def test_bench_lists_the_benchmarks(copy: Path) -> None:
    for args in ((), ("no_such_bench",)):
        result = run(copy, "bench", *args)
        assert result.returncode == 2
        assert "provider_bench" in result.stderr.splitlines()[-1] or "  provider_bench" in result.stderr
        assert "setting up" not in result.stderr


def test_docs_run_benchmarks_through_the_verb() -> None:
    docs = "\n".join(p.read_text() for p in [PROJECT_DIR / "README.md", *(PROJECT_DIR / "docs").glob("*.md")])
    assert "./run bench provider_bench" in docs
    assert "python -m benchmarks." not in docs  # the system Python lacks the dependencies
