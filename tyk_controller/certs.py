"""TLS Secrets -> gateway certificates, checked the way the gateway checks them (stdlib only).

The gateway (``certs/manager.go`` ``GetCertIDAndChainPEM`` + ``Add``) takes a PEM bundle, refuses expired
certificates and keys that don't match, and names the certificate ``<org_id><hex sha256 of the DER of the
first CERTIFICATE block>``. Computing the same id here makes pushes idempotent and lets API definitions name
their certificate before it is uploaded. A small DER reader replaces an X.509 library: this module is imported
by the Pulumi program, which has no business depending on one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TLS_SECRET_TYPE = "kubernetes.io/tls"
_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n?-----END \1-----", re.DOTALL)
_RSA_OID = "1.2.840.113549.1.1.1"
_EC_OID = "1.2.840.10045.2.1"
_SAN_OID = "2.5.29.17"
_CN_OID = "2.5.4.3"


class CertificateError(ValueError):
    """The Secret can't be used as a gateway certificate; the message says why."""


@dataclass(frozen=True)
class Certificate:
    cert_id: str
    pem: str  # certificate chain + private key, as POSTed to /tyk/certs
    dns_names: tuple[str, ...]  # subjectAltName dNSNames, or the subject CN when there are none
    not_after: dt.datetime


def certificate_from_secret(
    secret: Mapping[str, Any], org_id: str, now: dt.datetime | None = None
) -> Certificate:
    """Validate a ``kubernetes.io/tls`` Secret and compute the gateway's id for it."""
    if secret.get("type") != TLS_SECRET_TYPE:
        raise CertificateError(f"type is {secret.get('type')!r}, not {TLS_SECRET_TYPE!r}")
    data = secret.get("data") or {}
    texts = {}
    for key in ("tls.crt", "tls.key"):
        if not data.get(key):
            raise CertificateError(f"{key} is missing or empty")
        try:
            texts[key] = base64.b64decode(data[key], validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            raise CertificateError(f"{key} is not base64-encoded PEM") from None
    blocks = _pem_blocks(texts["tls.crt"])
    certs = [der for kind, der in blocks if kind == "CERTIFICATE"]
    if not certs:
        raise CertificateError("tls.crt holds no PEM CERTIFICATE block")
    keys = [(kind, der) for kind, der in _pem_blocks(texts["tls.key"]) if kind.endswith("PRIVATE KEY")]
    if len(keys) != 1:
        raise CertificateError(f"tls.key must hold exactly one PEM private key (found {len(keys)})")
    try:
        leaf = _parse_certificate(certs[0])
        for der in certs[1:]:
            _parse_certificate(der)
    except (IndexError, ValueError):
        raise CertificateError("tls.crt is not a valid X.509 certificate") from None
    if leaf["not_after"] < (now or dt.datetime.now(dt.UTC)):
        raise CertificateError(f"the certificate expired on {leaf['not_after']:%Y-%m-%d %H:%M:%S} UTC")
    _check_key(keys[0], leaf)
    pem = texts["tls.crt"].strip() + "\n" + texts["tls.key"].strip() + "\n"
    return Certificate(
        cert_id=org_id + hashlib.sha256(certs[0]).hexdigest(),
        pem=pem,
        dns_names=leaf["dns_names"],
        not_after=leaf["not_after"],
    )


def covers(dns_names: tuple[str, ...], host: str) -> bool:
    """Whether a certificate for ``dns_names`` is valid for ``host`` (RFC 6125: ``*`` = one whole label)."""
    for name in dns_names:
        name = name.lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
        if host.startswith("*.") and name == host:
            return True
    return False


# --- PEM and DER ---------------------------------------------------------------------------------------


def _pem_blocks(text: str) -> list[tuple[str, bytes]]:
    blocks = []
    for match in _PEM_RE.finditer(text):
        body = "".join(line for line in match.group(2).splitlines() if ":" not in line)
        try:
            blocks.append((match.group(1), base64.b64decode(body, validate=False)))
        except binascii.Error:
            raise CertificateError(f"a PEM {match.group(1)} block is not valid base64") from None
    return blocks


def _tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, offset after) of the DER element at ``offset``."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    content = data[offset : offset + length]
    if len(content) != length:
        raise ValueError("truncated DER")
    return tag, content, offset + length


