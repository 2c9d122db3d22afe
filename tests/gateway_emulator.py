"""An in-process emulator of the Tyk Gateway control API (``/tyk/...``), for tests and benchmarks.

It is a real HTTP/1.1 server on 127.0.0.1 (keep-alive, like Go's server) that follows
``tyk-gateway-api.md`` and the gateway source (TykTechnologies/tyk v5.14.0,
``gateway/api.go`` and ``gateway/server.go``):

* auth first (403 with the exact message), then ``/tyk`` prefix and trailing slashes
  stripped; JSON 405 for a wrong method, plain-text 404 for unknown paths;
* JSON written like Go's ``json.Encoder``: compact, HTML-escaped, trailing newline;
* two stores: *disk* (real files in ``apps/`` and ``policies/``, written by the REST
  handlers) and *loaded* (in memory, served by GET and used for API existence checks);
  a reload copies disk to loaded;
* bodies decoded like Go's ``encoding/json`` into the gateway structs: unknown fields
  dropped, type mismatches are ``Request malformed``, and everything read back is the
  full struct with zero values;
* a reload queue drained by a ticker (``reload_interval``) that runs one reload for all
  queued requests; ``/tyk/reload?block=true`` waits for it;
* counters of every request and every reload, and fault switches (``Faults``).

Each emulator is one gateway replica; ``/tyk/reload/group`` queues a reload on it (the
real gateway does so via Redis pub/sub).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import json
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

AUTH_FAILED = "Attempted administrative access with invalid or missing key!"
POLICY_ID_RE = re.compile(r"^[a-zA-Z0-9.\-_~]+$")
OBJECT_ID_RE = re.compile(r"^[0-9a-fA-F]{24}$")


class Malformed(Exception):
    """The body would not decode into the Go struct (the gateway answers 400 Request malformed)."""


# --- A tiny model of Go's encoding/json for the gateway structs ------------------------------------


class Spec:
    def zero(self) -> Any:
        return None

    def decode(self, value: Any) -> Any:
        raise NotImplementedError


class Str(Spec):
    def zero(self) -> Any:
        return ""

    def decode(self, value: Any) -> Any:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise Malformed
        return value


class Bool(Spec):
    def zero(self) -> Any:
        return False

    def decode(self, value: Any) -> Any:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise Malformed
        return value


class Int(Spec):
    def zero(self) -> Any:
        return 0

    def decode(self, value: Any) -> Any:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise Malformed  # Go refuses 3.0 for an int
        return value


class Float(Spec):
    def zero(self) -> Any:
        return 0

    def decode(self, value: Any) -> Any:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Malformed
        return value


class ObjectId(Spec):
    def zero(self) -> Any:
        return ""

    def decode(self, value: Any) -> Any:
        if value in (None, ""):
            return ""
        if not isinstance(value, str) or not OBJECT_ID_RE.fullmatch(value):
            raise Malformed
        return value.lower()


class AnyJSON(Spec):
    def decode(self, value: Any) -> Any:
        return value


@dataclass
class ListOf(Spec):
    item: Spec

    def decode(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list):
            raise Malformed
        return [self.item.decode(v) for v in value]


@dataclass
class MapOf(Spec):
    item: Spec

    def decode(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Malformed
        return {k: self.item.decode(v) for k, v in value.items()}


@dataclass
class Struct(Spec):
    fields: dict[str, Spec]
    omitempty: frozenset[str] = frozenset()

    def zero(self) -> Any:
        return self.decode({})

    def decode(self, value: Any) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise Malformed
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            decoded = spec.decode(value[name]) if name in value else spec.zero()
            if name in self.omitempty and decoded in (None, "", 0, False, [], {}):
                continue
            out[name] = decoded
        return out  # unknown fields are dropped, as encoding/json does


def _struct(omitempty: tuple[str, ...] = (), **fields: Spec) -> Struct:
    return Struct(fields, frozenset(omitempty))


S, B, I, F = Str(), Bool(), Int(), Float()  # noqa: E741
STRS = ListOf(S)
AUTH = _struct(
    ("signature",),
    name=S, use_param=B, param_name=S, use_cookie=B, cookie_name=S, disable_header=B,
    auth_header_name=S, use_certificate=B, validate_signature=B, signature=AnyJSON(),
)  # fmt: skip
VERSION_INFO = _struct(
    name=S, expires=S, paths=_struct(ignored=STRS, white_list=STRS, black_list=STRS),
    use_extended_paths=B, extended_paths=AnyJSON(), global_headers=MapOf(S), global_headers_remove=STRS,
    global_response_headers=MapOf(S), global_response_headers_remove=STRS, ignore_endpoint_case=B,
    global_size_limit=I, global_enforce_timeout=I, override_target=S,
)  # fmt: skip
API_SPEC = _struct(
    ("id", "expiration", "is_oas"),
    id=ObjectId(), name=S, expiration=S, slug=S, listen_port=I, protocol=S, enable_proxy_protocol=B,
    api_id=S, org_id=S, use_keyless=B, use_oauth2=B, use_openid=B, openid_options=AnyJSON(),
    auth=AUTH, auth_configs=MapOf(AUTH), use_basic_auth=B, use_mutual_tls_auth=B, client_certificates=STRS,
    enable_jwt=B, use_standard_auth=B, use_go_plugin_auth=B, enable_coprocess_auth=B, jwt_signing_method=S,
    jwt_source=S, enable_signature_checking=B,
    definition=_struct(enabled=B, name=S, default=S, location=S, key=S, strip_path=B, versions=MapOf(S)),
    version_data=_struct(not_versioned=B, default_version=S, versions=MapOf(VERSION_INFO)),
    proxy=_struct(
        preserve_host_header=B, listen_path=S, target_url=S, disable_strip_slash=B, strip_listen_path=B,
        enable_load_balancing=B, target_list=STRS, check_host_against_uptime_tests=B,
        service_discovery=AnyJSON(),
        transport=_struct(ssl_insecure_skip_verify=B, ssl_ciphers=STRS, ssl_min_version=I, ssl_max_version=I,
                          ssl_force_common_name_check=B, proxy_url=S),
    ),
    disable_rate_limit=B, disable_quota=B, custom_middleware=AnyJSON(), cache_options=AnyJSON(),
    session_lifetime=I, active=B, internal=B, enable_batch_request_support=B, enable_ip_whitelisting=B,
    allowed_ips=STRS, enable_ip_blacklisting=B, blacklisted_ips=STRS, dont_set_quota_on_create=B,
    expire_analytics_after=I, response_processors=AnyJSON(), CORS=AnyJSON(), domain=S, certificates=STRS,
    do_not_track=B, enable_context_vars=B, config_data=MapOf(AnyJSON()), config_data_disabled=B,
    tag_headers=STRS, global_rate_limit=_struct(rate=F, per=F), strip_auth_data=B,
    enable_detailed_recording=B, graphql=AnyJSON(), tags=STRS, is_oas=B, detailed_tracing=B,
    upstream_auth=AnyJSON(),
)  # fmt: skip
ACCESS = _struct(
    ("api_name", "api_id", "versions", "allowed_urls", "limit", "allowance_scope", "disable_introspection"),
    api_name=S, api_id=S, versions=STRS, allowed_urls=ListOf(_struct(url=S, methods=STRS)),
    limit=AnyJSON(), disable_introspection=B, allowance_scope=S,
)  # fmt: skip
POLICY_SPEC = _struct(
    ("post_expiry_action",),
    _id=ObjectId(), id=S, name=S, org_id=S, rate=F, per=F, quota_max=I, quota_renewal_rate=I,
    throttle_interval=F, throttle_retry_limit=I, max_query_depth=I, access_rights=MapOf(ACCESS),
    hmac_enabled=B, enable_http_signature_validation=B, active=B, is_inactive=B, tags=STRS,
    key_expires_in=I, post_expiry_action=S, post_expiry_grace_period=I,
    partitions=_struct(quota=B, rate_limit=B, complexity=B, acl=B, per_api=B), last_updated=S,
    meta_data=MapOf(AnyJSON()), graphql_access_rights=MapOf(AnyJSON()), smoothing=AnyJSON(),
)  # fmt: skip


def go_json(obj: Any) -> bytes:
    """Like Go's json.Encoder: compact, <>& escaped, newline-terminated."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\n").encode()


