"""Tyk OAS APIs: the emulator's /tyk/apis/oas contract, TykOasApiProvider, the loader's oas/ folder, adopt."""

from __future__ import annotations

import copy
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from offline.plan import run_program
from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import (
    SECRET,
    api_definition,
    new_command,
    plugin_provider,
    props,
)
from tests.provider.conftest import stack_config as provider_config
from tests.provider.test_resources import API_TYPE, POLICY_TYPE
from tyk_gateway.adopt import adopt
from tyk_gateway.client import ClientSettings, GatewayClient, Secret
from tyk_gateway.loader import DefinitionFileError, load_definitions
from tyk_gateway.models import UNKNOWN
from tyk_gateway.oas import oas_problems
from tyk_gateway.provider import AdoptionRefusedError, TykApiProvider, TykOasApiProvider, _TykProvider

SAMPLE = Path(__file__).resolve().parents[2] / "definitions"
OAS_TYPE = "pulumi-python:dynamic/tyk:OasApi"


def oas_document(api_id: str = "petstore", **extension: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SAMPLE / "oas" / "petstore.yaml").read_text())
    document = copy.deepcopy(document)
    ext = document["x-tyk-api-gateway"]
    ext["info"].update(id=api_id, name=api_id)
    ext["server"]["listenPath"]["value"] = f"/{api_id}/"
    ext.update(extension)
    return document


@pytest.fixture
def oas_provider() -> _TykProvider:
    return plugin_provider(TykOasApiProvider, provider_config())


def call(emulator: GatewayEmulator, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, emulator.url + path, json=body, headers={"X-Tyk-Authorization": SECRET}, timeout=5
    )


# --- the emulator, against the handlers of gateway/api.go ------------------------------------------------


def test_emulator_post_writes_both_files_and_get_serves_them_after_a_reload(
    emulator: GatewayEmulator,
) -> None:
    answer = call(emulator, "POST", "/tyk/apis/oas", oas_document("petstore"))
    assert answer.status_code == 200 and answer.json() == {
        "key": "petstore",
        "status": "ok",
        "action": "added",
    }
    files = sorted(p.name for p in emulator.apps_dir.iterdir())
    assert files == ["petstore-oas.json", "petstore.json"]
    classic = json.loads((emulator.apps_dir / "petstore.json").read_text())
    assert classic["is_oas"] is True and classic["proxy"]["listen_path"] == "/petstore/"
    assert call(emulator, "GET", "/tyk/apis/oas").json() == []  # not loaded yet
    emulator.reload_now()
    listed = call(emulator, "GET", "/tyk/apis/oas").json()
    assert [d["x-tyk-api-gateway"]["info"]["id"] for d in listed] == ["petstore"]
    assert call(emulator, "GET", "/tyk/apis/oas/petstore").json()["paths"].keys() == {
        "/pets",
        "/pets/{petId}",
    }
    (classic_view,) = call(emulator, "GET", "/tyk/apis").json()
    assert classic_view["api_id"] == "petstore" and classic_view["is_oas"] is True


def test_emulator_refuses_what_the_gateway_refuses(emulator: GatewayEmulator) -> None:
    without = oas_document()
    del without["x-tyk-api-gateway"]
    assert call(emulator, "POST", "/tyk/apis/oas", without).json()["message"] == (
        "the payload should contain x-tyk-api-gateway"
    )
    broken = oas_document()
    broken["x-tyk-api-gateway"]["server"]["listenPath"] = {"strip": True}
    answer = call(emulator, "POST", "/tyk/apis/oas", broken)
    assert answer.status_code == 400 and "'value' is a required property" in answer.json()["message"]
    assert call(emulator, "PUT", "/tyk/apis/oas/petstore", oas_document()).status_code == 404  # not loaded
    call(emulator, "POST", "/tyk/apis", api_definition("classic"))
    call(emulator, "POST", "/tyk/apis/oas", oas_document("petstore"))
    emulator.reload_now()
    assert call(emulator, "GET", "/tyk/apis/oas/classic").status_code == 400
    assert call(emulator, "PUT", "/tyk/apis/oas/classic", oas_document("classic")).status_code == 400
    assert (
        call(emulator, "PUT", "/tyk/apis/petstore", api_definition("petstore"))
        .json()["message"]
        .startswith("this API endpoint only supports Tyk Classic APIs")
    )
    mismatch = call(emulator, "PUT", "/tyk/apis/oas/petstore", oas_document("other"))
    assert mismatch.status_code == 400 and "must match" in mismatch.json()["message"]


