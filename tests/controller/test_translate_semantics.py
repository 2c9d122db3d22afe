"""Randomised: for many Ingresses and requests, the gateway (double) routes as Kubernetes specifies.

Every generated Ingress is translated; the definitions are loaded into the routing double once per tie order
of the gateway's unstable sort; each request's backend is compared with `ingress_reference.backend_for`.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.controller.ingress_reference import backend_for, host_matches
from tests.controller.routing_helpers import gateways, served_by
from tests.controller.test_translate import translate
from tests.controller.tls_fixtures import certificate, tls_secret

SEGMENTS = ["a", "aa", "b"]
RULE_HOSTS = ["", "x.com", "y.com", "*.w.com", "a.w.com", "ab.w.com", "a-b.w.com"]
REQUEST_HOSTS = [
    "x.com",
    "y.com",
    "a.w.com",
    "ab.w.com",
    "abc.w.com",
    "a-b.w.com",
    "b.w.com",
    "c.a.w.com",
    "w.com",
    "z.com",
]


def random_path(rng: random.Random) -> str:
    path = "/" + "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(0, 3)))
    if path != "/" and rng.random() < 0.3:
        path += "/"
    return path


def random_ingress(rng: random.Random) -> dict[str, Any]:
    services = iter(range(1, 1000))

    def backend() -> dict[str, Any]:
        return {"service": {"name": f"svc{next(services)}", "port": {"number": 80}}}

    rules = []
    for host in rng.sample(RULE_HOSTS, rng.randint(1, 4)):
        paths = [
            {"path": random_path(rng), "pathType": rng.choice(["Exact", "Prefix", "ImplementationSpecific"]),
             "backend": backend()}
            for _ in range(rng.randint(1, 5))
        ]  # fmt: skip
        rules.append({"host": host, "http": {"paths": paths}} if host else {"http": {"paths": paths}})
    spec: dict[str, Any] = {"ingressClassName": "tyk", "rules": rules}
    if rng.random() < 0.4:
        spec["defaultBackend"] = backend()
    return {"metadata": {"name": "random", "namespace": "ns"}, "spec": spec}


@pytest.mark.parametrize("seed", range(150))
def test_gateway_routes_like_kubernetes(seed: int) -> None:
    rng = random.Random(seed)
    ingress = random_ingress(rng)
    result = translate(ingress)
    assert not result.fatal, result.problems
    fallthrough = any(p.reason == "HostFallthrough" for p in result.problems)
    requests = [(host, random_path(rng)) for host in REQUEST_HOSTS for _ in range(12)]
    for gateway in gateways(result.apis.values()):
        for host, path in requests:
            expected = backend_for(ingress, host, path)
            rules = ingress["spec"]["rules"]
            if (
                expected is None
                and fallthrough
                and any(r.get("host") and host_matches(r["host"], host) for r in rules)
            ):
                # Documented (and reported) difference: the host-less rules catch what the host's rules don't.
                expected = backend_for(
                    {"spec": {"rules": [r for r in rules if not r.get("host")]}}, host, path
                )
            assert served_by(gateway, f"http://{host}{path}") == expected, (host, path, ingress["spec"])


@pytest.mark.parametrize("seed", range(40))
def test_https_routes_like_http_for_tls_hosts(seed: int) -> None:
    rng = random.Random(1000 + seed)
    ingress = random_ingress(rng)
    rule_hosts = sorted({r.get("host", "") for r in ingress["spec"]["rules"]})
    tls_hosts = [h for h in rule_hosts if rng.random() < 0.7]
    ingress["spec"]["tls"] = [{"hosts": [h for h in tls_hosts if h] or [""], "secretName": "tls"}]
    if "" in tls_hosts and [h for h in tls_hosts if h]:
        ingress["spec"]["tls"].append({"secretName": "tls"})  # no hosts: the host-less rules
    secret = tls_secret(certificate(["x.com", "y.com", "*.w.com"]))
    result = translate(ingress, tls_secrets={("ns", "tls"): secret})
    assert not result.fatal, result.problems
    fallthrough = any(p.reason == "HostFallthrough" for p in result.problems)
    rules = ingress["spec"]["rules"]
    for gateway in gateways(result.apis.values()):
        for host in REQUEST_HOSTS:
            for _ in range(6):
                path = random_path(rng)
                matched = [
                    r.get("host", "") for r in rules if r.get("host") and host_matches(r["host"], host)
                ]
                served_rules = matched if matched else [""]
                if not all(h in tls_hosts for h in served_rules):
                    continue  # partly TLS: the HTTPS port serves only the TLS hosts' routes
                expected = backend_for(ingress, host, path)
                if expected is None and fallthrough and matched:
                    expected = backend_for(
                        {"spec": {"rules": [r for r in rules if not r.get("host")]}}, host, path
                    )
                    if "" not in tls_hosts:
                        expected = None
                assert served_by(gateway, f"https://{host}{path}") == expected, (host, path, ingress["spec"])
