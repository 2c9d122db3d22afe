"""Shared pieces of the mesh tests: a CA and serving certificate, opted-in pods, AdmissionReview requests."""

from __future__ import annotations

import asyncio
import copy
import datetime
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tyk_controller.mesh.config import MeshConfig


class LoopThread:
    """An event loop on its own thread, for async code under test from plain (sync) tests.

    Not pytest-asyncio: its runner unsets the main thread's event loop when it closes, and the Pulumi-mock
    tests that run later in the same session need `asyncio.get_event_loop()` to work there.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="test-loop")
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


T = TypeVar("T")
NAMESPACE = "shop"
SERVICE_DNS = "tyk-controller-webhook.tyk.svc"
MESH = MeshConfig(
    sidecar_image="tykio/tyk-gateway:v5.8.2",
    redis_addrs=["redis-master.tyk.svc:6379"],
)


@dataclass
class Pki:
    ca_pem: bytes
    ca_key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("test webhook CA"))
        .issuer_name(_name("test webhook CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_serving_pair(
    directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, *, serial: int | None = None
) -> tuple[Path, Path, x509.Certificate]:
    """A serving certificate for the webhook Service's DNS name, as the program's pulumi-tls resources make it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(SERVICE_DNS))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVICE_DNS)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file, cert


def make_pki(directory: Path) -> Pki:
    ca_key, ca = make_ca()
    cert_file, key_file, _ = write_serving_pair(directory, ca_key, ca)
    return Pki(ca.public_bytes(serialization.Encoding.PEM), ca_key, cert_file, key_file)


RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def app_pod(
    app: str,
    *,
    port: int = 8080,
    port_name: str | None = "http",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment's pod as the API server hands it to the webhook: restricted-compliant, generateName."""
    port_spec: dict[str, Any] = {"containerPort": port, "protocol": "TCP"}
    if port_name:
        port_spec["name"] = port_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{app}-7d4b9c-",
            "namespace": NAMESPACE,
            "labels": {"app": app, "injector.tyk.io/inject": "true", **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": app,
                    "image": f"registry.example/{app}:1.0",
                    "ports": [port_spec],
                    "securityContext": copy.deepcopy(RESTRICTED_CONTAINER_SECURITY),
                }
            ],
            "volumes": [],
        },
    }


def admission_review(
    pod: dict[str, Any], *, operation: str = "CREATE", namespace: str = NAMESPACE
) -> dict[str, Any]:
    """An admission.k8s.io/v1 AdmissionReview as the API server sends it for a Pod (CREATE)."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"].get("name", ""),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
