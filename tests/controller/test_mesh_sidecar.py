"""The injected pod: valid Kubernetes, restricted Pod Security Standard, a gateway config and APIs the gateway
accepts, and every bad opt-in admitted unchanged with a reason."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest

from tests.controller.mesh_fixtures import MESH, NAMESPACE, app_pod
from tests.controller.mesh_pss import baseline, restricted
from tests.k8s_schema import KUBERNETES_VERSION
from tyk_controller.mesh.config import (
    APPS_DIR,
    GATEWAY_CONFIG_ANNOTATION,
    INBOUND_API_ANNOTATION,
    MESH_HOST,
    ROUTES_CONFIG_MAP,
    SIDECAR_NAME,
    STATUS_ANNOTATION,
)
from tyk_controller.mesh.sidecar import (
    UNPRIVILEGED_PORT_SYSCTL,
    annotation_customiser,
    gateway_config,
    inbound_api,
    is_injected,
    plan_injection,
)
from tyk_controller.templates import load_templates
from tyk_gateway.models import ApiDefinition

SCHEMA = json.loads((Path(__file__).parent.parent / "tyk_schema" / "gateway-config.schema.json").read_text())


def patched(pod: dict[str, Any]) -> dict[str, Any]:
    injection = plan_injection(pod, NAMESPACE, MESH)
    assert injection.patch, injection.problems
    return jsonpatch.apply_patch(pod, injection.patch)


def sidecar_of(pod: dict[str, Any]) -> dict[str, Any]:
    [sidecar] = [c for c in pod["spec"].get("initContainers") or [] if c["name"] == SIDECAR_NAME]
    return sidecar


def projected_file(pod: dict[str, Any], mount_dir: str, file_name: str) -> str:
    """What kubelet would write at <mount_dir>/<file_name>: follow the mount to its volume's downwardAPI item."""
    sidecar = sidecar_of(pod)
    [mount] = [m for m in sidecar["volumeMounts"] if m["mountPath"] == mount_dir]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    sources = (
        volume["projected"]["sources"] if "projected" in volume else [{"downwardAPI": volume["downwardAPI"]}]
    )
    for source in sources:
        for item in (source.get("downwardAPI") or {}).get("items") or []:
            if item["path"] == file_name:
                key = re.fullmatch(r"metadata\.annotations\['(.+)'\]", item["fieldRef"]["fieldPath"])
                assert key, item
                return pod["metadata"]["annotations"][key.group(1)]
    raise AssertionError(f"{file_name} is not projected into {mount_dir}")


# --- Kubernetes validity and Pod Security ------------------------------------------------------------------------


def test_patched_pod_validates_against_the_kubernetes_schema() -> None:
    pod = patched(app_pod("orders"))
    pod["metadata"]["name"] = "orders-7d4b9c-x2x9q"  # the API server names it after admission
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_patched_pod_passes_the_restricted_pod_security_standard() -> None:
    pod = app_pod("orders")
    assert restricted(pod) == []
    assert restricted(patched(pod)) == []


