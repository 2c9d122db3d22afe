"""The sidecar-injector webhook under the offline mocks: certificates, Secret, Service, webhook configuration."""

from __future__ import annotations

import asyncio
import base64
import datetime
import gc
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.settings import WebhookSettings
from components.webhook import OPT_IN_LABEL, mesh_config, qualified_address, renewal_hours
from offline import tls_outputs
from offline.mocks import OfflineMocks, RecordingMonitor, is_secret, reveal
from tests.controller_fixtures import NAMESPACE, Built
from tests.controller_fixtures import build as build_controller
from tyk_controller.config import WebhookServer

CONFIGURATION = "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"


def build(settings: dict[str, Any] | None = None, **kwargs: Any) -> Built:
    """The controller with its webhook turned on (the webhook is off by default), plus `settings`."""
    settings = dict(settings or {})
    settings["webhook"] = {"enabled": True, **settings.get("webhook", {})}
    return build_controller(settings, **kwargs)


def _webhook(built: Built) -> dict[str, Any]:
    [webhook] = reveal(built.one(CONFIGURATION).inputs)["webhooks"]
    return dict(webhook)


def _tls_secret(built: Built) -> dict[str, Any]:
    [secret] = [
        reveal(r.inputs) for r in built.of_type(SECRET) if r.inputs.get("type") == "kubernetes.io/tls"
    ]
    return dict(secret)


def _certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _dns_names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.DNSName))


# --- certificates --------------------------------------------------------------------------------------------


def test_ca_bundle_is_the_ca_that_signed_the_serving_certificate() -> None:
    built = build()
    ca = _certificate(base64.b64decode(_webhook(built)["clientConfig"]["caBundle"]).decode())
    serving = _certificate(_tls_secret(built)["stringData"]["tls.crt"])

    serving.verify_directly_issued_by(ca)  # issuer name and signature both check out
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    assert serving.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _tls_secret(built)["stringData"]["ca.crt"] == ca.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("namespace", [NAMESPACE, "tyk-prod"])
def test_serving_certificate_names_the_service_the_api_server_calls(namespace: str) -> None:
    built = build(namespace=namespace)
    serving = _certificate(_tls_secret(built)["stringData"]["tls.crt"])
    reference = _webhook(built)["clientConfig"]["service"]
    dns_name = f"{reference['name']}.{reference['namespace']}.svc"
    assert dns_name == f"tyk-controller-webhook.{namespace}.svc"
    assert _dns_names(serving) == [dns_name]
    assert serving.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == dns_name

    service = reveal(built.one(SERVICE).inputs)
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (reference["name"], namespace)
    [port] = service["spec"]["ports"]
    assert port["port"] == reference["port"] == 443
    container = built.container()
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    assert (
        service["spec"]["selector"].items()
        <= built.deployment()["spec"]["template"]["metadata"]["labels"].items()
    )
    assert reference["path"] == WebhookServer().path  # where tyk_controller.mesh.server serves it


