"""Route requests through the gateway double over a translation's API definitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from tests.gateway_routing import Gateway, GatewayConfig
from tyk_gateway.models import ApiDefinition

#: The tyk-oss chart's routing settings, plus the HTTPS port the controller's APIs use.
CHART_GATEWAY = GatewayConfig(ports_whitelist={"https": frozenset({8443})})


def gateways(apis: Iterable[Mapping[str, Any]], seeds: int = 3) -> list[Gateway]:
    """The gateway as it loads these APIs, once per tie order of its unstable sort."""
    apis = list(apis)
    for api in apis:
        ApiDefinition.model_validate(api)
    loaded = [Gateway(apis, CHART_GATEWAY, seed=seed) for seed in range(seeds)]
    for gateway in loaded:
        assert gateway.refused == {}, gateway.refused
        renamed = {
            a["api_id"] for a in apis if gateway.loaded_listen_paths[a["api_id"]] != a["proxy"]["listen_path"]
        }
        assert not renamed, f"listen-path collisions: {renamed}"
    return loaded


def served_by(gateway: Gateway, url: str) -> tuple[str, int] | None:
    """(service, port) the request is proxied to, or None for a 404."""
    port = 8443 if url.startswith("https:") else None
    response = gateway.request(url, port=port)
    if response.status == 404:
        return None
    assert response.status == 200 and response.upstream, (url, response)
    netloc = urlsplit(response.upstream).netloc
    host, _, number = netloc.partition(":")
    return host.split(".")[0], int(number)


def upstream(gateway: Gateway, url: str) -> str | None:
    response = gateway.request(url, port=8443 if url.startswith("https:") else None)
    return response.upstream
