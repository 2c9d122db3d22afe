"""Several Ingresses on one gateway: routes that would collide (and all stop answering) are resolved."""

from __future__ import annotations

from tests.controller.routing_helpers import gateways, served_by
from tests.controller.test_translate import backend, ingress, translate
from tests.gateway_routing import Gateway
from tyk_controller.translate import resolve_conflicts, route_key


def rule_ingress(name: str, host: str, path: str, path_type: str, service: str) -> dict:
    return ingress(
        {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [{"path": path, "pathType": path_type, "backend": backend(service, 80)}]
                    },
                }
            ]
        },
        name=name,
    )


def test_without_resolution_the_gateway_loses_both_routes() -> None:
    old = translate(rule_ingress("old", "a.com", "/x", "Prefix", "old-svc")).apis
    new = translate(rule_ingress("new", "a.com", "/x", "Prefix", "new-svc")).apis
    gateway = Gateway([*old.values(), *new.values()])
    assert gateway.request("http://a.com/x").status == 404  # the double shows the gateway's renaming


def test_first_ingress_in_order_keeps_a_shared_route() -> None:
    old = translate(rule_ingress("old", "a.com", "/x", "Prefix", "old-svc")).apis
    new = translate(rule_ingress("new", "a.com", "/x", "Prefix", "new-svc")).apis
    other = translate(rule_ingress("new", "a.com", "/y", "Prefix", "y-svc")).apis
    resolution = resolve_conflicts(
        {("shop", "old"): old, ("shop", "new"): {**new, **other}}, order=[("shop", "old"), ("shop", "new")]
    )
    assert set(resolution.apis) == set(old) | set(other)
    [problem] = resolution.problems[("shop", "new")]
    assert problem.reason == "PathConflict" and "Ingress shop/old" in problem.message and not problem.fatal
    for gateway in gateways(resolution.apis.values()):
        assert served_by(gateway, "http://a.com/x") == ("old-svc", 80)
        assert served_by(gateway, "http://a.com/y/z") == ("y-svc", 80)


def test_apis_the_controller_does_not_own_always_win() -> None:
    mine = translate(rule_ingress("web", "a.com", "/x", "Prefix", "svc")).apis
    [api] = mine.values()
    foreign = {
        "api_id": "hand-made",
        "domain": "a.com",
        "proxy": {"listen_path": api["proxy"]["listen_path"]},
    }
    resolution = resolve_conflicts({("shop", "web"): mine}, order=[], foreign=[foreign])
    assert resolution.apis == {}
    assert "'hand-made'" in resolution.problems[("shop", "web")][0].message
    assert route_key(foreign) == route_key(api)


def test_prefix_root_of_one_ingress_leaves_slash_to_exact_root_of_another() -> None:
    prefix = translate(rule_ingress("all", "a.com", "/", "Prefix", "all-svc")).apis
    exact = translate(rule_ingress("home", "a.com", "/", "Exact", "home-svc")).apis
    both = [*prefix.values(), *exact.values()]
    winners = {Gateway(both, seed=seed).request("http://a.com/").api_id for seed in range(8)}
    assert winners == set(prefix) | set(exact)  # an unstable tie: either may answer "/"
    resolution = resolve_conflicts({("shop", "all"): prefix, ("shop", "home"): exact}, order=[])
    assert resolution.problems == {}
    for gateway in gateways(resolution.apis.values(), seeds=6):
        assert served_by(gateway, "http://a.com/") == ("home-svc", 80)
        assert served_by(gateway, "http://a.com/other") == ("all-svc", 80)


def test_precise_host_of_one_ingress_beats_the_wildcard_of_another() -> None:
    wild = translate(rule_ingress("wild", "*.w.com", "/long/path", "Prefix", "wild-svc")).apis
    precise = translate(rule_ingress("precise", "a.w.com", "/", "Prefix", "precise-svc")).apis
    pooled = Gateway([*wild.values(), *precise.values()])
    assert pooled.request("http://a.w.com/long/path").upstream.startswith("http://wild-svc.")  # type: ignore[union-attr]
    resolution = resolve_conflicts({("shop", "wild"): wild, ("shop", "precise"): precise}, order=[])
    for gateway in gateways(resolution.apis.values()):
        assert served_by(gateway, "http://a.w.com/long/path") == ("precise-svc", 80)
        assert served_by(gateway, "http://b.w.com/long/path") == ("wild-svc", 80)
    assert wild[next(iter(wild))]["domain"] == "{wildcard}.w.com"  # the translation's own output is unchanged
