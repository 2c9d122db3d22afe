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
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
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
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .cache import SharedList, by_id
from .client import SECRET_ENV_VAR, ClientSettings, DeleteOutcome, GatewayClient, Secret
from .drift import API_MAP_PATHS, OAS_MAP_PATHS, POLICY_MAP_PATHS, Path, project, strip_zero
from .kube import SCHEME as KUBE_SCHEME
from .kube import KubeApi, KubernetesAccessError, KubeTarget, KubeTransport
from .kubeconfig import (
    AksCluster,
    ClusterCredentials,
    CredentialsError,
    aks_credentials,
    azure_credential,
    azure_subscription,
    load_kubeconfig,
)
from .models import UNKNOWN, ApiDefinition, Policy, canonical, dig, dump_definition, format_errors
from .oas import oas_api_id, oas_problems, oas_summary
from .reload import Change, ReloadCoordinator
from .verify import LISTS, ReplicaVerifier

log = logging.getLogger(__name__)

#: Optional stack config object with client tuning (see ClientSettings), e.g.
#: ``pulumi config set --path 'gatewayClient.readTimeout' 60``.
CLIENT_CONFIG_KEY = "gatewayClient"
SECRET_KEY = "apiSecret"
ACCESS_CONFIG_KEYS = ("cluster", "apiManagement")
SUBSCRIPTION_CONFIG_KEY = "azure-native:subscriptionId"


class _Lenient(BaseModel):
    """The provider reads only the keys it needs; the program validates the whole stack config."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")


class AksRef(_Lenient):
    resource_group_name: str = "tyk-aks"  # the defaults of components.settings.AksSettings
    cluster_name: str = "tyk-aks"


class ClusterRef(_Lenient):
    mode: str = "existing"
    kubeconfig: str | None = None
    context: str | None = None
    aks: AksRef | None = None


class ManagementRef(_Lenient):
    verify_replicas: bool = True
    replica_wait_seconds: float = Field(default=30.0, ge=0)
    adopt: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderConfig:
    secret: Secret | None
    client: ClientSettings
    cluster: ClusterRef = field(default_factory=ClusterRef)
    management: ManagementRef = field(default_factory=ManagementRef)
    subscription_id: str | None = None

    @classmethod
    def from_env(cls) -> ProviderConfig:
        secret = os.environ.get(SECRET_ENV_VAR)
        return cls(Secret(secret) if secret else None, ClientSettings())


def _cluster_credentials(config: ProviderConfig) -> ClusterCredentials:
    cluster = config.cluster
    if cluster.mode == "aks":
        aks = cluster.aks or AksRef()
        ref = AksCluster(
            azure_subscription(config.subscription_id), aks.resource_group_name, aks.cluster_name
        )
        return aks_credentials(ref, azure_credential())
    return load_kubeconfig(cluster.kubeconfig, cluster.context)


class Gateway:
    """Everything shared by all resources that talk to one gateway (group)."""

    def __init__(self, url: str, config: ProviderConfig) -> None:
        self.config = config
        self.kube: KubeApi | None = None
        self.target: KubeTarget | None = None
        if url.startswith(f"{KUBE_SCHEME}://"):
            self.target = KubeTarget.parse(url)
            try:
                credentials = _cluster_credentials(config)
            except CredentialsError as error:
                raise KubernetesAccessError("GET", "", None, str(error), "") from None
            transport = KubeTransport(credentials, config.client)
            self.kube = KubeApi(transport)
            self.client = GatewayClient(
                self.kube.service_proxy_url(self.target),
                config.secret,
                config.client,
                transport=transport,
                label=f"service {self.target.namespace}/{self.target.service}:{self.target.port} "
                f"through the Kubernetes API server {credentials.server}",
            )
        else:
            self.client = GatewayClient(url, config.secret, config.client)
        self._pod_clients: dict[str, GatewayClient] = {}
        wait = config.management.replica_wait_seconds
        self.verifier = (
            ReplicaVerifier(self._replicas, self._rewrite, wait, pause=max(0.01, min(0.5, wait / 20)))
            if config.management.verify_replicas
            else None
        )
        self.reloads = ReloadCoordinator(self._reload_batch)
        ttl = config.client.list_cache_ttl
        self.apis = SharedList(self.client.list_apis, "api_id", ttl, self.client.reload_local)
        self.policies = SharedList(self.client.list_policies, "id", ttl, self.client.reload_local)
        self.oas_apis = SharedList(self.client.list_oas_apis, oas_api_id, ttl, self.client.reload_local)
        self._existing_lock = threading.Lock()
        self._existing: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def _reload_batch(self, changes: list[Change]) -> None:
        self.client.reload_group()
        if self.verifier is not None:
            self.verifier.verify(changes)

    def _replicas(self) -> list[tuple[str, GatewayClient]]:
        """Every ready gateway pod (through the pod proxy), or the one URL when there is no cluster access."""
        if self.kube is None or self.target is None:
            return [(self.client.label, self.client)]
        replicas = []
        for pod in self.kube.ready_pods(self.target):
            client = self._pod_clients.get(pod.name)
            if client is None:
                client = self._pod_clients[pod.name] = GatewayClient(
                    self.kube.pod_proxy_url(self.target.namespace, pod),
                    self.config.secret,
                    self.config.client,
                    transport=self.kube.transport,
                    label=f"pod {self.target.namespace}/{pod.name}",
                )
            replicas.append((f"pod {pod.name}", client))
        return replicas

    def _rewrite(self, change: Change) -> None:
        if change.kind == "oas":
            if change.content is None:
                self.client.delete_oas_api(change.object_id)
            else:
                self.client.upsert_oas_api(change.content, change.object_id)
        elif change.kind == "api":
            if change.content is None:
                self.client.delete_api(change.object_id)
            else:
                self.client.upsert_api(change.content)
        elif change.content is None:
            self.client.delete_policy(change.object_id)
        else:
            self.client.update_policy(change.content)

    def existing(self, kind: str) -> dict[str, list[dict[str, Any]]]:
        """Objects on the gateway (files loaded first) before this process wrote anything; one call per kind."""
        with self._existing_lock:
            found = self._existing.get(kind)
            if found is None:
                self.client.reload_local()
                list_objects, id_of = LISTS[kind]
                found = self._existing[kind] = by_id(list_objects(self.client), id_of)
            return found

    def forget_existing(self, kind: str, object_id: str) -> None:
        with self._existing_lock:
            if kind in self._existing:
                self._existing[kind].pop(object_id, None)


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


class AdoptionRefusedError(RuntimeError):
    """create found an object with the same id that Pulumi doesn't manage, with other content."""