def test_the_checker_catches_a_sidecar_that_would_break_restricted() -> None:
    # Guard against a checker that passes everything: the same pod with one sidecar control undone fails.
    pod = patched(app_pod("orders"))
    broken = copy.deepcopy(pod)
    sidecar_of(broken)["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    assert any("capabilities" in p for p in restricted(broken))
    assert any("capabilities.add" in p for p in baseline(broken))
    broken = copy.deepcopy(pod)
    del sidecar_of(broken)["securityContext"]["allowPrivilegeEscalation"]
    assert restricted(broken) == [
        "spec.initContainers[0].securityContext.allowPrivilegeEscalation: must be false"
    ]
    broken = copy.deepcopy(pod)
    broken["spec"]["securityContext"]["sysctls"].append({"name": "net.core.somaxconn", "value": "1024"})
    assert restricted(broken) == ["spec.securityContext.sysctls[net.core.somaxconn]: not a safe sysctl"]


def test_no_iptables_no_privilege_no_host_access() -> None:
    pod = patched(app_pod("orders"))
    spec = pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == [SIDECAR_NAME]  # no iptables init container
    sidecar = sidecar_of(pod)
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["image"] == MESH.sidecar_image  # the gateways' own image and version
    assert not any(key in spec for key in ("hostNetwork", "hostPID", "hostIPC"))
    # Port 80 for http://mesh/... as non-root: a namespaced, safe sysctl instead of a capability.
    assert {"name": UNPRIVILEGED_PORT_SYSCTL, "value": "80"} in spec["securityContext"]["sysctls"]


def test_sidecar_is_a_native_sidecar_started_before_the_app() -> None:
    sidecar = sidecar_of(patched(app_pod("orders")))
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]["httpGet"]["port"] == "mesh-control"


# --- inbound: the Service reaches the sidecar through the app port's name ----------------------------------------


def test_sidecar_takes_over_the_app_ports_name() -> None:
    pod = patched(app_pod("orders", port=8080, port_name="http"))
    [app_port] = pod["spec"]["containers"][0]["ports"]
    assert app_port == {"containerPort": 8080, "protocol": "TCP", "name": "tyk-app-8080"}
    by_name = {p["name"]: p["containerPort"] for c in pod["spec"]["initContainers"] for p in c["ports"]}
    assert by_name["http"] == MESH.inbound_port  # a Service with targetPort: http now reaches the sidecar
    names = [
        p["name"] for c in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]] for p in c["ports"]
    ]
    assert len(names) == len(set(names))


def test_inbound_api_proxies_to_the_app_on_localhost() -> None:
    pod = patched(app_pod("orders", port=8080))
    inbound = json.loads(projected_file(pod, APPS_DIR, "inbound.json"))
    assert inbound == json.loads(pod["metadata"]["annotations"][INBOUND_API_ANNOTATION])
    assert inbound["proxy"]["target_url"] == "http://127.0.0.1:8080"
    assert inbound["listen_port"] == MESH.inbound_port
    ApiDefinition.model_validate(inbound)


def test_gateway_config_is_projected_where_the_sidecar_reads_it() -> None:
    pod = patched(app_pod("orders"))
    [arg] = sidecar_of(pod)["args"]
    conf_path = Path(arg.removeprefix("--conf="))
    config = json.loads(projected_file(pod, str(conf_path.parent), conf_path.name))
    assert config == gateway_config(MESH)
    assert config["app_path"] == APPS_DIR
    assert GATEWAY_CONFIG_ANNOTATION in pod["metadata"]["annotations"]


def test_egress_routes_come_from_the_namespace_config_map_in_the_same_folder() -> None:
    pod = patched(app_pod("orders"))
    sidecar = sidecar_of(pod)
    [mount] = [m for m in sidecar["volumeMounts"] if m["mountPath"] == APPS_DIR]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    [config_map] = [s["configMap"] for s in volume["projected"]["sources"] if "configMap" in s]
    assert config_map == {"name": ROUTES_CONFIG_MAP, "optional": True}
    assert {"ip": "127.0.0.1", "hostnames": [MESH_HOST]} in pod["spec"]["hostAliases"]


def test_secrets_reach_the_sidecar_only_from_the_namespace_secret() -> None:
    sidecar = sidecar_of(patched(app_pod("orders")))
    env = {e["name"]: e for e in sidecar["env"]}
    assert set(env) == {"TYK_GW_SECRET", "TYK_GW_NODESECRET", "TYK_GW_STORAGE_PASSWORD"}
    assert all(
        "value" not in e and e["valueFrom"]["secretKeyRef"]["name"] == "tyk-mesh" for e in env.values()
    )
    config = gateway_config(MESH)
    assert not {"secret", "node_secret"} & set(config)
    assert "password" not in config["storage"]


