"""Guarantees that three deliberately injected bugs once slipped past: each test here fails when one breaks.

* every managed field of a definition changes the diff (cases generated from the models' fields);
* `TykApi`/`TykPolicy` depend on the gateway release in every stack's plan;
* the admin secret is in no output, no recorded input and no pickled provider.
"""

from __future__ import annotations

import base64
import json
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pydantic import BaseModel

from offline.plan import read_stack_config, run_program
from tests.conftest import STACKS
from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import SECRET, api_definition, new_command, policy_definition, props
from tyk_gateway.models import ApiDefinition, Policy
from tyk_gateway.provider import TykApiProvider, TykPolicyProvider, _TykProvider

Path = tuple[str, ...]
API_TYPE = "pulumi-python:dynamic/tyk:Api"
POLICY_TYPE = "pulumi-python:dynamic/tyk:Policy"


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _model(annotation: Any) -> type[BaseModel] | None:
    inner = _strip_optional(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def managed_fields(model: type[BaseModel], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every typed field of the model, nested models walked into: (path of JSON keys, annotation)."""
    for name, info in model.model_fields.items():
        path = (*prefix, info.alias or name)
        nested = _model(info.annotation)
        if nested is not None:
            yield from managed_fields(nested, path)
        else:
            yield path, _strip_optional(info.annotation)


def _changed_value(path: Path, annotation: Any, current: Any) -> Any:
    """A valid value for the field that differs from ``current``."""
    name = path[-1]
    origin = get_origin(annotation)
    if annotation is bool:
        return not current
    if origin is Literal:
        return get_args(annotation)[0] if current is None else None
    if annotation is int:
        return (current or 0) + 7
    if annotation is float:
        return (current or 0) + 7.5
    if annotation is str:
        if name in ("id", "_id"):
            return "0123456789abcdef01234567"
        if "path" in name:
            return "/changed-by-test/"
        if "url" in name:
            return "http://changed-by-test.example"
        if name == "api_id":
            return "changed-by-test"
        return "changed-by-test"
    if origin is list:
        if name in ("allowed_ips", "blacklisted_ips"):
            return ["10.1.2.3"]
        item = get_args(annotation)[0]
        return [{"url": "/changed", "methods": ["GET"]}] if get_origin(item) is dict else ["changed-by-test"]
    if origin is dict:
        value_type = _strip_optional(get_args(annotation)[1])
        if _model(value_type) is not None:
            entry: Any = {}
        elif value_type is str:
            entry = "changed-by-test"
        else:
            entry = {"changed": True} if value_type is Any else "changed-by-test"
        return {**(current or {}), "changed-by-test": entry}
    raise AssertionError(f"no value generator for {'.'.join(path)}: {annotation!r}")


def _get(document: dict[str, Any], path: Path) -> Any:
    for key in path:
        document = document.get(key) if isinstance(document, dict) else None  # type: ignore[assignment]
    return document


def _set(document: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return copy


#: Fields the models only accept together with another one (cross-field rules): set that one in the base.
COMPANIONS: dict[Path, tuple[Path, Any]] = {
    ("proxy", "enable_load_balancing"): (
        ("proxy", "target_list"),
        ["http://one.example", "http://two.example"],
    ),
}

CASES = [(TykApiProvider, "api", path, annotation) for path, annotation in managed_fields(ApiDefinition)] + [
    (TykPolicyProvider, "policy", path, annotation) for path, annotation in managed_fields(Policy)
]


def test_the_generated_cases_cover_the_fields_people_edit() -> None:
    paths = {".".join(path) for _, _, path, _ in CASES}
    assert {
        "proxy.listen_path",
        "proxy.target_url",
        "use_keyless",
        "rate",
        "access_rights",
        "quota_max",
    } <= paths
    assert len(CASES) > 60


@pytest.mark.parametrize(
    ("provider_class", "kind", "path", "annotation"), CASES, ids=[f"{c[1]}:{'.'.join(c[2])}" for c in CASES]
)
def test_every_managed_field_changes_the_diff(
    provider_class: type[_TykProvider], kind: str, path: Path, annotation: Any
) -> None:
    provider = provider_class()
    url = "http://gateway.example:9696"
    base = api_definition("a") if kind == "api" else policy_definition("p")
    if path in COMPANIONS:
        base = _set(base, *COMPANIONS[path])
    old = props(provider, url, base)
    olds = provider._outputs(url, old["definition"])
    changed = _set(base, path, _changed_value(path, annotation, _get(old["definition"], path)))
    news = props(provider, url, changed)
    assert news["definition"] != old["definition"], "the generated change vanished in check()"
    assert provider.diff(str(olds[provider.id_output]), olds, news).changes is True


@pytest.mark.parametrize("stack", STACKS)
def test_apis_and_policies_depend_on_the_gateway_release_in_every_plan(stack: str) -> None:
    plan = run_program(stack)
    release = plan.one("kubernetes:helm.sh/v3:Release", "gateway-release")
    managed = plan.find(API_TYPE) + plan.find(POLICY_TYPE)
    assert managed, f"{stack}: apiManagement declares no TykApi/TykPolicy"
    for resource in managed:
        assert release.urn in resource.dependencies, (
            f"{stack}: {resource.name} doesn't wait for the gateway release"
        )


def _provider_blob_text(blob: str) -> str:
    return dill.loads(base64.b64decode(blob)).__class__.__name__ + base64.b64decode(blob).decode("latin-1")


def test_the_admin_secret_is_in_no_recorded_input_and_no_pickled_provider() -> None:
    secret = "plan-admin-secret-8c1f0e"
    config, secret_keys, _ = read_stack_config("dev")
    plan = run_program("dev", {**config, "tyk-aks:apiSecret": secret}, [*secret_keys, "tyk-aks:apiSecret"])
    managed = plan.find(API_TYPE) + plan.find(POLICY_TYPE)
    assert managed
    for resource in managed:
        blob = resource.inputs["__provider"]
        blob = blob.get("value", blob) if isinstance(blob, dict) else blob
        assert secret not in _provider_blob_text(blob)
        rest = {k: v for k, v in resource.inputs.items() if k != "__provider"}
        assert secret not in json.dumps(rest, default=str), resource.name


def test_the_admin_secret_is_in_no_create_update_or_read_output(emulator: GatewayEmulator) -> None:
    from tests.provider.conftest import plugin_provider, stack_config

    outputs: list[Any] = []
    apis = plugin_provider(TykApiProvider, stack_config())
    policies = plugin_provider(TykPolicyProvider, stack_config())
    for provider, definition, changed in (
        (apis, api_definition("a"), api_definition("a", name="renamed")),
        (policies, policy_definition("p", ("a",)), policy_definition("p", ("a",), rate=5)),
    ):
        created = provider.create(props(provider, emulator.url, definition))
        updated = provider.update(created.id, created.outs or {}, props(provider, emulator.url, changed))
        new_command()
        read = provider.read(created.id, updated.outs or {})
        outputs += [created.outs, updated.outs, read.outs, read.inputs]
        # The provider as the plugin holds it after configure(): what a checkpoint could ever serialize.
        assert SECRET.encode() not in dill.dumps(provider)
        assert SECRET.encode() not in base64.b64decode(serialize_provider(provider))
    text = json.dumps(outputs)
    assert "definition" in text and SECRET not in text
