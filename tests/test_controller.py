"""The tyk-k8s controller component under the offline mocks: objects, RBAC, config, templates, examples."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components.controller import (
    INGRESS_TAGS,
    PROJECT_TEMPLATES_DIR,
    IngressController,
    load_templates,
    template_names,
)
from components.settings import ConfigError, ControllerSettings, parse_settings
from offline.mocks import is_secret, reveal, secret_strings
from tests.controller_fixtures import (
    COMPONENT,
    CONTROL_URL,
    GATEWAY_SECRET_NAME,
    GATEWAY_SECRET_VALUE,
    NAMESPACE,
    build,
    defined_templates,
    example_documents,
    render,
)
from tests.k8s_schema import KUBERNETES_VERSION, is_kubernetes_object, validate

# What the controller's Kubernetes client does, read in tyk-k8s ingress/ingress.go (watchAll informers,
# handlePodDeleteForMesh, handleTLS); the injector makes no Kubernetes API call. Nothing else may be granted.
UPSTREAM_PERMISSIONS = {
    ("networking.k8s.io", "ingresses", "list"),
    ("networking.k8s.io", "ingresses", "watch"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "secrets", "get"),
}
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
SAMPLE_VARIABLES = {
    "Name": "httpbin:httpbin",
    "Slug": "c2x1Zy1pZA",
    "Org": "default",
    "ListenPath": "/httpbin",
    "Target": "http://httpbin.demo:80",
    "GatewayTags": list(INGRESS_TAGS),
    "HostName": "httpbin.example.com",
    "CertificateID": ["5f1e0c"],
}


def _config(built_settings: dict[str, object] | None = None) -> dict[str, object]:
    built = build(built_settings)
    loaded: dict[str, object] = yaml.safe_load(built.config_map("tyk-k8s-config")["tyk-k8s.yaml"])
    return loaded


def _granted(rules: list[dict[str, list[str]]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# --- Kubernetes objects --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "watch"),
    [
        ({"webhook": {"enabled": True}}, ()),
        ({"webhook": {"enabled": False}}, ()),
        ({"resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}}, ("demo", "shop")),
    ],
    ids=["with-webhook", "without-webhook", "namespaced"],
)
def test_every_object_validates_against_the_kubernetes_schemas(
    settings: dict[str, object], watch: tuple[str]
) -> None:
    built = build(settings, watch_namespaces=watch)
    objects = [r for r in built.controller_children() if is_kubernetes_object(r)]
    assert len(objects) >= 6
    for resource in objects:
        validate(resource)


def test_object_names_are_explicit_and_children_are_parented() -> None:
    built = build()
    component = built.one("tyk-aks:index:IngressController")
    children = built.controller_children()
    urns = {r.urn for r in children}
    for resource in children:
        if resource is component:
            continue
        assert resource.name.startswith(f"{COMPONENT}-")
        assert resource.parent_urn in urns  # the component or one of its sub-components
        if is_kubernetes_object(resource):
            assert reveal(resource.inputs)["metadata"]["name"]  # no auto-naming suffix


def test_disabled_controller_declares_nothing() -> None:
    built = build({"enabled": False})
    assert [r.type for r in built.controller_children()] == ["tyk-aks:index:IngressController"]


def test_gateways_shard_on_the_tag_the_controller_puts_on_its_apis() -> None:
    # ingress.go doAdd/handleIngressUpdate: `tags := []string{"ingress"}`, rendered into each definition's tags.
    assert IngressController.gateway_tags(ControllerSettings(enabled=True)) == ["ingress"]
    assert IngressController.gateway_tags(ControllerSettings(enabled=False)) == []


def test_only_the_tyk_ingress_class_is_accepted() -> None:
    # ingress.go compares the class annotation with the constant "tyk"; any other class would never match.
    with pytest.raises(ConfigError, match=r"tyk-aks:controller.ingressClass = 'nginx'"):
        parse_settings(
            {
                "tyk-aks:gateway": '{"hostnames": ["api.example.com"]}',
                "tyk-aks:controller": '{"ingressClass": "nginx"}',
            }
        )


# --- RBAC ----------------------------------------------------------------------------------------------------


def test_cluster_rbac_grants_exactly_what_the_controller_uses() -> None:
    built = build()
    role = reveal(built.one(CLUSTER_ROLE).inputs)
    rules = role["rules"]
    assert _granted(rules) == UPSTREAM_PERMISSIONS
    for rule in rules:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
        assert set(rule) == {"apiGroups", "resources", "verbs"}  # no nonResourceURLs, no resourceNames tricks
    assert role["metadata"]["name"] == f"tyk-k8s-controller-{NAMESPACE}"

    binding = reveal(built.one(CLUSTER_ROLE_BINDING).inputs)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tyk-k8s", "namespace": NAMESPACE}]
    assert built.of_type(ROLE) == built.of_type(ROLE_BINDING) == []

    pod = built.deployment()["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tyk-k8s"
    account = reveal(built.one("kubernetes:core/v1:ServiceAccount").inputs)
    assert account["automountServiceAccountToken"] is False  # only the controller's pod mounts the token


def test_watched_namespaces_get_namespaced_roles_only() -> None:
    built = build(watch_namespaces=("demo", "shop"))
    assert built.of_type(CLUSTER_ROLE) == built.of_type(CLUSTER_ROLE_BINDING) == []
    roles = [reveal(r.inputs) for r in built.of_type(ROLE)]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["demo", "shop"]
    for role in roles:
        assert _granted(role["rules"]) == UPSTREAM_PERMISSIONS
    for binding in (reveal(r.inputs) for r in built.of_type(ROLE_BINDING)):
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tyk-k8s", "namespace": NAMESPACE}]
    config = yaml.safe_load(built.config_map("tyk-k8s-config")["tyk-k8s.yaml"])
    assert config["Ingress"]["watchNamespaces"] == ["demo", "shop"]


# --- config file and secret ----------------------------------------------------------------------------------


def test_config_file_uses_the_controllers_keys() -> None:
    config = _config()
    assert set(config) == {"Server", "Tyk", "Ingress", "Injector"}
    tyk = config["Tyk"]
    assert isinstance(tyk, dict)
    assert tyk["url"] == CONTROL_URL
    assert tyk["org"] == "default"
    # mapstructure matches Go field names: IsGateway <- isGateway (an `is_gateway` key would be dropped).
    assert tyk["isGateway"] is True
    assert "is_gateway" not in tyk
    assert config["Ingress"] == {"watchNamespaces": []}
    assert config["Injector"] == {
        "createRoutes": False,
        "enableMeshTLS": False,
        "containers": [],
        "initContainers": [],
    }


def test_config_org_id_comes_from_settings() -> None:
    tyk = _config({"orgId": "acme"})["Tyk"]
    assert isinstance(tyk, dict)
    assert tyk["org"] == "acme"


def test_controller_reads_the_mounted_config_file() -> None:
    built = build()
    container = built.container()
    assert container["args"][0] == "start"  # Go's flag.Parse in main() must stop before --config
    flag = container["args"].index("--config")
    config_path = Path(container["args"][flag + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(
        v for v in built.deployment()["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    assert volume["configMap"]["name"] == "tyk-k8s-config"
    assert config_path.name in built.config_map("tyk-k8s-config")


def test_api_secret_comes_from_the_gateway_secret_not_the_config_map() -> None:
    built = build()
    config = yaml.safe_load(built.config_map("tyk-k8s-config")["tyk-k8s.yaml"])
    # viper only applies TK8S_TYK_SECRET to a key present in the file: a placeholder, never the value.
    assert config["Tyk"]["secret"].startswith("from-environment-")
    [env] = [e for e in built.container()["env"] if e["name"] == "TK8S_TYK_SECRET"]
    assert env == {
        "name": "TK8S_TYK_SECRET",
        "valueFrom": {"secretKeyRef": {"name": GATEWAY_SECRET_NAME, "key": "APISecret"}},
    }


@pytest.mark.parametrize(
    "settings",
    [{"webhook": {"enabled": True}}, {"webhook": {"enabled": False}}],
    ids=["with-webhook", "without-webhook"],
)
def test_no_secret_appears_in_a_config_map(settings: dict[str, object]) -> None:
    built = build(settings)
    secrets = {s for r in built.recorded for s in secret_strings(r.inputs) if len(s) >= 8}
    assert GATEWAY_SECRET_VALUE in secrets
    if settings["webhook"] == {"enabled": True}:
        assert any("PRIVATE KEY" in s for s in secrets)  # the webhook's keys are among the secrets checked
    config_maps = built.of_type(CONFIG_MAP)
    assert len(config_maps) == 2
    for config_map in config_maps:
        assert not is_secret(config_map.inputs.get("data"))
        for text in reveal(config_map.inputs)["data"].values():
            assert "PRIVATE KEY" not in text
            for secret in secrets:
                assert secret not in text


# --- templates -----------------------------------------------------------------------------------------------


def test_templates_config_map_holds_every_file_and_is_mounted_where_the_config_points() -> None:
    built = build()
    data = built.config_map("tyk-k8s-templates")
    files = sorted(p.name for p in PROJECT_TEMPLATES_DIR.iterdir() if p.is_file())
    assert sorted(data) == files
    assert "token-auth.json" in data
    for name, text in data.items():
        assert text == (PROJECT_TEMPLATES_DIR / name).read_text(encoding="utf-8")

    folder = yaml.safe_load(built.config_map("tyk-k8s-config")["tyk-k8s.yaml"])["Tyk"]["templates"]
    container = built.container()
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    volumes = built.deployment()["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "tyk-k8s-templates"


def test_templates_render_to_api_definitions_for_the_ingress_gateways() -> None:
    templates = load_templates(PROJECT_TEMPLATES_DIR)
    bodies = {name: body for text in templates.values() for name, body in defined_templates(text).items()}
    assert {"default", "token-auth"} <= set(bodies)
    for name, body in bodies.items():
        definition = json.loads(render(body, SAMPLE_VARIABLES))
        assert definition["tags"] == list(INGRESS_TAGS), name  # loaded by the gateways sharded on `ingress`
        assert definition["proxy"]["listen_path"] == "/httpbin"
        assert definition["proxy"]["target_url"] == "http://httpbin.demo:80"
        assert definition["domain"] == "httpbin.example.com"
        assert definition["certificates"] == ["5f1e0c"]  # the Ingress's TLS certificate reaches the API
        assert definition["org_id"] == "default"
        assert definition["slug"] == "c2x1Zy1pZA"  # the controller finds (and deletes) its APIs by slug
    assert json.loads(render(bodies["default"], SAMPLE_VARIABLES))["use_keyless"] is True
    token = json.loads(render(bodies["token-auth"], SAMPLE_VARIABLES))
    assert token["use_keyless"] is False
    assert token["use_standard_auth"] is True
    assert token["auth_configs"]["authToken"]["auth_header_name"] == "Authorization"
    # several tags and no certificate still give valid JSON
    many = json.loads(
        render(bodies["token-auth"], {**SAMPLE_VARIABLES, "GatewayTags": ["a", "b"], "CertificateID": []})
    )
    assert (many["tags"], many["certificates"]) == (["a", "b"], [])


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no template files"),
        ({"default.json": '{{ define "default" }}{}{{ end }}', "notes.txt": "x"}, "must be named"),
        ({"token-auth.json": '{{ define "token-auth" }}{}{{ end }}'}, "no template defines 'default'"),
        (
            {"a.json": '{{ define "default" }}{}{{ end }}', "b.json": '{{ define "default" }}{}{{ end }}'},
            "already defined",
        ),
    ],
    ids=["empty", "not-json", "no-default", "duplicate"],
)
def test_template_folders_the_controller_would_mishandle_are_rejected(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_templates(tmp_path)
    with pytest.raises(ValueError, match=message):
        build(templates_dir=tmp_path)


# --- deployment ----------------------------------------------------------------------------------------------


def test_deployment_image_probes_resources_and_security() -> None:
    built = build({"image": "registry.example.com/tyk-k8s", "tag": "1.0.0-v1ingress"})
    spec = built.deployment()["spec"]
    assert spec["replicas"] == 1  # no leader election upstream
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    container = built.container()
    assert container["image"] == "registry.example.com/tyk-k8s:1.0.0-v1ingress"
    port_names = {p["name"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"]["port"] in port_names  # no HTTP health endpoint upstream
    assert [p["containerPort"] for p in container["ports"]] == [8443]  # unprivileged: the user is not root
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "128Mi"},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["enableServiceLinks"] is False


def test_resources_come_from_settings() -> None:
    built = build(
        {"resources": {"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}}
    )
    assert built.container()["resources"] == {
        "requests": {"cpu": "100m", "memory": "96Mi"},
        "limits": {"memory": "256Mi"},
    }


def test_pod_rolls_when_config_templates_or_certificate_change() -> None:
    built = build({"webhook": {"enabled": True}})
    annotations = built.deployment()["spec"]["template"]["metadata"]["annotations"]
    config = built.config_map("tyk-k8s-config")["tyk-k8s.yaml"]
    assert annotations["checksum/config"] == hashlib.sha256(config.encode()).hexdigest()
    assert len(annotations["checksum/templates"]) == 64
    secret = next(
        r for r in built.of_type("kubernetes:core/v1:Secret") if r.name.endswith("-webhook-certs-secret")
    )
    cert = reveal(secret.inputs)["stringData"]["tls.crt"]
    assert annotations["checksum/webhook-cert"] == hashlib.sha256(cert.encode()).hexdigest()


def test_deployment_waits_for_the_gateway_secret_and_control_url() -> None:
    built = build()
    deployment = built.one("kubernetes:apps/v1:Deployment")
    gateway_secret = next(r for r in built.recorded if r.name == "gateway-api-secret")
    assert gateway_secret.urn in deployment.dependencies


# --- examples ------------------------------------------------------------------------------------------------


def test_examples_are_valid_kubernetes_objects() -> None:
    documents = example_documents()
    assert {d["kind"] for _, d in documents} >= {"Ingress", "Deployment", "Service"}
    for _, document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_example_ingress_is_one_the_controller_handles() -> None:
    names = template_names(load_templates(PROJECT_TEMPLATES_DIR))
    ingresses = [d for _, d in example_documents() if d["kind"] == "Ingress"]
    assert ingresses
    for ingress in ingresses:
        annotations = ingress["metadata"]["annotations"]
        assert annotations["kubernetes.io/ingress.class"] == "tyk"
        assert "ingressClassName" not in ingress["spec"]  # the API server refuses both at once
        assert annotations["template.service.tyk.io"] in names
        setters = [k for k in annotations if k.split("/")[0].endswith(".service.tyk.io") and "/" in k]
        assert setters
        for key in setters:
            assert key.split("/")[0] in {
                f"{t}.service.tyk.io" for t in ("bool", "string", "num", "object", "array")
            }
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert isinstance(path["backend"]["service"]["port"]["number"], int)  # IntVal only upstream