# --- the gateway's own schemas ------------------------------------------------------------------------------------


def _host_no_port(value: str) -> bool:
    # cli/linter/linter.go: net.SplitHostPort must fail with "missing port in address" (or succeed without port).
    if value == "":
        return True
    if value.count(":") > 1 and not value.startswith("["):
        return False  # an unbracketed IPv6 literal: "too many colons"
    if value.startswith("["):
        return False
    return ":" not in value


def _path(value: str) -> bool:
    # The linter checks that the path exists on the gateway's machine; here: absolute, inside the sidecar's
    # mounts or the image's install folder.
    return value == "" or value.startswith(("/etc/tyk-mesh/", "/tmp/", "/opt/tyk-gateway/"))


def test_gateway_config_validates_against_the_gateway_linter_schema() -> None:
    checker = jsonschema.FormatChecker()
    checker.checks("host-no-port")(_host_no_port)
    checker.checks("path")(_path)
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=checker)
    managed_redis = MESH.model_copy(update={"redis_tls": True, "redis_cluster": True})
    for mesh in (MESH, managed_redis):
        for inbound in (True, False):
            assert sorted(validator.iter_errors(gateway_config(mesh, inbound=inbound)), key=str) == []
    storage = gateway_config(managed_redis)["storage"]
    assert (storage["use_ssl"], storage["enable_cluster"]) == (True, True)
    config = gateway_config(MESH)
    # The schema is strict (additionalProperties: false): a misspelt key is caught.
    assert list(validator.iter_errors({**config, "listen_prot": 80}))
    assert list(validator.iter_errors({**config, "storage": {**config["storage"], "host": "redis:6379"}}))


def test_gateway_config_opens_only_the_ports_the_sidecar_declares() -> None:
    config = gateway_config(MESH)
    sidecar = sidecar_of(patched(app_pod("orders")))
    declared = {p["containerPort"] for p in sidecar["ports"]}
    # server.go setupPortsWhitelist: listen_port and control_api_port are always allowed; the inbound API's
    # listen_port must be whitelisted (proxy_muxer.go generateListener).
    opened = {config["listen_port"], config["control_api_port"], *config["ports_whitelist"]["http"]["ports"]}
    assert opened == declared
    assert not config.get("disable_ports_whitelist")
    inbound = json.loads(projected_file(patched(app_pod("orders")), APPS_DIR, "inbound.json"))
    assert inbound["listen_port"] in config["ports_whitelist"]["http"]["ports"]


def test_redis_address_is_a_host_and_port() -> None:
    storage = gateway_config(MESH)["storage"]
    assert (storage["host"], storage["port"]) == ("redis-master.tyk.svc", 6379)
    assert _host_no_port(storage["host"])
    ipaddress.ip_address("127.0.0.1")  # the mesh alias target is a literal address


def test_inbound_api_ids_are_unique_per_namespace_and_route() -> None:
    a = inbound_api("shop", "/orders", 8080, MESH)
    b = inbound_api("shop", "/orders/v2", 8080, MESH)
    c = inbound_api("billing", "/orders", 8080, MESH)
    assert len({a["api_id"], b["api_id"], c["api_id"]}) == 3
    for definition in (a, b, c):
        ApiDefinition.model_validate(definition)


# --- never twice, never blocked --------------------------------------------------------------------------------


def test_an_injected_pod_is_never_patched_twice() -> None:
    once = patched(app_pod("orders"))
    assert is_injected(once)
    again = plan_injection(once, NAMESPACE, MESH)
    assert again.patch is None and again.problems == []
    # Even without the marker annotation (someone copied the pod spec), the container name is enough.
    copied = copy.deepcopy(once)
    del copied["metadata"]["annotations"][STATUS_ANNOTATION]
    assert plan_injection(copied, NAMESPACE, MESH).patch is None


