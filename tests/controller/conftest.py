"""Fixtures shared by the controller runtime tests: the fake API server, a gateway emulator, a kubeconfig."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.runtime_support import CONTROLLER_TOKEN, ControllerProcess
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble


@pytest.fixture
def api() -> Iterator[KubeApiDouble]:
    with KubeApiDouble(bookmark_interval=0.5) as server:
        yield server


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayEmulator]:
    with GatewayEmulator(tmp_path / "gateway", reload_interval=0.05) as emulator:
        yield emulator


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
