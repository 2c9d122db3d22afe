"""The routing double (`tests/gateway_routing.py`) against cases taken from the gateway's own tests.

Sources (TykTechnologies/tyk): gateway/api_loader_test.go (TestSortSpecsByListenPath,
TestAPIsHavingShorterSubstringListenPathButLongerCustomDomain, TestListenPathConflictWhenCustomDomainIsDisabled),
gateway/reverse_proxy_test.go (TestSingleJoiningSlash), internal/httputil/mux_test.go (TestStripListenPath).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway_routing import (
    Gateway,
    GatewayConfig,
    listen_path_length,
    single_joining_slash,
    strip_listen_path,
)


def api(api_id: str, listen_path: str, target: str = "", **fields: Any) -> dict[str, Any]:
    proxy = {"listen_path": listen_path, "target_url": target or f"http://{api_id}"}
    proxy.update(fields.pop("proxy", {}))
    return {"api_id": api_id, "proxy": proxy, **fields}


def test_sort_key_matches_the_gateway_test_table() -> None:
    # TestSortSpecsByListenPath "Basic Parameter vs Static Path": expected order, longest first.
    expected = [
        "/path/specific/endpoint",
        "/path/{param}/endpoint",
        "/foo-bar-baz",
        "/bar/id/baz",
        "/bar/{id}/baz/{id}",
        "/bar/{id}/baz",
        "/foo-bar",
        "/bar/{id}",
        "/foo",
        "/foo",
        "/bar",
    ]
    lengths = [listen_path_length(p) for p in expected]
    assert lengths == sorted(lengths, reverse=True)
    assert listen_path_length("/bar/{id}/baz/{id}") == 10
    assert listen_path_length("/information-concept/something/ted/stuff/things") > listen_path_length(
        "/information-concept/something/{thisisalongidname}/stuff"
    )


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_longer_listen_path_wins_across_overlapping_domains(strict: bool, seed: int) -> None:
    # TestAPIsHavingShorterSubstringListenPathButLongerCustomDomain (TT-12873).
    apis = [
        api("api-a", "/test-classic", "http://a", domain="{subdomain:tyktest.io|abc.def.ghi}"),
        api("api-b", "/test-classic-extended", "http://b", domain="{subdomain:tyktest.io}"),
    ]
    gateway = Gateway(apis, GatewayConfig(enable_strict_routes=strict), seed=seed)
    assert gateway.request("http://tyktest.io/test-classic").api_id == "api-a"
    assert gateway.request("http://tyktest.io/test-classic-extended").api_id == "api-b"
    assert gateway.request("http://abc.def.ghi/test-classic-extended").api_id == (
        "api-a" if not strict else None
    )
    assert gateway.request("http://other.io/test-classic").status == 404


@pytest.mark.parametrize("seed", range(4))
def test_custom_domains_off_ignores_domain(seed: int) -> None:
    # TestListenPathConflictWhenCustomDomainIsDisabled: with the longer listen paths sorted first, the shorter
    # /caa (domain ignored) cannot shadow them, strict routes or not.
    paths = ["/caas2itsamu0456n07gfe", "/caas2itsamu04567m9pxl", "/caas2itsamu0456qnu2sj"]
    apis = [api(f"api-{i}", p) for i, p in enumerate(paths)] + [api("api-caa", "/caa", domain="test.com")]
    gateway = Gateway(apis, GatewayConfig(enable_custom_domains=False), seed=seed)
    for index, path in enumerate(paths):
        assert gateway.request(f"http://anything{path}").api_id == f"api-{index}"
    assert gateway.request("http://anything/caa/x").api_id == "api-caa"


def test_strict_routes_turn_a_near_miss_into_404_instead_of_falling_through() -> None:
    apis = [api("root", "/"), api("foo", "/foo")]
    strict = Gateway(apis)
    assert strict.request("http://h/foo/bar").api_id == "foo"
    assert strict.request("http://h/foo").api_id == "foo"
    assert strict.request("http://h/foobar").status == 404
    assert strict.request("http://h/other").api_id == "root"
    loose = Gateway(apis, GatewayConfig(enable_strict_routes=False))
    assert loose.request("http://h/foobar").api_id == "foo"
    # A listen path with a variable or a trailing slash is left to mux (explicitRouteSubpaths).
    templated = Gateway([api("root", "/"), api("foo", "/foo{x:/|$}")])
    assert templated.request("http://h/foobar").api_id == "root"
    assert templated.request("http://h/foo").api_id == "foo"


def test_listen_path_collision_renames_every_copy() -> None:
    gateway = Gateway(
        [api("one", "/same", domain="a.com"), api("two", "/same", domain="a.com"), api("three", "/same")]
    )
    assert gateway.loaded_listen_paths == {"one": "/same-one", "two": "/same-two", "three": "/same"}
    assert gateway.request("http://a.com/same").api_id == "three"  # both a.com copies lost the path
    assert gateway.request("http://a.com/same-one").api_id == "one"
    assert Gateway([api("one", "/same"), api("two", "/same")]).request("http://a.com/same").status == 404
    # ...unless that API was loaded before with that very path (gateway.getApiSpec in processSpec).
    kept = Gateway([api("one", "/same"), api("two", "/same")], previously_loaded={"one": "/same"})
    assert kept.loaded_listen_paths == {"one": "/same", "two": "/same-two"}


def test_every_api_also_answers_under_its_id() -> None:
    gateway = Gateway([api("abc", "/foo", domain="a.com")])
    assert gateway.request("http://a.com/abc/x").api_id == "abc"
    assert gateway.request("http://b.com/abc/x").status == 404


def test_host_templates() -> None:
    gateway = Gateway([api("wild", "/", domain="{w}.foo.com"), api("exact", "/", domain="foo.com")])
    assert gateway.request("http://bar.foo.com/").api_id == "wild"
    assert (
        gateway.request("http://bar.foo.com:8080/").api_id == "wild"
    )  # no ':' in the template: port ignored
    assert gateway.request("http://foo.com/").api_id == "exact"
    assert gateway.request("http://baz.bar.foo.com/").status == 404  # {w} is one label
    assert gateway.request("http://FOO.com/").status == 404  # case-sensitive
    literal = Gateway([api("star", "/", domain="*.foo.com")])
    assert literal.request("http://bar.foo.com/").status == 404  # '*' is a literal character


def test_apis_without_domain_come_after_every_api_with_one() -> None:
    gateway = Gateway([api("any-long", "/very/long/path"), api("host-root", "/", domain="a.com")])
    assert gateway.request("http://a.com/very/long/path").api_id == "host-root"
    assert gateway.request("http://b.com/very/long/path").api_id == "any-long"


def test_global_hostname_binds_apis_without_domain() -> None:
    gateway = Gateway([api("any", "/")], GatewayConfig(hostname="gw.example.com"))
    assert gateway.request("http://gw.example.com/").api_id == "any"
    assert gateway.request("http://other.example.com/").status == 404


def test_custom_ports_need_the_whitelist_and_one_protocol_per_port() -> None:
    tls = api("tls", "/long-path", protocol="https", listen_port=8443)
    plain_on_tls_port = api("plain", "/x", protocol="http", listen_port=8443)
    refused = Gateway([tls])
    assert "disabled port" in refused.refused["tls"]
    assert refused.request("https://a.com/long-path", port=8443).status == 0
    allowed = Gateway([tls, plain_on_tls_port], GatewayConfig(ports_whitelist={"https": frozenset({8443})}))
    assert allowed.request("https://a.com/long-path", port=8443).api_id == "tls"
    assert allowed.request("http://a.com/x", port=8443).status == 0
    assert "already serves https" in allowed.refused["plain"]
    # The first API in sort order claims the port: here the plain one, whose protocol isn't whitelisted.
    first = Gateway([api("tls", "/", protocol="https", listen_port=8443), plain_on_tls_port],
                    GatewayConfig(ports_whitelist={"https": frozenset({8443})}))  # fmt: skip
    assert "already serves http" in first.refused["tls"]
    assert "disabled port" in first.refused["plain"]
    assert (
        Gateway([tls], GatewayConfig(disable_ports_whitelist=True))
        .request("https://a/long-path", port=8443)
        .status
        == 200
    )
    # The control port is whitelisted for the listen port's protocol (setupPortsWhitelist).
    on_control = api("c", "/c", protocol="http", listen_port=9696)
    assert Gateway([on_control], GatewayConfig(control_api_port=9696)).refused == {}
    assert "disabled port" in Gateway([on_control]).refused["c"]


def test_unclean_paths_are_redirected() -> None:
    gateway = Gateway([api("root", "/")])
    assert gateway.request("http://h/a//b").location == "/a/b"
    assert gateway.request("http://h/a/../b/").location == "/b/"
    assert (
        Gateway([api("root", "/")], GatewayConfig(skip_url_cleaning=True)).request("http://h/a//b").status
        == 200
    )


def test_invalid_and_internal_apis_get_no_route() -> None:
    gateway = Gateway([api("empty", ""), api("space", "/a b"), api("internal", "/i", internal=True)])
    assert set(gateway.refused) == {"empty", "space", "internal"}


@pytest.mark.parametrize(
    ("target", "sub", "want"),
    [("", "", ""), ("/", "", ""), ("", "/", ""), ("/", "/", ""), ("foo", "", "foo"), ("foo", "/", "foo"),
     ("foo", "bar", "foo/bar"), ("foo/", "bar", "foo/bar"), ("foo", "/bar", "foo/bar"), ("foo/", "/bar", "foo/bar"),
     ("foo//", "//bar", "foo/bar"), ("foo", "bar/", "foo/bar/"), ("foo/", "bar/", "foo/bar/"),
     ("foo", "/bar/", "foo/bar/"), ("foo/", "/bar/", "foo/bar/"), ("foo//", "//bar/", "foo/bar/")],
)  # fmt: skip
def test_single_joining_slash(target: str, sub: str, want: str) -> None:
    assert single_joining_slash(target, sub, False) == want


@pytest.mark.parametrize(
    ("target", "sub", "want"),
    [("", "", ""), ("/", "", "/"), ("", "/", ""), ("/", "/", "/"), ("foo", "", "foo"), ("foo", "/", "foo"),
     ("foo/", "", "foo/"), ("foo/", "/", "foo/"), ("foo/", "/name", "foo/name"), ("foo/", "/name/", "foo/name/"),
     ("foo/", "//name", "foo/name"), ("foo/", "//name/", "foo/name/")],
)  # fmt: skip
def test_single_joining_slash_without_strip_slash(target: str, sub: str, want: str) -> None:
    assert single_joining_slash(target, sub, True) == want


@pytest.mark.parametrize(
    ("listen_path", "path", "want"),
    [("/listen", "/listen/get", "/get"), ("/listen/", "/listen/get", "/get"), ("listen", "listen/get", "/get"),
     ("listen/", "listen/get", "/get"), ("/listen/", "/listen/", "/"), ("/listen", "/listen", "/"),
     ("listen/", "", "/"), ("/{_:.*}/post/", "/listen/post/get", "/get"), ("/{_:.*}/", "/listen/get", "/get"),
     ("/pre/{_:.*}/", "/pre/listen/get", "/get"), ("/{_:.*}", "/listen", "/"),
     ("/{myPattern:foo|bar}", "/foo/get", "/get"), ("/{myPattern:foo|bar}", "/anything/get", "/anything/get")],
)  # fmt: skip
def test_strip_listen_path(listen_path: str, path: str, want: str) -> None:
    assert strip_listen_path(listen_path, path) == want


def test_upstream_url() -> None:
    stripped = api("s", "/svc", "http://backend:8000/base?k=1", proxy={"strip_listen_path": True})
    kept = api("k", "/keep", "http://backend:8000")
    gateway = Gateway([stripped, kept])
    assert gateway.request("http://h/svc/items?q=2").upstream == "http://backend:8000/base/items?k=1&q=2"
    assert gateway.request("http://h/keep/items").upstream == "http://backend:8000/keep/items"
