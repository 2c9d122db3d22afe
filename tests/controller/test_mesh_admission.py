"""The running admission server: real admission.k8s.io/v1 reviews over HTTPS, verified with the CA that signed
its certificate (as the API server does with the webhook's caBundle), and a certificate renewed on disk."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.controller.mesh_fixtures import (
    MESH,
    SERVICE_DNS,
    LoopThread,
    Pki,
    admission_review,
    app_pod,
    make_ca,
    make_pki,
    write_serving_pair,
)
from tests.controller.mesh_pss import restricted
from tests.controller.runtime_support import free_port
from tests.k8s_schema import KUBERNETES_VERSION
from tyk_controller.config import WebhookServer
from tyk_controller.mesh.server import AdmissionServer, ReloadingTLS


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "certs")


@pytest.fixture
def server(pki: Pki) -> Iterator[AdmissionServer]:
    settings = WebhookServer(port=free_port(), cert_file=str(pki.cert_file), key_file=str(pki.key_file))
    running = AdmissionServer(settings, MESH, host="127.0.0.1", check_interval=0.0)
    loop = LoopThread()
    loop.run(running.start())
    yield running
    loop.run(running.stop())
    loop.close()


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """What the API server does: trust only the caBundle, verify the Service's DNS name."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = True
    return context


def post(port: int, ca_pem: bytes, body: Any, path: str = "/mutate-pods") -> tuple[int, dict[str, Any]]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    tls = client_context(ca_pem).wrap_socket(raw, server_hostname=SERVICE_DNS)
    connection = http.client.HTTPSConnection(SERVICE_DNS, port, timeout=5)
    connection.sock = tls
    connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    status, payload = response.status, json.loads(response.read() or b"null")
    connection.close()
    return status, payload


def serving_certificate(port: int, ca_pem: bytes) -> x509.Certificate:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client_context(ca_pem).wrap_socket(raw, server_hostname=SERVICE_DNS) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def call(server: AdmissionServer, pki: Pki, body: Any) -> tuple[int, dict[str, Any]]:
    return post(server.port, pki.ca_pem, body)


def test_opted_in_pod_is_patched_over_https(server: AdmissionServer, pki: Pki) -> None:
    review = admission_review(app_pod("orders"))
    status, answer = call(server, pki, review)
    assert status == 200
    assert (answer["apiVersion"], answer["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    pod = jsonpatch.apply_patch(review["request"]["object"], patch)
    pod["metadata"]["name"] = "orders-7d4b9c-x2x9q"
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert restricted(pod) == []
    assert "warnings" not in response


def test_bad_opt_in_is_allowed_unchanged_with_a_warning(server: AdmissionServer, pki: Pki) -> None:
    review = admission_review(app_pod("orders", annotations={"injector.tyk.io/port": "grpc"}))
    status, answer = call(server, pki, review)
    response = answer["response"]
    assert status == 200 and response["allowed"] is True
    assert "patch" not in response and "patchType" not in response
    [warning] = response["warnings"]
    assert "'grpc'" in warning and "admitted without the sidecar" in warning


def test_reinvocation_of_a_patched_pod_changes_nothing(server: AdmissionServer, pki: Pki) -> None:
    review = admission_review(app_pod("orders"))
    _, first = call(server, pki, review)
    pod = jsonpatch.apply_patch(
        review["request"]["object"], json.loads(base64.b64decode(first["response"]["patch"]))
    )
    _, second = call(server, pki, admission_review(pod))
    assert second["response"]["allowed"] is True
    assert "patch" not in second["response"]


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_only_pod_creation_is_mutated(server: AdmissionServer, pki: Pki, operation: str) -> None:
    _, answer = call(server, pki, admission_review(app_pod("orders"), operation=operation))
    assert answer["response"] == {"uid": answer["response"]["uid"], "allowed": True}


def test_malformed_review_is_a_client_error_not_a_crash(server: AdmissionServer, pki: Pki) -> None:
    status, answer = call(server, pki, {"apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "x"}})
    assert status == 400 and "admission.k8s.io/v1" in answer["error"]
    status, _ = call(server, pki, admission_review(app_pod("orders")))
    assert status == 200


def test_a_pod_the_injector_chokes_on_is_admitted_unchanged(server: AdmissionServer, pki: Pki) -> None:
    pod = app_pod("orders")
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = (
        "not-a-number"  # the API server would refuse it
    )
    status, answer = call(server, pki, admission_review(pod))
    assert status == 200 and answer["response"]["allowed"] is True
    assert "patch" not in answer["response"]
    assert "InjectionFailed" not in answer["response"]["warnings"][0]
    assert "admitted without the sidecar" in answer["response"]["warnings"][0]


def test_a_client_that_does_not_trust_the_ca_is_refused(server: AdmissionServer) -> None:
    _, other_ca = make_ca()
    other_pem = other_ca.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ssl.SSLCertVerificationError):
        post(server.port, other_pem, admission_review(app_pod("orders")))


def test_renewed_certificate_is_served_without_a_restart(server: AdmissionServer, pki: Pki) -> None:
    before = serving_certificate(server.port, pki.ca_pem)
    # Renewal: same CA, new key and certificate, written where the Secret is mounted.
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    _, _, renewed = write_serving_pair(pki.cert_file.parent, pki.ca_key, ca)
    after = serving_certificate(server.port, pki.ca_pem)
    assert after.serial_number == renewed.serial_number != before.serial_number
    assert server.tls.reloads == 1
    status, _ = call(server, pki, admission_review(app_pod("orders")))
    assert status == 200


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ReloadingTLS, Pki]]:
    pki = make_pki(tmp_path / "certs")
    yield ReloadingTLS(str(pki.cert_file), str(pki.key_file), check_interval=0.0), pki


def test_half_written_renewal_keeps_the_previous_certificate(pair: tuple[ReloadingTLS, Pki]) -> None:
    tls, pki = pair
    # A new certificate whose key hasn't arrived yet: load_cert_chain fails, the old pair stays in use.
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    key_before = pki.key_file.read_bytes()
    write_serving_pair(pki.cert_file.parent, pki.ca_key, ca)
    pki.key_file.write_bytes(key_before)
    assert tls.refresh() is False and tls.reloads == 0


def test_missing_certificate_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        ReloadingTLS(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
