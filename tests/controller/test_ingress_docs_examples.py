"""Every Ingress example of the Kubernetes Ingress documentation, translated and routed.

Examples: kubernetes/website content/en/docs/concepts/services-networking/ingress.md and its files under
content/en/examples/service/networking/ (minimal-ingress, test-ingress, ingress-resource-backend,
simple-fanout-example, name-virtual-host-ingress, name-virtual-host-ingress-no-third-host,
ingress-wildcard-host, tls-example-ingress, default-ingressclass, external-lb), copied verbatim except
``ingressClassName`` where the example names another controller's class. For each: the API definitions the
controller produces, and where the gateway (``tests/gateway_routing.py``) sends requests, checked against the
documentation's own statements and against ``ingress_reference.backend_for``.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from tests.controller.ingress_reference import backend_for
from tests.controller.routing_helpers import gateways, served_by, upstream
from tests.controller.test_translate import CONFIG, translate
from tests.controller.tls_fixtures import certificate, tls_secret
from tyk_controller.translate import ingress_handled, owner_of


def load(text: str, class_name: str | None = "tyk") -> dict[str, Any]:
    ingress = yaml.safe_load(text)
    ingress["metadata"].setdefault("namespace", "default")
    if class_name:
        ingress["spec"]["ingressClassName"] = class_name
    return ingress


def check_routes(
    ingress: dict[str, Any], expectations: dict[str, tuple[str, int] | None], **kwargs: Any
) -> dict:
    result = translate(ingress, **kwargs)
    assert not result.fatal, result.problems
    for api in result.apis.values():
        assert owner_of(api) == (ingress["metadata"]["namespace"], ingress["metadata"]["name"])
    for gateway in gateways(result.apis.values()):
        for url, expected in expectations.items():
            assert served_by(gateway, url) == expected, url
            if url.startswith("http:"):
                parts = urlsplit(url)
                assert backend_for(ingress, parts.hostname or "", parts.path or "/") == expected, url
    return result.apis


MINIMAL = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: minimal-ingress
spec:
  ingressClassName: nginx-example
  rules:
  - http:
      paths:
      - path: /testpath
        pathType: Prefix
        backend:
          service:
            name: test
            port:
              number: 80
"""


def test_minimal_ingress() -> None:
    as_published = load(MINIMAL, class_name=None)
    assert not ingress_handled(as_published, CONFIG)  # class nginx-example belongs to another controller
    apis = check_routes(
        load(MINIMAL),
        {
            "http://anything.example/testpath": ("test", 80),
            "http://anything.example/testpath/": ("test", 80),
            "http://anything.example/testpath/sub?q=1": ("test", 80),
            "http://anything.example/testpathx": None,
            "http://anything.example/": None,
        },
    )
    [api] = apis.values()
    assert api["domain"] == "" and api["proxy"]["listen_path"] == "/testpath{http:/|$}"
    assert (
        api["proxy"]["target_url"] == "http://test.default.svc:80"
        and api["proxy"]["strip_listen_path"] is False
    )
    [gateway] = gateways(apis.values(), seeds=1)
    assert upstream(gateway, "http://a/testpath/sub?q=1") == "http://test.default.svc:80/testpath/sub?q=1"


TEST_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: test-ingress
spec:
  defaultBackend:
    service:
      name: test
      port:
        number: 80
"""


def test_single_service_ingress_default_backend() -> None:
    apis = check_routes(
        load(TEST_INGRESS),
        {"http://203.0.113.123/": ("test", 80), "http://any.host/any/path": ("test", 80)},
    )
    [api] = apis.values()
    assert api["proxy"]["listen_path"] == "/" and api["domain"] == ""


RESOURCE_BACKEND = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ingress-resource-backend
spec:
  defaultBackend:
    resource:
      apiGroup: k8s.example.com
      kind: StorageBucket
      name: static-assets
  rules:
    - http:
        paths:
          - path: /icons
            pathType: ImplementationSpecific
            backend:
              resource:
                apiGroup: k8s.example.com
                kind: StorageBucket
                name: icon-assets
"""


def test_resource_backends_are_reported_not_dropped_silently() -> None:
    result = translate(load(RESOURCE_BACKEND))
    assert result.apis == {} and not result.fatal
    assert [(p.field, p.reason) for p in result.problems] == [
        ("spec.rules[0].http.paths[0].backend.resource", "UnsupportedBackend"),
        ("spec.defaultBackend.resource", "UnsupportedBackend"),
    ]
    assert "StorageBucket" in result.problems[0].message


