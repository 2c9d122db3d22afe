"""GatewayClient: auth header, timeouts, retries for transient failures only, clear errors."""

from __future__ import annotations

import pickle
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.controller.tls_fixtures import certificate, key_pem, rsa_key
from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import FAST_CLIENT, SECRET, api_definition
from tyk_gateway.client import (
    ClientSettings,
    DeleteOutcome,
    GatewayClient,
    MissingSecretError,
    RedirectError,
    Secret,
    TykGatewayError,
)

FAST = ClientSettings.model_validate(FAST_CLIENT)


def client(gw: GatewayEmulator, secret: str | None = SECRET, **settings: float) -> GatewayClient:
    return GatewayClient(gw.url, Secret(secret) if secret else None, FAST.model_copy(update=settings))


def test_upsert_list_and_reload(emulator: GatewayEmulator) -> None:
    c = client(emulator)
    c.upsert_api(api_definition("a"))
    assert c.list_apis() == []  # written, not loaded
    c.reload_local()
    assert [a["api_id"] for a in c.list_apis()] == ["a"]
    c.reload_group()
    assert emulator.stats.calls["GET /tyk/reload/group"] == 1


def test_4xx_is_not_retried_and_carries_the_gateway_message(emulator: GatewayEmulator) -> None:
    c = client(emulator)
    with pytest.raises(TykGatewayError) as caught:
        c.upsert_api({**api_definition("a"), "enable_ip_whitelisting": True, "allowed_ips": ["nope"]})
    error = caught.value
    assert (error.method, error.path, error.status) == ("POST", "/tyk/apis", 400)
    assert str(error) == (
        "Tyk gateway rejected POST /tyk/apis (400): "
        'Validation of API Definition failed. Reason: invalid IP/CIDR "nope".'
    )
    assert emulator.stats.calls["POST /tyk/apis"] == 1


def test_wrong_secret_says_which_config_key_and_never_prints_it(emulator: GatewayEmulator) -> None:
    wrong = "wrong-secret-value"
    with pytest.raises(TykGatewayError) as caught:
        client(emulator, wrong).list_apis()
    text = str(caught.value)
    assert caught.value.status == 403
    assert "tyk-aks:apiSecret" in text and "Attempted administrative access" in text
    assert wrong not in text and SECRET not in text and wrong not in repr(caught.value)
    assert emulator.stats.calls["GET /tyk/apis"] == 1  # 403 is not retried


def test_missing_secret(emulator: GatewayEmulator) -> None:
    with pytest.raises(MissingSecretError, match="pulumi config set --secret apiSecret"):
        client(emulator, None).list_apis()


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(emulator: GatewayEmulator, status: int) -> None:
    emulator.faults.error_burst = 4
    emulator.faults.statuses = (status,)
    c = client(emulator)
    c.upsert_api(api_definition("a"))
    assert emulator.stats.calls["POST /tyk/apis"] == 5
    assert list(emulator.disk_apis()) == ["a"]


def test_retries_give_up_with_the_last_status(emulator: GatewayEmulator) -> None:
    emulator.faults.error_burst = 100
    emulator.faults.statuses = (503,)
    with pytest.raises(TykGatewayError) as caught:
        client(emulator, retries=2).list_apis()
    assert caught.value.status == 503 and "upstream connect error" in str(caught.value)
    assert emulator.stats.calls["GET /tyk/apis"] == 3


def test_dropped_connection_after_the_write_is_retried_idempotently(emulator: GatewayEmulator) -> None:
    emulator.faults.drop_after_next = 2
    c = client(emulator)
    c.upsert_api(api_definition("a"))
    assert emulator.stats.calls["POST /tyk/apis"] == 3
    assert emulator.stats.injected["drop_after"] == 2
    assert list(emulator.disk_apis()) == ["a"]