def _gateway_url_problem(value: Any) -> str | None:
    if value == UNKNOWN:
        return None
    if not isinstance(value, str):
        return f"gateway_url: must be a string (got {type(value).__name__})"
    if value.startswith(f"{KUBE_SCHEME}://"):
        try:
            KubeTarget.parse(value)
        except ValueError as error:
            return f"gateway_url: {error}"
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"gateway_url: must be an http(s) URL such as https://gateway.example.com (got {value!r})"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "gateway_url: must not contain credentials, a query or a fragment"
    return None


ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(raw: Any, model: type[ModelT], key: str) -> ModelT:
    if not raw:
        return model()
    try:
        return model.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
    except (ValueError, ValidationError) as error:
        first = str(error).splitlines()
        detail = " ".join(line.strip() for line in first[1:3]) if len(first) > 1 else str(error)
        raise ValueError(f"stack config tyk-aks:{key} is invalid: {detail}") from None


def _norm_url(value: Any) -> Any:
    return value.rstrip("/") if isinstance(value, str) and value != UNKNOWN else value


class _TykProvider(ResourceProvider):
    """Shared CRUD logic; subclasses say which kind of object they manage."""

    # Class attributes only: instances carry no state into the serialized provider.
    serialize_as_secret_always = False
    kind: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    id_output: ClassVar[str]  # resource input/output that mirrors the object's id
    id_field: ClassVar[str]  # the id's field inside the definition
    change_kind: ClassVar[str]  # "api", "oas" or "policy"
    map_paths: ClassVar[frozenset[Path]]
    _config: ProviderConfig | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # configuration (with the admin secret) is never serialized

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- configuration ---------------------------------------------------------------------------

    def configure(self, req: ConfigureRequest) -> None:
        secret = req.config.get(SECRET_KEY) or os.environ.get(SECRET_ENV_VAR)
        settings = _parse(req.config.get(CLIENT_CONFIG_KEY), ClientSettings, CLIENT_CONFIG_KEY)
        cluster = _parse(req.config.get("cluster"), ClusterRef, "cluster")
        management = _parse(req.config.get("apiManagement"), ManagementRef, "apiManagement")
        self._config = ProviderConfig(
            Secret(secret) if secret else None,
            settings,
            cluster,
            management,
            req.config.get(SUBSCRIPTION_CONFIG_KEY),
        )

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

    def _object_id(self, definition: Mapping[str, Any]) -> Any:
        return definition[self.id_field]

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
        object_id = str(self._object_id(definition))
        if created:
            self._refuse_unmanaged(gateway, object_id, definition)
        with gateway.reloads.write(Change(self.change_kind, object_id, definition)):
            try:
                self._put(gateway, definition, created)
            finally:
                self._lists(gateway).invalidate()
        return self._outputs(props["gateway_url"], definition)

    def _refuse_unmanaged(self, gateway: Gateway, object_id: str, definition: Mapping[str, Any]) -> None:
        """The gateway's POST is an upsert: never let `create` silently take over someone else's object."""
        if object_id in self._adopt_ids():
            return
        live = gateway.existing(self.change_kind).get(object_id)
        if not live or any(project(item, definition, self.map_paths) == definition for item in live):
            return  # absent, or identical (e.g. left by an earlier attempt of this very create)
        raise AdoptionRefusedError(
            f"{self.kind} {object_id!r} already exists on the gateway with other content and this stack doesn't "
            f"manage it; refusing to overwrite it. To take it over, write its definition with "
            f"`python -m tyk_gateway.adopt {self.change_kind} {object_id}` and allow the takeover with "
            f"`pulumi config set --path 'apiManagement.adopt[0]' {object_id}`, or choose another id"
        )

    def _adopt_ids(self) -> tuple[str, ...]:
        return (self._config or ProviderConfig.from_env()).management.adopt

    def create(self, props: dict[str, Any]) -> CreateResult:
        outputs = self._write(props, created=True)
        return CreateResult(str(outputs[self.id_output]), outputs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._write(news, created=False))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        gateway = self._gateway(props)
        with gateway.reloads.write(Change(self.change_kind, _id, None)):
            try:
                self._remove(gateway, _id)
            finally:
                self._lists(gateway).invalidate()
                gateway.forget_existing(self.change_kind, _id)

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