def test_emulator_patch_without_extension_keeps_it_and_delete_removes_both_files(
    emulator: GatewayEmulator,
) -> None:
    call(emulator, "POST", "/tyk/apis/oas", oas_document("petstore"))
    emulator.reload_now()
    openapi_only = {k: v for k, v in oas_document("petstore").items() if k != "x-tyk-api-gateway"}
    openapi_only["info"]["title"] = "Renamed"
    assert call(emulator, "PATCH", "/tyk/apis/oas/petstore", openapi_only).json()["action"] == "modified"
    emulator.reload_now()
    patched = call(emulator, "GET", "/tyk/apis/oas/petstore").json()
    assert (
        patched["info"]["title"] == "Renamed"
        and patched["x-tyk-api-gateway"]["server"]["listenPath"]["value"]
    )
    assert call(emulator, "DELETE", "/tyk/apis/oas/petstore").json()["action"] == "deleted"
    assert list(emulator.apps_dir.iterdir()) == []


# --- the provider ------------------------------------------------------------------------------------------


def test_check_validates_without_calls_and_names_the_field(
    emulator: GatewayEmulator, oas_provider: _TykProvider
) -> None:
    good = oas_provider.check({}, {"gateway_url": emulator.url, "definition": oas_document()})
    assert good.failures == [] and good.inputs["api_id"] == "petstore"
    assert good.inputs["listen_path"] == "/petstore/"
    bad_document = oas_document()
    bad_document["x-tyk-api-gateway"]["info"]["state"] = {"active": "yes"}
    bad = oas_provider.check({}, {"gateway_url": emulator.url, "definition": bad_document})
    assert [f.reason for f in bad.failures] == [
        "definition.x-tyk-api-gateway.info.state.active: 'yes' is not of type 'boolean'"
    ]
    during_preview = oas_document()
    during_preview["x-tyk-api-gateway"]["upstream"]["url"] = UNKNOWN
    during_preview["x-tyk-api-gateway"]["info"]["state"]["active"] = UNKNOWN
    assert oas_provider.check({}, {"gateway_url": emulator.url, "definition": during_preview}).failures == []
    assert emulator.stats.total == 0


def test_full_lifecycle(emulator: GatewayEmulator, oas_provider: _TykProvider) -> None:
    desired = props(oas_provider, emulator.url, oas_document("petstore"))
    created = oas_provider.create(desired)
    outs = created.outs or {}
    assert created.id == "petstore" and outs["target_url"] == "https://petstore.swagger.io/v2"
    assert (
        emulator.stats.calls["POST /tyk/apis/oas"] == 1 and emulator.stats.calls["GET /tyk/reload/group"] == 1
    )

    new_command()
    emulator.reload_now()
    emulator.reset_stats()
    again = props(oas_provider, emulator.url, oas_document("petstore"))
    assert oas_provider.diff("petstore", outs, again).changes is False
    assert emulator.stats.total == 0
    read = oas_provider.read("petstore", outs)
    assert read.outs == outs  # the gateway's filled-in defaults are not drift
    assert emulator.stats.calls["GET /tyk/apis/oas"] == 1

    changed = oas_document("petstore")
    changed["x-tyk-api-gateway"]["upstream"]["url"] = "http://new:8080"
    updated = oas_provider.update("petstore", outs, props(oas_provider, emulator.url, changed)).outs or {}
    emulator.reload_now()
    assert emulator.loaded_oas["petstore"]["x-tyk-api-gateway"]["upstream"]["url"] == "http://new:8080"

    oas_provider.delete("petstore", updated)
    assert list(emulator.apps_dir.iterdir()) == []
    new_command()
    emulator.reload_now()
    assert oas_provider.read("petstore", updated).id == ""


def test_changing_the_id_replaces(oas_provider: _TykProvider) -> None:
    url = "http://gateway.example:8080"
    old = props(oas_provider, url, oas_document("a"))
    assert oas_provider.diff("a", old, props(oas_provider, url, oas_document("b"))).replaces == ["api_id"]