def test_opt_out_annotation_wins_over_the_label() -> None:
    pod = app_pod("orders", annotations={"injector.tyk.io/inject": "false"})
    assert plan_injection(pod, NAMESPACE, MESH).patch is None


@pytest.mark.parametrize(
    ("pod", "reason", "field"),
    [
        (app_pod("orders", annotations={"injector.tyk.io/inject": "maybe"}), "InvalidAnnotation", "inject"),
        (app_pod("orders", annotations={"injector.tyk.io/route": "orders v2"}), "InvalidRoute", "route"),
        (app_pod("orders", annotations={"injector.tyk.io/route": "/a/../b"}), "InvalidRoute", "route"),
        (app_pod("orders", annotations={"injector.tyk.io/port": "grpc"}), "PortNotFound", "port"),
        (app_pod("orders", annotations={"injector.tyk.io/port": "9999"}), "PortNotFound", "port"),
        (app_pod("orders", port_name=None), "UnnamedPort", "ports[0]"),
        (app_pod("orders", port=80), "PortConflict", "ports"),
        (app_pod("orders", port=15080), "PortConflict", "ports"),
    ],
)
def test_a_bad_opt_in_admits_the_pod_unchanged_with_a_reason(
    pod: dict[str, Any], reason: str, field: str
) -> None:
    injection = plan_injection(pod, NAMESPACE, MESH)
    assert injection.patch is None
    assert [p.reason for p in injection.problems] == [reason]
    assert field in injection.problems[0].field
    assert all(w.startswith("tyk-mesh: ") and "admitted without the sidecar" in w for w in injection.warnings)


def test_no_route_without_app_label_or_annotation() -> None:
    pod = app_pod("orders")
    del pod["metadata"]["labels"]["app"]
    [problem] = plan_injection(pod, NAMESPACE, MESH).problems
    assert problem.reason == "NoRoute"
    pod["metadata"]["annotations"]["injector.tyk.io/route"] = "/orders"
    assert plan_injection(pod, NAMESPACE, MESH).patch


def test_a_stricter_unprivileged_port_sysctl_is_not_overridden() -> None:
    pod = app_pod("orders")
    pod["spec"]["securityContext"]["sysctls"] = [{"name": UNPRIVILEGED_PORT_SYSCTL, "value": "1024"}]
    [problem] = plan_injection(pod, NAMESPACE, MESH).problems
    assert problem.reason == "SysctlConflict"
    pod["spec"]["securityContext"]["sysctls"] = [{"name": UNPRIVILEGED_PORT_SYSCTL, "value": "0"}]
    new = patched(pod)
    assert new["spec"]["securityContext"]["sysctls"] == [{"name": UNPRIVILEGED_PORT_SYSCTL, "value": "80"}]


def test_port_choice_several_ports() -> None:
    pod = app_pod("orders", port=8080, port_name="web")
    pod["spec"]["containers"][0]["ports"].append({"containerPort": 9090, "name": "metrics"})
    [problem] = plan_injection(pod, NAMESPACE, MESH).problems
    assert problem.reason == "PortNotFound"
    pod["metadata"]["annotations"]["injector.tyk.io/port"] = "web"
    new = patched(pod)
    assert [p["name"] for p in new["spec"]["containers"][0]["ports"]] == ["tyk-app-8080", "metrics"]


def test_patch_leaves_the_rest_of_the_pod_alone() -> None:
    pod = app_pod("orders", annotations={"team": "shop"})
    pod["spec"]["initContainers"] = [{"name": "migrate", "image": "registry.example/migrate:1"}]
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    new = patched(pod)
    assert new["metadata"]["annotations"]["team"] == "shop"
    assert [c["name"] for c in new["spec"]["initContainers"]] == [SIDECAR_NAME, "migrate"]
    assert new["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}
    # One label added: NetworkPolicies let pods with a sidecar reach Redis.
    assert new["metadata"]["labels"] == {**pod["metadata"]["labels"], "tyk-aks.io/mesh-sidecar": "true"}
    assert new["spec"]["containers"][0]["image"] == pod["spec"]["containers"][0]["image"]


# --- the Ingresses' setter and template annotations on the inbound API ----------------------------------------


TEMPLATES = load_templates(Path(__file__).resolve().parents[2] / "ingress_templates")
CUSTOMISE = annotation_customiser(TEMPLATES)


def inbound_of(pod: dict[str, Any]) -> dict[str, Any]:
    injection = plan_injection(pod, NAMESPACE, MESH, CUSTOMISE)
    assert injection.patch, injection.problems
    new = jsonpatch.apply_patch(pod, injection.patch)
    return dict(json.loads(new["metadata"]["annotations"][INBOUND_API_ANNOTATION]))


def test_template_and_setters_shape_the_inbound_api() -> None:
    inbound = inbound_of(
        app_pod(
            "orders",
            annotations={
                "template.service.tyk.io": "token-auth",
                "num.service.tyk.io/global-rate-limit.rate": "100",
                "num.service.tyk.io/global-rate-limit.per": "1",
            },
        )
    )
    assert (inbound["use_keyless"], inbound["use_standard_auth"]) == (False, True)  # from the template
    assert inbound["global_rate_limit"] == {"rate": 100, "per": 1}  # setters applied last
    # Identity and routing stay the mesh's own.
    assert inbound["proxy"]["target_url"] == "http://127.0.0.1:8080"
    assert inbound["listen_port"] == MESH.inbound_port
    ApiDefinition.model_validate(inbound)


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        ({"template.service.tyk.io": "no-such-template"}, "UnknownTemplate"),
        ({"bool.service.tyk.io/use-keyless": "maybe"}, "InvalidAnnotation"),
        ({"num.service.tyk.io/global-rate-limit.rate": "fast"}, "InvalidAnnotation"),
        ({"string.service.tyk.io/proxy.target-url": "http://elsewhere"}, "InvalidAnnotation"),
        ({"string.service.tyk.io/listen-port": "80"}, "InvalidAnnotation"),
    ],
)
def test_bad_setter_or_template_admits_the_pod_unchanged(annotations: dict[str, str], reason: str) -> None:
    injection = plan_injection(app_pod("orders", annotations=annotations), NAMESPACE, MESH, CUSTOMISE)
    assert injection.patch is None
    assert [p.reason for p in injection.problems] == [reason]
    assert "admitted without the sidecar" in injection.warnings[0]


def test_a_pod_without_ports_gets_egress_only() -> None:
    pod = app_pod("client")
    del pod["spec"]["containers"][0]["ports"]
    new = patched(pod)
    new["metadata"]["name"] = "client-1"
    kubernetes_validate.validate(new, KUBERNETES_VERSION, strict=True)
    assert restricted(new) == []
    assert INBOUND_API_ANNOTATION not in new["metadata"]["annotations"]
    sidecar = sidecar_of(new)
    assert {p["containerPort"] for p in sidecar["ports"]} == {MESH.egress_port, MESH.control_port}
    config = json.loads(
        projected_file(new, str(Path(sidecar["args"][0].removeprefix("--conf=")).parent), "tyk.conf")
    )
    assert config["ports_whitelist"]["http"]["ports"] == []
    assert {"ip": "127.0.0.1", "hostnames": [MESH_HOST]} in new["spec"]["hostAliases"]


def test_admission_warnings_fit_what_the_api_server_keeps() -> None:
    long_route = "/" + "x" * 300
    injection = plan_injection(
        app_pod("orders", annotations={"injector.tyk.io/route": long_route + " y"}), NAMESPACE, MESH
    )
    [warning] = injection.warnings
    assert len(warning) <= 256
    assert len(injection.problems[0].message) > 256  # the Event keeps it all
