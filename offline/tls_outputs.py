"""Realistic outputs for the pulumi-tls resources under the offline mocks: real keys and certificates.

Echoing inputs back (the mocks' default) gives a `SelfSignedCert` no `certPem`, so nothing downstream (a TLS
Secret, a webhook's `caBundle`) could be checked. These state functions do what the provider does
(hashicorp/terraform-provider-tls, `internal/provider/common_cert.go` and the resource files) with
`cryptography`: they honour the algorithm, subject, SANs, `is_ca_certificate`, `allowed_uses`, validity and the
signing CA, so tests can parse and verify what the program builds. Private keys come back as secrets, as the
real engine marks them (`additional_secret_outputs` of the SDK classes).

Generated material is deterministic, so that a plan is the same bytes on every run: keys, serial numbers and
signatures derive from a seed made of the resource's type, name and inputs (deterministic ECDSA, RFC 6979),
and the clock of validity periods is the start of the current UTC day. Unpredictable keys would only matter
for real certificates; these never leave the offline plan and the tests.

Importing this module registers the functions with `offline.mocks` (idempotent).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi.runtime import rpc

from offline.mocks import register_state_function, reveal

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"

PrivateKeyType = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKeyType = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P224": ec.SECP224R1,
    "P256": ec.SECP256R1,
    "P384": ec.SECP384R1,
    "P521": ec.SECP521R1,
}
# OpenSSH has no P-224; the provider leaves the OpenSSH forms empty for it.
_SSH_CURVES = {"secp256r1", "secp384r1", "secp521r1"}

# `allowed_uses` values -> x509.KeyUsage keyword / extended key usage OID (common_cert.go keyUsages maps).
_KEY_USAGES = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
    "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
_EXTENDED_KEY_USAGES = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec_end_system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft_server_gated_crypto": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}
# Subject block of the provider (camelCase wire names) -> name attribute; the provider takes one value each.
_SUBJECT_FIELDS = {
    "commonName": NameOID.COMMON_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "province": NameOID.STATE_OR_PROVINCE_NAME,
    "country": NameOID.COUNTRY_NAME,
    "postalCode": NameOID.POSTAL_CODE,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
}


def _secret(value: Any) -> Any:
    return rpc.wrap_rpc_secret(value)


def _key_algorithm(key: PrivateKeyType | PublicKeyType) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ECDSA"
    return "ED25519"


def _load_private_key(pem: str) -> PrivateKeyType:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def _hash_for(key: PrivateKeyType) -> hashes.HashAlgorithm | None:
    # What Go's x509 picks: SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521, none for Ed25519.
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size, hashes.SHA256())
    return hashes.SHA256()


def clock() -> datetime.datetime:
    """The validity clock of offline certificates: the start of the current UTC day (stable within a day)."""
    return datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _seed(args: pulumi.runtime.MockResourceArgs) -> bytes:
    """What a resource's generated material derives from: its type, name and inputs."""
    text = json.dumps([args.typ, args.name, reveal(args.inputs)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).digest()


def _seeded_int(seed: bytes, label: str, bits: int) -> int:
    return int.from_bytes(hashlib.shake_256(seed + label.encode()).digest((bits + 7) // 8)) >> (-bits % 8)


_SMALL_PRIMES = [n for n in range(3, 2000, 2) if all(n % d for d in range(3, int(n**0.5) + 1, 2))]


def _probable_prime(rng: random.Random, bits: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1  # top two bits set: p*q has 2*bits bits
        if any(candidate % p == 0 for p in _SMALL_PRIMES):
            continue
        d, r = candidate - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(8):  # Miller-Rabin rounds: plenty for random (not adversarial) candidates this large
            x = pow(rng.randrange(2, candidate - 1), d, candidate)
            if x in (1, candidate - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, candidate)
                if x == candidate - 1:
                    break
            else:
                break
        else:
            return candidate


def _rsa_key(seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    rng = random.Random(int.from_bytes(seed))
    e = 65537
    while True:
        p, q = _probable_prime(rng, bits // 2), _probable_prime(rng, bits - bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e != 0:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


def _sign_options(key: PrivateKeyType) -> dict[str, Any]:
    return {"ecdsa_deterministic": True} if isinstance(key, ec.EllipticCurvePrivateKey) else {}


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subject(subject: Mapping[str, Any] | None) -> x509.Name:
    attributes = []
    for key, oid in _SUBJECT_FIELDS.items():
        value = (subject or {}).get(key)
        if value:
            attributes.append(x509.NameAttribute(oid, str(value)))
    for street in (subject or {}).get("streetAddresses") or []:
        attributes.append(x509.NameAttribute(NameOID.STREET_ADDRESS, str(street)))
    return x509.Name(attributes)


def _alternative_names(inputs: Mapping[str, Any]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(str(n)) for n in inputs.get("dnsNames") or []]
    names += [x509.IPAddress(ipaddress.ip_address(str(a))) for a in inputs.get("ipAddresses") or []]
    names += [x509.UniformResourceIdentifier(str(u)) for u in inputs.get("uris") or []]
    return names


def _allowed_uses(builder: x509.CertificateBuilder, uses: Sequence[str]) -> x509.CertificateBuilder:
    unknown = [u for u in uses if u not in _KEY_USAGES and u not in _EXTENDED_KEY_USAGES]
    if unknown:
        raise ValueError(f"allowed_uses: unsupported value(s) {unknown}")
    flags = {keyword: False for keyword in _KEY_USAGES.values()}
    for use in uses:
        if use in _KEY_USAGES:
            flags[_KEY_USAGES[use]] = True
    if any(flags.values()):
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    extended = [_EXTENDED_KEY_USAGES[u] for u in uses if u in _EXTENDED_KEY_USAGES]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    return builder


def _build_certificate(
    inputs: Mapping[str, Any],
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKeyType,
    signing_key: PrivateKeyType,
    alternative_names: list[x509.GeneralName],
    authority_key_id: bytes | None,
    seed: bytes,
) -> tuple[x509.Certificate, dict[str, Any]]:
    hours = int(inputs["validityPeriodHours"])
    now = clock()
    not_after = now + datetime.timedelta(hours=hours)
    is_ca = bool(inputs.get("isCaCertificate"))
    if is_ca and len(subject) == 0:
        raise ValueError(
            "Invalid Certificate Subject: a CA certificate needs at least one distinguished name"
        )
    max_path_length = inputs.get("maxPathLength")
    path_length = (
        int(max_path_length) if is_ca and max_path_length is not None and max_path_length >= 0 else None
    )

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(_seeded_int(seed, "serial", 127) + 1)
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
    )
    builder = _allowed_uses(builder, list(inputs.get("allowedUses") or []))
    if alternative_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative_names), critical=len(subject) == 0
        )
    if is_ca or inputs.get("setSubjectKeyId"):
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if authority_key_id:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(authority_key_id, None, None), critical=False
        )
    certificate = builder.sign(signing_key, _hash_for(signing_key), **_sign_options(signing_key))  # type: ignore[arg-type]
    early_renewal = int(inputs.get("earlyRenewalHours") or 0)
    computed = {
        "certPem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": _timestamp(now),
        "validityEndTime": _timestamp(not_after),
        "earlyRenewalHours": early_renewal,
        "readyForRenewal": not_after - datetime.timedelta(hours=early_renewal) <= now,
        "isCaCertificate": is_ca,
        "id": str(certificate.serial_number),
    }
    return certificate, computed


def _ssh_forms(key: PrivateKeyType) -> dict[str, str]:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _SSH_CURVES:
        return {
            "privateKeyOpenssh": "",
            "publicKeyOpenssh": "",
            "publicKeyFingerprintMd5": "",
            "publicKeyFingerprintSha256": "",
        }
    public_openssh = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    blob = base64.b64decode(public_openssh.split()[1])
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    sha256 = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    private_openssh = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return {
        "privateKeyOpenssh": private_openssh.decode(),
        "publicKeyOpenssh": public_openssh.decode() + "\n",
        "publicKeyFingerprintMd5": ":".join(md5[i : i + 2] for i in range(0, len(md5), 2)),
        "publicKeyFingerprintSha256": f"SHA256:{sha256}",
    }


def private_key_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """`tls.PrivateKey`: a new key of the requested algorithm (RSA 2048 and ECDSA P224 are the defaults)."""
    inputs = reveal(args.inputs)
    algorithm = str(inputs.get("algorithm") or "RSA").upper()
    key: PrivateKeyType
    if algorithm == "RSA":
        key = _rsa_key(_seed(args), int(inputs.get("rsaBits") or 2048))
        # PKCS#1 ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY"), as the provider writes them.
        pem_format = serialization.PrivateFormat.TraditionalOpenSSL
    elif algorithm == "ECDSA":
        curve = str(inputs.get("ecdsaCurve") or "P224")
        if curve not in _CURVES:
            raise ValueError(f"ecdsa_curve: unsupported curve {curve!r}")
        ec_curve = _CURVES[curve]()
        # Below 2**(size-1): always under the group order, never zero.
        key = ec.derive_private_key(_seeded_int(_seed(args), "ecdsa", ec_curve.key_size - 1) | 1, ec_curve)
        pem_format = serialization.PrivateFormat.TraditionalOpenSSL
    elif algorithm == "ED25519":
        key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.shake_256(_seed(args)).digest(32))
        pem_format = serialization.PrivateFormat.PKCS8
    else:
        raise ValueError(f"algorithm: unsupported value {algorithm!r}")
    private_pem = key.private_bytes(serialization.Encoding.PEM, pem_format, serialization.NoEncryption())
    pkcs8_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ssh = _ssh_forms(key)
    return {
        **args.inputs,
        "algorithm": algorithm,
        "privateKeyPem": _secret(private_pem.decode()),
        "privateKeyPemPkcs8": _secret(pkcs8_pem.decode()),
        "privateKeyOpenssh": _secret(ssh.pop("privateKeyOpenssh")),
        "publicKeyPem": key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        **ssh,
        "id": hashlib.sha1(public_der, usedforsecurity=False).hexdigest(),
    }


def _missing(inputs: Mapping[str, Any], *names: str) -> bool:
    return any(inputs.get(name) is None for name in names)


def self_signed_cert_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """`tls.SelfSignedCert`: subject and issuer from `subject`, signed by `private_key_pem`."""
    inputs = reveal(args.inputs)
    if _missing(inputs, "privateKeyPem", "validityPeriodHours"):
        return dict(args.inputs)
    key = _load_private_key(inputs["privateKeyPem"])
    subject = _subject(inputs.get("subject"))
    authority = None
    if inputs.get("setAuthorityKeyId"):
        authority = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    _, computed = _build_certificate(
        inputs,
        subject=subject,
        issuer=subject,
        public_key=key.public_key(),
        signing_key=key,
        alternative_names=_alternative_names(inputs),
        authority_key_id=authority,
        seed=_seed(args),
    )
    return {**args.inputs, **computed, "keyAlgorithm": _key_algorithm(key)}


def cert_request_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """`tls.CertRequest`: a PKCS#10 request for `subject` and the SANs, signed by `private_key_pem`."""
    inputs = reveal(args.inputs)
    if _missing(inputs, "privateKeyPem"):
        return dict(args.inputs)
    key = _load_private_key(inputs["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject(inputs.get("subject")))
    names = _alternative_names(inputs)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    request = builder.sign(key, _hash_for(key), **_sign_options(key))  # type: ignore[arg-type]
    return {
        **args.inputs,
        "certRequestPem": request.public_bytes(serialization.Encoding.PEM).decode(),
        "keyAlgorithm": _key_algorithm(key),
    }


def locally_signed_cert_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """`tls.LocallySignedCert`: the request's subject, key and SANs, issued and signed by the given CA."""
    inputs = reveal(args.inputs)
    if _missing(inputs, "certRequestPem", "caPrivateKeyPem", "caCertPem", "validityPeriodHours"):
        return dict(args.inputs)
    request = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    if not request.is_signature_valid:
        raise ValueError("cert_request_pem: the request's signature does not verify")
    ca_key = _load_private_key(inputs["caPrivateKeyPem"])
    ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    ca_public = ca_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ca_public != ca_cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        # Go's x509.CreateCertificate refuses this too ("provided PrivateKey doesn't match parent's PublicKey").
        raise ValueError("ca_private_key_pem does not match the public key of ca_cert_pem")
    try:
        san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alternative_names = list(san)
    except x509.ExtensionNotFound:
        alternative_names = []
    try:
        authority: bytes | None = ca_cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        authority = None
    public_key = request.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ValueError(f"unsupported public key type {type(public_key).__name__}")
    _, computed = _build_certificate(
        inputs,
        subject=request.subject,
        issuer=ca_cert.subject,
        public_key=public_key,
        signing_key=ca_key,
        alternative_names=alternative_names,
        authority_key_id=authority,
        seed=_seed(args),
    )
    return {**args.inputs, **computed, "caKeyAlgorithm": _key_algorithm(ca_key)}


def register() -> None:
    """Give the pulumi-tls types their realistic outputs in `offline.mocks.OfflineMocks`."""
    register_state_function(PRIVATE_KEY, private_key_state)
    register_state_function(SELF_SIGNED_CERT, self_signed_cert_state)
    register_state_function(CERT_REQUEST, cert_request_state)
    register_state_function(LOCALLY_SIGNED_CERT, locally_signed_cert_state)


register()
