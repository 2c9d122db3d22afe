"""Pulumi unit-test mocks that record every registration, for the offline plan and the test suite.

`pulumi.runtime.Mocks` only sees a resource's type, name and inputs; the recording monitor also keeps the
parent, the explicit dependencies and the options the engine would receive, so tests can assert ordering
(e.g. the gateway release waits for its volumes) and the plan can print a tree.

Registrations reach the monitor from the SDK's thread pool once each resource's inputs have resolved, so their
order changes from run to run. The order a plan prints is the order the program *declares* its resources in
(constructor calls, which run synchronously in program order), recorded by a stack transformation: the same
program and stack file always print the same plan.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

# What the Pulumi wire protocol puts around a secret value (rpc._special_sig_key / _special_secret_sig).
SECRET_SIG_KEY = rpc._special_sig_key
SECRET_SIG = rpc._special_secret_sig

StateFunction = Callable[[pulumi.runtime.MockResourceArgs], dict[str, Any]]


@dataclass
class RecordedResource:
    """One resource registration as the engine would have received it."""

    type: str
    name: str
    urn: str
    parent_urn: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    provider: str
    options: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """`type::name`, unique within a stack for our naming scheme."""
        return f"{self.type}::{self.name}"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def reveal(value: Any) -> Any:
    """The value with every secret wrapper removed (for assertions on what a resource really receives)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def mask(value: Any, placeholder: str = "[secret]") -> Any:
    """The value with every secret replaced by a placeholder (for printing plans)."""
    if is_secret(value):
        return placeholder
    if isinstance(value, dict):
        return {k: mask(v, placeholder) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, placeholder) for v in value]
    return value