def test_tls_secret_is_mounted_where_the_controller_reads_its_certificate() -> None:
    built = build()
    secret = _tls_secret(built)
    assert set(secret["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
    config = json.loads(built.config_map("tyk-controller-config")["config.json"])
    cert_file, key_file = Path(config["webhook"]["certFile"]), Path(config["webhook"]["keyFile"])
    assert cert_file.parent == key_file.parent
    [mount] = [m for m in built.container()["volumeMounts"] if m["mountPath"] == str(cert_file.parent)]
    volumes = built.deployment()["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert (cert_file.name, key_file.name) == ("tls.crt", "tls.key")


def test_private_keys_stay_secrets_end_to_end() -> None:
    built = build()
    for private_key in built.of_type(tls_outputs.PRIVATE_KEY):
        assert is_secret(private_key.outputs["privateKeyPem"])
    for request in built.of_type(tls_outputs.CERT_REQUEST):
        assert is_secret(request.inputs["privateKeyPem"])
    for cert in built.of_type(tls_outputs.SELF_SIGNED_CERT):
        assert is_secret(cert.inputs["privateKeyPem"])
    for cert in built.of_type(tls_outputs.LOCALLY_SIGNED_CERT):
        assert is_secret(cert.inputs["caPrivateKeyPem"])
    [secret] = [r for r in built.of_type(SECRET) if r.inputs.get("type") == "kubernetes.io/tls"]
    assert is_secret(secret.inputs["stringData"])

    # The Secret's key is the serving certificate's key, and the CA's key is in no Kubernetes object.
    data = reveal(secret.inputs)["stringData"]
    key = serialization.load_pem_private_key(data["tls.key"].encode(), password=None)
    assert _public_der(key.public_key()) == _public_der(_certificate(data["tls.crt"]).public_key())
    ca_key = next(
        reveal(r.outputs["privateKeyPem"])
        for r in built.of_type(tls_outputs.PRIVATE_KEY)
        if r.name.endswith("-ca-key")
    )
    for resource in built.recorded:
        if resource.type.startswith("kubernetes:"):
            assert ca_key not in str(reveal(resource.inputs))


def test_validity_comes_from_settings() -> None:
    built = build({"webhook": {"certValidityHours": 48}})
    secret = _tls_secret(built)
    serving = _certificate(secret["stringData"]["tls.crt"])
    ca = _certificate(secret["stringData"]["ca.crt"])
    assert serving.not_valid_after_utc - serving.not_valid_before_utc == datetime.timedelta(hours=48)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == datetime.timedelta(hours=96)
    assert serving.not_valid_after_utc <= ca.not_valid_after_utc
    [signed] = built.of_type(tls_outputs.LOCALLY_SIGNED_CERT)
    assert (signed.inputs["validityPeriodHours"], signed.inputs["earlyRenewalHours"]) == (48, 12)


def test_renewal_windows_keep_the_serving_certificate_within_its_ca() -> None:
    for validity in (24, 48, 8760):
        ca_validity, ca_early, serving_early = renewal_hours(validity)
        # Worst case: the serving certificate is renewed just before the CA becomes renewable.
        latest_serving_renewal = ca_validity - ca_early
        assert latest_serving_renewal + validity <= ca_validity
        assert 0 < serving_early < validity


# --- webhook configuration -----------------------------------------------------------------------------------


def test_webhook_is_safe_by_default() -> None:
    webhook = _webhook(build())
    assert webhook["sideEffects"] == "None"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["admissionReviewVersions"] == ["v1"]  # the server decodes and answers v1 only
    assert webhook["reinvocationPolicy"] == "Never"
    # Pods on creation only: the handler denies any other kind, Deployments included.
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["objectSelector"] == {"matchLabels": {OPT_IN_LABEL: "true"}}


def test_failure_policy_and_timeout_are_configurable() -> None:
    webhook = _webhook(build({"webhook": {"failurePolicy": "Fail", "timeoutSeconds": 3}}))
    assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Fail", 3)


def test_timeout_stays_at_most_five_seconds() -> None:
    with pytest.raises(ValueError, match=r"timeout_seconds|timeoutSeconds"):
        WebhookSettings.model_validate({"timeoutSeconds": 10})


def test_serving_certificate_expiry_is_an_output() -> None:
    built = build()
    [certificates] = built.of_type("tyk-aks:index:WebhookCertificates")
    [signed] = built.of_type(tls_outputs.LOCALLY_SIGNED_CERT)
    serving = _certificate(_tls_secret(built)["stringData"]["tls.crt"])
    expires = datetime.datetime.fromisoformat(signed.outputs["validityEndTime"].replace("Z", "+00:00"))
    assert abs(expires - serving.not_valid_after_utc) < datetime.timedelta(seconds=1)
    assert certificates is not None


def test_mesh_config_runs_the_gateways_own_image_on_their_redis() -> None:
    mesh = mesh_config(
        WebhookSettings(reload_delay_seconds=30),
        sidecar_image="docker.tyk.io/tyk-gateway/tyk-gateway:v5.13.1",
        redis_addrs=["r:6379"],
        org_id="o",
    )
    assert mesh.sidecar_image == "docker.tyk.io/tyk-gateway/tyk-gateway:v5.13.1"
    assert (mesh.redis_addrs, mesh.org_id, mesh.reload_delay_seconds) == (["r:6379"], "o", 30)


@pytest.mark.parametrize("namespace", [NAMESPACE, "platform"])
def test_webhook_never_applies_to_its_own_or_system_namespaces(namespace: str) -> None:
    built = build(namespace=namespace)
    [expression] = _webhook(built)["namespaceSelector"]["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "NotIn"
    assert {namespace, "kube-system", "kube-public"} <= set(expression["values"])
    assert "demo" not in expression["values"]  # the examples' namespace is served
    configuration = reveal(built.one(CONFIGURATION).inputs)
    assert configuration["metadata"]["name"] == f"tyk-mesh-injector-{namespace}"  # cluster-scoped


def test_webhook_configuration_is_created_after_the_controller_runs() -> None:
    built = build()
    configuration = built.one(CONFIGURATION)
    assert built.one("kubernetes:apps/v1:Deployment").urn in configuration.dependencies
    certificates = built.one("tyk-aks:index:WebhookCertificates")
    webhook = built.one("tyk-aks:index:SidecarInjectorWebhook")
    component = built.one("tyk-aks:index:IngressController")
    assert certificates.parent_urn == webhook.parent_urn == component.urn
    assert configuration.parent_urn == webhook.urn


def test_disabled_webhook_leaves_no_trace() -> None:
    built = build({"webhook": {"enabled": False}})
    tls_types = (
        tls_outputs.PRIVATE_KEY,
        tls_outputs.SELF_SIGNED_CERT,
        tls_outputs.CERT_REQUEST,
        tls_outputs.LOCALLY_SIGNED_CERT,
    )
    for type_ in (CONFIGURATION, SERVICE, *tls_types):
        assert built.of_type(type_) == []
    assert [r for r in built.of_type(SECRET) if r.inputs.get("type") == "kubernetes.io/tls"] == []
    config = json.loads(built.config_map("tyk-controller-config")["config.json"])
    assert config["webhook"] is None
    assert all(m["name"] != "webhook-certs" for m in built.container()["volumeMounts"])
    assert "checksum/webhook-cert" not in built.deployment()["spec"]["template"]["metadata"]["annotations"]
    # Nor the mesh: no config section, no Redis password, no grants.
    assert config.get("mesh") is None
    assert all(e["name"] != "TYK_CONTROLLER_REDIS_PASSWORD" for e in built.container()["env"])
    for role in built.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"):
        for rule in reveal(role.inputs)["rules"]:
            assert not {"pods", "configmaps"} & set(rule["resources"])
            assert "create" not in rule["verbs"] or "secrets" not in rule["resources"]


def test_enabled_webhook_brings_the_mesh_and_no_restart_on_renewal() -> None:
    built = build()
    config = json.loads(built.config_map("tyk-controller-config")["config.json"])
    assert config["mesh"]["redisAddrs"] and config["webhook"]["path"] == "/mutate-pods"
    [password] = [e for e in built.container()["env"] if e["name"] == "TYK_CONTROLLER_REDIS_PASSWORD"]
    assert "secretKeyRef" in password["valueFrom"]
    # The server reloads a renewed certificate itself: no checksum annotation rolls the pods.
    assert "checksum/webhook-cert" not in built.deployment()["spec"]["template"]["metadata"]["annotations"]
    [role] = built.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    # (The ingress controller's own list/watch of Secrets is there too when it watches every namespace.)
    secret_rules = [
        r
        for r in reveal(role.inputs)["rules"]
        if "secrets" in r["resources"] and ("create" in r["verbs"] or r.get("resourceNames"))
    ]
    assert {tuple(r["verbs"]): r.get("resourceNames") for r in secret_rules} == {
        ("create",): None,
        ("get", "update", "delete"): ["tyk-mesh"],
    }


# --- the offline pulumi-tls outputs themselves ---------------------------------------------------------------


def _run_tls(declare: Any) -> RecordingMonitor:
    monitor = RecordingMonitor(OfflineMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project="tyk-aks", stack="dev", preview=False, monitor=monitor)
    pulumi.runtime.test(declare)()
    return monitor


def _retrieve_from_abandoned_futures(error: BaseException) -> None:
    """Mark `error` retrieved on every future still carrying it, once the test has asserted on it.

    A failed registration resolves the "is known" and "is secret" futures of each of the resource's outputs
    with the error, and nothing ever awaits them (an `Output` awaits its value first and stops at the error).
    The SDK keeps them alive until the next run clears its state; whenever the garbage collector then frees
    them, often during a later test, asyncio prints "Future exception was never retrieved" for each. A future
    that refers to the error directly holds it as its exception (or result), so only this error is marked.
    """
    for holder in gc.get_referrers(error):
        if isinstance(holder, asyncio.Future) and holder.done() and not holder.cancelled():
            holder.exception()


def test_offline_private_keys_honour_algorithm_and_size() -> None:
    import pulumi_tls as tls

    monitor = _run_tls(
        lambda: [
            tls.PrivateKey("rsa", algorithm="RSA", rsa_bits=3072),
            tls.PrivateKey("ec", algorithm="ECDSA", ecdsa_curve="P384"),
            tls.PrivateKey("ed", algorithm="ED25519"),
        ]
    )
    keys = {r.name: r.outputs for r in monitor.recorded}
    rsa_key = serialization.load_pem_private_key(reveal(keys["rsa"]["privateKeyPem"]).encode(), password=None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 3072
    assert reveal(keys["rsa"]["privateKeyPem"]).startswith("-----BEGIN RSA PRIVATE KEY-----")
    ec_key = serialization.load_pem_private_key(reveal(keys["ec"]["privateKeyPem"]).encode(), password=None)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and ec_key.curve.name == "secp384r1"
    assert keys["ed"]["publicKeyOpenssh"].startswith("ssh-ed25519 ")
    for outputs in keys.values():
        assert all(
            is_secret(outputs[k]) for k in ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh")
        )


def test_offline_certificates_honour_subject_uses_and_signing_ca() -> None:
    import pulumi_tls as tls

    def declare() -> None:
        ca_key = tls.PrivateKey("ca-key", algorithm="RSA")
        ca = tls.SelfSignedCert(
            "ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name="Test CA", organization="Tests"),
            allowed_uses=["cert_signing"],
            validity_period_hours=10,
        )
        key = tls.PrivateKey("key", algorithm="ECDSA", ecdsa_curve="P256")
        request = tls.CertRequest(
            "request",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name="svc"),
            dns_names=["svc.example"],
            ip_addresses=["10.0.0.1"],
        )
        tls.LocallySignedCert(
            "cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            allowed_uses=["digital_signature", "client_auth"],
            validity_period_hours=5,
        )

    outputs = {r.name: r.outputs for r in _run_tls(declare).recorded}
    ca = _certificate(outputs["ca"]["certPem"])
    cert = _certificate(outputs["cert"]["certPem"])
    cert.verify_directly_issued_by(ca)
    assert ca.subject.rfc4514_string() == "O=Tests,CN=Test CA"
    assert cert.subject.rfc4514_string() == "CN=svc"
    assert _dns_names(cert) == ["svc.example"]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature is True
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(hours=5)
    assert outputs["cert"]["caKeyAlgorithm"] == "RSA"
    assert outputs["cert"]["readyForRenewal"] is False
    authority = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert authority == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_offline_signing_with_the_wrong_ca_key_fails() -> None:
    import pulumi_tls as tls

    def declare() -> None:
        ca_key = tls.PrivateKey("ca-key", algorithm="ECDSA", ecdsa_curve="P256")
        other = tls.PrivateKey("other", algorithm="ECDSA", ecdsa_curve="P256")
        ca = tls.SelfSignedCert(
            "ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name="CA"),
            allowed_uses=["cert_signing"],
            validity_period_hours=1,
        )
        request = tls.CertRequest("request", private_key_pem=other.private_key_pem)
        tls.LocallySignedCert(
            "cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=other.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            allowed_uses=["server_auth"],
            validity_period_hours=1,
        )

    with pytest.raises(Exception, match="does not match the public key") as refused:
        _run_tls(declare)
    _retrieve_from_abandoned_futures(refused.value)


def test_redis_addresses_resolve_from_any_namespace() -> None:
    assert qualified_address("tyk-redis-master:6379", "tyk") == "tyk-redis-master.tyk.svc:6379"
    assert qualified_address("redis.example.net:6380", "tyk") == "redis.example.net:6380"
    assert qualified_address("10.0.0.5:6379", "tyk") == "10.0.0.5:6379"
    built = build()
    [config_map] = [
        r for r in built.of_type("kubernetes:core/v1:ConfigMap") if "config.json" in r.inputs["data"]
    ]
    config = json.loads(reveal(config_map.inputs)["data"]["config.json"])
    assert all(".svc:" in addr or addr.count(".") >= 3 for addr in config["mesh"]["redisAddrs"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_mesh_is_on_in_dev_and_prod(stack: str) -> None:
    from tests.conftest import stack_plan

    plan = stack_plan(stack)
    [configuration] = plan.find(CONFIGURATION)
    [webhook] = reveal(configuration.inputs)["webhooks"]
    assert webhook["admissionReviewVersions"] == ["v1"]
    [config_map] = [
        r for r in plan.find("kubernetes:core/v1:ConfigMap") if "config.json" in (r.inputs.get("data") or {})
    ]
    config = json.loads(reveal(config_map.inputs)["data"]["config.json"])
    assert config["webhook"]["path"] == webhook["clientConfig"]["service"]["path"]
    assert config["mesh"]["sidecarImage"].startswith("docker.tyk.io/tyk-gateway/tyk-gateway:")
    # As the gateways reach Redis: the same Redis (by a name that resolves from any namespace), TLS, cluster mode.
    [gateway_redis] = [
        values["global"]["redis"]
        for release in plan.find("kubernetes:helm.sh/v3:Release")
        if "redis" in (values := reveal(release.inputs).get("values") or {}).get("global", {})
    ]
    mesh = config["mesh"]

    def short(addr: str) -> tuple[str, str]:
        host, _, port = addr.rpartition(":")
        return host.split(".")[0], port

    assert [short(a) for a in mesh["redisAddrs"]] == [short(a) for a in gateway_redis["addrs"]]
    assert mesh["redisTls"] == bool(gateway_redis.get("useSSL"))
    assert mesh["redisCluster"] == bool(gateway_redis.get("enableCluster"))
    for addr in mesh["redisAddrs"]:
        host = addr.rpartition(":")[0]
        assert ".svc" in host or host.count(".") >= 2, addr
    assert "webhook_certificate_expires_at" in plan.outputs