def test_slow_response_times_out_and_is_retried(emulator: GatewayEmulator) -> None:
    emulator.faults.slow_next = 1
    emulator.faults.slow_seconds = 0.5
    started = time.monotonic()
    client(emulator, read_timeout=0.1).upsert_api(api_definition("a"))
    assert emulator.stats.calls["POST /tyk/apis"] == 2
    assert time.monotonic() - started < 0.5


def test_delete_outcomes_and_no_retry_on_delete_failed(emulator: GatewayEmulator) -> None:
    c = client(emulator)
    assert c.delete_api("never-loaded") is DeleteOutcome.NOT_LOADED
    assert c.delete_policy("missing") is DeleteOutcome.ALREADY_GONE
    assert emulator.stats.calls["DELETE /tyk/policies/{id}"] == 1  # 500 "Delete failed" not retried
    c.upsert_api(api_definition("a"))
    c.reload_local()
    assert c.delete_api("a") is DeleteOutcome.DELETED
    assert c.delete_api("a") is DeleteOutcome.ALREADY_GONE


def test_unreachable_gateway(emulator: GatewayEmulator) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    c = GatewayClient(f"http://127.0.0.1:{port}", Secret(SECRET), FAST.model_copy(update={"retries": 2}))
    with pytest.raises(TykGatewayError) as caught:
        c.list_apis()
    assert caught.value.status is None
    assert "unreachable for GET /tyk/apis" in str(caught.value) and SECRET not in str(caught.value)


def test_secret_cannot_leak() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert "hunter2" not in repr(GatewayClient("http://gw:8080", secret, FAST))


def test_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        GatewayClient("gw:8080", Secret("x"), FAST)


class _Redirector:
    """A server that answers every request with a redirect to ``location``."""

    def __init__(self, location: str, status: int = 307) -> None:
        location_, status_ = location, status

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                self.send_response(status_)
                self.send_header("Location", location_)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = _redirect

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_never_followed_and_the_secret_stays_home(
    emulator: GatewayEmulator, tmp_path: Path, status: int
) -> None:
    # The second server accepts the same secret: had the client followed, the write would have succeeded there.
    with GatewayEmulator(tmp_path / "elsewhere", secret=SECRET, reload_interval=0.01) as elsewhere:
        front = _Redirector(f"{elsewhere.url}/tyk/apis", status)
        try:
            c = GatewayClient(front.url, Secret(SECRET), FAST)
            with pytest.raises(RedirectError) as caught:
                c.upsert_api(api_definition("a"))
            with pytest.raises(RedirectError):
                c.list_apis()
            with pytest.raises(RedirectError):  # a raw body too (the certificate store's PEM)
                c.call("POST", "/tyk/certs", _pem(), {"org_id": "o"})
        finally:
            front.close()
        assert elsewhere.stats.total == 0  # neither the secret nor the definition reached the other host
        assert elsewhere.disk_apis() == {}
        host = elsewhere.url.removeprefix("http://")
        assert f"redirect to {host} not followed" in str(caught.value)
        assert SECRET not in str(caught.value)


def _pem() -> bytes:
    return certificate(["api.example.com"]).public_bytes(serialization.Encoding.PEM) + key_pem(rsa_key())


def test_a_bytes_body_is_sent_as_is(emulator: GatewayEmulator) -> None:
    # gateway/cert.go's certHandler reads the request body as the PEM itself, not JSON.
    reply = client(emulator).call("POST", "/tyk/certs", _pem(), {"org_id": "o"})
    assert reply.status == 200, reply.text
    [stored] = emulator.certificates.by_id.values()
    assert stored.org_id == "o" and stored.has_private


def test_a_transient_500_on_delete_is_retried(emulator: GatewayEmulator) -> None:
    c = client(emulator)
    c.upsert_api(api_definition("a"))
    c.reload_local()
    emulator.faults.delete_statuses = (
        500,
    )  # e.g. a proxy in front failing: not the gateway's "Delete failed"
    emulator.faults.error_burst = 2
    assert c.delete_api("a") is DeleteOutcome.DELETED
    assert emulator.stats.calls["DELETE /tyk/apis/{id}"] == 3
    assert emulator.disk_apis() == {}
