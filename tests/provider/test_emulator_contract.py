"""The emulator follows the gateway contract (tyk-gateway-api.md, gateway/api.go): if these drift, provider tests lie."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.gateway_emulator import AUTH_FAILED, GatewayEmulator
from tests.provider.conftest import SECRET, api_definition, policy_definition

H = {"X-Tyk-Authorization": SECRET}


def call(gw: GatewayEmulator, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    headers = kw.pop("headers", H)
    return requests.request(method, gw.url + path, data=data, headers=headers, timeout=5, **kw)


def test_auth_is_checked_before_routing(emulator: GatewayEmulator) -> None:
    for headers in ({}, {"X-Tyk-Authorization": "wrong"}):
        for path in ("/tyk/apis", "/tyk/no-such-thing"):
            r = call(emulator, "GET", path, headers=headers)
            assert r.status_code == 403
            assert r.text == '{"status":"error","message":"' + AUTH_FAILED + '"}\n'
            assert r.headers["Content-Type"] == "application/json"
    assert call(emulator, "GET", "/tyk/apis", headers={"x-tyk-authorization": SECRET}).status_code == 200


def test_not_found_method_and_trailing_slash(emulator: GatewayEmulator) -> None:
    r = call(emulator, "GET", "/tyk/no-such-thing")
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (
        404,
        "404 page not found\n",
        "text/plain; charset=utf-8",
    )
    r = call(emulator, "DELETE", "/tyk/apis")
    assert (r.status_code, r.json()) == (405, {"status": "error", "message": "Method not supported"})
    assert call(emulator, "POST", "/tyk/reload/group").status_code == 405
    assert call(emulator, "GET", "/tyk/apis/").text == "[]\n"
    hello = call(emulator, "GET", "/hello", headers={})
    assert hello.status_code == 200 and hello.json()["status"] == "pass"


def test_api_post_is_an_upsert_visible_only_after_reload(emulator: GatewayEmulator) -> None:
    r = call(emulator, "POST", "/tyk/apis", api_definition("a"))
    assert r.text == '{"key":"a","status":"ok","action":"added"}\n'
    assert call(emulator, "GET", "/tyk/apis/a").status_code == 404
    assert call(emulator, "PUT", "/tyk/apis/a", api_definition("a")).status_code == 404  # PUT needs it loaded
    # Same id again: overwritten, still "added", no second file.
    r = call(emulator, "POST", "/tyk/apis/ignored", api_definition("a", name="renamed"))
    assert r.json() == {"key": "a", "status": "ok", "action": "added"}
    assert list(emulator.disk_apis()) == ["a"]
    call(emulator, "GET", "/tyk/reload", params={"block": "true"})
    live = call(emulator, "GET", "/tyk/apis/a").json()
    assert live["name"] == "renamed"
    assert live["use_oauth2"] is False and live["slug"] == "" and live["tags"] is None  # full struct
    assert "is_oas" not in live and "id" not in live  # omitempty


def test_api_generated_id_and_decoding_errors(emulator: GatewayEmulator) -> None:
    r = call(emulator, "POST", "/tyk/apis", {"name": "x"})
    key = r.json()["key"]
    assert len(key) == 32 and int(key, 16) >= 0
    for body in (b"", b"{not json", {"use_keyless": "yes"}, {"id": "not-an-object-id"}, {"listen_port": 3.5}):
        r = call(emulator, "POST", "/tyk/apis", body)
        assert (r.status_code, r.json()["message"]) == (400, "Request malformed")
    r = call(emulator, "POST", "/tyk/apis", {"enable_ip_whitelisting": True, "allowed_ips": ["300.1.1.1"]})
    assert r.json() == {
        "status": "error",
        "message": 'Validation of API Definition failed. Reason: invalid IP/CIDR "300.1.1.1".',
    }
    assert call(emulator, "POST", "/tyk/apis", {"api_id": ".."}).json()["message"] == "Invalid API ID"
    assert "unknown_field" not in json.dumps(emulator.disk_apis())


def test_api_put_and_delete_rules(emulator: GatewayEmulator) -> None:
    call(emulator, "POST", "/tyk/apis", api_definition("a"))
    assert call(emulator, "DELETE", "/tyk/apis/a").json()["message"] == "API not found"  # not loaded
    emulator.reload_now()
    r = call(emulator, "PUT", "/tyk/apis/a", {**api_definition("a"), "api_id": ""})
    assert r.status_code == 400 and "must match" in r.json()["message"]
    assert call(emulator, "PUT", "/tyk/apis/a", api_definition("a")).json()["action"] == "modified"
    assert call(emulator, "DELETE", "/tyk/apis/a").json() == {"key": "a", "status": "ok", "action": "deleted"}
    assert call(emulator, "GET", "/tyk/apis/a").status_code == 200  # still loaded until a reload
    r = call(emulator, "DELETE", "/tyk/apis/a")
    assert (r.status_code, r.json()["message"]) == (500, "Delete failed")
    emulator.reload_now()
    assert call(emulator, "DELETE", "/tyk/apis/a").status_code == 404


def test_policy_rules(emulator: GatewayEmulator) -> None:
    r = call(emulator, "POST", "/tyk/policies", policy_definition("p1"))
    assert r.json() == {"key": "p1", "status": "ok", "action": "added"}
    assert call(emulator, "GET", "/tyk/policies/p1").json()["message"] == "Policy not found"
    assert call(emulator, "PUT", "/tyk/policies/p2", policy_definition("p2")).json()["action"] == "modified"
    cases = [
        ("PUT", "/tyk/policies/p1", policy_definition("other"), "Request ID does not match"),
        ("PUT", "/tyk/policies", policy_definition("p1"), "Must specify an apiID to update"),
        ("DELETE", "/tyk/policies", None, "Must specify an apiID to delete"),
        ("POST", "/tyk/policies", {"name": "no id"}, "Unable to create policy without id."),
        ("POST", "/tyk/policies", {"id": "a b"}, "Invalid Policy ID"),
        ("POST", "/tyk/policies", {"id": "x", "_id": "nope"}, "Request malformed"),
    ]
    for method, path, body, message in cases:
        r = call(emulator, method, path, body)
        assert r.status_code == 400 and r.json()["message"].startswith(message), (method, path, r.text)
    emulator.reload_now()
    live = call(emulator, "GET", "/tyk/policies/p1").json()
    assert live["_id"] == "" and live["partitions"]["per_api"] is False and live["rate"] == 100
    assert call(emulator, "DELETE", "/tyk/policies/p1").json()["action"] == "deleted"
    r = call(emulator, "DELETE", "/tyk/policies/p1")
    assert (r.status_code, r.json()["message"]) == (500, "Delete failed")


def test_reloads_are_queued_and_collapsed(tmp_path: Any) -> None:
    with GatewayEmulator(tmp_path, secret=SECRET, reload_interval=0.2) as gw:
        for _ in range(5):
            assert call(gw, "GET", "/tyk/reload/group").text == '{"status":"ok","message":""}\n'
        assert gw.stats.reloads == 0  # answered before anything reloaded
        call(gw, "GET", "/tyk/reload", params={"block": "true"})
        assert gw.stats.reloads == 1  # six requests, one reload
        assert gw.stats.calls["GET /tyk/reload/group"] == 5 and gw.stats.calls["GET /tyk/reload"] == 1


def test_listen_path_collision_renames_the_newcomer(emulator: GatewayEmulator) -> None:
    call(
        emulator,
        "POST",
        "/tyk/apis",
        api_definition("first", proxy={"listen_path": "/x/", "target_url": "http://a"}),
    )
    emulator.reload_now()
    call(
        emulator,
        "POST",
        "/tyk/apis",
        api_definition("second", proxy={"listen_path": "/x/", "target_url": "http://b"}),
    )
    emulator.reload_now()
    paths = {a["api_id"]: a["proxy"]["listen_path"] for a in call(emulator, "GET", "/tyk/apis").json()}
    assert paths == {"first": "/x/", "second": "/x/-second"}


@pytest.mark.parametrize("kind", ["5xx", "drop_after"])
def test_fault_switches(emulator: GatewayEmulator, kind: str) -> None:
    if kind == "5xx":
        emulator.faults.error_burst = 1
        assert call(emulator, "GET", "/tyk/apis").status_code in (500, 502, 503, 504)
    else:
        emulator.faults.drop_after_next = 1
        with pytest.raises(requests.ConnectionError):
            call(emulator, "POST", "/tyk/apis", api_definition("dropped"))
        assert "dropped" in emulator.disk_apis()  # the write happened; only the answer was lost
    assert emulator.stats.injected[kind] == 1