FANOUT = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: simple-fanout-example
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - path: /foo
        pathType: Prefix
        backend:
          service:
            name: service1
            port:
              number: 4200
      - path: /bar
        pathType: Prefix
        backend:
          service:
            name: service2
            port:
              number: 8080
"""


def test_simple_fanout() -> None:
    apis = check_routes(
        load(FANOUT),
        {
            "http://foo.bar.com/foo": ("service1", 4200),
            "http://foo.bar.com/foo/x": ("service1", 4200),
            "http://foo.bar.com/bar": ("service2", 8080),
            "http://foo.bar.com/": None,
            "http://foo.bar.com/foobar": None,
            "http://other.com/foo": None,
        },
    )
    assert {a["domain"] for a in apis.values()} == {"foo.bar.com"}


VIRTUAL_HOSTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: name-virtual-host-ingress
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - pathType: Prefix
        path: "/"
        backend:
          service:
            name: service1
            port:
              number: 80
  - host: bar.foo.com
    http:
      paths:
      - pathType: Prefix
        path: "/"
        backend:
          service:
            name: service2
            port:
              number: 80
"""


def test_name_based_virtual_hosting() -> None:
    check_routes(
        load(VIRTUAL_HOSTS),
        {
            "http://foo.bar.com/": ("service1", 80),
            "http://foo.bar.com:80/x": ("service1", 80),
            "http://bar.foo.com/anything": ("service2", 80),
            "http://baz.com/": None,
        },
    )


VIRTUAL_HOSTS_THIRD = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: name-virtual-host-ingress-no-third-host
spec:
  rules:
  - host: first.bar.com
    http:
      paths:
      - pathType: Prefix
        path: "/"
        backend:
          service:
            name: service1
            port:
              number: 80
  - host: second.bar.com
    http:
      paths:
      - pathType: Prefix
        path: "/"
        backend:
          service:
            name: service2
            port:
              number: 80
  - http:
      paths:
      - pathType: Prefix
        path: "/"
        backend:
          service:
            name: service3
            port:
              number: 80
"""


def test_name_based_virtual_hosting_with_a_catch_all_rule() -> None:
    # "traffic requested for first.bar.com to service1, second.bar.com to service2, and any traffic whose
    # request host header doesn't match first.bar.com and second.bar.com to service3"
    check_routes(
        load(VIRTUAL_HOSTS_THIRD),
        {
            "http://first.bar.com/": ("service1", 80),
            "http://second.bar.com/x": ("service2", 80),
            "http://third.bar.com/": ("service3", 80),
            "http://203.0.113.123/": ("service3", 80),
        },
    )


WILDCARD = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ingress-wildcard-host
spec:
  rules:
  - host: "foo.bar.com"
    http:
      paths:
      - pathType: Prefix
        path: "/bar"
        backend:
          service:
            name: service1
            port:
              number: 80
  - host: "*.foo.com"
    http:
      paths:
      - pathType: Prefix
        path: "/foo"
        backend:
          service:
            name: service2
            port:
              number: 80
"""


def test_wildcard_host() -> None:
    # Hostname wildcards table: *.foo.com matches bar.foo.com, not baz.bar.foo.com, not foo.com.
    apis = check_routes(
        load(WILDCARD),
        {
            "http://foo.bar.com/bar": ("service1", 80),
            "http://bar.foo.com/foo": ("service2", 80),
            "http://baz.bar.foo.com/foo": None,
            "http://foo.com/foo": None,
        },
    )
    assert {a["domain"] for a in apis.values()} == {"foo.bar.com", "{wildcard}.foo.com"}


TLS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: tls-example-ingress
spec:
  tls:
  - hosts:
      - https-example.foo.com
    secretName: testsecret-tls
  rules:
  - host: https-example.foo.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: service1
            port:
              number: 80