def safe_path_component(value: str) -> bool:
    """internal/sanitize/path.go ValidatePathComponent."""
    decoded = value
    for _ in range(3):
        step = unquote(decoded.replace("+", " "))
        if step == decoded:
            break
        decoded = step
    return (
        value not in ("", ".", "..")
        and decoded not in ("", ".", "..")
        and not any(c in decoded for c in "/\\")
    )


def _ip_ok(value: str) -> bool:
    try:
        if value.count("/") == 1:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_api(api: dict[str, Any]) -> str | None:
    """A subset of apidef.DefaultValidationRuleSet; returns the first error."""
    for flag, ips in (
        ("enable_ip_whitelisting", "allowed_ips"),
        ("enable_ip_blacklisting", "blacklisted_ips"),
    ):
        if api[flag]:
            for ip in api[ips] or []:
                if not _ip_ok(ip):
                    return f'invalid IP/CIDR "{ip}"'
    for version in (api["version_data"]["versions"] or {}).values():
        if version["global_enforce_timeout"] < 0:
            return "invalid global timeout value"
    flags = {"authToken": "use_standard_auth", "jwt": "enable_jwt", "hmac": "enable_signature_checking"}
    for name in sorted(api["auth_configs"] or {}):
        conf = api["auth_configs"][name]
        if (
            api.get(flags.get(name, ""), False)
            and conf["disable_header"]
            and not (conf["use_param"] or conf["use_cookie"])
        ):
            return f"all auth sources are disabled for {name}, at least one of header/cookie/query must be enabled"
    if api["proxy"]["enable_load_balancing"] and not api["proxy"]["target_list"]:
        return "all load balancing targets have weight 0, at least one target must have weight > 0"
    return None


# --- Faults ----------------------------------------------------------------------------------------


@dataclass
class Faults:
    """Fault switches. Rates are probabilities per request; counters apply to the next requests."""

    error_rate: float = 0.0  # answer 5xx without touching state
    error_burst: int = 0  # the next N requests answer 5xx
    drop_before_rate: float = 0.0  # close the connection without answering, state untouched
    drop_after_rate: float = 0.0  # apply the write, then close without answering
    drop_after_next: int = 0  # the next N writes are applied and then dropped
    slow_rate: float = 0.0  # apply, then wait slow_seconds before answering
    slow_next: int = 0
    slow_seconds: float = 0.0
    # The gateway's own DELETE handlers answer 500 only for "Delete failed"; a transient 5xx
    # on DELETE comes from in front of the gateway (ingress, load balancer), hence no 500.
    statuses: tuple[int, ...] = (500, 502, 503, 504)
    delete_statuses: tuple[int, ...] = (502, 503, 504)


