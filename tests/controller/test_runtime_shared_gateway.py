"""The runtime with the real translation when the gateway is shared: Ingresses contesting a host and path,
APIs the controller doesn't own, a second controller installation, certificates that are no longer used.

The controller runs in-process (``InProcessController`` with ``__main__.load_translator``, the translator the
image runs) or as ``python -m tyk_controller`` (two installations), against the fake Kubernetes API server and
the gateway emulator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.controller.runtime_support import (
    Cluster,
    ControllerProcess,
    InProcessController,
    free_port,
    ingress,
    ingress_class,
    service,
    wait_for,
)
from tests.controller.tls_fixtures import certificate, rsa_key, tls_secret
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble
from tyk_controller.__main__ import load_translator
from tyk_controller.certs import certificate_from_secret
from tyk_controller.config import ControllerConfig
from tyk_controller.translate import CONTROLLER_KEY, OWNER_KEY, controller_of, owner_of
from tyk_gateway.client import ClientSettings, GatewayClient, Secret

PROJECT_DIR = Path(__file__).resolve().parents[2]
INGRESS_V1 = "networking.k8s.io/v1"


def make_config(gateway: GatewayEmulator, **overrides: Any) -> ControllerConfig:
    values: dict[str, Any] = {
        "gateway_url": gateway.url,
        "publish_service": "tyk/gateway",
        "resync_seconds": 0.5,
        "debounce_seconds": 0.05,
        "min_reload_interval_seconds": 0.1,
        "retry_backoff_max_seconds": 0.5,
        "probe_interval_seconds": 0.2,
        "health_port": free_port(),
        "leader_election": {"enabled": False},
        "gateway_client": ClientSettings(retries=1, backoff_factor=0.01, connect_timeout=1, read_timeout=5),
        "templates_dir": str(PROJECT_DIR / "ingress_templates"),
    }
    values.update(overrides)
    return ControllerConfig.model_validate(values)


def start(config: ControllerConfig, gateway: GatewayEmulator) -> InProcessController:
    return InProcessController(config, gateway.secret, translator=load_translator(config)).start()


def setup_cluster(api: KubeApiDouble) -> Cluster:
    cluster = Cluster(api)
    cluster.grant()
    api.apply(ingress_class())
    api.apply(service("gateway", "tyk", load_balancer_ip="20.1.2.3"))
    api.apply(service("web"))
    return cluster


def gateway_client(gateway: GatewayEmulator) -> GatewayClient:
    return GatewayClient(gateway.url, Secret(gateway.secret), ClientSettings())


def add_foreign_api(gateway: GatewayEmulator, definition: dict[str, Any]) -> None:
    """What a ``TykApi`` resource or an operator by hand writes: no ownership record."""
    client = gateway_client(gateway)
    client.upsert_api(
        {
            "name": definition["api_id"],
            "org_id": "default",
            "active": True,
            "use_keyless": True,
            "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
            **definition,
        }
    )
    client.reload_group()
    wait_for(lambda: definition["api_id"] in gateway.loaded_apis, what="the foreign API loaded")


def routes(gateway: GatewayEmulator) -> set[tuple[str, str, str]]:
    """(owning Ingress or api id, domain, listen path) of every loaded API."""
    found = set()
    for api in gateway.loaded_apis.values():
        owner = owner_of(api)
        who = f"{owner[0]}/{owner[1]}" if owner else str(api["api_id"])
        found.add((who, str(api.get("domain") or ""), str(api["proxy"]["listen_path"])))
    return found


def test_the_older_ingress_keeps_a_contested_path_and_foreign_apis_are_never_overwritten(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    cluster = setup_cluster(api)
    add_foreign_api(
        gateway,
        {
            "api_id": "hand-made",
            "domain": "shop.example.com",
            "proxy": {"listen_path": "/", "target_url": "http://x"},
        },
    )
    foreign_before = json.dumps(gateway.loaded_apis["hand-made"], sort_keys=True)
    # "zeta" is older than "alpha": creation time decides, not the name.
    api.apply(ingress("zeta", host="shop.example.com", paths=("/cart", "/zeta")))
    time.sleep(1.1)  # creationTimestamp has a resolution of one second
    api.apply(ingress("alpha", host="shop.example.com", paths=("/cart", "/alpha", "/")))
    controller = start(make_config(gateway), gateway)
    try:
        expected = {
            ("hand-made", "shop.example.com", "/"),
            ("default/zeta", "shop.example.com", "/cart{http:/|$}"),
            ("default/zeta", "shop.example.com", "/zeta{http:/|$}"),
            ("default/alpha", "shop.example.com", "/alpha{http:/|$}"),
        }
        wait_for(lambda: routes(gateway) == expected, what="the older Ingress's /cart, both others")
        conflicts = wait_for(
            lambda: (
                len(cluster.events("alpha", "PathConflict")) == 2 and cluster.events("alpha", "PathConflict")
            ),
            what="two PathConflict Events on alpha",
        )
        messages = sorted(e["message"] for e in conflicts)
        assert "'/'" in messages[0] and "API 'hand-made'" in messages[0]
        assert "/cart" in messages[1] and "Ingress default/zeta" in messages[1]
        assert all(e["type"] == "Warning" for e in conflicts)
        assert not cluster.events("zeta", "PathConflict")
        time.sleep(1.2)  # resyncs: nothing flaps, the Events are not repeated
        assert routes(gateway) == expected
        assert len(cluster.events("alpha", "PathConflict")) == 2
        assert json.dumps(gateway.loaded_apis["hand-made"], sort_keys=True) == foreign_before

        # A hand-made API written later onto a path an Ingress serves: the gateway lets the Ingress's API keep
        # the path and renames the newcomer, but the controller yields to the API it doesn't manage.
        add_foreign_api(
            gateway,
            {
                "api_id": "later",
                "domain": "shop.example.com",
                "proxy": {"listen_path": "/zeta{http:/|$}", "target_url": "http://x"},
            },
        )
        wait_for(
            lambda: ("later", "shop.example.com", "/zeta{http:/|$}") in routes(gateway),
            what="the later hand-made API served on its own path",
        )
        assert ("default/zeta", "shop.example.com", "/zeta{http:/|$}") not in routes(gateway)
        wait_for(lambda: cluster.events("zeta", "PathConflict"), what="a PathConflict Event on zeta")

        # The older one gives the path up: the newer one gets it.
        api.apply(ingress("zeta", host="shop.example.com", paths=("/zeta",)))
        wait_for(
            lambda: ("default/alpha", "shop.example.com", "/cart{http:/|$}") in routes(gateway),
            what="alpha's /cart once zeta no longer routes it",
        )
        assert ("default/zeta", "shop.example.com", "/cart{http:/|$}") not in routes(gateway)
        assert json.dumps(gateway.loaded_apis["hand-made"], sort_keys=True) == foreign_before
    finally:
        controller.stop()
    assert controller.error is None, controller.error


def test_a_precise_host_beats_another_ingresss_wildcard(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api)
    api.apply(ingress("wild", host="*.example.com", paths=("/",)))
    api.apply(ingress("precise", host="a.example.com", paths=("/api",)))
    controller = start(make_config(gateway), gateway)
    try:
        wait_for(lambda: len(routes(gateway)) == 2, what="both Ingresses' APIs")
        [wild] = [a for a in gateway.loaded_apis.values() if owner_of(a) == ("default", "wild")]
        # The wildcard's label pattern leaves "a" out, so a.example.com/ is not served by the wildcard.
        assert wild["domain"] == "{wildcard:[^.a][^.]*|a[^.][^.]*}.example.com"
    finally:
        controller.stop()
    assert controller.error is None, controller.error


def test_two_installations_on_one_gateway_leave_each_other_alone(
    api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path, processes: list[ControllerProcess]
) -> None:
    api.apply(ingress_class("tyk"))
    api.apply(ingress_class("tyk-internal", controller="example.com/internal-gateway"))
    api.apply(service("gateway", "tyk", load_balancer_ip="20.1.2.3"))
    api.apply(service("web"))
    api.apply(ingress("public", host="www.example.com", paths=("/", "/api")))
    api.apply(ingress("private", host="internal.example.com", class_name="tyk-internal"))
    api.apply(ingress("adopted", host="old.example.com"))
    # Written before the controller name was recorded: one for an Ingress the first installation handles
    # (adopted: rewritten, or deleted when no longer wanted), one whose Ingress is gone (nobody's: kept).
    legacy = {"proxy": {"listen_path": "/legacy", "target_url": "http://x"}}
    add_foreign_api(
        gateway, {"api_id": "legacy-adopted", "config_data": {OWNER_KEY: "default/adopted"}, **legacy}
    )
    add_foreign_api(
        gateway,
        {
            "api_id": "legacy-orphan",
            "domain": "gone.example.com",
            "config_data": {OWNER_KEY: "default/gone"},
            **legacy,
        },
    )
    timings = {"resync_seconds": 0.5}
    public = ControllerProcess(api, gateway, tmp_path / "public", "public-0", **timings)
    internal = ControllerProcess(
        api,
        gateway,
        tmp_path / "internal",
        "internal-0",
        ingress_class="tyk-internal",
        controller_name="example.com/internal-gateway",
        leader_election={
            "leaseName": "tyk-internal",
            "leaseDurationSeconds": 2,
            "renewDeadlineSeconds": 1.5,
            "retryPeriodSeconds": 0.2,
        },
        **timings,
    )
    processes += [public.start(), internal.start()]

    def by_controller() -> dict[str | None, set[tuple[str, str]]]:
        found: dict[str | None, set[tuple[str, str]]] = {}
        for definition in gateway.loaded_apis.values():
            owner = owner_of(definition)
            if owner is not None:
                found.setdefault(controller_of(definition), set()).add(owner)
        return found

    expected = {
        "tyk-aks.io/ingress-controller": {("default", "public"), ("default", "adopted")},
        "example.com/internal-gateway": {("default", "private")},
        None: {("default", "gone")},
    }
    wait_for(lambda: by_controller() == expected, what="each installation's APIs, the orphan kept")
    assert "legacy-adopted" not in gateway.loaded_apis
    counts = len(gateway.loaded_apis)
    time.sleep(2.0)  # several resyncs of both: nothing deleted, nothing flaps
    assert by_controller() == expected and len(gateway.loaded_apis) == counts

    api.delete(INGRESS_V1, "Ingress", "default", "public")
    wait_for(
        lambda: by_controller().get("tyk-aks.io/ingress-controller") == {("default", "adopted")},
        what="public's APIs removed by its own controller",
    )
    assert by_controller()["example.com/internal-gateway"] == {("default", "private")}
    assert "legacy-orphan" in gateway.loaded_apis
    assert any("legacy-orphan" in line.get("message", "") for line in public.lines())


def _certificate_id(secret: dict[str, Any]) -> str:
    return certificate_from_secret(secret, "default").cert_id


def test_certificates_no_api_uses_any_more_are_removed(
    api: KubeApiDouble, gateway: GatewayEmulator, kubeconfig: Path
) -> None:
    setup_cluster(api)
    secrets = {
        name: tls_secret(
            certificate([host], rsa_key()), rsa_key(), metadata={"name": name, "namespace": "default"}
        )
        for name, host in (("shop-tls", "shop.example.com"), ("blog-tls", "blog.example.com"))
    }
    for secret in secrets.values():
        api.apply(secret)
    api.apply(ingress("shop", host="shop.example.com", tls_secret="shop-tls"))
    api.apply(ingress("blog", host="blog.example.com", tls_secret="blog-tls"))
    shop_old, blog_old = _certificate_id(secrets["shop-tls"]), _certificate_id(secrets["blog-tls"])
    controller = start(make_config(gateway), gateway)
    try:
        wait_for(lambda: len(gateway.loaded_apis) == 4, what="HTTP and HTTPS APIs of both Ingresses")
        assert set(gateway.certificates.by_id) == {shop_old, blog_old}
        # A hand-made API uses blog's certificate too (ids are content addressed: the same certificate).
        add_foreign_api(
            gateway,
            {
                "api_id": "hand-made-tls",
                "domain": "blog.example.org",
                "protocol": "https",
                "listen_port": 8443,
                "certificates": [blog_old],
                "proxy": {"listen_path": "/", "target_url": "http://x"},
            },
        )
        # Both Secrets are renewed.
        renewed = {}
        for name in secrets:
            host = name.split("-")[0] + ".example.com"
            renewed[name] = tls_secret(
                certificate([host], rsa_key()), rsa_key(), metadata={"name": name, "namespace": "default"}
            )
            api.apply(renewed[name])
        shop_new, blog_new = _certificate_id(renewed["shop-tls"]), _certificate_id(renewed["blog-tls"])

        def in_use() -> set[str]:
            return {c for a in gateway.loaded_apis.values() for c in a.get("certificates") or []}

        wait_for(lambda: in_use() == {shop_new, blog_new, blog_old}, what="the APIs on the new certificates")
        wait_for(lambda: shop_old not in gateway.certificates.by_id, what="the old shop certificate removed")
        time.sleep(1.2)  # resyncs
        assert set(gateway.certificates.by_id) == {shop_new, blog_new, blog_old}

        # Once the hand-made API lets it go, the old blog certificate goes too.
        gateway_client(gateway).delete_api("hand-made-tls")
        gateway_client(gateway).reload_group()
        wait_for(lambda: blog_old not in gateway.certificates.by_id, what="the old blog certificate removed")
        assert set(gateway.certificates.by_id) == {shop_new, blog_new}
    finally:
        controller.stop()
    assert controller.error is None, controller.error


def test_owner_record_names_the_controller() -> None:
    definition = {"config_data": {OWNER_KEY: "ns/name", CONTROLLER_KEY: "example.com/x"}}
    assert owner_of(definition) == ("ns", "name") and controller_of(definition) == "example.com/x"
    assert controller_of({"config_data": {OWNER_KEY: "ns/name"}}) is None