def _delete_api_file(
    gateway: Gateway, delete: Callable[[str], DeleteOutcome], object_id: str, kind: str
) -> None:
    """DELETE a classic or OAS API, loading the gateway's files first when it answers 404.

    404: the replica that answered has not loaded this API, but its file may exist (written and not reloaded
    yet). Make a replica load its files, then delete for real. Behind a Service (or a load balancer) the next
    call may reach another replica, hence three rounds there; replica verification then confirms that no
    replica serves it any more.
    """
    outcome = delete(object_id)
    for _ in range(1 if gateway.kube is None else 3):
        if outcome is not DeleteOutcome.NOT_LOADED:
            break
        gateway.client.reload_local()
        outcome = delete(object_id)
    if outcome is not DeleteOutcome.DELETED:
        log.info("%s %s was already gone (%s)", kind, object_id, outcome.value)


class TykApiProvider(_TykProvider):
    """Classic API definitions via ``/tyk/apis``."""

    kind = "Tyk API"
    model = ApiDefinition
    id_output = "api_id"
    id_field = "api_id"
    change_kind = "api"
    map_paths = API_MAP_PATHS

    def _lists(self, gateway: Gateway) -> SharedList:
        return gateway.apis

    def _derived(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "api_id": definition.get("api_id"),
            "name": definition.get("name"),
            "listen_path": dig(definition, "proxy", "listen_path"),
            "target_url": dig(definition, "proxy", "target_url"),
        }

    def _put(self, gateway: Gateway, definition: Mapping[str, Any], created: bool) -> None:
        # POST is an upsert: it works for updates of APIs not loaded yet (PUT would 404).
        gateway.client.upsert_api(definition)

    def _remove(self, gateway: Gateway, object_id: str) -> None:
        _delete_api_file(gateway, gateway.client.delete_api, object_id, self.kind)


class TykPolicyProvider(_TykProvider):
    """Security policies via ``/tyk/policies`` (gateway v4.1+ with ``policies.policy_path`` set)."""

    kind = "Tyk policy"
    model = Policy
    id_output = "policy_id"
    id_field = "id"
    change_kind = "policy"
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
    id_field = "x-tyk-api-gateway.info.id"
    change_kind = "oas"
    map_paths = OAS_MAP_PATHS

    def _object_id(self, definition: Mapping[str, Any]) -> Any:
        return oas_api_id(definition)

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
        _delete_api_file(gateway, gateway.client.delete_oas_api, object_id, self.kind)
