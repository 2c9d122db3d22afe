"""Declaring resources from a definitions folder, including the shipped sample used by the dev stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import api_definition, policy_definition, props
from tests.provider.test_resources import API_TYPE, POLICY_TYPE, Mocks
from tyk_gateway.loader import DefinitionFileError, declare_definitions, load_definitions
from tyk_gateway.provider import _TykProvider

SAMPLE = Path(__file__).resolve().parents[2] / "definitions"


def write(folder: Path, name: str, content: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_shipped_sample_is_valid_and_consistent() -> None:
    loaded = load_definitions(SAMPLE)
    assert list(loaded.apis) == ["httpbin"] and list(loaded.policies) == ["httpbin-basic"]
    api = loaded.apis["httpbin"]
    assert api["use_keyless"] is False and api["proxy"]["listen_path"] == "/httpbin/"
    assert api["version_data"]["not_versioned"] is True and list(api["version_data"]["versions"]) == [
        "Default"
    ]
    policy = loaded.policies["httpbin-basic"]
    assert (
        set(policy["access_rights"]) == {"httpbin", "petstore"}
        and policy["org_id"] == api["org_id"] == "default"
    )
    assert list(loaded.oas_apis) == ["petstore"]


def test_the_shipped_sample_deploys_to_the_gateway(
    emulator: GatewayEmulator, api_provider: _TykProvider, policy_provider: _TykProvider
) -> None:
    loaded = load_definitions(SAMPLE)
    api_provider.create(props(api_provider, emulator.url, loaded.apis["httpbin"]))
    policy_provider.create(props(policy_provider, emulator.url, loaded.policies["httpbin-basic"]))
    emulator.reload_now()
    assert emulator.loaded_apis["httpbin"]["auth_configs"]["authToken"]["auth_header_name"] == "Authorization"
    assert emulator.loaded_policies["httpbin-basic"]["access_rights"]["httpbin"]["versions"] == ["Default"]


def test_json_and_yaml_one_resource_per_file(tmp_path: Path) -> None:
    write(tmp_path / "apis", "a.json", api_definition("a"))
    write(
        tmp_path / "apis", "b.yml", "api_id: b\nname: b\nproxy: {listen_path: /b/, target_url: 'http://b'}\n"
    )
    write(tmp_path / "apis", "notes.txt", "ignored")
    write(tmp_path / "policies", "p.yaml", json.dumps(policy_definition("p", api_ids=("a", "b"))))
    loaded = load_definitions(tmp_path)
    assert sorted(loaded.apis) == ["a", "b"] and list(loaded.policies) == ["p"]
    assert loaded.apis["b"]["version_data"] == {
        "not_versioned": True,
        "versions": {"Default": {"name": "Default"}},
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"apis/bad.yaml": "api_id: x\nname: x\nproxy: {listen_path: x, target_url: 'http://x'}\n"},
         r"apis/bad\.yaml:3:9: definition\.proxy\.listen_path: must start with '/'"),
        ({"apis/broken.yaml": "api_id: [unclosed\n"}, r"apis/broken\.yaml:2:1: not valid YAML"),
        ({"apis/broken.json": "{"}, r"apis/broken\.json:1:2: not valid JSON"),
        ({"apis/list.yaml": "- a\n- b\n"}, r"apis/list\.yaml: definition: must be an object \(got list\)"),
        ({"policies/p.json": {"id": "bad id"}}, r"policies/p\.json:1:2: definition\.id: allowed characters"),
        ({"apis/one.json": api_definition("same"), "apis/two.json": api_definition("same")},
         r"apis/two\.json:1:2: definition\.api_id 'same' also used by .*one\.json"),
        ({"apis/x.json": api_definition("x"), "apis/x.yaml": "api_id: y\n"}, r"apis/x\.yaml: same resource name as x\.json"),
    ],
)  # fmt: skip
def test_bad_files_name_the_file_and_field(tmp_path: Path, files: dict[str, Any], message: str) -> None:
    for name, content in files.items():
        folder, filename = name.split("/")
        write(tmp_path / folder, filename, content)
    with pytest.raises(DefinitionFileError, match=message):
        load_definitions(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DefinitionFileError, match="definitions folder not found"):
        load_definitions(tmp_path / "nope")


@pytest.fixture
def mocks() -> Mocks:
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="tyk-aks", stack="dev", preview=False)
    return m


def test_declare_definitions_names_resources_by_file_and_orders_policies(mocks: Mocks) -> None:
    declared: list[Any] = []

    def program() -> Any:
        result = declare_definitions(SAMPLE, "http://gw:8080", pulumi.ResourceOptions(protect=False))
        declared.append(result)
        return result.policies["httpbin-basic"].policy_id

    pulumi.runtime.test(lambda: program().apply(lambda _: None))()
    registered = [(r.typ, r.name) for r in mocks.resources]
    # The two APIs are independent, so they register in whatever order the SDK's threads finish; the policy
    # waits for the APIs it grants, so it always comes last.
    assert sorted(registered[:2]) == sorted(
        [(API_TYPE, "httpbin"), ("pulumi-python:dynamic/tyk:OasApi", "petstore")]
    )
    assert registered[2] == (POLICY_TYPE, "httpbin-basic")
    assert list(declared[0].apis) == ["httpbin"] and list(declared[0].policies) == ["httpbin-basic"]
    assert mocks.resources[2].inputs["definition"]["access_rights"]["httpbin"]["api_id"] == "httpbin"


def test_a_bad_file_declares_nothing(mocks: Mocks, tmp_path: Path) -> None:
    write(tmp_path / "apis", "good.json", api_definition("good"))
    write(tmp_path / "policies", "bad.json", {"id": "p", "quota_max": "lots"})
    with pytest.raises(DefinitionFileError, match=r"bad\.json:1:13: definition\.quota_max"):
        declare_definitions(tmp_path, "http://gw:8080")
    assert mocks.resources == []


# --- error reports: every problem at once, file:line:column, no traceback ------------------------------------


def test_every_problem_of_every_file_at_once_with_positions(tmp_path: Path) -> None:
    write(
        tmp_path / "apis", "a.yaml", "api_id: a\nname: a\nproxy:\n  target_url: http://a\n"
    )  # no listen_path
    write(tmp_path / "apis", "b.yaml", "api_id: b\nname: b\nproxy: {listen_path: /b/, target_url: [\n")
    write(tmp_path / "apis", "c.json", '{"api_id": "c",\n "name": "c",,\n}')
    with pytest.raises(DefinitionFileError) as caught:
        load_definitions(tmp_path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3 == len(caught.value.problems)
    assert lines[0].endswith("apis/a.yaml:3:1: definition.proxy.listen_path: Field required")
    assert "apis/b.yaml:4:1: not valid YAML" in lines[1]
    assert "apis/c.json:2:14: not valid JSON: Expecting property name" in lines[2]
    assert isinstance(caught.value, pulumi.RunError)  # the Pulumi language host prints it without a traceback


def test_two_apis_on_one_listen_path_of_one_domain(tmp_path: Path) -> None:
    def api(api_id: str, listen_path: str, domain: str | None = None) -> dict[str, Any]:
        definition = api_definition(api_id)
        definition["proxy"]["listen_path"] = listen_path
        return {**definition, "domain": domain} if domain else definition

    write(tmp_path / "apis", "first.json", api("first", "/shop/"))
    write(tmp_path / "apis", "other-domain.json", api("other", "/shop/", domain="api.example.com"))
    load_definitions(tmp_path)  # another domain: another route
    write(tmp_path / "apis", "second.json", api("second", "/shop"))  # the gateway matches prefixes
    with pytest.raises(DefinitionFileError) as caught:
        load_definitions(tmp_path)
    [line] = str(caught.value).splitlines()
    assert "second.json:1:" in line and "first.json" in line  # both files are named
    assert "'/shop' on no domain (every host) is also the listen path of" in line


def test_a_policy_granting_an_undeclared_api_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "apis", "a.json", api_definition("a"))
    write(
        tmp_path / "policies", "p.yaml", json.dumps(policy_definition("p", api_ids=("a", "ghost")), indent=1)
    )
    with pytest.raises(DefinitionFileError, match=r"p\.yaml:\d+:\d+: .*grants API 'ghost', which no file"):
        load_definitions(tmp_path)