def _children(content: bytes) -> list[tuple[int, bytes]]:
    items, offset = [], 0
    while offset < len(content):
        tag, value, offset = _tlv(content, offset)
        items.append((tag, value))
    return items


def _oid(content: bytes) -> str:
    first = content[0]
    parts = [first // 40, first % 40] if first < 80 else [2, first - 80]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _time(tag: int, content: bytes) -> dt.datetime:
    text = content.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        parsed = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("bad time")
    return parsed.replace(tzinfo=dt.UTC)


def _parse_certificate(der: bytes) -> dict[str, Any]:
    tag, cert, _ = _tlv(der)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    tbs = _children(_children(cert)[0][1])
    index = 1 if tbs[0][0] == 0xA0 else 0  # optional [0] version
    validity = _children(tbs[index + 3][1])
    subject = tbs[index + 4][1]
    spki = tbs[index + 5][1]
    not_after = _time(*validity[1])
    dns_names: list[str] = []
    for tag, value in tbs[index + 6 :]:
        if tag != 0xA3:
            continue
        for _, extension in _children(_children(value)[0][1]):
            parts = _children(extension)
            if _oid(parts[0][1]) == _SAN_OID:
                _, names, _ = _tlv(parts[-1][1])
                dns_names += [v.decode("ascii") for t, v in _children(names) if t == 0x82]
    if not dns_names:
        for _, rdn in _children(subject):
            for _, attribute in _children(rdn):
                oid, text = _children(attribute)
                if _oid(oid[1]) == _CN_OID:
                    dns_names.append(text[1].decode("utf-8", "replace"))
    algorithm, public_key = _children(spki)
    return {
        "not_after": not_after,
        "dns_names": tuple(dns_names),
        "key_algorithm": _oid(_children(algorithm[1])[0][1]),
        "public_key": public_key[1][1:],  # BIT STRING without its unused-bits byte
    }


def _int(content: bytes) -> int:
    return int.from_bytes(content, "big", signed=True)


def _check_key(key: tuple[str, bytes], leaf: Mapping[str, Any]) -> None:
    kind, der = key
    if kind == "ENCRYPTED PRIVATE KEY":
        raise CertificateError("tls.key is encrypted; the gateway needs an unencrypted key")
    try:
        if kind == "PRIVATE KEY":  # PKCS#8: version, AlgorithmIdentifier, OCTET STRING
            parts = _children(_tlv(der)[1])
            algorithm = _oid(_children(parts[1][1])[0][1])
            inner = parts[2][1]
        else:
            algorithm = {"RSA PRIVATE KEY": _RSA_OID, "EC PRIVATE KEY": _EC_OID}.get(kind, "")
            inner = der
        if algorithm != leaf["key_algorithm"]:
            raise CertificateError("tls.key is not the private key of the certificate (different algorithm)")
        fields = _children(_tlv(inner)[1])
        if algorithm == _RSA_OID:  # RSAPrivateKey: version, n, e, ...; certificate: RSAPublicKey n, e
            public = _children(_tlv(leaf["public_key"])[1])
            matches = (_int(fields[1][1]), _int(fields[2][1])) == (_int(public[0][1]), _int(public[1][1]))
        elif algorithm == _EC_OID:  # ECPrivateKey: version, key, [0] params, [1] public key (optional)
            points = [_tlv(v)[1][1:] for t, v in fields if t == 0xA1]
            matches = not points or points[0] == leaf["public_key"]
        else:
            matches = True  # e.g. Ed25519: the gateway checks the pair when the certificate is uploaded
    except CertificateError:
        raise
    except (IndexError, ValueError):
        raise CertificateError("tls.key is not a valid private key") from None
    if not matches:
        raise CertificateError("tls.key is not the private key of the certificate")
