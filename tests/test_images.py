"""Which images each stack pulls, and how: by pinned digest (dev, prod), by the stack file's digest, or by tag."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from components.controller_image import base_image
from components.settings import ConfigError, parse_settings
from offline.mocks import PINNED_IMAGE_TYPE
from offline.plan import Plan, read_stack_config, run_program

RELEASE = "kubernetes:helm.sh/v3:Release"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
GATEWAY_IMAGE = "docker.tyk.io/tyk-gateway/tyk-gateway"


def _pins(plan: Plan) -> dict[str, dict[str, Any]]:
    """Pinned reference -> the pin's outputs."""
    return {pin.inputs["reference"]: pin.outputs for pin in plan.find(PINNED_IMAGE_TYPE)}


def _gateway_values(plan: Plan) -> dict[str, Any]:
    values: dict[str, Any] = plan.one(RELEASE, "gateway-release").inputs["values"]["tyk-gateway"]["gateway"]
    return values


def _sidecar_image(plan: Plan) -> str:
    config = json.loads(plan.one(CONFIG_MAP, "ingress-controller-config").inputs["data"]["config.json"])
    return str(config["mesh"]["sidecarImage"])


def _edited(stack: str, key: str, **changes: Any) -> Plan:
    config, secret_keys, _ = read_stack_config(stack)
    section = json.loads(config.get(f"tyk-aks:{key}", "{}")) | changes
    config[f"tyk-aks:{key}"] = json.dumps(section)
    return run_program(stack, config=config, secret_keys=secret_keys)


def test_prod_pulls_the_gateway_its_init_container_and_sidecars_by_pinned_digest(
    plan_of: Callable[[str], Plan],
) -> None:
    plan = plan_of("prod")
    pins = _pins(plan)
    # Redis is Azure Managed Redis; the controller's build base is pinned too (tests/test_controller.py).
    assert set(pins) == {f"{GATEWAY_IMAGE}:v5.13.1", "busybox:1.37.0", base_image()}
    gateway = pins[f"{GATEWAY_IMAGE}:v5.13.1"]
    init = pins["busybox:1.37.0"]
    values = _gateway_values(plan)
    assert values["image"]["tag"] == f"v5.13.1@{gateway['digest']}"
    assert values["initContainers"]["setupDirectories"]["tag"] == f"1.37.0@{init['digest']}"
    # The mesh sidecar is the same bytes as the gateways.
    assert _sidecar_image(plan) == gateway["image"] == f"{GATEWAY_IMAGE}:v5.13.1@{gateway['digest']}"


def test_the_release_and_the_controller_wait_for_their_pins(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("prod")
    pins = {plan.one(PINNED_IMAGE_TYPE, f"images-{key}").urn for key in ("gateway", "gateway-init")}
    assert pins <= set(plan.one(RELEASE, "gateway-release").dependencies)
    base_pin = plan.one(PINNED_IMAGE_TYPE, "images-controller-base").urn
    assert base_pin in plan.one("docker-build:index:Image", "controller-image-build").dependencies
    gateway_pin = plan.one(PINNED_IMAGE_TYPE, "images-gateway").urn
    assert gateway_pin in plan.one(CONFIG_MAP, "ingress-controller-config").dependencies


def test_dev_pins_its_redis_too(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("dev")
    pins = _pins(plan)
    assert set(pins) == {f"{GATEWAY_IMAGE}:v5.13.1", "busybox:1.37.0", "redis:7.4.6-alpine", base_image()}
    [container] = plan.one(STATEFULSET, "redis-statefulset").inputs["spec"]["template"]["spec"]["containers"]
    assert container["image"] == pins["redis:7.4.6-alpine"]["image"]
    assert re.fullmatch(r"redis:7\.4\.6-alpine@sha256:[0-9a-f]{64}", container["image"])


def test_local_follows_the_tags(plan_of: Callable[[str], Plan]) -> None:
    plan = plan_of("local")
    assert plan.find(PINNED_IMAGE_TYPE) == []
    values = _gateway_values(plan)
    assert (values["image"]["tag"], values["initContainers"]["setupDirectories"]["tag"]) == (
        "v5.13.1",
        "1.37.0",
    )


def test_a_digest_in_the_stack_file_wins_over_a_pin() -> None:
    digest = "sha256:" + "1" * 64
    plan = _edited("prod", "gateway", imageDigest=digest)
    assert set(_pins(plan)) == {"busybox:1.37.0", base_image()}  # no lookup for the gateway image
    assert _gateway_values(plan)["image"]["tag"] == f"v5.13.1@{digest}"
    assert _sidecar_image(plan) == f"{GATEWAY_IMAGE}:v5.13.1@{digest}"


def test_a_new_tag_is_a_new_pin() -> None:
    plan = _edited("prod", "gateway", imageTag="v5.13.2")
    assert f"{GATEWAY_IMAGE}:v5.13.2" in _pins(plan)
    assert _gateway_values(plan)["image"]["tag"].startswith("v5.13.2@sha256:")


def test_the_pin_generation_reaches_every_pin() -> None:
    plan = _edited("prod", "images", pinGeneration=3)
    assert {pin.inputs["generation"] for pin in plan.find(PINNED_IMAGE_TYPE)} == {3}


def test_pinning_off_pulls_by_tag() -> None:
    plan = _edited("prod", "images", pinDigests=False)
    assert plan.find(PINNED_IMAGE_TYPE) == []
    assert _gateway_values(plan)["image"]["tag"] == "v5.13.1"
    assert _sidecar_image(plan) == f"{GATEWAY_IMAGE}:v5.13.1"


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("gateway", "imageTag", "v5.13.1@sha256:" + "1" * 64, "is not an image tag"),
        ("gateway", "initImageRepository", "Busybox", "is not an image repository"),
        ("redis", "imageTag", "", "is not an image tag"),
    ],
)
def test_bad_image_settings_are_refused_naming_the_key(
    section: str, field: str, value: str, message: str
) -> None:
    config, _, _ = read_stack_config("dev")
    settings = json.loads(config[f"tyk-aks:{section}"]) | {field: value}
    config[f"tyk-aks:{section}"] = json.dumps(settings)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        parse_settings(config)
    assert f"{section}.{field}" in str(error.value) and len(str(error.value).splitlines()) == 1
