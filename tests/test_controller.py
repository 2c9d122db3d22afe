"""The ingress controller's deployment under the offline mocks: the component alone, and the program per stack.

What is asserted comes from the controller's own contracts (`tyk_controller.config`, `tyk_controller.rbac`), the
Kubernetes schemas and the Pod Security Standards (restricted profile), and the gateway source the entry
point relies on (see `components/entry_point.py`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from components.controller import (
    CONTROLLER_NAME,
    DEFAULT_CLASS_ANNOTATION,
    PROJECT_TEMPLATES_DIR,
    RUN_AS,
    template_files,
)
from components.controller_image import ACR_PULL_ROLE_ID, BUILD_INPUTS, base_image, content_tag
from components.entry_point import AZURE_INTERNAL_LB, DEFAULT_CERT_DIR, DEFAULT_CERT_KEY, HTTPS_PORT
from components.gateway import POD_LABELS
from components.settings import ConfigError, parse_settings
from offline.mocks import OFFLINE_KUBELET_OBJECT_ID, PINNED_IMAGE_TYPE, is_secret, reveal, secret_strings
from offline.plan import PROJECT_DIR, Plan, read_stack_config, run_program
from tests.conftest import STACKS, stack_plan
from tests.controller_fixtures import (
    COMPONENT,
    CONTROL_URL,
    GATEWAY_SECRET_NAME,
    GATEWAY_SECRET_VALUE,
    IMAGE,
    NAMESPACE,
    PUBLISH_SERVICE,
    build,
    example_documents,
)
from tests.k8s_schema import is_kubernetes_object, validate
from tyk_controller import rbac
from tyk_controller.config import ControllerConfig

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
INGRESS_CLASS = "kubernetes:networking.k8s.io/v1:IngressClass"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
RELEASE = "kubernetes:helm.sh/v3:Release"
IMAGE_BUILD = "docker-build:index:Image"
REGISTRY = "azure-native:containerregistry:Registry"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
DIGEST_REFERENCE = re.compile(r"^[a-z0-9.:/-]+@sha256:[0-9a-f]{64}$")


def granted(rules: list[dict[str, list[str]]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def expected(rules: tuple[rbac.Rule, ...]) -> list[dict[str, list[str]]]:
    return [
        {"apiGroups": list(r.api_groups), "resources": list(r.resources), "verbs": list(r.verbs)}
        for r in rules
    ]


def config_of(resources: list[Any]) -> dict[str, Any]:
    [config_map] = [
        r for r in resources if r.type == CONFIG_MAP and "config.json" in (r.inputs.get("data") or {})
    ]
    loaded: dict[str, Any] = json.loads(reveal(config_map.inputs)["data"]["config.json"])
    return loaded


def pod_spec(deployment: Any) -> dict[str, Any]:
    spec: dict[str, Any] = reveal(deployment.inputs)["spec"]["template"]["spec"]
    return spec


# --- the component -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "watch"),
    [
        ({}, ()),
        ({"webhook": {"enabled": True}}, ()),
        ({"replicas": 2, "defaultClass": True}, ("demo", "shop")),
        ({"leaderElection": False, "resources": {"requests": {"cpu": "100m"}}}, ("tyk",)),
    ],
    ids=["cluster-wide", "with-webhook", "namespaced-ha", "own-namespace-watched"],
)
def test_every_object_validates_against_the_kubernetes_schemas(
    settings: dict[str, Any], watch: tuple[str]
) -> None:
    built = build(settings, watch_namespaces=watch)
    objects = [r for r in built.controller_children() if is_kubernetes_object(r)]
    assert len(objects) >= 8
    for resource in objects:
        validate(resource)
    names = [
        (r.type, reveal(r.inputs)["metadata"].get("namespace"), reveal(r.inputs)["metadata"]["name"])
        for r in objects
    ]
    assert len(names) == len(set(names)), "two objects of one kind share a name"


def test_disabled_controller_declares_nothing() -> None:
    built = build({"enabled": False})
    assert [r.type for r in built.controller_children()] == ["tyk-aks:index:IngressController"]


def test_rbac_with_watch_namespaces_is_exactly_the_runtime_rules_in_those_namespaces() -> None:
    built = build(watch_namespaces=("demo", "shop"))
    roles = {(reveal(r.inputs)["metadata"]["namespace"]): reveal(r.inputs) for r in built.of_type(ROLE)}
    assert set(roles) == {"demo", "shop", NAMESPACE}
    for watched in ("demo", "shop"):
        assert roles[watched]["rules"] == expected(rbac.WATCHED_NAMESPACE_RULES)
    assert roles[NAMESPACE]["rules"] == expected(rbac.OWN_NAMESPACE_RULES)
    [cluster_role] = built.of_type(CLUSTER_ROLE)
    assert reveal(cluster_role.inputs)["rules"] == expected(rbac.CLUSTER_RULES)
    # No Secret access outside the watched namespaces.
    assert not any(resource == "secrets" for _, resource, _ in granted(reveal(cluster_role.inputs)["rules"]))
    assert not any(resource == "secrets" for _, resource, _ in granted(roles[NAMESPACE]["rules"]))

    for binding in [*built.of_type(ROLE_BINDING), *built.of_type(CLUSTER_ROLE_BINDING)]:
        body = reveal(binding.inputs)
        assert body["subjects"] == [
            {"kind": "ServiceAccount", "name": "tyk-controller", "namespace": NAMESPACE}
        ]
    bound = {
        (b["metadata"]["namespace"], b["roleRef"]["name"])
        for b in map(reveal, (r.inputs for r in built.of_type(ROLE_BINDING)))
    }
    assert bound == {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in roles.values()}


def test_rbac_watching_every_namespace_needs_a_cluster_role_with_the_watch_rules() -> None:
    built = build()
    [cluster_role] = built.of_type(CLUSTER_ROLE)
    assert reveal(cluster_role.inputs)["rules"] == expected(
        (*rbac.CLUSTER_RULES, *rbac.WATCHED_NAMESPACE_RULES)
    )
    assert reveal(cluster_role.inputs)["metadata"]["name"] == f"tyk-controller-{NAMESPACE}"  # cluster-scoped
    [own] = built.of_type(ROLE)
    assert reveal(own.inputs)["metadata"]["namespace"] == NAMESPACE
    assert reveal(own.inputs)["rules"] == expected(rbac.OWN_NAMESPACE_RULES)


def test_config_file_is_the_controllers_own_model_with_no_secret() -> None:
    built = build(watch_namespaces=("demo",))
    raw = built.config_map("tyk-controller-config")["config.json"]
    config = ControllerConfig.model_validate_json(raw)  # the controller refuses unknown keys: so does this
    assert config.gateway_url == CONTROL_URL
    assert config.ingress_class == "tyk"
    assert config.controller_name == CONTROLLER_NAME == "tyk-aks.io/ingress-controller"
    assert config.watch_namespaces == ["demo"]
    assert config.publish_service == PUBLISH_SERVICE
    assert config.https_port == HTTPS_PORT
    assert config.leader_election.enabled is True
    assert config.webhook is None
    assert GATEWAY_SECRET_VALUE not in raw


def test_deployment_passes_the_restricted_pod_security_standard() -> None:
    spec = pod_spec(build().one(DEPLOYMENT))
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == RUN_AS != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in spec and "hostPID" not in spec and "hostIPC" not in spec
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True
        assert "privileged" not in context and "hostPort" not in json.dumps(container)
    # Restricted allows these volume types only (no hostPath).
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} <= {
            "configMap",
            "secret",
            "emptyDir",
            "projected",
            "persistentVolumeClaim",
        }


def test_container_env_probes_and_mounts() -> None:
    built = build()
    container = built.container()
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["TYK_CONTROLLER_GATEWAY_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": GATEWAY_SECRET_NAME, "key": "APISecret"}
    }
    config_path = Path(env["TYK_CONTROLLER_CONFIG"]["value"])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[str(config_path.parent)]["readOnly"] is True
    assert config_path.name in built.config_map("tyk-controller-config")
    config = json.loads(built.config_map("tyk-controller-config")["config.json"])
    assert config["templatesDir"] in mounts
    [health] = container["ports"]
    assert health["containerPort"] == config["healthPort"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": health["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": health["name"]}
    assert container["image"] == IMAGE and DIGEST_REFERENCE.match(container["image"])
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_pods_roll_when_config_or_templates_change(tmp_path: Path) -> None:
    (tmp_path / "keyless.yaml").write_text("use_keyless: true\n")
    first = build(templates_dir=tmp_path).deployment()["spec"]["template"]["metadata"]["annotations"]
    (tmp_path / "keyless.yaml").write_text("use_keyless: false\n")
    second = build(templates_dir=tmp_path).deployment()["spec"]["template"]["metadata"]["annotations"]
    third = build({"resyncSeconds": 60}, templates_dir=tmp_path).deployment()["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert first["checksum/templates"] != second["checksum/templates"]
    assert first["checksum/config"] == second["checksum/config"] != third["checksum/config"]


def test_templates_configmap_holds_the_folder(tmp_path: Path) -> None:
    (tmp_path / "keyless.yaml").write_text("use_keyless: true\n")
    (tmp_path / "auth.json").write_text('{"use_keyless": false}')
    built = build(templates_dir=tmp_path)
    assert built.config_map("tyk-controller-templates") == {
        "auth.json": '{"use_keyless": false}',
        "keyless.yaml": "use_keyless: true\n",
    }


def test_a_template_the_controller_refuses_fails_the_plan(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("use_keyless: maybe\n")
    with pytest.raises(ValueError, match=re.escape("broken.yaml")):
        build(templates_dir=tmp_path)


def test_shipped_templates_are_in_the_configmap_and_the_examples_use_them() -> None:
    shipped = template_files(PROJECT_TEMPLATES_DIR)
    assert shipped and build().config_map("tyk-controller-templates") == shipped
    names = {Path(name).stem for name in shipped}
    used = {
        d["metadata"].get("annotations", {}).get("template.service.tyk.io")
        for _, d in example_documents("ingress-*.yaml")
    } - {None}
    assert used and used <= names


@pytest.mark.parametrize("name", ["notes.txt", "bad name.yaml"])
def test_a_template_file_the_controller_would_not_read_fails_the_plan(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("{}")
    with pytest.raises(ValueError, match=re.escape(name)):
        template_files(tmp_path)


def test_high_availability_has_election_spread_and_a_disruption_budget() -> None:
    built = build({"replicas": 2})
    deployment = built.deployment()
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert json.loads(built.config_map("tyk-controller-config")["config.json"])["leaderElection"]["enabled"]
    [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    [pdb] = built.of_type(PDB)
    assert reveal(pdb.inputs)["spec"]["maxUnavailable"] == 1
    assert reveal(pdb.inputs)["spec"]["selector"] == deployment["spec"]["selector"]
    assert build().of_type(PDB) == []  # one replica: a PDB would block every drain


def test_without_leader_election_never_two_pods() -> None:
    deployment = build({"leaderElection": False}).deployment()
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 1


@pytest.mark.parametrize("default", [False, True])
def test_ingress_class(default: bool) -> None:
    [ingress_class] = build({"defaultClass": default}).of_type(INGRESS_CLASS)
    body = reveal(ingress_class.inputs)
    assert body["apiVersion"] == "networking.k8s.io/v1"
    assert body["metadata"]["name"] == "tyk"
    assert body["spec"] == {"controller": CONTROLLER_NAME}
    assert (body["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == (
        "true" if default else None
    )


def test_the_pod_waits_for_its_permissions() -> None:
    built = build(watch_namespaces=("demo",))
    deployment = built.one(DEPLOYMENT)
    for binding in [*built.of_type(ROLE_BINDING), *built.of_type(CLUSTER_ROLE_BINDING)]:
        assert binding.urn in deployment.dependencies
    assert built.one(INGRESS_CLASS).urn in deployment.dependencies


def test_hook_points_for_features_in_the_controller_process() -> None:
    import pulumi_kubernetes as k8s

    rule = rbac.Rule(("",), ("configmaps",), ("list", "watch"))
    env = k8s.core.v1.EnvVarArgs(name="FEATURE_SETTING", value="on")
    built = build(
        {"webhook": {"enabled": True}},
        config_fields={"debounce_seconds": 2.5},
        extra_env=[env],
        extra_cluster_rules=(rule,),
    )
    assert json.loads(built.config_map("tyk-controller-config")["config.json"])["debounceSeconds"] == 2.5
    assert {"name": "FEATURE_SETTING", "value": "on"} in built.container()["env"]
    [cluster_role] = built.of_type(CLUSTER_ROLE)
    assert reveal(cluster_role.inputs)["rules"][-1] == expected((rule,))[0]
    # The webhook hook point: its certificate is mounted where the config says, its port is declared.
    config = json.loads(built.config_map("tyk-controller-config")["config.json"])
    mounts = {m["mountPath"] for m in built.container()["volumeMounts"]}
    assert str(Path(config["webhook"]["certFile"]).parent) in mounts
    assert {
        "name": "webhook",
        "containerPort": config["webhook"]["port"],
        "protocol": "TCP",
    } in built.container()["ports"]


# --- settings ------------------------------------------------------------------------------------------------


def _raw(controller: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, str]:
    config = {"gateway": {"hostnames": ["api.example.com"]}, "controller": controller}
    if cluster:
        config["cluster"] = cluster
    return {f"tyk-aks:{k}": json.dumps(v) for k, v in config.items()}


@pytest.mark.parametrize(
    ("controller", "cluster", "message"),
    [
        (
            {"enabled": True},
            None,
            "tyk-aks:controller.image.registry = None: `source: registry` needs the registry",
        ),
        (
            {"enabled": True, "image": {"source": "prebuilt", "reference": "example.com/tyk-controller:1.0"}},
            None,
            "tyk-aks:controller.image.reference = 'example.com/tyk-controller:1.0': must be <repository>@sha256:",
        ),
        (
            {"enabled": True, "image": {"source": "acr"}},
            None,
            "tyk-aks:controller.image.source = 'acr': the program creates the registry only with cluster.mode aks",
        ),
        (
            {"enabled": True, "replicas": 2, "leaderElection": False, "image": {"source": "acr"}},
            {"mode": "aks"},
            "tyk-aks:controller.leaderElection = False: 2 replicas without it",
        ),
        (
            {
                "enabled": True,
                "image": {"registry": "localhost:5001"},
                "entryPoint": {"loadBalancerSourceRanges": ["10.0.0.1/8"]},
            },
            None,
            "tyk-aks:controller.entryPoint.loadBalancerSourceRanges.0 = '10.0.0.1/8': '10.0.0.1/8' is not a CIDR block",
        ),
        (
            {"enabled": True, "watchNamespaces": ["Apps"], "image": {"registry": "localhost:5001"}},
            None,
            "tyk-aks:controller.watchNamespaces.0 = 'Apps'",
        ),
    ],
)
def test_bad_controller_settings_are_one_line_errors(
    controller: dict[str, Any], cluster: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_raw(controller, cluster))
    [line] = [line for line in str(caught.value).splitlines() if line.strip().startswith("tyk-aks:")]
    assert line.strip().startswith(message), line


# --- the program, per stack ----------------------------------------------------------------------------------


def _settings(stack: str) -> Any:
    config, _, _ = read_stack_config(stack)
    return parse_settings(config)


@pytest.mark.parametrize("stack", STACKS)
def test_controller_is_on_in_every_shipped_stack(stack: str) -> None:
    plan = stack_plan(stack)
    settings = _settings(stack).controller
    assert settings.enabled
    [deployment] = plan.find(DEPLOYMENT)
    for resource in plan.resources:
        if is_kubernetes_object(resource):
            validate(resource)
    # No shipped stack lets the controller read Secrets cluster-wide: it watches named namespaces.
    assert settings.watch_namespaces
    for role in plan.find(CLUSTER_ROLE):
        for rule in role.inputs["rules"]:
            if "secrets" not in rule["resources"]:
                continue
            # The mesh may create its own Secret in a meshed namespace and read/update/delete only that one
            # (resourceNames); it can never read or list anyone else's Secrets.
            assert settings.webhook.enabled, role.key
            assert set(rule["verbs"]) == {"create"} or rule.get("resourceNames") == ["tyk-mesh"], rule
            assert not {"list", "watch"} & set(rule["verbs"]), rule
    for role in plan.find(ROLE):
        if any(r == "secrets" for _, r, _ in granted(role.inputs["rules"])):
            assert role.inputs["metadata"]["namespace"] in settings.watch_namespaces
    assert reveal(deployment.inputs)["spec"]["replicas"] == settings.replicas
    assert (plan.find(PDB) != []) == (settings.replicas > 1)


@pytest.mark.parametrize("stack", STACKS)
def test_controller_config_points_at_the_gateway_and_the_entry_service(stack: str) -> None:
    plan = stack_plan(stack)
    config = config_of(plan.resources)
    assert config["gatewayUrl"] == plan.outputs["control_api_url"]
    [service] = plan.find(SERVICE, "gateway-entry-service")
    assert (
        config["publishService"]
        == f"{service.inputs['metadata']['namespace']}/{service.inputs['metadata']['name']}"
    )
    [config_map] = [r for r in plan.find(CONFIG_MAP) if "config.json" in r.inputs["data"]]
    # Built from the gateway release's URL: the config (and the pods mounting it) wait for the gateways.
    assert plan.one(RELEASE, "gateway-release").urn in config_map.dependencies
    [component] = plan.find("tyk-aks:index:IngressController")
    assert plan.one(RELEASE, "gateway-release").urn in component.dependencies
    assert service.urn in component.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_entry_point_service_and_gateway_tls_port(stack: str) -> None:
    plan = stack_plan(stack)
    settings = _settings(stack).controller.entry_point
    [service] = plan.find(SERVICE, "gateway-entry-service")
    spec = service.inputs["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["selector"] == POD_LABELS
    assert {(p["name"], p["port"], p["targetPort"]) for p in spec["ports"]} == {
        ("http", 80, 8080),
        ("https", 443, HTTPS_PORT),
    }
    annotations = service.inputs["metadata"].get("annotations") or {}
    assert (annotations.get(AZURE_INTERNAL_LB) == "true") == settings.internal

    gateway = plan.one(RELEASE, "gateway-release").inputs["values"]["tyk-gateway"]["gateway"]
    env = {e["name"]: e["value"] for e in gateway["extraEnvs"]}
    # gateway/proxy_muxer.go generateListener: only whitelisted ports open; PortsWhiteList decodes JSON.
    assert json.loads(env["TYK_GW_PORTWHITELIST"]) == {"https": {"ports": [HTTPS_PORT]}}
    assert "TYK_GW_DISABLEPORTWHITELIST" not in env
    # The chart's deprecated file certificates point at files it mounts only with global.tls.gateway: none.
    assert gateway["tls"] == {"certificates": []}
    certificate_path = Path(env["TYK_GW_HTTPSERVEROPTIONS_SSLCERTIFICATES"])
    [mount] = [m for m in gateway["extraVolumeMounts"] if m["mountPath"] == str(certificate_path.parent)]
    [volume] = [v for v in gateway["extraVolumes"] if v["name"] == mount["name"]]
    [secret] = plan.find(SECRET, "gateway-entry-default-tls")
    assert volume["secret"]["secretName"] == secret.inputs["metadata"]["name"]
    assert certificate_path == Path(DEFAULT_CERT_DIR) / DEFAULT_CERT_KEY
    # The gateways start after the Secret they mount exists.
    assert secret.urn in plan.one(RELEASE, "gateway-release").dependencies

    # cert.go: an ssl_certificates path is one PEM with the certificate and its private key.
    assert is_secret(secret.inputs["stringData"]) or is_secret(secret.inputs["stringData"][DEFAULT_CERT_KEY])
    pem = reveal(secret.inputs)["stringData"][DEFAULT_CERT_KEY]
    certificate = x509.load_pem_x509_certificate(pem.encode())
    key = serialization.load_pem_private_key(pem[pem.index("-----BEGIN", 1) :].encode(), password=None)
    assert certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("stack", STACKS)
def test_image_is_built_from_this_repository_and_deployed_by_digest(stack: str) -> None:
    plan = stack_plan(stack)
    image_settings = _settings(stack).controller.image
    [deployment] = plan.find(DEPLOYMENT)
    [container] = reveal(deployment.inputs)["spec"]["template"]["spec"]["containers"]
    assert DIGEST_REFERENCE.match(container["image"]), container["image"]
    assert plan.outputs["controller_image"] == container["image"]
    if image_settings.source == "prebuilt":
        assert plan.find(IMAGE_BUILD) == []
        return
    [build_] = plan.find(IMAGE_BUILD)
    inputs = build_.inputs
    assert inputs["context"] == {"location": "."}
    assert inputs["dockerfile"] == {"location": "Dockerfile"}
    assert inputs["push"] is True and inputs["buildOnPreview"] is False
    assert inputs["platforms"] == [image_settings.platform]
    [tag] = inputs["tags"]
    repository, _, version = tag.rpartition(":")
    pins = {pin.inputs["reference"]: pin for pin in plan.find(PINNED_IMAGE_TYPE)}
    if _settings(stack).images.pin_digests:
        # Built on the base digest this stack pinned; the tag names the sources and that base.
        base = pins[base_image()].outputs
        assert (inputs.get("buildArgs") or {}) == {"BASE_IMAGE": base["image"]}
        assert version == f"{content_tag()}-{base['digest'].removeprefix('sha256:')[:12]}"
    else:
        assert base_image() not in pins and not inputs.get("buildArgs")
        assert version == content_tag()
    # The pod runs exactly what this build pushed: the registry digest the build reports.
    assert container["image"] == f"{repository}@{build_.outputs['digest']}"
    assert build_.urn in deployment.dependencies
    if image_settings.source == "registry":
        assert repository == f"{image_settings.registry}/{image_settings.repository}"
        assert plan.find(REGISTRY) == []


def test_prod_pushes_to_its_own_acr_and_the_kubelet_pulls_from_it() -> None:
    plan = stack_plan("prod")
    [registry] = plan.find(REGISTRY)
    assert registry.inputs["adminUserEnabled"] is True
    assert registry.inputs["anonymousPullEnabled"] is False
    [assignment] = plan.find(ROLE_ASSIGNMENT, "controller-image-acr-pull")
    assert assignment.inputs["principalId"] == OFFLINE_KUBELET_OBJECT_ID
    assert assignment.inputs["principalType"] == "ServicePrincipal"
    assert assignment.inputs["roleDefinitionId"].endswith(f"/roleDefinitions/{ACR_PULL_ROLE_ID}")
    assert assignment.inputs["scope"] == registry.outputs.get("id", f"{registry.name}-id")
    [build_] = plan.find(IMAGE_BUILD)
    [login] = reveal(build_.inputs)["registries"]
    assert login["address"] == registry.outputs["loginServer"]
    assert login["username"] == registry.outputs["name"]
    assert "offline-registry-password" in set(secret_strings(build_.inputs))
    assert build_.inputs["tags"][0].startswith(registry.outputs["loginServer"] + "/")
    # The pods may only start once the kubelet can pull.
    assert assignment.urn in plan.one(DEPLOYMENT).dependencies


def test_an_image_change_changes_the_deployed_digest() -> None:
    config, secret_keys, _ = read_stack_config("local")
    first = run_program("local", config=config, secret_keys=secret_keys)
    config["tyk-aks:controller"] = json.dumps(
        {
            **json.loads(config["tyk-aks:controller"]),
            "image": {"registry": "localhost:5001", "platform": "linux/arm64"},
        }
    )
    second = run_program("local", config=config, secret_keys=secret_keys)
    assert first.outputs["controller_image"] != second.outputs["controller_image"]


def test_content_tag_follows_the_build_inputs(tmp_path: Path) -> None:
    for name in BUILD_INPUTS:
        assert (PROJECT_DIR / name).exists(), f"the Dockerfile copies {name}"
    (tmp_path / "tyk_controller").mkdir()
    (tmp_path / "tyk_controller" / "a.py").write_text("x = 1\n")
    first = content_tag(tmp_path)
    (tmp_path / "unrelated.md").write_text("docs\n")
    assert content_tag(tmp_path) == first
    (tmp_path / "tyk_controller" / "a.py").write_text("x = 2\n")
    assert content_tag(tmp_path) != first


def test_prebuilt_image_is_deployed_as_given() -> None:
    config, secret_keys, _ = read_stack_config("local")
    reference = "ghcr.example.com/tyk-aks/tyk-controller@sha256:" + "0" * 64
    controller = {
        **json.loads(config["tyk-aks:controller"]),
        "image": {"source": "prebuilt", "reference": reference},
    }
    config["tyk-aks:controller"] = json.dumps(controller)
    plan = run_program("local", config=config, secret_keys=secret_keys)
    assert plan.find(IMAGE_BUILD) == []
    assert plan.outputs["controller_image"] == reference


def test_controller_off_means_no_entry_point_and_no_image() -> None:
    config, secret_keys, _ = read_stack_config("local")
    config["tyk-aks:controller"] = json.dumps({"enabled": False})
    plan: Plan = run_program("local", config=config, secret_keys=secret_keys)
    assert plan.find(DEPLOYMENT) == [] and plan.find(IMAGE_BUILD) == []
    assert plan.find(SERVICE, "gateway-entry-service") == []
    assert "extraEnvs" not in plan.one(RELEASE, "gateway-release").inputs["values"]["tyk-gateway"]["gateway"]


# --- no removed Kubernetes API anywhere ----------------------------------------------------------------------

REMOVED_APIS = re.compile(r"(networking\.k8s\.io|extensions|admission\.k8s\.io)/v1beta1")
SEARCHED = [
    "__main__.py",
    "components",
    "tyk_controller",
    "examples",
    "ingress_templates",
    "scripts",
    "Dockerfile",
]


def test_no_v1beta1_api_in_the_program_controller_examples_or_stacks() -> None:
    files = [PROJECT_DIR / p for p in ("Pulumi.yaml", *(f.name for f in PROJECT_DIR.glob("Pulumi.*.yaml")))]
    for entry in SEARCHED:
        path = PROJECT_DIR / entry
        files += (
            [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            if path.is_dir()
            else [path]
        )
    checked = [p for p in files if p.exists()]
    assert len(checked) > 10
    for path in checked:
        text = path.read_text(encoding="utf-8", errors="replace")
        found = REMOVED_APIS.search(text)
        assert found is None, f"{path.relative_to(PROJECT_DIR)}: {found.group(0) if found else ''}"


# --- examples ------------------------------------------------------------------------------------------------


def test_ingress_examples_cover_simple_tls_and_annotations() -> None:
    names = {name for name, _ in example_documents("ingress-*.yaml")}
    assert {"ingress-simple.yaml", "ingress-tls.yaml", "ingress-annotations.yaml"} <= names


@pytest.mark.parametrize(
    ("name", "document"), example_documents("ingress-*.yaml"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_ingress_examples_are_valid_v1_objects_of_class_tyk(name: str, document: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(document, "1.31.0", strict=True)
    if document["kind"] != "Ingress":
        return
    assert document["apiVersion"] == "networking.k8s.io/v1"
    assert document["spec"]["ingressClassName"] == "tyk"
    services = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for _, d in example_documents("ingress-*.yaml")
        if d["kind"] == "Service"
    }
    namespace = document["metadata"]["namespace"]
    for rule in document["spec"].get("rules", []):
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = services.get((namespace, backend["name"]))
            assert service is not None, f"{name}: backend {backend['name']} is in no example"
            ports = service["spec"]["ports"]
            port = backend["port"]
            assert any(p.get("name") == port.get("name") or p["port"] == port.get("number") for p in ports), (
                name
            )


def test_tls_example_names_a_secret_the_controller_may_read() -> None:
    [ingress] = [d for _, d in example_documents("ingress-tls.yaml") if d["kind"] == "Ingress"]
    namespace = ingress["metadata"].get("namespace", "default")
    assert namespace in _settings("local").controller.watch_namespaces
    assert ingress["spec"]["tls"][0]["hosts"]


# --- the component's children are parented and named ------------------------------------------------------


def test_object_names_are_explicit_and_children_are_parented() -> None:
    built = build({"webhook": {"enabled": True}}, watch_namespaces=("demo",))
    component = built.one("tyk-aks:index:IngressController")
    children = built.controller_children()
    urns = {r.urn for r in children}
    for resource in children:
        if resource is component:
            continue
        assert resource.name.startswith(f"{COMPONENT}-")
        assert resource.parent_urn in urns
        if is_kubernetes_object(resource):
            assert reveal(resource.inputs)["metadata"]["name"]
