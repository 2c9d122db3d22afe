"""Certificates and kubernetes.io/tls Secrets for the translation tests (generated with cryptography)."""

from __future__ import annotations

import base64
import datetime as dt
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def certificate(
    hosts: list[str], key: Any = None, *, days: int = 365, expired: bool = False
) -> x509.Certificate:
    key = key or rsa_key()
    now = dt.datetime.now(dt.UTC)
    not_before = now - dt.timedelta(days=10)
    not_after = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=days)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .sign(key, hashes.SHA256())
    )


def key_pem(
    key: Any, fmt: serialization.PrivateFormat = serialization.PrivateFormat.TraditionalOpenSSL
) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def tls_secret(
    cert: x509.Certificate, key: Any = None, *, key_bytes: bytes | None = None, **extra: Any
) -> dict:
    crt = cert.public_bytes(serialization.Encoding.PEM)
    pem_key = key_bytes if key_bytes is not None else key_pem(key or rsa_key())
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(pem_key).decode()},
        **extra,
    }
