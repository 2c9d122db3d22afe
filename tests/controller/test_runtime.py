"""The runtime against the fake Kubernetes API server and the gateway emulator, in-process.

Translation here is the small contract implementation of ``contract_translator``; the end-to-end tests
(``test_runtime_e2e.py``) run ``python -m tyk_controller`` with the real one.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.contract_translator import owner_of
from tests.controller.runtime_support import (
    CONTROLLER_TOKEN,
    Cluster,
    InProcessController,
    ingress,
    ingress_class,
    service,
    wait_for,
)
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble
from tyk_controller.config import ControllerConfig
from tyk_gateway.client import ClientSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def make_config(gateway: GatewayEmulator, **overrides: object) -> ControllerConfig:
    values: dict[str, object] = {
        "gateway_url": gateway.url,
        "publish_service": "tyk/gateway",
        "resync_seconds": 2.0,
        "debounce_seconds": 0.05,
        "min_reload_interval_seconds": 0.2,
        "retry_backoff_max_seconds": 0.5,
        "health_port": free_port(),
        "leader_election": {
            "leaseDurationSeconds": 2,
            "renewDeadlineSeconds": 1.5,
            "retryPeriodSeconds": 0.2,
        },
        "gateway_client": ClientSettings(retries=1, backoff_factor=0.01, connect_timeout=1, read_timeout=5),
    }
    values.update(overrides)
    return ControllerConfig.model_validate(values)


def owned(gateway: GatewayEmulator) -> dict[str, tuple[str, str]]:
    return {a["api_id"]: owner for a in gateway.loaded_apis.values() if (owner := owner_of(a)) is not None}


def test_apply_edit_delete(api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path) -> None:
    cluster = Cluster(api)
    cluster.grant()
    api.apply(ingress_class())
    api.apply(service("gateway", "tyk", load_balancer_ip="20.1.2.3"))
    api.apply(service("web"))
    api.apply(ingress("shop", paths=("/a", "/b")))
    api.apply(ingress("other-class", class_name="nginx"))
    controller = InProcessController(make_config(gateway), gateway.secret).start()
    try:
        wait_for(lambda: len(owned(gateway)) == 2, what="two APIs of Ingress shop")
        assert set(owned(gateway).values()) == {("default", "shop")}
        wait_for(
            lambda: (
                (api.get("networking.k8s.io/v1", "Ingress", "default", "shop") or {}).get("status")
                == {"loadBalancer": {"ingress": [{"ip": "20.1.2.3"}]}}
            ),
            what="status",
        )
        api.apply(ingress("shop", paths=("/a", "/c", "/d")))
        wait_for(lambda: len(owned(gateway)) == 3, what="three APIs after the edit")
        api.delete("networking.k8s.io/v1", "Ingress", "default", "shop")
        wait_for(lambda: not owned(gateway), what="APIs removed")
        assert not (api.get("networking.k8s.io/v1", "Ingress", "default", "other-class") or {}).get("status")
        assert not cluster.writes_to_ingresses()[1:] or all(
            r.resource == "ingresses/status" for r in cluster.writes_to_ingresses()
        )
    finally:
        controller.stop()
    assert controller.error is None
