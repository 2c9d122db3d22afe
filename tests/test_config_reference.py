"""The configuration reference (docs/configuration.md) is generated from the pydantic model and kept in sync;
the README and the docs it links to stay true to the program."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel

from components.settings import (
    PROJECT,
    SECRET_KEYS,
    DnsLabel,
    Hostname,
    ObjectName,
    Quantity,
    StackSettings,
    StorageSettings,
)
from offline import config_reference as ref

PROJECT_DIR = Path(__file__).resolve().parent.parent
README = PROJECT_DIR / "README.md"
DOCS = PROJECT_DIR / "docs"


def all_docs() -> str:
    """The README and every page of docs/, as one text."""
    pages = [README, *sorted(DOCS.glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def test_reference_block_is_generated_from_the_model() -> None:
    block = ref.current_block(ref.REFERENCE.read_text(encoding="utf-8"))
    assert block == ref.render(), "run `python -m offline.config_reference --write`"


def test_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert ref.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        keys.add(key)
        nested = ref._model_of(field.annotation)
        if nested is not None:
            keys |= _leaf_keys(nested, key + ".")
    return keys


def test_every_setting_has_a_row() -> None:
    rows = {row.key for row in ref.rows()}
    assert rows == _leaf_keys(StackSettings)
    assert {
        "gateway.replicas",
        "cluster.aks.minCount",
        "storage.sizes.apps",
        "apiManagement.gatewayUrl",
    } <= rows


def _config_paths(value: Any, prefix: str) -> set[str]:
    if isinstance(value, dict):
        paths = {prefix} if prefix else set()
        for key, item in value.items():
            paths |= _config_paths(item, f"{prefix}.{key}" if prefix else key)
        return paths
    return {prefix}


@pytest.mark.parametrize("stack_file", sorted(PROJECT_DIR.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_every_key_the_stack_files_use_is_documented(stack_file: Path) -> None:
    config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    rows = {row.key for row in ref.rows()} | set(SECRET_KEYS)
    used = set()
    for full_key, value in config.items():
        namespace, _, key = full_key.partition(":")
        if namespace == PROJECT:
            used |= {p for p in _config_paths(value, key) if not p.startswith("gateway.ingress.annotations.")}
    assert "gateway.replicas" in used
    assert used - rows == set(), f"{stack_file.name}: keys missing from the reference"


def test_rows_carry_types_defaults_and_docstrings() -> None:
    rows = {row.key: row for row in ref.rows()}
    assert rows["gateway.replicas"].type == "integer (≥ 1, ≤ 100)"
    assert rows["gateway.replicas"].default == "`1`"
    assert rows["gateway.hostnames"].default == "**required**"
    assert rows["gateway.hostnames"].type == "list of DNS name (at least 1 item)"
    assert rows["cluster.mode"].type == '"existing" | "aks"'
    assert rows["cluster.aks"].type == "object | null"
    assert rows["storage"].default == ""  # listed field by field below
    assert rows["storage"].description.startswith("Shared volumes")  # from the class docstring
    created = rows["storage.createStorageClass"].description
    assert created == StorageSettings.model_fields["create_storage_class"].description or created.startswith(
        "Create an Azure Files StorageClass"
    )
    assert rows["redis.addrs"].default == "`[]`"
    assert rows["redis.storageClassName"].default == "`null`"


def test_field_docstrings_from_source() -> None:
    class Sample(BaseModel):
        plain: int = 1
        documented: str = "x"
        """First line
        continued."""
        after: bool = True

    docs = ref.field_docstrings(Sample)
    assert docs == {"documented": "First line\ncontinued."}


def test_type_names() -> None:
    assert ref.type_name(DnsLabel) == "DNS label"
    assert ref.type_name(ObjectName | None) == "object name | null"
    assert ref.type_name(list[Hostname]) == "list of DNS name"
    assert ref.type_name(Quantity) == "quantity"
    assert ref.type_name(Literal["a", "b"]) == '"a" | "b"'
    assert ref.type_name(dict[str, str]) == "map of string to string"
    assert ref.type_name(bool) == "boolean"


def test_table_cells_escape_pipes() -> None:
    text = ref.render()
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = line.replace("\\|", "").split("|")
            assert len(cells) in (4, 6), line  # 2 or 4 columns


def test_secrets_are_listed() -> None:
    assert set(ref.SECRET_DESCRIPTIONS) == set(SECRET_KEYS)
    text = ref.render()
    for key in SECRET_KEYS:
        assert f"| `{key}` |" in text


def test_replace_block() -> None:
    document = f"intro\n{ref.START_MARKER}\nold\n{ref.END_MARKER}\noutro\n"
    updated = ref.replace_block(document, "new\n")
    assert updated == f"intro\n{ref.START_MARKER}\nnew\n{ref.END_MARKER}\noutro\n"
    assert ref.current_block(updated) == "new\n"
    with pytest.raises(ValueError, match="config-reference"):
        ref.replace_block("no markers", "x")


# --- the rest of the README stays true to the program --------------------------------------------------------


def test_readme_fresh_machine_commands() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "./run plan dev    #" in readme
    assert "./run test        #" in readme
    run = (PROJECT_DIR / "run").read_text()
    for command in ("plan)", "diff)", "test)", "bench)"):
        assert command in run, f"./run has no {command[:-1]} command"


def test_readme_names_the_objects_the_program_creates() -> None:
    from components.gateway import API_SECRET_NAME, CONTROL_SERVICE_NAME, DEPLOYMENT_NAME

    readme = all_docs()
    assert f"/services/{CONTROL_SERVICE_NAME}:9696/proxy" in readme
    assert f"deployment/{DEPLOYMENT_NAME}" in readme
    assert f"`{API_SECRET_NAME}`" in readme
    local = yaml.safe_load((PROJECT_DIR / "Pulumi.local.yaml").read_text())["config"]
    assert "--name tyk " in readme and local["tyk-aks:cluster"]["context"] == "kind-tyk"
    assert local["tyk-aks:gateway"]["hostnames"][0] in readme


def test_readme_mermaid_diagram_names_the_shared_folders() -> None:
    from components.storage import GATEWAY_FOLDERS

    readme = README.read_text(encoding="utf-8")
    diagram = readme[readme.index("```mermaid") : readme.index("```", readme.index("```mermaid") + 3)]
    for path in GATEWAY_FOLDERS.values():
        assert path in diagram


def test_links_between_readme_and_docs_resolve() -> None:
    """Every relative link of the README and docs/ names an existing file and, with a #fragment, a heading."""
    import re

    def anchors(page: Path) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
        return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}

    checked = 0
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: broken link {target}"
            if fragment:
                assert fragment in anchors(linked), f"{page.name}: no heading for {target}"
            checked += 1
    assert checked >= 10


def test_readme_links_every_docs_page() -> None:
    readme = README.read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README doesn't link docs/{page.name}"
