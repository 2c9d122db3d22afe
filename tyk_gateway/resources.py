"""``TykApi`` and ``TykPolicy``: Tyk objects as Pulumi resources.

Example::

    api = TykApi("httpbin", {"api_id": "httpbin", "name": "httpbin", "proxy": {...}}, gateway_url=url)
    TykPolicy(
        "httpbin-basic",
        {"id": "httpbin-basic", "rate": 100, "per": 60, "access_rights": [access_right(api)]},
        gateway_url=url,
    )

``access_right(api)`` puts ``api.api_id`` (an Output) into the policy, so Pulumi creates
the API first and deletes it last. The id-like fields (``api_id``, ``listen_path``, ...)
are also passed as inputs, which keeps them known during ``preview``.

No ``from __future__ import annotations`` here: the SDK resolves a resource class's annotations with
``typing.get_type_hints`` on every construction, and evaluating them from strings made that a third of the
per-resource cost of a large program.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi.dynamic import Resource, ResourceProvider
from pydantic import BaseModel

from .models import ApiDefinition, Policy, dump_definition
from .oas import EXTENSION
from .provider import TykApiProvider, TykOasApiProvider, TykPolicyProvider
from .sdk_workarounds import unwrap_batch_setitems

#: A definition: a typed model, a dict (values may be Outputs), or an Output of a dict.
DefinitionInput = BaseModel | Mapping[str, Any] | pulumi.Output[Any]


def _as_input(definition: DefinitionInput) -> Any:
    return dump_definition(definition) if isinstance(definition, BaseModel) else definition


def _pick(value: Any, *path: str) -> Any:
    """A nested field of a definition that may be (or contain) Outputs, as an Input."""
    for index, key in enumerate(path):
        if isinstance(value, pulumi.Output):
            rest = path[index:]

            def pick_rest(resolved: Any, rest: tuple[str, ...] = rest) -> Any:
                return _pick(resolved, *rest)

            return value.apply(pick_rest)
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


class _TykResource(Resource):
    """What every Tyk resource declares: the definition and the gateway URL, plus the id-like fields of the
    definition (``mirrored``: input name -> path in the definition) as inputs of their own."""

    def __init__(
        self,
        provider: ResourceProvider,
        resource_name: str,
        definition: DefinitionInput,
        gateway_url: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None,
        mirrored: Mapping[str, tuple[str, ...]],
    ) -> None:
        value = _as_input(definition)
        props: dict[str, Any] = {"gateway_url": gateway_url, "definition": value}
        props.update((name, _pick(value, *path)) for name, path in mirrored.items())
        super().__init__(provider, resource_name, props, opts)
        unwrap_batch_setitems()  # SDK defect, see sdk_workarounds


class TykApi(_TykResource, module="tyk", name="Api"):
    """A Tyk classic API definition, managed through the gateway REST API."""

    api_id: pulumi.Output[str]
    """The API's id (client-chosen; changing it replaces the API)."""
    name: pulumi.Output[str]
    listen_path: pulumi.Output[str]
    target_url: pulumi.Output[str]
    definition: pulumi.Output[dict[str, Any]]
    """The normalised definition as last written to (or read from) the gateway."""
    gateway_url: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        definition: ApiDefinition | DefinitionInput,
        gateway_url: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        mirrored = {
            "api_id": ("api_id",),
            "name": ("name",),
            "listen_path": ("proxy", "listen_path"),
            "target_url": ("proxy", "target_url"),
        }
        super().__init__(TykApiProvider(), resource_name, definition, gateway_url, opts, mirrored)


class TykOasApi(_TykResource, module="tyk", name="OasApi"):
    """A Tyk OAS API: an OpenAPI 3.0/3.1 document with ``x-tyk-api-gateway``, managed through ``/tyk/apis/oas``.

    Its id is ``x-tyk-api-gateway.info.id`` (client-chosen; changing it replaces the API); policies grant it
    by that id like any classic API (``access_right(oas_api)``).
    """

    api_id: pulumi.Output[str]
    name: pulumi.Output[str]
    listen_path: pulumi.Output[str]
    target_url: pulumi.Output[str]
    definition: pulumi.Output[dict[str, Any]]
    """The OpenAPI document as last written to (or read from) the gateway."""
    gateway_url: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        definition: DefinitionInput,
        gateway_url: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        mirrored = {
            "api_id": (EXTENSION, "info", "id"),
            "name": (EXTENSION, "info", "name"),
            "listen_path": (EXTENSION, "server", "listenPath", "value"),
            "target_url": (EXTENSION, "upstream", "url"),
        }
        super().__init__(TykOasApiProvider(), resource_name, definition, gateway_url, opts, mirrored)


class TykPolicy(_TykResource, module="tyk", name="Policy"):
    """A Tyk security policy, managed through the gateway REST API."""

    policy_id: pulumi.Output[str]
    """The policy's id (client-chosen; changing it replaces the policy)."""
    name: pulumi.Output[str]
    definition: pulumi.Output[dict[str, Any]]
    gateway_url: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        definition: Policy | DefinitionInput,
        gateway_url: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        mirrored = {"policy_id": ("id",), "name": ("name",)}
        super().__init__(TykPolicyProvider(), resource_name, definition, gateway_url, opts, mirrored)


def access_right(
    api: TykApi | TykOasApi, versions: Sequence[str] = ("Default",), **extra: Any
) -> dict[str, Any]:
    """One ``access_rights`` entry granting access to ``api`` (use in a list; check keys it by api_id)."""
    return {"api_id": api.api_id, "api_name": api.name, "versions": list(versions), **extra}