WRITE_METHODS = {"POST", "PUT", "DELETE"}


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


def _json(status: int, obj: Any) -> _Reply:
    return _Reply(status, go_json(obj))


def _error(status: int, message: str) -> _Reply:
    return _json(status, {"status": "error", "message": message})


def _ok(key: str, action: str) -> _Reply:
    return _json(200, {"key": key, "status": "ok", "action": action})


NOT_FOUND = _Reply(404, b"404 page not found\n", "text/plain; charset=utf-8")


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)  # "METHOD /tyk/route" -> requests received
    injected: Counter[str] = field(default_factory=Counter)  # "5xx", "drop_before", "drop_after", "slow"
    reloads: int = 0  # reloads actually run
    reload_started: list[float] = field(default_factory=list)
    reload_requested: list[float] = field(default_factory=list)  # reload requests answered 200
    last_write_at: float = 0.0  # monotonic time of the last applied write

    def count(self, *keys: str) -> int:
        return sum(self.calls[k] for k in keys)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class GatewayEmulator:
    def __init__(
        self, root: Path, secret: str = "emulator-secret", reload_interval: float = 0.05, seed: int = 0
    ) -> None:
        self.apps_dir = root / "apps"
        self.policies_dir = root / "policies"
        self.apps_dir.mkdir(parents=True, exist_ok=True)
        self.policies_dir.mkdir(parents=True, exist_ok=True)
        self.secret = secret
        self.reload_interval = reload_interval
        self.faults = Faults()
        self.stats = Stats()
        #: Group reloads are acknowledged but never run (a delayed or lost pub/sub message);
        #: blocking local reloads still work.
        self.hold_group_reloads = False
        self.loaded_apis: dict[str, dict[str, Any]] = {}
        self.loaded_policies: dict[str, dict[str, Any]] = {}
        #: api_id -> OpenAPI document of each loaded OAS API (its ``<id>-oas.json``).
        self.loaded_oas: dict[str, dict[str, Any]] = {}
        self.certificates = CertificateStore()
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._queue: list[threading.Event | None] = []
        self._queue_lock = threading.Lock()
        self._stopped = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.emulator = self
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GatewayEmulator:
        for target in (lambda: self._server.serve_forever(poll_interval=0.02), self._ticker):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> GatewayEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- reloads ---------------------------------------------------------------------------------

    def _ticker(self) -> None:
        while not self._stopped.wait(self.reload_interval):
            with self._queue_lock:
                queued, self._queue = self._queue, []
            if queued:
                self.do_reload()
                for event in queued:
                    if event is not None:
                        event.set()

    def queue_reload(self, wait: bool) -> None:
        event = threading.Event() if wait else None
        with self._queue_lock:
            self._queue.append(event)
        if event is not None:
            event.wait(timeout=30)

    def reload_now(self) -> None:
        """What a test does to make the gateway load its files (like /tyk/reload?block=true)."""
        self.queue_reload(wait=True)

    def do_reload(self) -> None:
        with self._lock:
            self.stats.reload_started.append(time.monotonic())
            apis = self._load_dir(self.apps_dir, API_SPEC, "api_id")
            self._resolve_listen_path_collisions(apis)
            self.loaded_apis = apis
            self.loaded_oas = self._load_oas_companions(apis)
            self.loaded_policies = self._load_dir(self.policies_dir, POLICY_SPEC, "id")
            self.stats.reloads += 1

    @staticmethod
    def _load_dir(folder: Path, spec: Spec, key: str) -> dict[str, dict[str, Any]]:
        loaded: dict[str, dict[str, Any]] = {}
        for path in sorted(folder.glob("*.json")):
            if path.name.endswith(("-oas.json", "-mcp.json")):
                continue
            try:
                obj = spec.decode(json.loads(path.read_text()))
            except (OSError, ValueError, Malformed):
                continue  # unreadable files are skipped, as FromDir does
            if obj.get(key):
                loaded[obj[key]] = obj  # the file's own id is the key; last one wins
        return loaded

    def _resolve_listen_path_collisions(self, apis: dict[str, dict[str, Any]]) -> None:
        """An API already loaded with a path keeps it; others get ``-<api_id>`` appended."""
        previous = {
            (a["domain"], a["proxy"]["listen_path"]): api_id for api_id, a in self.loaded_apis.items()
        }
        order = sorted(
            apis, key=lambda i: (previous.get((apis[i]["domain"], apis[i]["proxy"]["listen_path"])) != i, i)
        )
        taken: set[tuple[str, str]] = set()
        for api_id in order:
            proxy = apis[api_id]["proxy"]
            path = proxy["listen_path"]
            if (apis[api_id]["domain"], path) in taken:
                path += "-" + api_id
                while (apis[api_id]["domain"], path) in taken:
                    path += "_"
                proxy["listen_path"] = path
            taken.add((apis[api_id]["domain"], path))

    # --- test helpers (changes "behind Pulumi's back") -------------------------------------------

    def disk_apis(self) -> dict[str, dict[str, Any]]:
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.apps_dir.glob("*.json"))}

    def disk_policies(self) -> dict[str, dict[str, Any]]:
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.policies_dir.glob("*.json"))}

    def edit_file(self, kind: str, object_id: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = (self.apps_dir if kind == "api" else self.policies_dir) / f"{object_id}.json"
        obj = json.loads(path.read_text())
        change(obj)
        path.write_text(json.dumps(obj, indent=2))

    def remove_file(self, kind: str, object_id: str) -> None:
        ((self.apps_dir if kind == "api" else self.policies_dir) / f"{object_id}.json").unlink()

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = Stats()

    # --- request handling ------------------------------------------------------------------------

    def roll(self, rate: float) -> bool:
        with self._lock:
            return rate > 0 and self._rng.random() < rate

    def pick_fault(self, method: str) -> tuple[str, int] | None:
        """Decide a fault for this request: ("5xx", status) / ("drop_before", 0) / None."""
        with self._lock:
            f = self.faults
            statuses = f.delete_statuses if method == "DELETE" else f.statuses
            if f.error_burst > 0:
                f.error_burst -= 1
                return "5xx", self._rng.choice(statuses)
            if f.error_rate and self._rng.random() < f.error_rate:
                return "5xx", self._rng.choice(statuses)
            if f.drop_before_rate and self._rng.random() < f.drop_before_rate:
                return "drop_before", 0
        return None

    def after_write_fault(self) -> str | None:
        with self._lock:
            f = self.faults
            if f.drop_after_next > 0:
                f.drop_after_next -= 1
                return "drop_after"
            if f.drop_after_rate and self._rng.random() < f.drop_after_rate:
                return "drop_after"
            if f.slow_next > 0:
                f.slow_next -= 1
                return "slow"
            if f.slow_rate and self._rng.random() < f.slow_rate:
                return "slow"
        return None

    def handle(self, method: str, raw_path: str, query: dict[str, list[str]], body: bytes) -> _Reply:
        path = unquote(raw_path)
        if path.startswith("/tyk/"):
            return self._control(method, path[len("/tyk") :].rstrip("/"), query, body)
        if path == "/hello":
            if method != "GET":
                return _error(405, "Method Not Allowed")
            return _json(
                200, {"status": "pass", "version": "v5.14.0", "description": "Tyk GW", "details": {}}
            )
        return NOT_FOUND

    def _control(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> _Reply:
        parts = path.split("/")[1:]
        if parts == ["reload", "group"]:
            if self.hold_group_reloads:
                return self._only(method, "GET") or _json(
                    200, {"status": "ok", "message": ""}
                )  # not recorded
            return self._only(method, "GET") or self._reload(False)
        if parts == ["reload"]:
            return self._only(method, "GET") or self._reload(query.get("block") == ["true"])
        if parts == ["apis"]:
            if method == "GET":
                return _json(200, self._shuffled(self.loaded_apis))
            return self._only(method, "POST") or self._add_api(body)
        if parts[:2] == ["apis", "oas"] and len(parts) <= 3:
            return self._oas(method, parts[2] if len(parts) == 3 else "", body)
        if len(parts) == 2 and parts[0] == "apis":
            api_id = parts[1]
            if method == "GET":
                with self._lock:
                    found = self.loaded_apis.get(api_id)
                return _json(200, found) if found else _error(404, "API not found")
            if method == "POST":
                return self._add_api(body)  # the path id is ignored
            if method == "PUT":
                return self._update_api(api_id, body)
            if method == "DELETE":
                return self._delete_api(api_id)
            return _error(405, "Method not supported")
        if parts[0] == "policies" and len(parts) <= 2:
            return self._policies(method, parts[1] if len(parts) == 2 else "", body)
        if parts[0] == "certs" and len(parts) <= 2:
            return self._certs(method, parts[1] if len(parts) == 2 else None, query, body)
        return NOT_FOUND

    def _certs(self, method: str, cert_id: str | None, query: dict[str, list[str]], body: bytes) -> _Reply:
        return _certs_handler(self, method, cert_id, query, body)

    @staticmethod
    def _only(method: str, allowed: str) -> _Reply | None:
        return None if method == allowed else _error(405, "Method not supported")

    def _shuffled(self, store: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            items = list(store.values())
            self._rng.shuffle(items)  # Go map iteration order
        return items

    def _reload(self, block: bool) -> _Reply:
        with self._lock:
            self.stats.reload_requested.append(time.monotonic())
        self.queue_reload(wait=block)
        return _json(200, {"status": "ok", "message": ""})

    def _wrote(self) -> None:
        self.stats.last_write_at = time.monotonic()

    @staticmethod
    def _decode(body: bytes, spec: Spec) -> dict[str, Any]:
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Malformed from None
        decoded: dict[str, Any] = spec.decode(value)
        return decoded

    def _write_api_file(self, api: dict[str, Any]) -> None:
        path = self.apps_dir / f"{api['api_id']}.json"
        path.unlink(missing_ok=True)
        path.write_text(json.dumps(api, indent=2))
        self._wrote()

    def _add_api(self, body: bytes) -> _Reply:
        try:
            api = self._decode(body, API_SPEC)
        except Malformed:
            return _error(400, "Request malformed")
        refused = self._refused_definition(api, None)
        if refused is not None:
            return refused
        api.pop("is_oas", None)
        with self._lock:
            self._write_api_file(api)
        return _ok(api["api_id"], "added")

    def _update_api(self, api_id: str, body: bytes) -> _Reply:
        if not safe_path_component(api_id):
            return _error(400, "Invalid API ID")
        with self._lock:
            if api_id not in self.loaded_apis:
                return _error(404, "API not found")
            if self.loaded_apis[api_id].get("is_oas"):
                return _error(400, ERR_CLASSIC_API_EXPECTED)
        try:
            api = self._decode(body, API_SPEC)
        except Malformed:
            return _error(400, "Request malformed")
        refused = self._refused_definition(api, api_id)
        if refused is not None:
            return refused
        with self._lock:
            self._write_api_file(api)
        return _ok(api_id, "modified")

    @staticmethod
    def _refused_definition(api: dict[str, Any], api_id: str | None) -> _Reply | None:
        """handleAddApi/handleUpdateApi after decoding, classic and OAS alike: an update's APIID must match the
        one in the path, validateAPIDef, and a new API without an id gets a generated one (path-safe)."""
        if api_id is not None and api["api_id"] != api_id:
            return _error(
                400,
                "Request APIID does not match that in Definition! For Update operations these must match.",
            )
        reason = validate_api(api)
        if reason:
            return _error(400, f"Validation of API Definition failed. Reason: {reason}.")
        if not api["api_id"]:
            api["api_id"] = uuid.uuid4().hex
        if not safe_path_component(api["api_id"]):
            return _error(400, "Invalid API ID")
        return None

    def _delete_api(self, api_id: str) -> _Reply:
        if not safe_path_component(api_id):
            return _error(400, "Invalid API ID")
        with self._lock:
            if api_id not in self.loaded_apis:
                return _error(404, "API not found")
            path = self.apps_dir / f"{api_id}.json"
            companion = self.apps_dir / f"{api_id}-oas.json"
            if not path.exists() or (self.loaded_apis[api_id].get("is_oas") and not companion.exists()):
                return _error(500, "Delete failed")  # deleteAPIFiles: both files must exist
            path.unlink()
            if self.loaded_apis[api_id].get("is_oas"):
                companion.unlink()
            self._wrote()
        return _ok(api_id, "deleted")

    def _policies(self, method: str, pol_id: str, body: bytes) -> _Reply:
        if method == "GET":
            if not pol_id:
                return _json(200, self._shuffled(self.loaded_policies))
            with self._lock:
                found = self.loaded_policies.get(pol_id)
            return _json(200, found) if found else _error(404, "Policy not found")
        if method == "DELETE":
            if not pol_id:
                return _error(400, "Must specify an apiID to delete")
            with self._lock:
                path = self.policies_dir / f"{pol_id}.json"
                if not safe_path_component(pol_id) or not path.exists():
                    return _error(500, "Delete failed")
                path.unlink()
                self._wrote()
            return _ok(pol_id, "deleted")
        if method == "PUT" and not pol_id:
            return _error(400, "Must specify an apiID to update")
        if method not in ("POST", "PUT"):
            return _error(405, "Method not supported")
        try:
            policy = self._decode(body, POLICY_SPEC)
        except Malformed:
            return _error(400, "Request malformed")
        if policy["id"] and not POLICY_ID_RE.fullmatch(policy["id"]):
            return _error(400, "Invalid Policy ID: Allowed characters: a-z, A-Z, 0-9, ., _, -, ~")
        if method == "PUT" and policy["id"] != pol_id:
            return _error(
                400, "Request ID does not match that in policy! For Update operations these must match."
            )
        if not policy["id"]:
            if not policy["_id"]:
                return _error(400, "Unable to create policy without id.")
            policy["id"] = policy["_id"]
        with self._lock:
            (self.policies_dir / f"{policy['id']}.json").write_text(json.dumps(policy, indent=2))
            self._wrote()
        return _ok(policy["id"], "added" if method == "POST" else "modified")

    # ==============================================================================================
    # Tyk OAS APIs (/tyk/apis/oas), from gateway/api.go and gateway/api_helpers.go (Tyk v5.14.0):
    # validateOAS (decode, x-tyk-api-gateway required on POST/PUT, ValidateOASObject against the schemas the
    # gateway embeds), handleAddApi/handleUpdateApi with oasEndpoint=true (ExtractTo a classic definition,
    # validateAPIDef, writeOASAndAPIDefToFile: <id>.json with is_oas plus <id>-oas.json), apiOASPatchHandler,
    # apiHandler/handleDeleteAPI for DELETE (deleteAPIFiles), handleGetAPIOAS / handleGetOASList for GET.
    # ==============================================================================================

    def _load_oas_companions(self, apis: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """loadDefFromFilePath: an is_oas definition also loads ``<file>-oas.json`` (skipped if unreadable)."""
        loaded: dict[str, dict[str, Any]] = {}
        for api_id, api in apis.items():
            if not api.get("is_oas"):
                continue
            with contextlib.suppress(OSError, ValueError):
                document = json.loads((self.apps_dir / f"{api_id}-oas.json").read_text())
                if isinstance(document, dict):
                    loaded[api_id] = document
        return loaded

    def _oas(self, method: str, api_id: str, body: bytes) -> _Reply:
        if method == "GET":
            with self._lock:
                if not api_id:
                    items = [oas_fill(doc, self.loaded_apis[i]) for i, doc in self.loaded_oas.items()]
                    self._rng.shuffle(items)
                    return _json(200, items)
                api = self.loaded_apis.get(api_id)
                if api is None:
                    return _error(404, "API not found")
                if not api.get("is_oas") or api_id not in self.loaded_oas:
                    return _error(400, ERR_OAS_GET_FOR_OLD_API)
                return _json(200, oas_fill(self.loaded_oas[api_id], api))
        if method == "DELETE":
            return self._delete_api(api_id) if api_id else _error(405, "Method not supported")
        if method == "POST" and not api_id:
            return self._oas_write(None, body)
        if method == "PUT" and api_id:
            return self._oas_write(api_id, body)
        if method == "PATCH" and api_id:
            return self._oas_patch(api_id, body)
        return _error(405, "Method not supported")

    def _oas_write(self, api_id: str | None, body: bytes) -> _Reply:
        """POST (api_id None) or PUT of an OAS document, behind validateOAS."""
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error(400, "Request malformed")
        if not isinstance(document, dict):
            return _error(400, "Request malformed")
        extension = document.get(OAS_EXTENSION)
        if not isinstance(extension, dict):
            return _error(400, ERR_PAYLOAD_WITHOUT_TYK_EXTENSION)
        reason = oas_schema_errors(document)
        if reason:
            return _error(400, reason)
        if api_id is not None:
            if not safe_path_component(api_id):
                return _error(400, "Invalid API ID")
            with self._lock:
                existing = self.loaded_apis.get(api_id)
            if existing is None:
                return _error(404, "API not found")
            if not existing.get("is_oas"):
                return _error(400, ERR_API_NOT_MIGRATED)
        try:
            api = API_SPEC.decode(oas_extract_to(document))
        except Malformed:
            return _error(400, "Request malformed")
        refused = self._refused_definition(api, api_id)
        if refused is not None:
            return refused
        api["is_oas"] = True
        document.setdefault(OAS_EXTENSION, {}).setdefault("info", {})["id"] = api["api_id"]
        with self._lock:
            self._write_api_file(api)
            (self.apps_dir / f"{api['api_id']}-oas.json").write_text(json.dumps(document, indent=2))
        return _ok(api["api_id"], "added" if api_id is None else "modified")

    def _oas_patch(self, api_id: str, body: bytes) -> _Reply:
        """apiOASPatchHandler without query parameters: a body with the extension is a PUT; one without
        keeps the loaded extension and replaces the OpenAPI part (servers kept when the patch has none)."""
        with self._lock:
            existing = self.loaded_apis.get(api_id)
            loaded = self.loaded_oas.get(api_id)
        if existing is None:
            return _error(404, "API not found")
        if not existing.get("is_oas") or loaded is None:
            return _error(400, ERR_API_NOT_MIGRATED)
        try:
            patch = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error(400, "Request malformed")
        if not isinstance(patch, dict):
            return _error(400, "Request malformed")
        if isinstance(patch.get(OAS_EXTENSION), dict):
            return self._oas_write(api_id, body)
        merged = {k: v for k, v in patch.items() if k != OAS_EXTENSION}
        if not merged.get("servers") and loaded.get("servers"):
            merged["servers"] = loaded["servers"]
        merged[OAS_EXTENSION] = oas_fill(loaded, existing)[OAS_EXTENSION]
        return self._oas_write(api_id, json.dumps(merged).encode())


OAS_EXTENSION = "x-tyk-api-gateway"
ERR_CLASSIC_API_EXPECTED = (
    "this API endpoint only supports Tyk Classic APIs; please use the appropriate Tyk OAS API endpoint"
)
ERR_API_NOT_MIGRATED = (
    "the supplied API definition is in OAS format, please use the Tyk classic format for this API"
)
ERR_OAS_GET_FOR_OLD_API = "the requested API definition is in Tyk classic format, please use old api endpoint"
ERR_PAYLOAD_WITHOUT_TYK_EXTENSION = "the payload should contain x-tyk-api-gateway"
_SCHEMA_DIR = Path(__file__).resolve().parents[1] / "tyk_gateway" / "schemas"


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def oas_extract_to(document: dict[str, Any]) -> dict[str, Any]:
    """The fields of OAS.ExtractTo (apidef/oas) the emulated classic struct holds, as JSON to decode."""
    ext = document.get(OAS_EXTENSION) or {}
    info, upstream, server = ext.get("info") or {}, ext.get("upstream") or {}, ext.get("server") or {}
    listen_path = server.get("listenPath") or {}
    schemes = _dig(server, "authentication", "securitySchemes") or {}
    token_enabled = bool(_dig(server, "authentication", "enabled")) and any(
        isinstance(v, dict) and v.get("enabled") for v in schemes.values()
    )
    return {
        "api_id": info.get("id", ""),
        "id": info.get("dbId", ""),
        "org_id": info.get("orgId", ""),
        "name": info.get("name", ""),
        "expiration": info.get("expiration", ""),
        "active": _dig(info, "state", "active") or False,
        "internal": _dig(info, "state", "internal") or False,
        "proxy": {
            "target_url": upstream.get("url", ""),
            "listen_path": listen_path.get("value", ""),
            "strip_listen_path": listen_path.get("strip", False),
        },
        # Info.ExtractTo: "everytime" not versioned, one main version named "".
        "version_data": {"not_versioned": True, "default_version": "", "versions": {"": {}}},
        "use_keyless": not _dig(server, "authentication", "enabled"),
        "use_standard_auth": token_enabled,
    }


def oas_fill(document: dict[str, Any], api: dict[str, Any]) -> dict[str, Any]:
    """What GET answers: the stored document with OAS.Fill's view of the classic fields modelled here."""
    filled = json.loads(json.dumps(document))
    ext = filled.setdefault(OAS_EXTENSION, {})
    info = ext.setdefault("info", {})
    info["id"] = api["api_id"]
    info["name"] = api["name"]
    if api["org_id"]:
        info["orgId"] = api["org_id"]
    info.setdefault("state", {})["active"] = api["active"]
    ext.setdefault("upstream", {})["url"] = api["proxy"]["target_url"]
    listen_path = ext.setdefault("server", {}).setdefault("listenPath", {})
    listen_path["value"] = api["proxy"]["listen_path"]
    listen_path["strip"] = api["proxy"]["strip_listen_path"]
    return filled


_OAS_VALIDATORS: dict[str, Any] = {}


def oas_schema_errors(document: dict[str, Any]) -> str | None:
    """apidef/oas/validator.go ValidateOASObject: the document against the schema of its minor version with
    x-tyk-api-gateway plugged in (loadOASSchema). Built here from the schema files, not the provider's code."""
    from jsonschema import Draft4Validator
    from jsonschema.validators import validator_for

    version = document.get("openapi")
    match = re.match(r"^(\d+)\.(\d+)", version) if isinstance(version, str) else None
    minor = f"{match[1]}.{match[2]}" if match else "3.0"
    if minor not in _OAS_VALIDATORS:
        path = _SCHEMA_DIR / f"{minor}.json"
        if not path.exists():
            return f'Schema not found for version "{version}"'
        schema = json.loads(path.read_text())
        extension = json.loads((_SCHEMA_DIR / f"{OAS_EXTENSION}.json").read_text())
        cls = validator_for(schema)
        if cls is not Draft4Validator:  # gojsonschema reads draft-04 tuple "items" in any dialect
            extension = json.loads(json.dumps(extension).replace('"items": [', '"prefixItems": ['))
        schema["properties"][OAS_EXTENSION] = {
            k: v for k, v in extension.items() if k not in ("definitions", "$schema")
        }
        schema.setdefault("definitions", {}).update(extension["definitions"])
        _OAS_VALIDATORS[minor] = cls(schema)
    errors = [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
              for e in _OAS_VALIDATORS[minor].iter_errors(document)]  # fmt: skip
    return "; ".join(sorted(errors)) or None


# --- Certificates: /tyk/certs ------------------------------------------------------------------------
# gateway/cert.go certHandler and certs/manager.go (GetCertIDAndChainPEM, Add, ListAllIds, Delete),
# TykTechnologies/tyk v5.13.1. The gateway keeps certificates in Redis ("raw-<id>", "<org>-index"): they
# exist as soon as they are added, no reload involved. Routes: /certs (POST, GET), /certs/{certID}
# (POST, GET, DELETE). Not emulated: the private key is stored encrypted with the gateway secret (here in
# clear); CertificateMeta's fingerprint and its full pkix.Name issuer/subject (only CommonName is given).


@dataclass
class StoredCertificate:
    pem: str
    org_id: str
    has_private: bool
    leaf: Any  # cryptography.x509.Certificate, or None for a bare public key


class CertificateStore:
    """The gateway's certificate manager over its Redis keys, for one emulator."""

    def __init__(self) -> None:
        self.by_id: dict[str, StoredCertificate] = {}
        self.index: dict[str, list[str]] = {}  # "<org>-index"
        self.lock = threading.Lock()

    def add(self, content: bytes, org_id: str) -> str:
        """``certificateManager.Add``: returns the id or raises ValueError with the gateway's message."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        key_der: tuple[str, bytes] | None = None
        public_key: bytes | None = None
        certs: list[Any] = []
        for kind, der in _pem_blocks(content):
            if kind.endswith("PRIVATE KEY"):
                if key_der is not None:
                    raise ValueError("Found multiple private keys")
                key_der = (kind, der)
            elif kind == "CERTIFICATE":
                try:
                    cert = x509.load_der_x509_certificate(der)
                except ValueError as error:
                    raise ValueError(f"x509: malformed certificate ({error})") from None
                if cert.not_valid_after_utc.timestamp() < time.time():
                    raise ValueError("certificate is expired")
                certs.append(cert)
            elif kind == "PUBLIC KEY":
                public_key = der
        if not certs and public_key is None:
            raise ValueError("Failed to decode certificate. It should be PEM encoded.")
        if certs and public_key is not None:
            raise ValueError("Public keys can't be combined with certificates")
        if key_der is not None:
            if not certs:
                raise ValueError("tls: failed to find any PEM data in certificate input")
            kind, der = key_der
            block = f"-----BEGIN {kind}-----\n{base64.encodebytes(der).decode()}-----END {kind}-----\n"
            try:
                key = serialization.load_pem_private_key(block.encode(), password=None)
            except (ValueError, TypeError):
                raise ValueError("tls: failed to parse private key") from None
            der_of = serialization.Encoding.DER
            spki = serialization.PublicFormat.SubjectPublicKeyInfo
            if key.public_key().public_bytes(der_of, spki) != certs[0].public_key().public_bytes(
                der_of, spki
            ):
                raise ValueError("tls: private key does not match public key")
            cert_id = hashlib.sha256(certs[0].public_bytes(der_of)).hexdigest()
        elif public_key is not None:
            cert_id = hashlib.sha256(public_key).hexdigest()
        else:
            cert_id = hashlib.sha256(certs[0].public_bytes(serialization.Encoding.DER)).hexdigest()
        cert_id = org_id + cert_id
        with self.lock:
            if cert_id in self.by_id:
                raise ValueError(f"Certificate with {cert_id} id already exists")
            self.by_id[cert_id] = StoredCertificate(
                content.decode("utf-8", "replace"), org_id, key_der is not None, certs[0] if certs else None
            )
            if org_id:
                self.index.setdefault(org_id, []).append(cert_id)
        return cert_id

    def list_ids(self, org_id: str) -> list[str]:
        with self.lock:
            if org_id:
                return list(self.index.get(org_id, []))
            return list(self.by_id)

    def delete(self, cert_id: str, org_id: str) -> None:
        with self.lock:
            if org_id and cert_id in self.index.get(org_id, []):
                self.index[org_id].remove(cert_id)
            self.by_id.pop(cert_id, None)

    def meta(self, cert_id: str) -> dict[str, Any] | None:
        stored = self.by_id.get(cert_id)
        if stored is None or stored.leaf is None:
            return None
        leaf = stored.leaf
        from cryptography import x509

        try:
            dns = list(
                leaf.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName
                ).value.get_values_for_type(x509.DNSName)
            )
        except x509.ExtensionNotFound:
            dns = []

        def common_name(name: Any) -> str:
            values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            return str(values[0].value) if values else ""

        try:
            is_ca = bool(leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            is_ca = False
        return {
            "id": cert_id,
            "has_private": stored.has_private,
            "issuer": {"CommonName": common_name(leaf.issuer)},
            "subject": {"CommonName": common_name(leaf.subject)},
            "not_before": leaf.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dns_names": dns or None,
            "is_ca": is_ca,
        }


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def _pem_blocks(content: bytes) -> list[tuple[str, bytes]]:
    """Go's pem.Decode loop: text outside blocks is skipped (so a multipart body still works)."""
    blocks = []
    for match in _PEM_BLOCK.finditer(content):
        lines = [line for line in match.group(2).splitlines() if b":" not in line]
        try:
            blocks.append((match.group(1).decode(), base64.b64decode(b"".join(lines))))
        except (ValueError, binascii.Error):
            continue
    return blocks


def _certs_handler(
    emulator: GatewayEmulator, method: str, cert_id: str | None, query: dict[str, list[str]], body: bytes
) -> _Reply:
    store = emulator.certificates
    org_id = (query.get("org_id") or [""])[0]
    if method == "POST":
        try:
            added = store.add(body, org_id)
        except ValueError as error:
            return _error(403, str(error))
        emulator._wrote()
        return _json(200, {"id": added, "status": "ok", "message": "Certificate added"})
    if method == "GET":
        if not cert_id:
            ids = store.list_ids(org_id)
            if (query.get("mode") or [""])[0] == "detailed":
                basics = []
                for one in ids:
                    meta = store.meta(one) or {"id": one}
                    basics.append({
                        "id": one, "issuer_cn": meta.get("issuer", {}).get("CommonName", ""),
                        "subject_cn": meta.get("subject", {}).get("CommonName", ""),
                        "dns_names": meta.get("dns_names"), "has_private": meta.get("has_private", False),
                        "not_before": meta.get("not_before"), "not_after": meta.get("not_after"),
                        "is_ca": meta.get("is_ca", False),
                    })  # fmt: skip
                return _json(200, {"certs": basics})
            return _json(200, {"certs": ids or None})
        wanted = cert_id.split(",")
        metas = [store.meta(one) for one in wanted]
        if len(wanted) == 1:
            if metas[0] is None:
                return _error(404, "Certificate with given SHA256 fingerprint not found")
            return _json(200, metas[0])
        return _json(200, metas)
    if method == "DELETE" and cert_id is not None:
        if not org_id and len(cert_id) >= 64:
            org_id = cert_id[:-64]
        store.delete(cert_id, org_id)
        emulator._wrote()
        return _json(200, {"status": "ok", "message": "removed"})
    return _error(405, "Method not supported")


_ROUTE_ID = re.compile(r"^(/tyk/(?:apis|policies|certs))/(?!oas$)[^/]+$")
_OAS_ROUTE_ID = re.compile(r"^/tyk/apis/oas/[^/]+$")


def route_of(method: str, path: str) -> str:
    """Counter key: method plus the route template (ids replaced by {id})."""
    path = _ROUTE_ID.sub(r"\1/{id}", unquote(path).rstrip("/") or "/")
    path = _OAS_ROUTE_ID.sub("/tyk/apis/oas/{id}", path)
    return f"{method} {path}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    emulator: GatewayEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (timeouts) make the server's writes fail; that is expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go's net/http does

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        emulator = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        method = self.command
        is_control = url.path.startswith("/tyk/")
        with emulator._lock:
            emulator.stats.calls[route_of(method, url.path)] += 1

        if is_control:
            fault = emulator.pick_fault(method)
            if fault and fault[0] == "drop_before":
                emulator.stats.injected["drop_before"] += 1
                return self._drop()
            if fault:
                emulator.stats.injected["5xx"] += 1
                status = fault[1]
                if status == 500:
                    write = method in WRITE_METHODS
                    message = "file object creation failed, write error" if write else "injected fault"
                    return self._send(_error(500, message))
                return self._send(_Reply(status, b"upstream connect error\n", "text/plain"))
            if self.headers.get("X-Tyk-Authorization", "") != emulator.secret:
                return self._send(_error(403, AUTH_FAILED))

        reply = emulator.handle(method, url.path, parse_qs(url.query), body)

        if is_control and method in WRITE_METHODS and reply.status == 200:
            after = emulator.after_write_fault()
            if after == "drop_after":
                emulator.stats.injected["drop_after"] += 1
                return self._drop()
            if after == "slow":
                emulator.stats.injected["slow"] += 1
                time.sleep(emulator.faults.slow_seconds)
        self._send(reply)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.status == 404 and reply.content_type.startswith("text/plain"):
            self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve
