"""Setter annotations and templates: precedence, validation, and the Problems they raise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.controller.test_translate import backend, ingress, translate
from tyk_controller.annotations import parse_setters
from tyk_controller.templates import TemplateError, load_templates
from tyk_controller.translate import OWNER_KEY, owner_of
from tyk_gateway.models import ApiDefinition

PROJECT_TEMPLATES = load_templates(Path(__file__).parents[2] / "ingress_templates")


def annotated(annotations: dict[str, str]) -> dict:
    return ingress(
        {
            "rules": [
                {"http": {"paths": [{"path": "/api", "pathType": "Prefix", "backend": backend("api", 8080)}]}}
            ]
        },
        annotations=annotations,
    )


def only_api(annotations: dict[str, str], templates: dict | None = None) -> dict:
    result = translate(
        annotated(annotations), templates=PROJECT_TEMPLATES if templates is None else templates
    )
    assert result.problems == []
    [api] = result.apis.values()
    ApiDefinition.model_validate(api)
    return api


def test_shipped_templates_load() -> None:
    assert set(PROJECT_TEMPLATES) == {"default", "token-auth"}
    assert only_api({})["use_keyless"] is True
    api = only_api({"template.service.tyk.io": "token-auth"})
    assert api["use_keyless"] is False and api["use_standard_auth"] is True
    assert api["auth_configs"]["authToken"]["auth_header_name"] == "Authorization"


def test_setters_of_every_kind_apply_last() -> None:
    api = only_api(
        {
            "template.service.tyk.io": "token-auth",
            "bool.service.tyk.io/use-keyless": "True",
            "bool.service.tyk.io/use-standard-auth": "false",
            "num.service.tyk.io/session-lifetime": "3600",
            "string.service.tyk.io/name": "Shop API",
            "object.service.tyk.io/config-data": '{"team": "shop"}',
            "array.service.tyk.io/tags": '["edge", "shop"]',
            "bool.service.tyk.io/proxy.preserve-host-header": "true",
        }
    )
    assert api["use_keyless"] is True and api["use_standard_auth"] is False
    assert api["session_lifetime"] == 3600 and api["name"] == "Shop API"
    assert api["tags"] == ["edge", "shop"] and api["proxy"]["preserve_host_header"] is True
    # config_data replaced by the annotation, but the ownership marker survives.
    assert api["config_data"] == {"team": "shop", OWNER_KEY: "shop/web"} and owner_of(api) == ("shop", "web")


def test_generated_fields_win_over_the_template() -> None:
    template = {
        "proxy": {"listen_path": "/hijack", "target_url": "http://evil", "preserve_host_header": True}
    }
    api = only_api({"template.service.tyk.io": "t"}, {"t": template})
    assert (
        api["proxy"]["listen_path"].startswith("/api{")
        and api["proxy"]["target_url"] == "http://api.shop.svc:8080"
    )
    assert api["proxy"]["preserve_host_header"] is True


@pytest.mark.parametrize(
    ("annotations", "reason", "text"),
    [
        ({"bool.service.tyk.io/use-keyless": "yes"}, "InvalidAnnotation", "not a boolean"),
        ({"num.service.tyk.io/session-lifetime": "1h"}, "InvalidAnnotation", "not an integer"),
        ({"num.service.tyk.io/session-lifetime": " 1"}, "InvalidAnnotation", "not an integer"),
        ({"bool.service.tyk.io/use-keyless": "1"}, "InvalidAnnotation", "not a boolean"),
        ({"object.service.tyk.io/auth": "[1]"}, "InvalidAnnotation", "not a JSON object"),
        ({"array.service.tyk.io/tags": "{"}, "InvalidAnnotation", "not JSON"),
        ({"string.service.tyk.io/proxy.listen-path": "/x"}, "InvalidAnnotation", "can't be set by annotation"),
        ({"string.service.tyk.io/api-id": "x"}, "InvalidAnnotation", "can't be set by annotation"),
        ({"string.service.tyk.io/use-keyless": "maybe"}, "InvalidAnnotation", "use_keyless"),
        ({"string.service.tyk.io/name.first": "x"}, "InvalidAnnotation", "name is a str"),
        ({"array.service.tyk.io/allowed-ips": '["nope"]', "bool.service.tyk.io/enable-ip-whitelisting": "true"},
         "InvalidAnnotation", "invalid IP/CIDR"),
        ({"template.service.tyk.io": "missing"}, "UnknownTemplate", "'missing' does not exist"),
    ],
)  # fmt: skip
def test_bad_annotations_are_fatal_and_named(annotations: dict, reason: str, text: str) -> None:
    result = translate(annotated(annotations), templates=PROJECT_TEMPLATES)
    assert result.fatal and result.apis == {}
    assert any(p.reason == reason and text in p.message for p in result.problems), result.problems
    assert all(p.field.startswith("metadata.annotations[") for p in result.problems)


def test_unrelated_annotations_are_ignored() -> None:
    setters, errors = parse_setters({"kubernetes.io/ingress.class": "tyk", "foo.service.tyk.io/x": "1"})
    assert setters == [] and errors == []


def test_template_loader_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("use_keyless: [1, 2]\n")
    with pytest.raises(TemplateError, match=r"bad.yaml: template.use_keyless: "):
        load_templates(tmp_path)
    (tmp_path / "bad.yaml").write_text("use_keyless: true\n  x: : :\n")
    with pytest.raises(TemplateError, match=r"bad.yaml:2:\d+: not YAML"):
        load_templates(tmp_path)
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(TemplateError, match=r"bad\.yaml: a template must be an object"):
        load_templates(tmp_path)
    (tmp_path / "bad.yaml").unlink()
    (tmp_path / "twice.yaml").write_text("{}\n")
    (tmp_path / "twice.json").write_text("{}")
    with pytest.raises(TemplateError, match="also defined by"):
        load_templates(tmp_path)


def test_the_documented_annotation_examples_parse() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "ingress-controller.md").read_text()
    examples = dict(
        line.split("`")[-2].split(": ", 1)
        for line in doc.splitlines()
        if line.startswith("| `") and ".service.tyk.io/<path>`" in line
    )
    assert len(examples) == 5
    setters, errors = parse_setters({key: value.strip("'\"") for key, value in examples.items()})
    assert errors == [] and len(setters) == 5
