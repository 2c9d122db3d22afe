"""The controller's configuration file and entry point refuse bad input with one line per problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tyk_controller.config import ConfigError, ControllerConfig, load_config

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_camel_case_round_trip_as_the_program_writes_it(tmp_path: Path) -> None:
    config = ControllerConfig(gateway_url="http://gw:9696", watch_namespaces=["a"], publish_service="tyk/gw")
    path = tmp_path / "config.json"
    path.write_text(config.model_dump_json(by_alias=True))
    raw = json.loads(path.read_text())
    assert raw["gatewayUrl"] == "http://gw:9696" and raw["leaderElection"]["leaseName"] == "tyk-controller"
    assert load_config(path) == config


def test_unknown_keys_and_bad_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"gatewayUrl": "http://gw", "watchNamespace": ["a"], "publishService": "nope"})
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    lines = str(error.value).splitlines()
    assert f"{path}: watchNamespace: Extra inputs are not permitted (got ['a'])" in lines
    assert any(line.startswith(f"{path}: publishService: Value error, 'nope' must be") for line in lines)


def test_entry_point_exits_2_without_starting_on_bad_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(PROJECT_DIR),
        "TYK_CONTROLLER_CONFIG": str(path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "tyk_controller"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 2
    messages = [json.loads(line)["message"] for line in result.stderr.splitlines()]
    assert messages[0] == f"{path}:1:2: not JSON: Expecting property name enclosed in double quotes"
    assert (
        messages[1]
        == "environment variable TYK_CONTROLLER_GATEWAY_SECRET (the gateway admin secret) is not set"
    )
