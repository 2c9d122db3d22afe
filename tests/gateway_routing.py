"""A test double of how Tyk Gateway picks the API (and the upstream URL) for a proxied request.

Written from the gateway source (TykTechnologies/tyk v5.13.1, unchanged on master), not from what the
controller generates:

* ``gateway/api_loader.go``: ``loadApps`` sorts every spec with ``sortSpecsByListenPath`` (with
  ``enable_custom_domains``, specs with a ``domain`` first; then ``listenPathLength`` descending; ``sort.Slice``
  is not stable, so equal keys come out in no defined order: this double shuffles them with a seeded RNG),
  counts ``domain + listen_path`` (``countApisByListenHash``) and, in ``processSpec``, renames every API that
  shares one (``<listen_path>-<api_id>``, then ``_`` until unique) unless it was loaded before with that path.
  ``skipSpecBecauseInvalid`` skips HTTP APIs with an empty or space-containing listen path; ``internal`` APIs
  get no route. ``loadHTTPService`` picks the router of (``listen_port`` or the global port, ``protocol``), adds
  ``Host(domain)`` when custom domains are on and the API has a domain (else ``Host(hostname)`` when the
  global ``hostname`` is set), then one ``PathPrefix`` route for ``/<api_id>/`` and one for the listen path.
  ``explicitRouteSubpaths`` (``enable_strict_routes``) wraps the handler of a listen path that neither ends in
  ``/`` nor contains ``{…}``: a path that is neither the prefix nor under ``<prefix>/`` gets a 404, without
  falling through to the next route.
* ``gateway/proxy_muxer.go``: one router per port; a second protocol on a port is refused (the API is not
  routed); a port other than the global listen port needs ``ports_whitelist[protocol]`` or
  ``disable_ports_whitelist``. Unmatched requests get the router's 404.
* gorilla/mux v1.8.1 (``regexp.go``, ``mux.go``): templates ``{name}`` / ``{name:regex}``; default pattern
  ``[^.]+`` in hosts and ``[^/]+`` in paths; path prefixes are anchored at the start only; host templates
  without a ``:`` ignore the request's port; matching is case-sensitive; the root router first redirects
  (301) a path that ``cleanPath`` changes, unless ``skip_url_cleaning``.
* ``internal/httputil/mux.go`` ``StripListenPath`` and ``gateway/reverse_proxy.go`` ``singleJoiningSlash``:
  how the upstream URL is built.
"""

from __future__ import annotations

import posixpath
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

_SCHEMES = {"http": "http", "h2c": "http", "https": "https"}


