"""Ingress -> API definitions: the contract the runtime relies on, and the Kubernetes path semantics."""

from __future__ import annotations

from typing import Any

import pytest

from tyk_controller.config import ControllerConfig
from tyk_controller.translate import (
    OWNER_KEY,
    Translation,
    api_id_for,
    ingress_handled,
    listen_path_for,
    listen_path_length,
    owner_of,
    translate_ingress,
)
from tyk_gateway.models import ApiDefinition

CONFIG = ControllerConfig(gateway_url="http://gateway-control-svc-tyk-gateway.tyk.svc:9696")


def ingress(spec: dict[str, Any], *, name: str = "web", namespace: str = "shop", **metadata: Any) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": {"ingressClassName": "tyk", **spec},
    }


def backend(service: str, port: int | str) -> dict[str, Any]:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def translate(obj: dict[str, Any], **kwargs: Any) -> Translation:
    kwargs.setdefault("services", {})
    kwargs.setdefault("tls_secrets", {})
    kwargs.setdefault("templates", {})
    return translate_ingress(obj, config=CONFIG, **kwargs)


def test_simple_prefix_rule() -> None:
    result = translate(
        ingress(
            {
                "rules": [
                    {
                        "host": "shop.example.com",
                        "http": {
                            "paths": [{"path": "/cart", "pathType": "Prefix", "backend": backend("cart", 80)}]
                        },
                    }
                ]
            }
        )
    )
    assert result.problems == []
    assert result.certificates == {}
    [(api_id, api)] = result.apis.items()
    assert api_id == api_id_for("shop", "web", "shop.example.com", "/cart", "Prefix", "http")
    assert api["api_id"] == api_id
    assert api["domain"] == "shop.example.com"
    assert api["proxy"] == {
        "listen_path": "/cart{http:/|$}",
        "target_url": "http://cart.shop.svc:80",
        "strip_listen_path": False,
    }
    assert api["protocol"] == "http"
    assert api["listen_port"] == 8080
    assert api["use_keyless"] is True
    assert owner_of(api) == ("shop", "web")
    ApiDefinition.model_validate(api)


def test_api_ids_are_deterministic_and_distinct() -> None:
    first = api_id_for("shop", "web", "a.example.com", "/x", "Prefix", "http")
    assert first == api_id_for("shop", "web", "a.example.com", "/x", "Prefix", "http")
    others = {
        api_id_for("shop", "web", "a.example.com", "/x", "Exact", "http"),
        api_id_for("shop", "web", "a.example.com", "/x", "Prefix", "https"),
        api_id_for("shop", "web", "", "/x", "Prefix", "http"),
        api_id_for("shop", "web2", "a.example.com", "/x", "Prefix", "http"),
        api_id_for("shop-web", "", "a.example.com", "/x", "Prefix", "http"),
    }
    assert first not in others and len(others) == 5


def test_owner_of_ignores_definitions_without_the_marker() -> None:
    assert owner_of({"api_id": "hand-made", "config_data": {}}) is None
    assert owner_of({"api_id": "hand-made"}) is None
    assert owner_of({"config_data": {OWNER_KEY: "no-slash"}}) is None
    assert owner_of({"config_data": {OWNER_KEY: "ns/name"}}) == ("ns", "name")


@pytest.mark.parametrize(
    ("spec", "annotations", "default_class", "handled"),
    [
        ({"ingressClassName": "tyk"}, {}, False, True),
        ({"ingressClassName": "nginx"}, {}, True, False),
        ({"ingressClassName": "nginx"}, {"kubernetes.io/ingress.class": "tyk"}, False, False),
        ({}, {"kubernetes.io/ingress.class": "tyk"}, False, True),
        ({}, {"kubernetes.io/ingress.class": "nginx"}, True, False),
        ({}, {}, False, False),
        ({}, {}, True, True),
    ],
)
def test_class_selection(spec: dict, annotations: dict, default_class: bool, handled: bool) -> None:
    obj = {"metadata": {"name": "x", "annotations": annotations}, "spec": spec}
    assert ingress_handled(obj, CONFIG, default_class=default_class) is handled


def test_listen_path_lengths_give_kubernetes_precedence() -> None:
    # Of two routes that both match a request, the one Kubernetes prefers sorts strictly first.
    for scheme in ("http", "https"):
        exact = listen_path_length(listen_path_for("/foo", "Exact", scheme))
        prefix = listen_path_length(listen_path_for("/foo", "Prefix", scheme))
        longer = listen_path_length(listen_path_for("/foo/b", "Prefix", scheme))
        root = listen_path_length(listen_path_for("/", "Prefix", scheme))
        assert exact > prefix > root
        assert longer > prefix
