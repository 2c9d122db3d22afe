"""Adopting objects that already live on a gateway: `python -m tyk_gateway.adopt` against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import yaml

from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import SECRET, api_definition, policy_definition, props
from tyk_gateway import adopt
from tyk_gateway.client import ClientSettings, GatewayClient, Secret
from tyk_gateway.loader import load_definitions
from tyk_gateway.provider import _TykProvider


def created_by_hand(emulator: GatewayEmulator, path: str, body: dict[str, object]) -> None:
    reply = requests.post(
        f"{emulator.url}{path}", json=body, headers={"X-Tyk-Authorization": SECRET}, timeout=5
    )
    assert reply.status_code == 200, reply.text
    emulator.reload_now()


def client(emulator: GatewayEmulator) -> GatewayClient:
    return GatewayClient(emulator.url, Secret(SECRET), ClientSettings(retries=0))


def test_adopted_api_is_declared_unchanged(
    emulator: GatewayEmulator, tmp_path: Path, api_provider: _TykProvider
) -> None:
    by_hand = api_definition("legacy", name="legacy API")
    created_by_hand(emulator, "/tyk/apis", by_hand)

    path = adopt.adopt(client(emulator), "api", "legacy", tmp_path)

    assert path == tmp_path / "apis" / "legacy.yaml"
    written = yaml.safe_load(path.read_text())
    assert written["api_id"] == "legacy" and written["name"] == "legacy API"
    assert written["proxy"]["listen_path"] == by_hand["proxy"]["listen_path"]
    assert all(value not in (None, "", [], {}, False, 0) for value in written.values())  # defaults omitted
    # The loader accepts the file, and upserting it leaves the gateway's object as it was.
    [(name, definition)] = load_definitions(tmp_path).apis.items()
    before = emulator.loaded_apis["legacy"]
    api_provider.create(props(api_provider, emulator.url, definition))
    emulator.reload_now()
    assert name == "legacy" and emulator.loaded_apis["legacy"] == before


def test_adopted_policy_keeps_its_access_rights(emulator: GatewayEmulator, tmp_path: Path) -> None:
    created_by_hand(emulator, "/tyk/apis", api_definition("httpbin"))
    created_by_hand(emulator, "/tyk/policies", policy_definition("gold", ("httpbin",)))

    path = adopt.adopt(client(emulator), "policy", "gold", tmp_path)

    written = yaml.safe_load(path.read_text())
    assert written["id"] == "gold"
    assert set(written["access_rights"]) == {"httpbin"}
    adopt.adopt(client(emulator), "api", "httpbin", tmp_path)  # a policy may only grant declared APIs
    assert load_definitions(tmp_path).policies["gold"]["id"] == "gold"


def test_missing_object_and_existing_file_are_clear_errors(emulator: GatewayEmulator, tmp_path: Path) -> None:
    with pytest.raises(adopt.AdoptError, match=r"no api with api_id 'nope' is loaded"):
        adopt.adopt(client(emulator), "api", "nope", tmp_path)
    created_by_hand(emulator, "/tyk/apis", api_definition("legacy"))
    adopt.adopt(client(emulator), "api", "legacy", tmp_path)
    with pytest.raises(adopt.AdoptError, match=r"exists already"):
        adopt.adopt(client(emulator), "api", "legacy", tmp_path)
    adopt.adopt(client(emulator), "api", "legacy", tmp_path, overwrite=True)


def test_command_line_needs_the_secret_from_the_environment(
    emulator: GatewayEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    created_by_hand(emulator, "/tyk/apis", api_definition("legacy"))
    arguments = ["--gateway-url", emulator.url, "--definitions-dir", str(tmp_path), "api", "legacy"]
    monkeypatch.delenv("TYK_GW_SECRET", raising=False)
    assert adopt.main(arguments) == 2
    monkeypatch.setenv("TYK_GW_SECRET", "wrong")
    assert adopt.main(arguments) == 1
    assert "403" in capsys.readouterr().err
    monkeypatch.setenv("TYK_GW_SECRET", SECRET)
    assert adopt.main(arguments) == 0
    assert (tmp_path / "apis" / "legacy.yaml").exists()