def secret_strings(value: Any) -> Iterator[str]:
    """Every string inside a secret wrapper anywhere in `value` (the values a plan must never show)."""
    if is_secret(value):
        yield from _strings(reveal(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from secret_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from secret_strings(item)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _azure_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    # Azure auto-names resources; the mock must return `name` or dependants lose their inputs (see notes).
    state = dict(args.inputs)
    state.setdefault(
        "name", args.inputs.get("resourceName") or args.inputs.get("resourceGroupName") or args.name
    )
    return state


def _release_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    state = dict(args.inputs)
    state["status"] = {
        "name": args.inputs.get("name", args.name),
        "namespace": args.inputs.get("namespace", "default"),
        "status": "deployed",
        "chart": args.inputs.get("chart"),
        "version": args.inputs.get("version"),
        "revision": 1,
    }
    return state


def _random_password_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    state = dict(args.inputs)
    length = int(args.inputs.get("length", 32))
    state["result"] = ("offline-" + args.name + "-" + "x" * length)[:length]
    return state


def _managed_cluster_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    # Azure fills in the system-assigned identity's object id; role assignments for the cluster read it.
    state = _azure_state(args)
    identity = dict(state.get("identity") or {})
    identity.setdefault("principalId", f"{args.name}-principal-id")
    state["identity"] = identity
    return state


def _storage_account_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    state = _azure_state(args)
    state["name"] = args.inputs.get("accountName", args.name)
    return state


def _named_by(key: str) -> StateFunction:
    def state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
        result = _azure_state(args)
        result["name"] = args.inputs.get(key, args.name)
        return result

    return state


def _random_id_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    # A new id whenever the keepers change, as the provider replaces the resource then.
    state = dict(args.inputs)
    keepers = json.dumps(reveal(args.inputs.get("keepers") or {}), sort_keys=True)
    state["hex"] = hashlib.sha256(f"{args.name}:{keepers}".encode()).hexdigest()[
        : 2 * int(args.inputs.get("byteLength", 8))
    ]
    return state


# Per-type output functions; anything else echoes its inputs back as state, which is what the engine does for
# the fields we read (names, namespaces). Extended by other modules with `register_state_function`.
STATE_FUNCTIONS: dict[str, StateFunction] = {
    "kubernetes:helm.sh/v3:Release": _release_state,
    "random:index/randomPassword:RandomPassword": _random_password_state,
    "random:index/randomId:RandomId": _random_id_state,
    "azure-native:containerservice:ManagedCluster": _managed_cluster_state,
    "azure-native:storage:StorageAccount": _storage_account_state,
    "azure-native:redisenterprise:RedisEnterprise": _named_by("clusterName"),
    "azure-native:redisenterprise:Database": _named_by("databaseName"),
}


def register_state_function(type_token: str, function: StateFunction) -> None:
    STATE_FUNCTIONS[type_token] = function


# --- the controller image, its registry and the cluster identity pulling it ----------------------------------
# Offline stand-ins for what the engine returns after a build/create, so the deployed image reference and the
# registry wiring can be asserted: a registry digest that changes with every build input (as a rebuild would),
# an ACR login server (`<name>.azurecr.io`, how ACR names it), the AKS kubelet identity.

OFFLINE_KUBELET_OBJECT_ID = "00000000-0000-0000-0000-00000000c0be"


def _image_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    state = dict(args.inputs)
    digest = (
        "sha256:" + hashlib.sha256(json.dumps(args.inputs, sort_keys=True, default=str).encode()).hexdigest()
    )
    tags = list(args.inputs.get("tags") or [])
    if args.inputs.get("push"):
        state["digest"] = digest
        state["ref"] = f"{tags[0]}@{digest}" if tags else ""
    return state


def _registry_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    state = _azure_state(args)
    name = str(args.inputs.get("registryName") or args.name)
    state["name"] = name
    state["loginServer"] = f"{name.lower()}.azurecr.io"
    return state


def _managed_cluster_with_kubelet_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    # AKS also reports the kubelet identity (what pulls images): the controller image's AcrPull goes to it.
    state = _managed_cluster_state(args)
    state["identityProfile"] = {
        "kubeletidentity": {
            "objectId": OFFLINE_KUBELET_OBJECT_ID,
            "clientId": "00000000-0000-0000-0000-00000000c11e",
            "resourceId": "/subscriptions/offline/resourceGroups/offline/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/kubelet",
        }
    }
    return state


def _random_string_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    state = dict(args.inputs)
    length = int(args.inputs.get("length", 8))
    state["result"] = ("offline" + args.name.replace("-", ""))[:length].lower()
    return state


PINNED_IMAGE_TYPE = "pulumi-python:dynamic/images:PinnedImage"


def _pinned_image_state(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    # The provider's `check` asks the registry (in a preview too); offline there is none, so a stand-in digest
    # derived from the reference: it changes with the tag, as a new tag's digest would.
    reference = str(args.inputs["reference"])
    digest = "sha256:" + hashlib.sha256(f"offline pin of {reference}".encode()).hexdigest()
    generation = args.inputs.get("generation", 1)
    return {
        "reference": reference,
        "generation": generation,
        "digest": digest,
        "image": f"{reference}@{digest}",
    }


STATE_FUNCTIONS.update(
    {
        PINNED_IMAGE_TYPE: _pinned_image_state,
        "docker-build:index:Image": _image_state,
        "azure-native:containerregistry:Registry": _registry_state,
        "azure-native:containerservice:ManagedCluster": _managed_cluster_with_kubelet_state,
        "random:index/randomString:RandomString": _random_string_state,
    }
)


class OfflineMocks(pulumi.runtime.Mocks):
    """Realistic-enough outputs for every resource type the program declares."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        function = STATE_FUNCTIONS.get(args.typ)
        if function is None and args.typ.startswith("azure-native:"):
            function = _azure_state
        state = function(args) if function else dict(args.inputs)
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            kubeconfig = b"apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"
            return {
                "kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(kubeconfig).decode()}]
            }, []
        if args.token == "azure-native:redisenterprise:listDatabaseKeys":
            prefix = f"offline-{args.args.get('clusterName')}-{args.args.get('databaseName')}"
            return {"primaryKey": f"{prefix}-primary-key", "secondaryKey": f"{prefix}-secondary-key"}, []
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": "offline-client-id",
                "objectId": "offline-object-id",
                "subscriptionId": "00000000-0000-0000-0000-000000000000",
                "tenantId": "11111111-1111-1111-1111-111111111111",
            }, []
        if args.token == "azure-native:containerregistry:listRegistryCredentials":
            return {
                "username": str(args.args.get("registryName", "registry")),
                "passwords": [{"name": "password", "value": "offline-registry-password"}],
            }, []
        return {}, []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also records parents, dependencies, options and stack outputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.stack_outputs: dict[str, Any] = {}
        self.declared: dict[tuple[str, str], int] = {}
        self._stack_urn = ""
        self._loops: dict[int, asyncio.AbstractEventLoop] = {}

    def record_declaration(self, args: pulumi.ResourceTransformationArgs) -> None:
        """A stack transformation (`pulumi.runtime.register_stack_transformation`) noting declaration order.

        Transformations run inside each resource's constructor, before anything is awaited, so this sees the
        resources in the order the program's code declares them, whatever order their registrations finish in.
        """
        self.declared.setdefault((args.type_, args.name), len(self.declared))

    def in_declaration_order(self) -> list[RecordedResource]:
        """The recorded resources in the order the program declared them; any it didn't see (e.g. default
        providers) after them, by `type::name`."""
        unseen = len(self.declared)
        return sorted(self.recorded, key=lambda r: (self.declared.get((r.type, r.name), unseen), r.key))

    def thread_loops(self) -> list[asyncio.AbstractEventLoop]:
        """The event loops the monitor's calls ran with, one per calling thread (the caller closes them)."""
        return list(self._loops.values())

    def _note_loop(self) -> None:
        self._loops[threading.get_ident()] = pulumi_mocks._ensure_event_loop()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self._note_loop()
        if request.type == "pulumi:pulumi:Stack":
            self._stack_urn = response.urn
            return response
        registration = self.resources[response.urn]
        self.recorded.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent_urn=request.parent,
                custom=bool(request.custom),
                inputs=rpc_inputs(request),
                dependencies=list(request.dependencies),
                provider=request.provider,
                options={
                    "ignoreChanges": list(request.ignoreChanges),
                    "additionalSecretOutputs": list(request.additionalSecretOutputs),
                    "protect": request.protect,
                    "retainOnDelete": request.retainOnDelete,
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "replaceOnChanges": list(request.replaceOnChanges),
                },
                outputs=dict(registration.state),
            )
        )
        return response

    def Invoke(self, request: Any) -> Any:
        response = super().Invoke(request)
        self._note_loop()
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        self._note_loop()
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self._note_loop()
        if request.urn == self._stack_urn:
            pulumi_mocks._ensure_event_loop()
            self.stack_outputs.update(rpc.deserialize_properties(request.outputs, keep_unknowns=True))
        return super().RegisterResourceOutputs(request)


def rpc_inputs(request: Any) -> dict[str, Any]:
    """The inputs of a registration with secrets kept wrapped (so they can be masked or asserted on)."""
    pulumi_mocks._ensure_event_loop()
    return dict(rpc.deserialize_properties(request.object, keep_unknowns=True))


# Real keys and certificates for pulumi-tls resources, so tests can check the webhook's chain of trust.
import offline.tls_outputs  # noqa: E402, F401
