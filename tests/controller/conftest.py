"""Fixtures shared by the controller runtime tests: a kubeconfig for the fake API server (``api`` and
``gateway`` come from tests/conftest.py), the controller processes a test starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.runtime_support import CONTROLLER_TOKEN, ControllerProcess
from tests.kube_api_double import KubeApiDouble


@pytest.fixture
def kubeconfig(api: KubeApiDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(api.kubeconfig(CONTROLLER_TOKEN)))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def processes() -> Iterator[list[ControllerProcess]]:
    """Controller processes a test starts; killed at its end if still running."""
    started: list[ControllerProcess] = []
    yield started
    for p in started:
        if p.process is not None and p.process.poll() is None:
            p.process.kill()
            p.process.wait()