def test_refresh_of_many_reads_one_list_and_shows_drift(
    emulator: GatewayEmulator, oas_provider: _TykProvider
) -> None:
    outs = {
        i: oas_provider.create(props(oas_provider, emulator.url, oas_document(f"oas-{i}"))).outs or {}
        for i in range(8)
    }
    emulator.reload_now()
    # Changes behind Pulumi's back, through the gateway's API (GET fills the extension from <id>.json, so
    # editing only <id>-oas.json would not show, on the real gateway either).
    moved = oas_document("oas-3")
    moved["x-tyk-api-gateway"]["upstream"]["url"] = "http://changed"
    assert call(emulator, "PUT", "/tyk/apis/oas/oas-3", moved).status_code == 200
    extended = oas_document("oas-5")
    extended["paths"]["/admin"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    assert call(emulator, "PUT", "/tyk/apis/oas/oas-5", extended).status_code == 200
    emulator.reload_now()
    new_command()
    emulator.reset_stats()
    with ThreadPoolExecutor(4) as pool:
        reads = dict(zip(outs, pool.map(lambda i: oas_provider.read(f"oas-{i}", outs[i]), outs), strict=True))
    assert emulator.stats.calls["GET /tyk/apis/oas"] == 1
    assert reads[3].outs["target_url"] == "http://changed"  # type: ignore[index]
    assert "/admin" in reads[5].outs["definition"]["paths"]  # type: ignore[index]
    assert all(reads[i].outs == outs[i] for i in outs if i not in (3, 5))


def test_classic_and_oas_writes_share_one_reload_coordinator(emulator: GatewayEmulator) -> None:
    api = plugin_provider(TykApiProvider, provider_config())
    oas = plugin_provider(TykOasApiProvider, provider_config())
    # A classic write still in flight when an OAS write finishes: the OAS writer hands its reload to it, and
    # the one reload after the classic write covers both (separate coordinators would send two).
    emulator.faults.slow_next, emulator.faults.slow_seconds = 1, 0.6
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(api.create, props(api, emulator.url, api_definition("classic")))
        time.sleep(0.2)
        oas.create(props(oas, emulator.url, oas_document("petstore")))
        slow.result()
    assert emulator.stats.calls["GET /tyk/reload/group"] == 1
    assert emulator.stats.reload_requested[-1] > emulator.stats.last_write_at
    emulator.reload_now()
    assert set(emulator.loaded_apis) == {"classic", "petstore"} and list(emulator.loaded_oas) == ["petstore"]


def test_a_burst_of_classic_and_oas_writes_costs_few_reloads(emulator: GatewayEmulator) -> None:
    api = plugin_provider(TykApiProvider, provider_config())
    oas = plugin_provider(TykOasApiProvider, provider_config())
    jobs = [(api, api_definition(f"classic-{i}")) for i in range(10)]
    jobs += [(oas, oas_document(f"oas-{i}")) for i in range(10)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: job[0].create(props(job[0], emulator.url, job[1])), jobs))
    assert 1 <= emulator.stats.calls["GET /tyk/reload/group"] < 10
    assert (
        emulator.stats.reload_requested[-1] > emulator.stats.last_write_at
    )  # the last reload followed every write
    emulator.reload_now()
    assert len(emulator.loaded_apis) == 20 and len(emulator.loaded_oas) == 10


def test_a_dropped_answer_is_retried_as_an_upsert(
    emulator: GatewayEmulator, oas_provider: _TykProvider
) -> None:
    emulator.faults.drop_after_next = 1  # the write lands, the answer is lost; the client retries the POST
    oas_provider.create(props(oas_provider, emulator.url, oas_document("petstore")))
    emulator.reload_now()
    assert list(emulator.loaded_oas) == ["petstore"]


def test_delete_of_files_not_loaded_yet_loads_them_first(
    emulator: GatewayEmulator, oas_provider: _TykProvider
) -> None:
    emulator.hold_group_reloads = True
    created = oas_provider.create(props(oas_provider, emulator.url, oas_document("petstore"))).outs or {}
    oas_provider.delete("petstore", created)
    assert list(emulator.apps_dir.iterdir()) == []


def test_adopt_writes_a_file_the_loader_accepts(emulator: GatewayEmulator, tmp_path: Path) -> None:
    call(emulator, "POST", "/tyk/apis/oas", oas_document("legacy"))
    emulator.reload_now()
    client = GatewayClient(emulator.url, Secret(SECRET), ClientSettings())
    path = adopt(client, "oas", "legacy", tmp_path)
    assert path == tmp_path / "oas" / "legacy.yaml"
    loaded = load_definitions(tmp_path)
    assert loaded.oas_apis["legacy"]["x-tyk-api-gateway"]["info"]["id"] == "legacy"


# --- validation against the gateway's schemas ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("x-tyk-api-gateway"), "definition.x-tyk-api-gateway: required"),
        (lambda d: d["x-tyk-api-gateway"]["info"].pop("id"), "definition.x-tyk-api-gateway.info.id: required"),
        (lambda d: d["x-tyk-api-gateway"]["info"].update(id="a/b"), "definition.x-tyk-api-gateway.info.id: must be a single path segment"),
        (lambda d: d["x-tyk-api-gateway"].pop("upstream"), "definition.x-tyk-api-gateway: 'upstream' is a required"),
        (lambda d: d.update(openapi="3.2.0"), "definition.openapi: no schema for OpenAPI 3.2"),
        (lambda d: d.update(openapi="3.0.3", webhooks={}), "definition: 'webhooks' does not match any of the regexes"),
        (lambda d: d["info"].pop("title"), "definition.info: 'title' is a required property"),
    ],
)  # fmt: skip
def test_schema_problems_name_the_field(change: Any, problem: str) -> None:
    document = oas_document()
    change(document)
    assert any(p.startswith(problem) for p in oas_problems(document)), oas_problems(document)


