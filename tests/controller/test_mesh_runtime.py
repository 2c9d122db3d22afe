"""The mesh inside the controller process: what it refuses to start without, and both parts running."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import jsonpatch
import kopf
import pytest

from tests.controller.mesh_fixtures import (
    MESH,
    NAMESPACE,
    SERVICE_DNS,
    LoopThread,
    app_pod,
    make_pki,
)
from tests.controller.runtime_support import free_port, wait_for
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import Identity, KubeApiDouble
from tyk_controller.config import ControllerConfig, WebhookServer
from tyk_controller.kube import KubeClient
from tyk_controller.mesh.config import CLUSTER_RULES, REDIS_PASSWORD_ENV, ROUTES_CONFIG_MAP
from tyk_controller.mesh.runtime import MeshRuntime, mesh_problems
from tyk_controller.mesh.sidecar import plan_injection
from tyk_controller.templates import load_templates
from tyk_gateway.client import ClientSettings, GatewayClient, Secret

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "ingress_templates"


def config(tmp_path: Path, gateway_url: str = "http://127.0.0.1:1", **extra: object) -> ControllerConfig:
    values: dict[str, object] = {
        "gateway_url": gateway_url,
        "mesh": MESH,
        "templates_dir": str(TEMPLATES_DIR),
        **extra,
    }
    return ControllerConfig.model_validate(values)


def test_mesh_needs_the_redis_password_and_the_webhook_needs_the_mesh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REDIS_PASSWORD_ENV, raising=False)
    [problem] = mesh_problems(config(tmp_path))
    assert REDIS_PASSWORD_ENV in problem
    monkeypatch.setenv(REDIS_PASSWORD_ENV, "pw")
    assert mesh_problems(config(tmp_path)) == []
    webhook_only = ControllerConfig.model_validate({"gatewayUrl": "http://g", "webhook": {}})
    assert "mesh" in mesh_problems(webhook_only)[0]


def test_config_file_round_trips_the_mesh_section() -> None:
    original = ControllerConfig(gateway_url="http://g", mesh=MESH, webhook=WebhookServer())
    again = ControllerConfig.model_validate_json(original.model_dump_json(by_alias=True))
    assert again == original
    assert '"sidecarImage"' in original.model_dump_json(by_alias=True)


def test_webhook_and_reconciler_run_together_and_only_the_leader_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REDIS_PASSWORD_ENV, "pw")
    pki = make_pki(tmp_path / "certs")
    with KubeApiDouble() as api, GatewayEmulator(tmp_path / "gateway", reload_interval=0.02) as gateway:
        api.grant("t", Identity(user="controller", cluster_rules=CLUSTER_RULES))
        pod = app_pod("orders")
        patch = plan_injection(pod, NAMESPACE, MESH).patch
        assert patch is not None
        injected = jsonpatch.apply_patch(pod, patch)
        api.apply({**injected, "metadata": {**injected["metadata"], "name": "orders-1"}})
        settings = WebhookServer(port=free_port(), cert_file=str(pki.cert_file), key_file=str(pki.key_file))
        mesh_config = MESH.model_copy(update={"reload_delay_seconds": 0.0})
        controller_config = config(tmp_path, gateway.url, webhook=settings, mesh=mesh_config)
        kube = KubeClient(lambda: kopf.ConnectionInfo(server=api.url, token="t"))
        client = GatewayClient(gateway.url, Secret(gateway.secret), ClientSettings())
        leader = False
        templates = load_templates(TEMPLATES_DIR)
        runtime = MeshRuntime(controller_config, kube, client, lambda: leader, "tyk", templates)
        assert runtime.server is not None
        runtime.server.host = "127.0.0.1"
        loop = LoopThread()
        loop.run(runtime.start())
        try:
            # Standby: serves admission (a TLS handshake with the program's CA), writes nothing.
            context = ssl.create_default_context(cadata=pki.ca_pem.decode())
            with (
                socket.create_connection(("127.0.0.1", runtime.server.port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=SERVICE_DNS),
            ):
                pass
            time.sleep(0.3)
            assert [r for r in api.requests if r.method != "GET"] == []
            leader = True
            wait_for(lambda: api.get("v1", "Secret", NAMESPACE, "tyk-mesh") is not None, 20.0)
            # The reconciler writes the Secret, then the routes ConfigMap: wait for both.
            wait_for(lambda: api.get("v1", "ConfigMap", NAMESPACE, ROUTES_CONFIG_MAP) is not None, 20.0)
            # The routes changed: one group reload through the gateways' control API.
            reconciler = runtime.reconciler
            assert reconciler is not None
            wait_for(lambda: reconciler.reloads > 0, 20.0)
            assert reconciler.reloads == 1
        finally:
            loop.run(runtime.stop())
            loop.run(kube.close())
            loop.close()
