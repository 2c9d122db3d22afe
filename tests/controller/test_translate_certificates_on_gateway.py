"""The certificates a translation produces, pushed to the emulated gateway (/tyk/certs): the id the gateway
answers is the id the translation already put into the HTTPS API definitions, so pushes are idempotent."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.controller.test_translate import backend, ingress, translate
from tests.controller.tls_fixtures import certificate, ec_key, key_pem, rsa_key, tls_secret
from tests.gateway_emulator import GatewayEmulator
from tyk_controller.templates import load_templates
from tyk_controller.translate import owner_of
from tyk_gateway.drift import project
from tyk_gateway.models import canonical

SECRET = "certs-test-secret"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayEmulator]:
    with GatewayEmulator(tmp_path, secret=SECRET) as emulator:
        yield emulator


def call(gateway: GatewayEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, gateway.url + path, headers={"X-Tyk-Authorization": SECRET}, timeout=5, **kwargs
    )


def test_translation_certificate_ids_match_the_gateway(gateway: GatewayEmulator) -> None:
    obj = ingress(
        {
            "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
            "rules": [
                {
                    "host": "a.example.com",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("web", 80)}]},
                }
            ],
        }
    )
    for key in (rsa_key(), ec_key()):
        secret = tls_secret(certificate(["a.example.com"], key), key)
        result = translate(obj, tls_secrets={("shop", "a-tls"): secret})
        [(cert_id, pem)] = result.certificates.items()
        answer = call(gateway, "POST", "/tyk/certs", params={"org_id": "default"}, data=pem.encode())
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"id": cert_id, "status": "ok", "message": "Certificate added"}
        again = call(gateway, "POST", "/tyk/certs", params={"org_id": "default"}, data=pem.encode())
        assert (again.status_code, again.json()["message"]) == (
            403,
            f"Certificate with {cert_id} id already exists",
        )
        meta = call(gateway, "GET", f"/tyk/certs/{cert_id}").json()
        assert (
            meta["id"] == cert_id and meta["has_private"] is True and meta["dns_names"] == ["a.example.com"]
        )
        https = [a for a in result.apis.values() if a["protocol"] == "https"]
        assert https[0]["certificates"] == [cert_id]


def test_certificate_endpoints_follow_the_gateway(gateway: GatewayEmulator) -> None:
    cert = certificate(["b.example.com"])
    crt_only = tls_secret(cert)["data"]["tls.crt"]
    crt_pem = base64.b64decode(crt_only)
    assert call(gateway, "GET", "/tyk/certs").json() == {"certs": None}
    added = call(gateway, "POST", "/tyk/certs", params={"org_id": "org1"}, data=crt_pem).json()["id"]
    assert added.startswith("org1") and len(added) == 4 + 64
    assert call(gateway, "GET", "/tyk/certs", params={"org_id": "org1"}).json() == {"certs": [added]}
    assert call(gateway, "GET", "/tyk/certs", params={"org_id": "org2"}).json() == {"certs": None}
    assert call(gateway, "GET", f"/tyk/certs/{added}").json()["has_private"] is False
    both = call(gateway, "GET", f"/tyk/certs/{added},nope").json()
    assert both[0]["id"] == added and both[1] is None
    missing = call(gateway, "GET", "/tyk/certs/nope")
    assert (missing.status_code, missing.json()["message"]) == (
        404,
        "Certificate with given SHA256 fingerprint not found",
    )
    wrong_key = crt_pem + key_pem(ec_key())
    refused = call(gateway, "POST", "/tyk/certs", data=wrong_key)
    assert refused.status_code == 403 and "does not match" in refused.json()["message"]
    assert call(gateway, "POST", "/tyk/certs", data=b"junk").json()["message"] == (
        "Failed to decode certificate. It should be PEM encoded."
    )
    expired = base64.b64decode(tls_secret(certificate(["c.example.com"], expired=True))["data"]["tls.crt"])
    assert call(gateway, "POST", "/tyk/certs", data=expired).json()["message"] == "certificate is expired"
    for _ in range(2):  # DELETE always answers 200, known or not
        deleted = call(gateway, "DELETE", f"/tyk/certs/{added}")
        assert deleted.status_code == 200 and deleted.json() == {"status": "ok", "message": "removed"}
    assert call(gateway, "GET", "/tyk/certs", params={"org_id": "org1"}).json() == {"certs": None}
    assert call(gateway, "DELETE", "/tyk/certs").status_code == 405
    assert requests.get(gateway.url + "/tyk/certs", timeout=5).status_code == 403
    assert gateway.stats.count("POST /tyk/certs") == 4 and gateway.stats.count("GET /tyk/certs/{id}") == 3


def test_definitions_round_trip_through_the_gateway(gateway: GatewayEmulator) -> None:
    # What the translation writes comes back from GET /tyk/apis unchanged (seen through its own shape, as
    # the runtime compares): no field the gateway would drop or rewrite, so a resync of an unchanged cluster
    # has nothing to write; and the ownership marker survives.
    templates = load_templates(Path(__file__).parents[2] / "ingress_templates")
    obj = ingress(
        {
            "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
            "defaultBackend": backend("fallback", 80),
            "rules": [
                {
                    "host": "a.example.com",
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Exact", "backend": backend("home", 80)},
                            {"path": "/api/", "pathType": "Prefix", "backend": backend("api", 8080)},
                        ]
                    },
                },
                {
                    "host": "*.example.com",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("wild", 80)}]},
                },
            ],
        },
        annotations={
            "template.service.tyk.io": "token-auth",
            "num.service.tyk.io/session-lifetime": "60",
            "array.service.tyk.io/tags": '["edge"]',
        },
    )
    secret = tls_secret(certificate(["a.example.com"]))
    result = translate(obj, tls_secrets={("shop", "a-tls"): secret}, templates=templates)
    assert not result.fatal
    for api in result.apis.values():
        assert call(gateway, "POST", "/tyk/apis", json=api).status_code == 200
    assert call(gateway, "GET", "/tyk/reload", params={"block": "true"}).status_code == 200
    live = {a["api_id"]: a for a in call(gateway, "GET", "/tyk/apis").json()}
    assert set(live) == set(result.apis)
    for api_id, api in result.apis.items():
        assert project(live[api_id], canonical(api)) == canonical(api), api_id
        assert owner_of(live[api_id]) == ("shop", "web")