"""


def test_tls() -> None:
    cert = certificate(["https-example.foo.com"])
    secrets = {("default", "testsecret-tls"): tls_secret(cert)}
    apis = check_routes(
        load(TLS),
        {
            "https://https-example.foo.com/": ("service1", 80),
            "https://https-example.foo.com/x": ("service1", 80),
            "http://https-example.foo.com/": ("service1", 80),
            "https://other.foo.com/": None,
        },
        tls_secrets=secrets,
    )
    cert_id = CONFIG.org_id + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    https = [a for a in apis.values() if a["protocol"] == "https"]
    assert len(https) == 1 and https[0]["certificates"] == [cert_id] and https[0]["listen_port"] == 8443
    assert translate(load(TLS), tls_secrets=secrets).certificates.keys() == {cert_id}


# The documentation's "Examples" table of path matching: (kind, paths, request paths, matches).
PATH_TABLE = [
    ("Prefix", ["/"], ["/", "/anything", "/a/b/"], True),
    ("Exact", ["/foo"], ["/foo"], True),
    ("Exact", ["/foo"], ["/bar"], False),
    ("Exact", ["/foo"], ["/foo/"], False),
    ("Exact", ["/foo/"], ["/foo"], False),
    ("Prefix", ["/foo"], ["/foo", "/foo/"], True),
    ("Prefix", ["/foo/"], ["/foo", "/foo/"], True),
    ("Prefix", ["/aaa/bb"], ["/aaa/bbb"], False),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbb"], True),
    ("Prefix", ["/aaa/bbb/"], ["/aaa/bbb"], True),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbb/"], True),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbb/ccc"], True),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbbxyz"], False),
    ("Prefix", ["/", "/aaa"], ["/aaa/ccc"], "/aaa"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], ["/aaa/bbb"], "/aaa/bbb"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], ["/ccc"], "/"),
    ("Prefix", ["/aaa"], ["/ccc"], False),  # "No, uses default backend"
    ("Mixed", ["/foo", "/foo"], ["/foo"], "Exact"),
]


@pytest.mark.parametrize("with_default", [False, True])
@pytest.mark.parametrize(("kind", "paths", "requests", "matches"), PATH_TABLE)
def test_path_matching_table(
    kind: str, paths: list[str], requests: list[str], matches: Any, with_default: bool
) -> None:
    types = ["Prefix", "Exact"] if kind == "Mixed" else [kind] * len(paths)
    items: list[dict[str, Any]] = [
        {"path": path, "pathType": path_type,
         "backend": {"service": {"name": f"svc-{path_type.lower()}{path.replace('/', '-')}", "port": {"number": 80}}}}
        for path, path_type in zip(paths, types, strict=True)
    ]  # fmt: skip
    spec: dict[str, Any] = {"ingressClassName": "tyk", "rules": [{"http": {"paths": items}}]}
    if with_default:
        spec["defaultBackend"] = {"service": {"name": "default-backend", "port": {"number": 80}}}
    ingress = {"metadata": {"name": "paths", "namespace": "default"}, "spec": spec}
    if matches is False:
        expected = ("default-backend", 80) if with_default else None
    elif matches is True:
        expected = (items[0]["backend"]["service"]["name"], 80)
    else:  # the path (or the path type) the table says wins
        [winner] = [i for i in items if matches in (i["path"], i["pathType"])]
        expected = (winner["backend"]["service"]["name"], 80)
    check_routes(ingress, {f"http://example.com{request}": expected for request in requests})


DEFAULT_CLASS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  labels:
    app.kubernetes.io/component: controller
  name: example-class
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: k8s.io/example-class
"""
EXTERNAL_LB = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: external-lb
spec:
  controller: example.com/ingress-controller
  parameters:
    apiGroup: k8s.example.com
    kind: IngressParameters
    name: external-lb
"""


def test_ingress_class() -> None:
    # An Ingress names its class; one without a class gets the default class (is-default-class), and the
    # runtime tells ingress_handled whether that default class is ours.
    external = yaml.safe_load(EXTERNAL_LB)
    default = yaml.safe_load(DEFAULT_CLASS)
    assert default["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    classless = load(MINIMAL, class_name=None)
    del classless["spec"]["ingressClassName"]
    named = load(MINIMAL, class_name=external["metadata"]["name"])
    assert not ingress_handled(named, CONFIG)
    assert ingress_handled(named, CONFIG.model_copy(update={"ingress_class": "external-lb"}))
    assert not ingress_handled(classless, CONFIG, default_class=False)  # the default class is someone else's
    assert ingress_handled(classless, CONFIG, default_class=True)  # our class is the default
    legacy = {
        **classless,
        "metadata": {**classless["metadata"], "annotations": {"kubernetes.io/ingress.class": "tyk"}},
    }
    assert ingress_handled(legacy, CONFIG)
