"""Ingress -> API definitions: the contract the runtime relies on, and the Kubernetes path semantics."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.controller.routing_helpers import gateways, served_by
from tyk_controller.config import ControllerConfig
from tyk_controller.translate import (
    OWNER_KEY,
    Translation,
    api_id_for,
    gateway_domain,
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
        "preserve_host_header": True,
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


SERVICES = {
    ("shop", "cart"): {"spec": {"ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9000}]}}
}


def rule(host: str | None, *paths: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    items = [{"path": p, "pathType": t, "backend": b} for p, t, b in paths]
    return {"host": host, "http": {"paths": items}} if host else {"http": {"paths": items}}


def test_named_ports_resolve_through_the_service() -> None:
    result = translate(
        ingress({"rules": [rule("a.com", ("/", "Prefix", backend("cart", "admin")))]}), services=SERVICES
    )
    [api] = result.apis.values()
    assert api["proxy"]["target_url"] == "http://cart.shop.svc:9000"


@pytest.mark.parametrize(
    ("service", "port", "reason", "field"),
    [
        ("cart", "grpc", "ServicePortNotFound", "spec.rules[0].http.paths[0].backend.service.port.name"),
        ("gone", "http", "ServiceNotFound", "spec.rules[0].http.paths[0].backend.service"),
    ],
)
def test_unresolvable_named_ports_are_reported(service: str, port: str, reason: str, field: str) -> None:
    result = translate(
        ingress(
            {
                "rules": [
                    rule(
                        "a.com",
                        ("/x", "Prefix", backend(service, port)),
                        ("/y", "Prefix", backend("cart", 80)),
                    )
                ]
            }
        ),
        services=SERVICES,
    )
    assert [(p.reason, p.field, p.fatal) for p in result.problems] == [(reason, field, False)]
    assert [a["proxy"]["target_url"] for a in result.apis.values()] == ["http://cart.shop.svc:80"]


@pytest.mark.parametrize("path", ["/a{b}", "/with space", "relative"])
def test_paths_the_gateway_would_misread_are_reported(path: str) -> None:
    result = translate(ingress({"rules": [rule(None, (path, "ImplementationSpecific", backend("web", 80)))]}))
    assert result.apis == {} and [p.reason for p in result.problems] == ["UnsupportedPath"]
    assert path in result.problems[0].message


def test_duplicate_paths_keep_the_first_and_say_so() -> None:
    result = translate(
        ingress(
            {
                "rules": [
                    rule("a.com", ("/x/", "Prefix", backend("one", 80)), ("/x", "Prefix", backend("two", 80)))
                ]
            }
        )
    )
    assert [a["proxy"]["target_url"] for a in result.apis.values()] == ["http://one.shop.svc:80"]
    assert [p.reason for p in result.problems] == ["DuplicatePath"]


def test_default_backend_catches_what_each_host_does_not_route() -> None:
    obj = ingress(
        {
            "defaultBackend": backend("fallback", 80),
            "rules": [rule("a.com", ("/x", "Prefix", backend("x", 80)))],
        }
    )
    result = translate(obj)
    assert result.problems == []
    routes = sorted(
        (a["domain"], a["proxy"]["listen_path"], a["proxy"]["target_url"]) for a in result.apis.values()
    )
    assert routes == [
        ("", "/", "http://fallback.shop.svc:80"),
        ("a.com", "/", "http://fallback.shop.svc:80"),
        ("a.com", "/x{http:/|$}", "http://x.shop.svc:80"),
    ]


def test_host_fallthrough_is_reported() -> None:
    fallthrough = translate(
        ingress(
            {
                "rules": [
                    rule("a.com", ("/x", "Prefix", backend("x", 80))),
                    rule(None, ("/y", "Prefix", backend("y", 80))),
                ]
            }
        )
    )
    assert [p.reason for p in fallthrough.problems] == [
        "HostFallthrough"
    ] and "a.com" in fallthrough.problems[0].message


def test_a_precise_host_takes_precedence_over_a_wildcard() -> None:
    obj = ingress(
        {
            "rules": [
                rule("a.w.com", ("/", "Prefix", backend("precise", 80))),
                rule("*.w.com", ("/long/path", "Prefix", backend("wild", 80))),
            ]
        }
    )
    result = translate(obj)
    assert result.problems == []
    domains = sorted(a["domain"] for a in result.apis.values())
    assert domains == ["a.w.com", "{wildcard:[^.a][^.]*|a[^.][^.]*}.w.com"]
    for gateway in gateways(result.apis.values()):
        assert served_by(gateway, "http://a.w.com/long/path") == ("precise", 80)
        assert served_by(gateway, "http://a.w.com:8080/long/path") == ("precise", 80)
        assert served_by(gateway, "http://ab.w.com/long/path") == ("wild", 80)
        assert served_by(gateway, "http://b.w.com/long/path") == ("wild", 80)


@pytest.mark.parametrize("labels", [["a"], ["ab"], ["a", "ab", "b-c"], ["x1", "x2", "y"]])
def test_wildcard_label_pattern_excludes_exactly_the_precise_labels(labels: list[str]) -> None:
    domain = gateway_domain("*.w.com", [f"{label}.w.com" for label in labels] + ["deep.a.w.com", "w.com"])
    pattern = re.compile("^(?:" + domain[len("{wildcard:") : domain.rindex("}")] + ")$")
    assert ":" not in domain.replace("{wildcard:", "")
    for candidate in ["a", "ab", "abc", "b", "b-c", "b-", "x", "x1", "x12", "y", "yy", "1", "-"]:
        assert bool(pattern.match(candidate)) is (candidate not in labels), candidate


def test_exact_and_prefix_root_on_one_host() -> None:
    result = translate(
        ingress(
            {
                "rules": [
                    rule("a.com", ("/", "Exact", backend("home", 80)), ("/", "Prefix", backend("rest", 80)))
                ]
            }
        )
    )
    paths = sorted(a["proxy"]["listen_path"] for a in result.apis.values())
    assert paths == ["/{http:.+}", "/{http_exact:$}"]


def test_other_classes_of_this_controller_can_be_named() -> None:
    obj = {"metadata": {"name": "x"}, "spec": {"ingressClassName": "tyk-internal"}}
    assert not ingress_handled(obj, CONFIG)
    assert ingress_handled(obj, CONFIG, classes={"tyk-internal"})


def test_regex_looking_implementation_specific_paths_are_flagged() -> None:
    result = translate(
        ingress({"rules": [rule(None, ("/api/.*", "ImplementationSpecific", backend("web", 80)))]})
    )
    assert [p.reason for p in result.problems] == ["LiteralPath"] and len(result.apis) == 1


def test_an_unservable_default_backend_is_reported_once() -> None:
    resource = {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}}
    obj = ingress(
        {
            "defaultBackend": resource,
            "rules": [rule(h, ("/x", "Prefix", backend("x", 80))) for h in ("a.com", "b.com")],
        }
    )
    result = translate(obj)
    assert [(p.field, p.reason) for p in result.problems] == [
        ("spec.defaultBackend.resource", "UnsupportedBackend")
    ]
    assert len(result.apis) == 2
