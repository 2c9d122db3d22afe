"""Projection of live gateway objects onto recorded definitions."""

from __future__ import annotations

from tyk_gateway.drift import POLICY_MAP_PATHS, project, strip_zero


def test_zero_valued_and_unmanaged_fields_are_not_drift() -> None:
    recorded = {"name": "a", "tags": [], "proxy": {"listen_path": "/a/"}, "config_data": {}}
    live = {
        "name": "a",
        "tags": None,
        "slug": "",
        "proxy": {"listen_path": "/a/", "target_url": "x"},
        "config_data": None,
    }
    assert project(live, recorded) == recorded


def test_managed_changes_and_removals_are_drift() -> None:
    recorded = {"name": "a", "tags": ["x"], "config_data": {"k": 1}}
    live = {"name": "b", "tags": None, "config_data": None}
    assert project(live, recorded) == {"name": "b", "tags": None, "config_data": None}


def test_fields_the_gateway_does_not_return_keep_their_recorded_value() -> None:
    assert project({"name": "a"}, {"name": "a", "x_new_field": True}) == {"name": "a", "x_new_field": True}


def test_extra_entries_in_data_maps_are_drift_only_when_not_empty() -> None:
    recorded = {"access_rights": {"a": {"api_id": "a"}}}
    live = {
        "access_rights": {"a": {"api_id": "a", "limit": None}, "b": {"api_id": "b", "versions": []}, "c": {}}
    }
    assert project(live, recorded, POLICY_MAP_PATHS) == {
        "access_rights": {"a": {"api_id": "a"}, "b": {"api_id": "b"}}
    }
    assert project(live, recorded) == recorded  # elsewhere, extra keys are struct fields


def test_secret_references_are_not_replaced_by_their_resolved_values() -> None:
    recorded = {"proxy": {"target_url": "env://UPSTREAM"}}
    assert project({"proxy": {"target_url": "http://resolved"}}, recorded) == recorded


def test_strip_zero_for_imports() -> None:
    live = {
        "a": "",
        "b": 0,
        "c": False,
        "d": None,
        "e": [],
        "f": {"g": ""},
        "h": 1.0,
        "i": {"j": "k", "l": 0},
    }
    assert strip_zero(live) == {"h": 1, "i": {"j": "k"}}
