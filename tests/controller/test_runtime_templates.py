"""Templates reloaded while the controller runs, from a folder laid out as the kubelet lays out a ConfigMap
volume: ``<name> -> ..data/<name>``, ``..data -> ..<timestamp>/``, updated by swapping ``..data``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.controller.runtime_support import CONTROLLER_NAMESPACE, Cluster, ingress, wait_for
from tests.controller.test_runtime_shared_gateway import make_config, setup_cluster, start
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import KubeApiDouble
from tyk_controller.templates import templates_fingerprint
from tyk_controller.translate import owner_of


class ConfigMapVolume:
    """Writes a new version the way the kubelet's atomic writer does: a fresh timestamped folder, a
    temporary ``..data`` symlink renamed over the old one, the per-file symlinks created once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.version = 0

    def write(self, files: dict[str, str]) -> None:
        self.version += 1
        payload = self.folder / f"..2026_11_29_{self.version:02d}"
        payload.mkdir()
        for name, text in files.items():
            (payload / name).write_text(text)
        staging = self.folder / "..data_tmp"
        staging.symlink_to(payload.name)
        os.replace(staging, self.folder / "..data")
        for name in files:
            link = self.folder / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


def tagged(tag: str) -> str:
    return json.dumps({"use_keyless": True, "tags": [tag]})


def test_fingerprint_follows_the_symlink_swap(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "templates")
    volume.write({"default.json": tagged("one")})
    first = templates_fingerprint(volume.folder)
    volume.write({"default.json": tagged("one")})
    assert templates_fingerprint(volume.folder) == first  # same content, new payload folder
    volume.write({"default.json": tagged("two")})
    assert templates_fingerprint(volume.folder) != first
    assert templates_fingerprint(tmp_path / "missing") == ""


def test_changed_templates_are_used_and_a_broken_set_keeps_the_last_good_one(
    api: KubeApiDouble,
    gateway: GatewayEmulator,
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    cluster: Cluster = setup_cluster(api)
    volume = ConfigMapVolume(tmp_path / "templates")
    volume.write({"default.json": tagged("v1")})
    api.apply(ingress("shop", host="shop.example.com", paths=("/cart",)))
    config = make_config(gateway, templates_dir=str(volume.folder), templates_poll_seconds=0.1)
    controller = start(config, gateway)

    def tags() -> set[str]:
        return {t for a in gateway.loaded_apis.values() if owner_of(a) for t in a.get("tags") or []}

    try:
        wait_for(lambda: tags() == {"v1"}, what="the API from the first template")
        volume.write({"default.json": tagged("v2")})
        wait_for(lambda: tags() == {"v2"}, what="the API rewritten from the changed template")
        wait_for(
            lambda: cluster.events("controller-0", "TemplatesReloaded"), what="a TemplatesReloaded Event"
        )

        volume.write({"default.json": json.dumps({"use_keyless": "maybe"})})
        [event] = wait_for(
            lambda: cluster.events("controller-0", "TemplatesInvalid"), what="a TemplatesInvalid Event"
        )
        assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "Pod"
        assert event["involvedObject"]["namespace"] == CONTROLLER_NAMESPACE
        assert "default.json" in event["message"] and "use_keyless" in event["message"]
        # The last good set stays in use: the APIs keep it, and a new path is translated with it.
        api.apply(ingress("shop", host="shop.example.com", paths=("/cart", "/pay")))
        wait_for(lambda: len([a for a in gateway.loaded_apis.values() if owner_of(a)]) == 2, what="two APIs")
        assert tags() == {"v2"}
        time.sleep(0.5)  # more polls of the same broken files: reported once
        assert len(cluster.events("controller-0", "TemplatesInvalid")) == 1

        volume.write({"default.json": tagged("v3")})
        wait_for(lambda: tags() == {"v3"}, what="the fixed templates used")
        # A field the template no longer sets is cleared on the gateway too.
        volume.write({"default.json": json.dumps({"use_keyless": True})})
        wait_for(lambda: not tags(), what="the tags removed with the template's field")
    finally:
        controller.stop()
    assert controller.error is None, controller.error
