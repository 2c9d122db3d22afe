"""spec.tls -> gateway certificates (id computed as the gateway computes it) and HTTPS API definitions."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.controller.test_translate import CONFIG, backend, ingress, translate
from tests.controller.tls_fixtures import certificate, ec_key, key_pem, rsa_key, tls_secret
from tests.gateway_routing import Gateway, GatewayConfig
from tyk_controller.certs import CertificateError, certificate_from_secret, covers
from tyk_gateway.models import ApiDefinition

TLS_GATEWAY = GatewayConfig(ports_whitelist={"https": frozenset({8443})})


def tls_ingress(secret: str = "shop-tls", hosts: tuple[str, ...] = ("shop.example.com",)) -> dict:
    return ingress(
        {
            "tls": [{"hosts": list(hosts), "secretName": secret}],
            "rules": [
                {
                    "host": host,
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("web", 80)}]},
                }
                for host in hosts
            ],
        }
    )


def test_certificate_id_is_org_plus_sha256_of_the_leaf_der() -> None:
    cert = certificate(["shop.example.com"])
    parsed = certificate_from_secret(tls_secret(cert), "myorg")
    der = cert.public_bytes(serialization.Encoding.DER)
    assert parsed.cert_id == "myorg" + hashlib.sha256(der).hexdigest()
    assert parsed.dns_names == ("shop.example.com",)
    assert "BEGIN CERTIFICATE" in parsed.pem and "PRIVATE KEY" in parsed.pem


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
@pytest.mark.parametrize("key_kind", ["rsa", "ec"])
def test_matching_keys_are_accepted_and_others_refused(
    fmt: serialization.PrivateFormat, key_kind: str
) -> None:
    key = rsa_key() if key_kind == "rsa" else ec_key()
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if key_kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    cert = certificate(["a.example.com"], key)
    certificate_from_secret(tls_secret(cert, key_bytes=key_pem(key, fmt)), "org")
    with pytest.raises(CertificateError, match="not the private key"):
        certificate_from_secret(tls_secret(cert, key_bytes=key_pem(other, fmt)), "org")


def test_broken_secrets_are_refused_with_the_reason() -> None:
    cert = certificate(["a.example.com"])
    good = tls_secret(cert)
    cases = {
        "not 'kubernetes.io/tls'": {**good, "type": "Opaque"},
        "tls.key is missing": {**good, "data": {"tls.crt": good["data"]["tls.crt"]}},
        "not base64": {**good, "data": {**good["data"], "tls.crt": "%%%"}},
        "no PEM CERTIFICATE": {
            **good,
            "data": {**good["data"], "tls.crt": base64.b64encode(b"junk").decode()},
        },
        "expired": tls_secret(certificate(["a.example.com"], expired=True)),
        "not the private key of the certificate (different algorithm)": tls_secret(cert, ec_key()),
        "not a valid X.509": {
            **good,
            "data": {
                **good["data"],
                "tls.crt": base64.b64encode(
                    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
                ).decode(),
            },
        },
    }
    for message, secret in cases.items():
        with pytest.raises(CertificateError, match=message.replace("(", r"\(").replace(")", r"\)")):
            certificate_from_secret(secret, "org")


def test_covers() -> None:
    assert covers(("*.example.com",), "a.example.com")
    assert not covers(("*.example.com",), "a.b.example.com")
    assert not covers(("*.example.com",), "example.com")
    assert covers(("*.example.com",), "*.example.com")
    assert covers(("Shop.Example.com",), "shop.example.com")


def test_tls_host_gets_an_https_api_next_to_the_http_one() -> None:
    cert = certificate(["shop.example.com"])
    result = translate(tls_ingress(), tls_secrets={("shop", "shop-tls"): tls_secret(cert)})
    assert [p for p in result.problems] == []
    [cert_id] = result.certificates
    assert (
        cert_id == CONFIG.org_id + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    by_protocol = {api["protocol"]: api for api in result.apis.values()}
    assert set(by_protocol) == {"http", "https"}
    https = by_protocol["https"]
    assert https["listen_port"] == 8443 and https["certificates"] == [cert_id]
    assert https["proxy"]["listen_path"] != by_protocol["http"]["proxy"]["listen_path"]
    assert "certificates" not in by_protocol["http"]
    for api in result.apis.values():
        ApiDefinition.model_validate(api)
    gateway = Gateway(result.apis.values(), TLS_GATEWAY)
    assert gateway.refused == {}
    assert gateway.loaded_listen_paths == {a: d["proxy"]["listen_path"] for a, d in result.apis.items()}
    assert gateway.request("https://shop.example.com/x", port=8443).api_id == https["api_id"]
    assert gateway.request("http://shop.example.com/x").api_id == by_protocol["http"]["api_id"]
    assert gateway.request("https://shop.example.com/x", port=8443).upstream == "http://web.shop.svc:80/x"


@pytest.mark.parametrize(
    ("secrets", "reason_text"),
    [({}, "not found"), ({("shop", "shop-tls"): {"type": "Opaque", "data": {}}}, "kubernetes.io/tls")],
)
def test_missing_or_malformed_secret_is_fatal_and_names_it(secrets: dict, reason_text: str) -> None:
    result = translate(tls_ingress(), tls_secrets=secrets)
    assert result.fatal and result.apis == {} and result.certificates == {}
    [problem] = result.problems
    assert problem.reason == "TLSSecret" and problem.field == "spec.tls[0].secretName"
    assert "shop/shop-tls" in problem.message and reason_text in problem.message


def test_certificate_not_covering_the_host_is_a_warning() -> None:
    secrets = {("shop", "shop-tls"): tls_secret(certificate(["other.example.com"]))}
    result = translate(tls_ingress(), tls_secrets=secrets)
    assert not result.fatal
    assert [p.reason for p in result.problems] == ["TLSHostMismatch"]
    assert len(result.apis) == 2


def test_wildcard_tls_host_covers_the_rule_hosts_under_it() -> None:
    obj = ingress(
        {
            "tls": [{"hosts": ["*.example.com"], "secretName": "wild"}],
            "rules": [
                {
                    "host": h,
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("web", 80)}]},
                }
                for h in ("a.example.com", "b.example.com", "example.com")
            ],
        }
    )
    result = translate(obj, tls_secrets={("shop", "wild"): tls_secret(certificate(["*.example.com"]))})
    assert result.problems == []
    https_hosts = sorted(a["domain"] for a in result.apis.values() if a["protocol"] == "https")
    assert https_hosts == ["a.example.com", "b.example.com"]