@dataclass(frozen=True)
class GatewayConfig:
    """The ``tyk.conf`` settings that affect routing; defaults are what the tyk-oss chart renders."""

    enable_custom_domains: bool = True  # chart: gateway.enableCustomDomains: true
    enable_strict_routes: bool = True  # chart: gateway.enableStrictRoutes: true
    hostname: str = ""  # TYK_GW_HOSTNAME: the chart's gateway.hostName is not rendered into it
    listen_port: int = 8080
    control_api_port: int = 0  # whitelisted too (setupPortsWhitelist), for the listen port's protocol
    use_ssl: bool = False
    skip_url_cleaning: bool = False
    disable_ports_whitelist: bool = False
    ports_whitelist: Mapping[str, frozenset[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int  # 200: proxied; 404: no API; 301: path cleaning redirect; 0: no listener for this port/scheme
    api_id: str | None = None
    upstream: str | None = None  # the URL the gateway would call
    location: str | None = None


def brace_indices(template: str) -> list[tuple[int, int]]:
    """Spans of the top-level ``{…}`` groups (gorilla/mux ``braceIndices``); unbalanced braces raise."""
    level, start, spans = 0, 0, []
    for index, char in enumerate(template):
        if char == "{":
            level += 1
            if level == 1:
                start = index
        elif char == "}":
            level -= 1
            if level == 0:
                spans.append((start, index + 1))
            elif level < 0:
                raise ValueError(f"mux: unbalanced braces in {template!r}")
    if level != 0:
        raise ValueError(f"mux: unbalanced braces in {template!r}")
    return spans


def mux_regexp(template: str, kind: str) -> re.Pattern[str]:
    """gorilla/mux ``newRouteRegexp`` for ``kind`` "host" (anchored both ends) or "prefix" (start only)."""
    default = "[^.]+" if kind == "host" else "[^/]+"
    pattern, end = "^", 0
    for number, (start, stop) in enumerate(brace_indices(template)):
        name, _, variable = template[start + 1 : stop - 1].partition(":")
        variable = variable or default
        if not name:
            raise ValueError(f"mux: missing name or pattern in {template[start:stop]!r}")
        pattern += re.escape(template[end:start]) + f"(?P<v{number}>{variable})"
        end = stop
    pattern += re.escape(template[end:])
    if kind == "host":
        pattern += "$"
    compiled = re.compile(pattern)
    if compiled.groups != len(brace_indices(template)):
        raise ValueError(f"route {template} contains capture groups in its regexp")
    return compiled


def listen_path_length(listen_path: str) -> int:
    """``listenPathLength``: segments wholly inside ``{…}`` don't count."""
    if "{" not in listen_path:
        return len(listen_path)
    length = listen_path.count("/")
    for segment in listen_path.split("/"):
        if len(segment) > 2 and segment[0] == "{" and segment[-1] == "}":
            continue
        length += len(segment)
    return length


def clean_path(path: str) -> str:
    """gorilla/mux ``cleanPath``: ``path.Clean`` that keeps a trailing slash."""
    if path == "":
        return "/"
    if path[0] != "/":
        path = "/" + path
    cleaned = posixpath.normpath(path)
    cleaned = "/" + cleaned.lstrip("/")  # normpath keeps a leading "//"; path.Clean doesn't
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def strip_listen_path(listen_path: str, path: str) -> str:
    """``httputil.StripListenPath``."""
    if path.startswith(listen_path):
        result = path[len(listen_path) :]
    elif "{" in listen_path and listen_path.count("{") == listen_path.count("}"):
        result = mux_regexp(listen_path, "prefix").sub("", path)
    else:
        result = path
    return result if result.startswith("/") else "/" + result


def single_joining_slash(target_path: str, sub_path: str, disable_strip_slash: bool) -> str:
    if disable_strip_slash and (sub_path in ("", "/")):
        return target_path
    target_path = target_path.rstrip("/")
    sub_path = sub_path.lstrip("/")
    return f"{target_path}/{sub_path}" if sub_path else target_path


@dataclass
class _Route:
    api: Mapping[str, Any]
    host: re.Pattern[str] | None
    host_ignores_port: bool
    prefix: str
    path: re.Pattern[str]
    strict: bool


@dataclass
class _Listener:
    protocol: str
    routes: list[_Route] = field(default_factory=list)


class Gateway:
    """The routing table one gateway builds from a set of API definitions (one reload)."""

    def __init__(
        self,
        apis: Iterable[Mapping[str, Any]],
        config: GatewayConfig | None = None,
        *,
        seed: int = 0,
        previously_loaded: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or GatewayConfig()
        self.listeners: dict[int, _Listener] = {}
        self.refused: dict[str, str] = {}  # api_id -> why the gateway gave it no route
        self.loaded_listen_paths: dict[str, str] = {}  # api_id -> listen path after collision renames
        specs = [dict(api, proxy=dict(api.get("proxy") or {})) for api in apis]
        random.Random(seed).shuffle(specs)  # sort.Slice is not stable: equal keys in any order
        conf = self.config
        specs.sort(
            key=lambda s: (
                conf.enable_custom_domains and not s.get("domain"),
                -listen_path_length(s["proxy"].get("listen_path", "")),
            )
        )
        counts: dict[str, int] = {}
        for spec in specs:
            key = self._domain(spec) + spec["proxy"].get("listen_path", "")
            counts[key] = counts.get(key, 0) + 1
        for spec in specs:
            self._load(spec, counts, previously_loaded or {})
        # proxyMux.serve -> generateListener checks the whitelist, to which setupPortsWhitelist (server.go)
        # has added the listen and control ports for the listen port's protocol.
        main_protocol = "https" if conf.use_ssl else "http"
        for port, listener in list(self.listeners.items()):
            allowed = set(conf.ports_whitelist.get(listener.protocol, frozenset()))
            if listener.protocol == main_protocol:
                allowed |= {conf.listen_port, conf.control_api_port}
            if not conf.disable_ports_whitelist and port not in allowed:
                for route in listener.routes:
                    self.refused[str(route.api.get("api_id"))] = (
                        f"{listener.protocol}:{port} trying to open disabled port"
                    )
                del self.listeners[port]

    @staticmethod
    def _domain(spec: Mapping[str, Any]) -> str:
        return "" if spec.get("domain_disabled") else str(spec.get("domain") or "")

    def _load(self, spec: dict[str, Any], counts: Mapping[str, int], previous: Mapping[str, str]) -> None:
        conf, api_id = self.config, str(spec.get("api_id") or "")
        proxy = spec["proxy"]
        protocol = spec.get("protocol") or ("https" if conf.use_ssl else "http")
        if protocol not in ("http", "https", "h2c"):
            self.refused[api_id] = f"protocol {protocol!r} is not HTTP"
            return
        listen_path = str(proxy.get("listen_path") or "")
        if not listen_path or " " in listen_path:
            self.refused[api_id] = "listen path empty or with spaces"
            return
        if spec.get("internal"):
            self.refused[api_id] = "internal"
            return
        if counts[self._domain(spec) + listen_path] >= 2 and previous.get(api_id) != listen_path:
            listen_path += "-" + api_id
            while counts.get(self._domain(spec) + listen_path, 0) >= 2:
                listen_path += "_"
            proxy["listen_path"] = listen_path
        self.loaded_listen_paths[api_id] = listen_path
        port = int(spec.get("listen_port") or 0) or conf.listen_port
        listener = self.listeners.get(port)
        if listener is None:
            listener = self.listeners[port] = _Listener(protocol)
        elif listener.protocol != protocol:  # proxyMux.router returns nil; setRouter refuses the new one
            self.refused[api_id] = f"port {port} already serves {listener.protocol}"
            return
        hostname = conf.hostname
        if conf.enable_custom_domains and spec.get("domain"):
            hostname = self._domain(spec)
        host = mux_regexp(hostname, "host") if hostname else None
        host_ignores_port = host is not None and ":" not in host.pattern
        for prefix in (f"/{api_id}/", listen_path):
            strict = (
                conf.enable_strict_routes
                and not prefix.endswith("/")
                and not ("{" in prefix and "}" in prefix)
            )
            listener.routes.append(
                _Route(spec, host, host_ignores_port, prefix, mux_regexp(prefix, "prefix"), strict)
            )

    def request(self, url: str, *, port: int | None = None) -> Response:
        """Serve ``url`` (``http://host[:port]/path?query``) arriving on ``port`` (default: the global port)."""
        parts = urlsplit(url)
        listener = self.listeners.get(port or self.config.listen_port)
        if listener is None or _SCHEMES[listener.protocol] != parts.scheme:
            return Response(0)
        path = unquote(parts.path) or "/"
        if not self.config.skip_url_cleaning and clean_path(path) != path:
            return Response(301, location=clean_path(path))
        host_header = parts.netloc
        for route in listener.routes:
            if route.host is not None:
                host = host_header.split(":", 1)[0] if route.host_ignores_port else host_header
                if not route.host.match(host):
                    continue
            if not route.path.match(path):
                continue
            if route.strict and not (path == route.prefix or path.startswith(route.prefix + "/")):
                return Response(404)
            return Response(200, str(route.api.get("api_id")), self._upstream(route.api, path, parts.query))
        return Response(404)

    @staticmethod
    def _upstream(api: Mapping[str, Any], path: str, query: str) -> str:
        proxy = api["proxy"]
        if proxy.get("strip_listen_path"):
            path = strip_listen_path(proxy["listen_path"], path)
        target = urlsplit(str(proxy.get("target_url") or ""))
        joined = single_joining_slash(target.path, path, bool(proxy.get("disable_strip_slash")))
        full_query = f"{target.query}&{query}" if target.query and query else target.query + query
        return f"{target.scheme}://{target.netloc}{joined}" + (f"?{full_query}" if full_query else "")
