"""Pulumi dynamic providers for Tyk API definitions and policies.

These classes live in an importable module (never ``__main__``) so dill pickles them by
reference: the ``__provider`` blob in the state is just "tyk_gateway.provider.X", code
changes cause no diff, and nothing about the instance ends up in the state. Nothing is
stored on the instance at construction; the admin secret is read in ``configure()``
(from stack config, decrypted by the engine) and ``__getstate__`` drops it anyway.

All gateway-side state (HTTP client, reload coordinator, list caches) lives in a
module-level registry keyed by gateway URL and settings: the plugin process runs one
instance per provider class, and API and policy writes must share one reload coordinator.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pydantic import BaseModel, ValidationError

from .cache import SharedList
from .client import SECRET_ENV_VAR, ClientSettings, DeleteOutcome, GatewayClient, Secret
from .drift import API_MAP_PATHS, OAS_MAP_PATHS, POLICY_MAP_PATHS, Path, project, strip_zero
from .models import UNKNOWN, ApiDefinition, Policy, canonical, dump_definition, format_errors
from .oas import oas_api_id, oas_problems, oas_summary
from .reload import ReloadCoordinator

log = logging.getLogger(__name__)

#: Optional stack config object with client tuning (see ClientSettings), e.g.
#: ``pulumi config set --path 'gatewayClient.readTimeout' 60``.
CLIENT_CONFIG_KEY = "gatewayClient"
SECRET_KEY = "apiSecret"


@dataclass(frozen=True)
class ProviderConfig:
    secret: Secret | None
    client: ClientSettings

    @classmethod
    def from_env(cls) -> ProviderConfig:
        secret = os.environ.get(SECRET_ENV_VAR)
        return cls(Secret(secret) if secret else None, ClientSettings())


class Gateway:
    """Everything shared by all resources that talk to one gateway (group)."""

    def __init__(self, base_url: str, config: ProviderConfig) -> None:
        self.client = GatewayClient(base_url, config.secret, config.client)
        self.reloads = ReloadCoordinator(self.client.reload_group)
        ttl = config.client.list_cache_ttl
        self.apis = SharedList(self.client.list_apis, "api_id", ttl, self.client.reload_local)
        self.policies = SharedList(self.client.list_policies, "id", ttl, self.client.reload_local)
        self.oas_apis = SharedList(self.client.list_oas_apis, oas_api_id, ttl, self.client.reload_local)


_GATEWAYS: dict[tuple[str, ProviderConfig], Gateway] = {}
_GATEWAYS_LOCK = threading.Lock()


def gateway_for(base_url: str, config: ProviderConfig) -> Gateway:
    key = (base_url.rstrip("/"), config)
    with _GATEWAYS_LOCK:
        gateway = _GATEWAYS.get(key)
        if gateway is None:
            gateway = _GATEWAYS[key] = Gateway(key[0], config)
        return gateway


def forget_gateways() -> None:
    """Drop all shared gateway state, as a fresh plugin process (a new pulumi command) starts with."""
    with _GATEWAYS_LOCK:
        _GATEWAYS.clear()


def _gateway_url_problem(value: Any) -> str | None:
    if value == UNKNOWN:
        return None
    if not isinstance(value, str):
        return f"gateway_url: must be a string (got {type(value).__name__})"
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"gateway_url: must be an http(s) URL such as https://gateway.example.com (got {value!r})"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "gateway_url: must not contain credentials, a query or a fragment"
    return None


def _norm_url(value: Any) -> Any:
    return value.rstrip("/") if isinstance(value, str) and value != UNKNOWN else value


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


class _TykProvider(ResourceProvider):
    """Shared CRUD logic; subclasses say which kind of object they manage."""

    # Class attributes only: instances carry no state into the serialized provider.
    serialize_as_secret_always = False
    kind: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    id_output: ClassVar[str]  # resource input/output that mirrors the object's id
    map_paths: ClassVar[frozenset[Path]]
    _config: ProviderConfig | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # configuration (with the admin secret) is never serialized

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- configuration ---------------------------------------------------------------------------

    def configure(self, req: ConfigureRequest) -> None:
        secret = req.config.get(SECRET_KEY) or os.environ.get(SECRET_ENV_VAR)
        raw = req.config.get(CLIENT_CONFIG_KEY)
        settings = ClientSettings()
        if raw:
            try:
                settings = ClientSettings.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
            except (ValueError, ValidationError) as error:
                raise ValueError(f"stack config {CLIENT_CONFIG_KEY} is invalid: {error}") from None
        self._config = ProviderConfig(Secret(secret) if secret else None, settings)

    def _gateway(self, props: Mapping[str, Any]) -> Gateway:
        url = props.get("gateway_url")
        if not isinstance(url, str) or _gateway_url_problem(url):
            raise ValueError(f"{self.kind}: no usable gateway_url in the resource's state ({url!r})")
        return gateway_for(url, self._config or ProviderConfig.from_env())

    # --- kind-specific hooks ---------------------------------------------------------------------

    def _lists(self, gateway: Gateway) -> SharedList:
        raise NotImplementedError

    def _derived(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _put(self, gateway: Gateway, definition: Mapping[str, Any], created: bool) -> None:
        raise NotImplementedError

    def _remove(self, gateway: Gateway, object_id: str) -> None:
        raise NotImplementedError

    def _validate(self, definition: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
        """(normalised definition, []) when valid, else (None, problems); preview placeholders are no problem."""
        try:
            model = self.model.model_validate(canonical(definition))
        except ValidationError as error:
            return None, format_errors(error, skip_unknown=True)
        return dump_definition(model), []

    # --- check / diff: pure, no HTTP -------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in news.items() if k != "__provider"}
        problems: list[str] = []
        url_problem = _gateway_url_problem(news.get("gateway_url"))
        if url_problem:
            problems.append(url_problem)
        else:
            inputs["gateway_url"] = _norm_url(news["gateway_url"])
        definition = news.get("definition")
        if definition == UNKNOWN:
            pass  # known at `up`, checked then
        elif not isinstance(definition, Mapping):
            problems.append(f"definition: must be an object (got {type(definition).__name__})")
        else:
            normalized, definition_problems = self._validate(definition)
            if normalized is None:
                # Errors caused by values still unknown during preview are not errors yet.
                problems += definition_problems
                inputs["definition"] = canonical(definition)
            else:
                inputs["definition"] = normalized
                inputs.update(self._derived(normalized))
        return CheckResult(inputs, [CheckFailure("", problem) for problem in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = canonical(olds.get("definition")) != canonical(news.get("definition"))
        moved = _norm_url(olds.get("gateway_url")) != _norm_url(news.get("gateway_url"))
        replaces = [self.id_output] if olds.get(self.id_output) != news.get(self.id_output) else []
        return DiffResult(changes=changed or moved or bool(replaces), replaces=replaces)

    # --- create / update / delete: REST call, then a (coalesced) group reload --------------------

    def _outputs(self, url: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        return {"gateway_url": _norm_url(url), "definition": dict(definition), **self._derived(definition)}

    def _write(self, props: Mapping[str, Any], created: bool) -> dict[str, Any]:
        gateway = self._gateway(props)
        definition = canonical(props["definition"])
        with gateway.reloads.write():
            try:
                self._put(gateway, definition, created)
            finally:
                self._lists(gateway).invalidate()
        return self._outputs(props["gateway_url"], definition)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outputs = self._write(props, created=True)
        return CreateResult(str(outputs[self.id_output]), outputs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._write(news, created=False))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        gateway = self._gateway(props)
        with gateway.reloads.write():
            try:
                self._remove(gateway, _id)
            finally:
                self._lists(gateway).invalidate()

    # --- read: refresh (and import-shaped reads) -------------------------------------------------

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        gateway = self._gateway(props)
        recorded = props.get("definition")
        candidates = self._lists(gateway).find(id_)
        if not candidates:
            return ReadResult("", {})  # gone: Pulumi shows the resource as deleted
        live = self._pick(candidates, recorded)
        if isinstance(recorded, Mapping):
            definition = project(live, canonical(recorded), self.map_paths)
        else:  # nothing recorded (import): keep every non-zero field
            definition = strip_zero(live)
        outputs = self._outputs(props["gateway_url"], definition)
        return ReadResult(id_, outputs, dict(outputs))

    def _pick(self, candidates: list[dict[str, Any]], recorded: Any) -> dict[str, Any]:
        return candidates[-1]


class TykApiProvider(_TykProvider):
    """Classic API definitions via ``/tyk/apis``."""

    kind = "Tyk API"
    model = ApiDefinition
    id_output = "api_id"
    map_paths = API_MAP_PATHS

    def _lists(self, gateway: Gateway) -> SharedList:
        return gateway.apis

    def _derived(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "api_id": definition.get("api_id"),
            "name": definition.get("name"),
            "listen_path": _dig(definition, "proxy", "listen_path"),
            "target_url": _dig(definition, "proxy", "target_url"),
        }

    def _put(self, gateway: Gateway, definition: Mapping[str, Any], created: bool) -> None:
        # POST is an upsert: it works for updates of APIs not loaded yet (PUT would 404).
        gateway.client.upsert_api(definition)

    def _remove(self, gateway: Gateway, object_id: str) -> None:
        outcome = gateway.client.delete_api(object_id)
        if outcome is DeleteOutcome.NOT_LOADED:
            # 404: the gateway has not loaded this API, but its file may exist (written and
            # not reloaded yet). Make this gateway load its files, then delete for real.
            gateway.client.reload_local()
            outcome = gateway.client.delete_api(object_id)
        if outcome is not DeleteOutcome.DELETED:
            log.info("Tyk API %s was already gone (%s)", object_id, outcome.value)


class TykPolicyProvider(_TykProvider):
    """Security policies via ``/tyk/policies`` (gateway v4.1+ with ``policies.policy_path`` set)."""

    kind = "Tyk policy"
    model = Policy
    id_output = "policy_id"
    map_paths = POLICY_MAP_PATHS

    def _lists(self, gateway: Gateway) -> SharedList:
        return gateway.policies

    def _derived(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return {"policy_id": definition.get("id"), "name": definition.get("name")}

    def _put(self, gateway: Gateway, definition: Mapping[str, Any], created: bool) -> None:
        write: Callable[[Mapping[str, Any]], None] = (
            gateway.client.create_policy if created else gateway.client.update_policy
        )
        write(definition)

    def _remove(self, gateway: Gateway, object_id: str) -> None:
        if gateway.client.delete_policy(object_id) is DeleteOutcome.ALREADY_GONE:
            log.info("Tyk policy %s was already gone", object_id)

    def _pick(self, candidates: list[dict[str, Any]], recorded: Any) -> dict[str, Any]:
        # v5.12+ keys policies by (id, org_id); prefer the org we manage.
        org = recorded.get("org_id") if isinstance(recorded, Mapping) else None
        matching = [c for c in candidates if c.get("org_id") == org]
        return (matching or candidates)[-1]


class TykOasApiProvider(_TykProvider):
    """Tyk OAS API definitions via ``/tyk/apis/oas`` (an OpenAPI document with ``x-tyk-api-gateway``).

    Same guarantees as classic APIs: writes share the gateway's reload coordinator (one coalesced reload
    for classic and OAS writes together), refresh reads one ``GET /tyk/apis/oas`` list, POST is an upsert.
    """

    kind = "Tyk OAS API"
    id_output = "api_id"
    map_paths = OAS_MAP_PATHS

    def _validate(self, definition: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
        # Values still unknown during preview are skipped here and checked in full at `up`.
        problems = oas_problems(definition, skip_unknown=True)
        return (None, problems) if problems else (canonical(definition), [])

    def _lists(self, gateway: Gateway) -> SharedList:
        return gateway.oas_apis

    def _derived(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return oas_summary(definition)

    def _put(self, gateway: Gateway, definition: Mapping[str, Any], created: bool) -> None:
        gateway.client.upsert_oas_api(definition, str(oas_api_id(definition)))

    def _remove(self, gateway: Gateway, object_id: str) -> None:
        outcome = gateway.client.delete_oas_api(object_id)
        if outcome is DeleteOutcome.NOT_LOADED:
            # As for classic APIs: the files may exist without being loaded; load them, then delete.
            gateway.client.reload_local()
            outcome = gateway.client.delete_oas_api(object_id)
        if outcome is not DeleteOutcome.DELETED:
            log.info("Tyk OAS API %s was already gone (%s)", object_id, outcome.value)
