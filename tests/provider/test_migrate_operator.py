"""Tyk Operator manifests -> definition files: ids kept, references resolved, nothing dropped silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tyk_gateway.loader import load_definitions
from tyk_gateway.migrate_operator import main, operator_id

MANIFESTS = Path(__file__).resolve().parent / "operator_manifests"
ALL = [str(p) for p in sorted(MANIFESTS.glob("*.yaml"))]
# Computed independently: printf 'default/httpbin' | base64 | tr '+/' '-_' | tr -d =
HTTPBIN_ID = "ZGVmYXVsdC9odHRwYmlu"
PETSTORE_ID = "YXBwcy9wZXRzdG9yZQ"  # "apps/petstore": 13 bytes, the padding Go's RawURLEncoding leaves out
GOLD_ID = "ZGVmYXVsdC9nb2xk"


def test_operator_ids_are_unpadded_url_safe_base64() -> None:
    assert operator_id("default", "httpbin") == HTTPBIN_ID
    assert operator_id("apps", "petstore") == PETSTORE_ID


def test_round_trip_migrated_files_load_with_the_operator_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ALL, "--out", str(tmp_path), "--org-id", "acme"]) == 0
    loaded = load_definitions(tmp_path)
    assert loaded.apis["default-httpbin"]["api_id"] == HTTPBIN_ID
    assert loaded.apis["shop-orders"]["api_id"] == "orders-v1"  # set in the manifest: kept
    assert loaded.oas_apis["apps-petstore"]["x-tyk-api-gateway"]["info"]["id"] == PETSTORE_ID
    gold = loaded.policies["default-gold"]
    assert gold["id"] == GOLD_ID and gold["org_id"] == "acme"
    assert gold["access_rights"] == {
        HTTPBIN_ID: {"api_id": HTTPBIN_ID, "api_name": "httpbin protected", "versions": ["Default"]},
        PETSTORE_ID: {
            "api_id": PETSTORE_ID,
            "api_name": "Petstore",
            "versions": ["Default"],
            "allowed_urls": [{"url": "/pets", "methods": ["GET"]}],
        },
    }
    assert "state" not in gold and "access_rights_array" not in gold

    out = capsys.readouterr().out
    httpbin_file = (tmp_path / "apis" / "default-httpbin.yaml").read_text()
    for dropped in ("spec.contextRef: not migrated", "spec.certificate_secret_names: not migrated"):
        assert dropped in out and dropped in httpbin_file
    assert "contextRef" not in yaml.safe_load(httpbin_file)
    orders = (tmp_path / "apis" / "shop-orders.yaml").read_text()
    assert (
        "spec.x_team_owner: kept, but not a field" in orders
        and yaml.safe_load(orders)["x_team_owner"] == "shop"
    )
    assert "spec.categories: not migrated" in (tmp_path / "oas" / "apps-petstore.yaml").read_text()
    assert "spec.state: not migrated" in (tmp_path / "policies" / "default-gold.yaml").read_text()
    assert "OperatorContext tyk-operator-system/tyk-context: not migrated" in out


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["apis.yaml", "policies.yaml"],
         r"policies\.yaml: SecurityPolicy default/gold: spec\.access_rights_array\[1\]: ApiDefinition or "
         r"TykOasApiDefinition apps/petstore is not among the manifests given"),
        ([],  # the TykOasApiDefinition without its ConfigMap
         r"petstore\.yaml: TykOasApiDefinition apps/petstore: spec\.tykOAS\.configmapRef: ConfigMap apps/cm is not"),
    ],
)  # fmt: skip
def test_missing_references_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: list[str], message: str
) -> None:
    if files:
        paths = [str(MANIFESTS / f) for f in files]
    else:
        oas_only = yaml.safe_load_all((MANIFESTS / "petstore-oas.yaml").read_text())
        path = tmp_path / "petstore.yaml"
        path.write_text(yaml.safe_dump(next(d for d in oas_only if d["kind"] != "ConfigMap")))
        paths = [str(path)]
    out = tmp_path / "out"
    assert main([*paths, "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1

    assert re.search(message, error), error
    assert not out.exists()  # nothing written


def test_an_invalid_field_names_the_file_object_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: tyk.tyk.io/v1alpha1\nkind: ApiDefinition\nmetadata: {name: broken}\n"
        "spec: {name: broken, proxy: {listen_path: broken, target_url: 'http://x'}}\n"
    )
    assert main([str(bad), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        f"error: {bad}: ApiDefinition default/broken: definition.proxy.listen_path: must start with '/' (got 'broken')\n"
    )


def test_existing_files_are_not_replaced_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ALL, "--out", str(tmp_path)]) == 0
    assert main([*ALL, "--out", str(tmp_path)]) == 1
    assert "exists already (--overwrite replaces it); nothing written" in capsys.readouterr().err
    assert main([*ALL, "--out", str(tmp_path), "--overwrite"]) == 0