def test_openapi_3_1_documents_validate() -> None:
    document = oas_document()
    document["openapi"] = "3.1.0"
    document["info"]["summary"] = "3.1 only"
    document["webhooks"] = {}
    assert oas_problems(document) == []
    document["x-tyk-api-gateway"]["server"]["customDomain"] = {
        "enabled": True,
        "name": "api.example.com",
        "certificates": ["cert-id", 3],
    }
    assert oas_problems(document) == []  # draft-04 tuple "items": only the first item is typed, as in Go
    document["x-tyk-api-gateway"]["server"]["customDomain"]["certificates"] = [3]
    assert oas_problems(document) != []


# --- the definitions folder --------------------------------------------------------------------------------


def write(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def test_loader_reads_oas_and_shares_the_id_space_with_classic_apis(tmp_path: Path) -> None:
    write(tmp_path / "apis" / "one.json", api_definition("same"))
    write(tmp_path / "oas" / "two.json", oas_document("same"))
    with pytest.raises(
        DefinitionFileError,
        match=r"oas/two\.json:\d+:\d+: definition\.x-tyk-api-gateway\.info\.id 'same' also used by .*apis/one\.json",
    ):
        load_definitions(tmp_path)


def test_a_bad_oas_file_names_the_file_and_field(tmp_path: Path) -> None:
    document = oas_document()
    document["x-tyk-api-gateway"]["server"]["listenPath"]["strip"] = "yes"
    write(tmp_path / "oas" / "petstore.yaml", yaml.safe_dump(document))
    with pytest.raises(
        DefinitionFileError,
        match=r"oas/petstore\.yaml:\d+:\d+: definition\.x-tyk-api-gateway\.server\.listenPath\.strip: 'yes' is not of",
    ):
        load_definitions(tmp_path)


def test_the_shipped_policy_grants_the_oas_sample_and_waits_for_it() -> None:
    plan = run_program("dev")
    petstore = plan.one(OAS_TYPE, "petstore")
    assert petstore.inputs["api_id"] == "petstore" and petstore.inputs["listen_path"] == "/petstore/"
    policy = plan.one(POLICY_TYPE, "httpbin-basic")
    assert set(policy.inputs["definition"]["access_rights"]) == {"httpbin", "petstore"}
    release = plan.one("kubernetes:helm.sh/v3:Release", "gateway-release").urn
    assert petstore.dependencies == [release]
    assert set(policy.dependencies) == {release, petstore.urn, plan.one(API_TYPE, "httpbin").urn}
    assert plan.outputs["oas_api_ids"] == {"petstore": "petstore"}


def test_a_classic_and_an_oas_api_on_one_listen_path_are_refused(tmp_path: Path) -> None:
    write(
        tmp_path / "apis" / "classic.json",
        api_definition("classic", proxy={"listen_path": "/shop", "target_url": "http://a"}),
    )
    write(tmp_path / "oas" / "shop.json", oas_document("shop"))
    with pytest.raises(
        DefinitionFileError,
        match=r"oas/shop\.json:\d+:\d+: definition\.x-tyk-api-gateway\.server\.listenPath\.value '/shop/' on no domain "
        r"\(every host\) is also the listen path of .*apis/classic\.json",
    ):
        load_definitions(tmp_path)


def test_create_refuses_to_overwrite_an_unmanaged_oas_api(emulator: GatewayEmulator) -> None:
    theirs = oas_document("shared")
    theirs["x-tyk-api-gateway"]["upstream"]["url"] = "http://theirs"
    GatewayClient(emulator.url, Secret(SECRET), ClientSettings()).upsert_oas_api(
        theirs, "shared"
    )  # not loaded yet
    provider = plugin_provider(TykOasApiProvider, provider_config())
    with pytest.raises(AdoptionRefusedError, match=r"python -m tyk_gateway\.adopt oas shared"):
        provider.create(props(provider, emulator.url, oas_document("shared")))
    emulator.reload_now()
    assert (
        emulator.loaded_oas["shared"]["x-tyk-api-gateway"]["upstream"]["url"] == "http://theirs"
    )  # untouched

    new_command()
    adopting = plugin_provider(TykOasApiProvider, provider_config(management={"adopt": ["shared"]}))
    assert adopting.create(props(adopting, emulator.url, oas_document("shared"))).id == "shared"
    emulator.reload_now()
    assert (
        emulator.loaded_oas["shared"]["x-tyk-api-gateway"]["upstream"]["url"]
        == "https://petstore.swagger.io/v2"
    )
