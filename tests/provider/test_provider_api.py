"""TykApiProvider against the emulator, called like the plugin process calls it."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dill
import pytest
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider

from tests.gateway_emulator import GatewayEmulator
from tests.provider.conftest import SECRET, api_definition, new_command, plugin_provider, props, stack_config
from tyk_gateway.client import ClientSettings, GatewayClient, Secret, TykGatewayError
from tyk_gateway.models import UNKNOWN
from tyk_gateway.provider import AdoptionRefusedError, TykApiProvider, _TykProvider


def live_api(emulator: GatewayEmulator, api_id: str) -> dict[str, Any]:
    emulator.reload_now()
    return emulator.loaded_apis[api_id]


def test_full_lifecycle(emulator: GatewayEmulator, api_provider: _TykProvider) -> None:
    desired = props(api_provider, emulator.url, api_definition("httpbin", x_custom={"kept": 1}))

    created = api_provider.create(desired)
    assert created.id == "httpbin"
    outs = created.outs or {}
    assert (outs["api_id"], outs["listen_path"], outs["target_url"], outs["name"]) == (
        "httpbin",
        "/httpbin/",
        "http://httpbin.org",
        "httpbin",
    )
    assert outs["definition"] == desired["definition"]
    assert emulator.stats.calls["GET /tyk/reload/group"] == 1  # one reload after the write
    on_disk = emulator.disk_apis()["httpbin"]
    assert on_disk["proxy"]["target_url"] == "http://httpbin.org" and on_disk["use_standard_auth"] is True

    # A no-op plan: check + diff make no gateway calls at all.
    new_command()
    emulator.reload_now()  # a later command: the group reload has landed
    emulator.reset_stats()
    again = props(api_provider, emulator.url, api_definition("httpbin", x_custom={"kept": 1}))
    assert api_provider.diff("httpbin", outs, again).changes is False
    assert emulator.stats.total == 0

    # Refresh: the live object (full struct, zero values, unknown field dropped) reads back unchanged.
    read = api_provider.read("httpbin", outs)
    assert read.id == "httpbin" and read.outs == outs
    assert emulator.stats.calls["GET /tyk/apis"] == 1

    # Update: only the changed field shows, and it reaches the gateway.
    changed = props(
        api_provider,
        emulator.url,
        api_definition(
            "httpbin", x_custom={"kept": 1}, proxy={"listen_path": "/httpbin/", "target_url": "http://new"}
        ),
    )
    diff = api_provider.diff("httpbin", outs, changed)
    assert diff.changes is True and diff.replaces == []
    updated = api_provider.update("httpbin", outs, changed).outs or {}
    assert updated["target_url"] == "http://new"
    assert live_api(emulator, "httpbin")["proxy"]["target_url"] == "http://new"

    # Delete: gone from disk and, after the reload it triggered, from memory.
    api_provider.delete("httpbin", updated)
    assert emulator.disk_apis() == {}
    new_command()
    emulator.reload_now()
    assert api_provider.read("httpbin", updated).id == ""


def test_changing_api_id_replaces_and_moving_gateway_does_not(api_provider: _TykProvider) -> None:
    url = "http://gateway.example:8080"
    old = props(api_provider, url, api_definition("a"))
    renamed = props(api_provider, url, {**api_definition("a"), "api_id": "b"})
    diff = api_provider.diff("a", old, renamed)
    assert diff.changes is True and diff.replaces == ["api_id"]
    moved = props(api_provider, url + "/", api_definition("a"))
    assert api_provider.diff("a", old, moved).changes is False  # same URL, trailing slash aside
    moved = props(api_provider, "http://other:8080", api_definition("a"))
    diff = api_provider.diff("a", old, moved)
    assert diff.changes is True and diff.replaces == []


def test_numbers_from_the_wire_do_not_show_as_changes(api_provider: _TykProvider) -> None:
    # Pulumi sends every number as a float; the recorded state may hold ints.
    recorded = props(api_provider, "http://gw", api_definition("a", session_lifetime=3600))
    wire = api_definition("a", session_lifetime=3600.0)
    assert api_provider.diff("a", recorded, props(api_provider, "http://gw", wire)).changes is False


def test_drift_edit_and_delete_behind_pulumis_back(
    emulator: GatewayEmulator, api_provider: _TykProvider
) -> None:
    outs = api_provider.create(props(api_provider, emulator.url, api_definition("a"))).outs or {}
    emulator.edit_file("api", "a", lambda d: d["proxy"].update(target_url="http://hijacked"))
    emulator.edit_file("api", "a", lambda d: d.update(enable_batch_request_support=True))  # unmanaged field
    emulator.reload_now()
    new_command()
    read = api_provider.read("a", outs)
    assert read.outs is not None and read.inputs is not None
    assert read.outs["target_url"] == "http://hijacked"
    assert read.outs["definition"]["proxy"]["target_url"] == "http://hijacked"
    assert "enable_batch_request_support" not in read.outs["definition"]  # unmanaged: not drift
    assert read.inputs["definition"] == read.outs["definition"]
    # The next `up` compares the program with the refreshed state and restores the target.
    desired = props(api_provider, emulator.url, api_definition("a"))
    assert api_provider.diff("a", read.outs, desired).changes is True

    emulator.remove_file("api", "a")
    emulator.reload_now()
    new_command()
    assert api_provider.read("a", outs).id == ""


def test_read_right_after_create_before_the_reload_landed(emulator: GatewayEmulator) -> None:
    emulator.hold_group_reloads = True  # the group reload has not landed when the read comes
    provider = plugin_provider(TykApiProvider, stack_config())
    outs = provider.create(props(provider, emulator.url, api_definition("a"))).outs or {}
    assert provider.read("a", outs).id == "a"  # a blocking local reload found it, not "gone"


def test_import_shaped_read(emulator: GatewayEmulator, api_provider: _TykProvider) -> None:
    api_provider.create(props(api_provider, emulator.url, api_definition("existing")))
    new_command()
    read = api_provider.read("existing", {"gateway_url": emulator.url})
    assert read.id == "existing" and read.outs is not None and read.inputs is not None
    definition = read.outs["definition"]
    assert definition == props(api_provider, emulator.url, definition)["definition"]  # valid as declared
    assert definition["proxy"] == {
        "listen_path": "/existing/",
        "target_url": "http://httpbin.org",
        "strip_listen_path": True,
    }
    assert "use_oauth2" not in definition and "slug" not in definition  # zero values dropped
    assert read.inputs["api_id"] == "existing"
    with pytest.raises(ValueError, match="gateway_url"):
        api_provider.read("existing", {})


def test_create_retried_after_dropped_responses_makes_one_api(
    emulator: GatewayEmulator, api_provider: _TykProvider
) -> None:
    emulator.faults.drop_after_next = 2
    desired = props(api_provider, emulator.url, api_definition("a"))
    assert api_provider.create(desired).id == "a"
    assert emulator.stats.calls["POST /tyk/apis"] == 3
    # The engine may also repeat a whole create (e.g. after an interrupted `up`): still one API.
    assert api_provider.create(desired).id == "a"
    assert list(emulator.disk_apis()) == ["a"]


def test_delete_of_an_api_not_loaded_yet(emulator: GatewayEmulator) -> None:
    api_provider = plugin_provider(TykApiProvider, stack_config(management={"verifyReplicas": False}))
    emulator.hold_group_reloads = True  # nothing gets loaded unless asked to block
    outs = api_provider.create(props(api_provider, emulator.url, api_definition("a"))).outs or {}
    assert "a" not in emulator.loaded_apis
    api_provider.delete("a", outs)
    assert emulator.disk_apis() == {}
    assert emulator.stats.calls["DELETE /tyk/apis/{id}"] == 2  # 404, blocking reload, then deleted


def test_delete_when_already_gone_succeeds(emulator: GatewayEmulator, api_provider: _TykProvider) -> None:
    outs = api_provider.create(props(api_provider, emulator.url, api_definition("a"))).outs or {}
    emulator.reload_now()
    emulator.faults.drop_after_next = 1  # the first DELETE works but its answer is lost
    api_provider.delete("a", outs)
    assert emulator.stats.calls["DELETE /tyk/apis/{id}"] == 2  # the retry got 500 "Delete failed"
    emulator.reload_now()
    api_provider.delete("a", outs)  # gone everywhere: 404, reload, 404 -> fine


def test_gateway_rejection_surfaces_with_message(
    emulator: GatewayEmulator, api_provider: _TykProvider
) -> None:
    # The gateway's own semantic rules still apply; make one only it checks fail (timeout < 0).
    bad = api_definition("a")
    bad["version_data"]["versions"]["Default"]["global_enforce_timeout"] = -1
    with pytest.raises(
        TykGatewayError, match=r"rejected POST /tyk/apis \(400\): .*invalid global timeout value"
    ):
        api_provider.create(props(api_provider, emulator.url, bad))


def test_wrong_secret(emulator: GatewayEmulator) -> None:
    provider = plugin_provider(TykApiProvider, stack_config(secret="not-the-secret"))
    with pytest.raises(TykGatewayError) as caught:
        provider.create(props(provider, emulator.url, api_definition("a")))
    assert caught.value.status == 403 and "tyk-aks:apiSecret" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    assert emulator.disk_apis() == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"proxy": {"listen_path": "httpbin", "target_url": "http://x"}},
            "definition.proxy.listen_path: must start with '/'",
        ),
        ({"proxy": {"listen_path": "/a/"}}, "definition.proxy.target_url: Field required"),
        ({"api_id": "a/b"}, "definition.api_id: must be a single path segment"),
        ({"use_keyless": "sometimes"}, "definition.use_keyless: Input should be a valid boolean"),
        ({"enable_ip_whitelisting": True, "allowed_ips": ["10.0.0.0/33"]}, "invalid IP/CIDR '10.0.0.0/33'"),
        ({"id": "custom"}, "definition.id: must be empty or a 24-character hex ObjectId"),
        ({"name": None}, "definition.name: Field required"),
    ],
)
def test_check_names_the_bad_field(api_provider: _TykProvider, change: dict[str, Any], message: str) -> None:
    result = api_provider.check(
        {}, {"gateway_url": "http://gw", "definition": {**api_definition("a"), **change}}
    )
    assert [f.property for f in result.failures] == [""]
    assert message in result.failures[0].reason


def test_check_rejects_a_bad_gateway_url(api_provider: _TykProvider) -> None:
    for url in ("gw:8080", "http://user:pw@gw", 42):
        result = api_provider.check({}, {"gateway_url": url, "definition": api_definition("a")})
        assert [f.reason.split(":")[0] for f in result.failures] == ["gateway_url"], url


def test_check_passes_unknowns_during_preview(api_provider: _TykProvider) -> None:
    definition = api_definition("a", proxy={"listen_path": "/a/", "target_url": UNKNOWN}, use_keyless=UNKNOWN)
    result = api_provider.check({}, {"gateway_url": UNKNOWN, "definition": definition})
    assert result.failures == []
    assert api_provider.check({}, {"gateway_url": "http://gw", "definition": UNKNOWN}).failures == []
    # ...but still reports real problems next to them.
    definition["name"] = 7
    result = api_provider.check({}, {"gateway_url": "http://gw", "definition": definition})
    assert [f.reason for f in result.failures] == ["definition.name: Input should be a valid string (got 7)"]


def test_unknown_tyk_fields_pass_through(emulator: GatewayEmulator, api_provider: _TykProvider) -> None:
    definition = api_definition("a", enable_context_vars=True, cache_options={"cache_timeout": 60})
    checked = props(api_provider, emulator.url, definition)
    assert checked["definition"]["cache_options"] == {"cache_timeout": 60}
    api_provider.create(checked)
    assert emulator.disk_apis()["a"]["enable_context_vars"] is True


def test_serialized_provider_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYK_GW_SECRET", "env-secret-value")
    blob = serialize_provider(TykApiProvider())
    raw = base64.b64decode(blob)
    assert b"tyk_gateway.provider" in raw and len(raw) < 200  # by reference, not by value
    provider = dill.loads(raw)
    provider.configure(ConfigureRequest(Config({"tyk-aks:apiSecret": SECRET}, "tyk-aks")))
    for text in (repr(provider), repr(vars(provider)), str(vars(provider))):
        assert SECRET not in text
    reserialized = base64.b64decode(serialize_provider(provider))
    assert SECRET.encode() not in reserialized and b"env-secret-value" not in reserialized
    assert reserialized == raw  # configuration never becomes part of the state
    assert TykApiProvider.serialize_as_secret_always is False


def test_secret_falls_back_to_the_environment(
    emulator: GatewayEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TYK_GW_SECRET", SECRET)
    provider = plugin_provider(TykApiProvider, Config({}, "tyk-aks"))
    assert provider.create(props(provider, emulator.url, api_definition("a"))).id == "a"


def test_invalid_client_config_is_reported() -> None:
    with pytest.raises(ValueError, match="gatewayClient"):
        plugin_provider(TykApiProvider, Config({"tyk-aks:gatewayClient": '{"retries": "many"}'}, "tyk-aks"))


def test_refresh_finding_many_objects_missing_costs_one_reload_and_two_lists(
    emulator: GatewayEmulator,
) -> None:
    provider = plugin_provider(TykApiProvider, stack_config())
    outs = {a: provider.create(props(provider, emulator.url, api_definition(a))).outs or {} for a in "abcdef"}
    for gone in "bcdf":
        emulator.remove_file("api", gone)
    emulator.reload_now()
    new_command()
    emulator.reset_stats()
    reads = [provider.read(a, outs[a]) for a in outs]  # one after the other: each miss comes on its own
    assert [r.id for r in reads] == ["a", "", "", "", "e", ""]
    assert emulator.stats.calls["GET /tyk/apis"] <= 2
    assert emulator.stats.calls["GET /tyk/reload"] <= 1

    new_command()  # and four at a time, as the plugin serves them
    emulator.reset_stats()
    with ThreadPoolExecutor(4) as pool:
        reads = list(pool.map(lambda a: provider.read(a, outs[a]), outs))
    assert [r.id for r in reads] == ["a", "", "", "", "e", ""]
    assert emulator.stats.calls["GET /tyk/apis"] <= 2
    assert emulator.stats.calls["GET /tyk/reload"] <= 1


def test_create_refuses_to_overwrite_an_unmanaged_object(emulator: GatewayEmulator) -> None:
    theirs = api_definition("shared", proxy={"listen_path": "/shared/", "target_url": "http://theirs"})
    GatewayClient(emulator.url, Secret(SECRET), ClientSettings()).upsert_api(theirs)  # not reloaded yet
    provider = plugin_provider(TykApiProvider, stack_config())
    with pytest.raises(AdoptionRefusedError) as caught:
        provider.create(props(provider, emulator.url, api_definition("shared")))
    message = str(caught.value)
    assert "'shared'" in message and "python -m tyk_gateway.adopt api shared" in message
    assert "apiManagement.adopt" in message
    assert emulator.disk_apis()["shared"]["proxy"]["target_url"] == "http://theirs"  # untouched

    # The same content (e.g. left by an earlier, failed attempt of this create) is not a conflict.
    same = plugin_provider(TykApiProvider, stack_config())
    new_command()
    assert same.create(props(same, emulator.url, theirs)).id == "shared"

    # Asked for explicitly, the takeover happens.
    new_command()
    adopting = plugin_provider(TykApiProvider, stack_config(management={"adopt": ["shared"]}))
    assert adopting.create(props(adopting, emulator.url, api_definition("shared"))).id == "shared"
    assert emulator.disk_apis()["shared"]["proxy"]["target_url"] == "http://httpbin.org"


def test_a_late_duplicate_of_an_older_write_is_undone_by_verification(emulator: GatewayEmulator) -> None:
    provider = plugin_provider(TykApiProvider, stack_config())
    created = provider.create(props(provider, emulator.url, api_definition("a"))).outs or {}
    newer = props(
        provider, emulator.url, api_definition("a", proxy={"listen_path": "/a/", "target_url": "http://v2"})
    )
    older_file = emulator.disk_apis()["a"]
    original_reload = emulator._reload
    landed: list[bool] = []

    def reload_after_a_late_duplicate(block: bool) -> Any:
        # The create's stalled first attempt lands after the update was written (before the replicas reload).
        if not landed and emulator.disk_apis()["a"]["proxy"]["target_url"] == "http://v2":
            landed.append(True)
            emulator.edit_file("api", "a", lambda api: api.update(older_file))
        return original_reload(block)

    emulator._reload = reload_after_a_late_duplicate  # type: ignore[method-assign]
    updated = provider.update("a", created, newer).outs or {}
    assert landed and updated["target_url"] == "http://v2"
    assert emulator.disk_apis()["a"]["proxy"]["target_url"] == "http://v2"
    emulator.reload_now()
    assert emulator.loaded_apis["a"]["proxy"]["target_url"] == "http://v2"
