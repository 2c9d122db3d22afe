"""The controller as the program deploys it, run for real: the planned RBAC, config, templates, environment and
entry point, against the fake Kubernetes API server and the gateway emulator.

Everything comes from the offline plan of a shipped stack; only what can't exist here is swapped: the cluster
addresses in the config (the control API URL, the health port, the templates mount) point at the test doubles,
and the downward-API and Secret environment values are filled in as the kubelet would. The fake API server
evaluates RBAC from the planned Role/ClusterRole objects and their bindings (bindings → roles → rules, subjects
matched), so a permission the program forgets to grant fails here.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import requests
import yaml

from offline.mocks import reveal
from offline.plan import PROJECT_DIR, Plan
from tests.conftest import STACKS, stack_plan
from tests.controller.mesh_fixtures import SERVICE_DNS, Pki, admission_review, app_pod, make_pki
from tests.controller.runtime_support import free_port, wait_for
from tests.gateway_emulator import GatewayEmulator
from tests.kube_api_double import Identity, KubeApiDouble
from tyk_controller.mesh.config import REDIS_PASSWORD_ENV, MeshConfig
from tyk_controller.mesh.sidecar import plan_injection
from tyk_controller.rbac import Rule
from tyk_controller.translate import owner_of

LB_ADDRESS = "172.18.0.240"
POD = "tyk-controller-6d9f-abcde"
MESH_NAMESPACE = "shop"
REDIS_PASSWORD = "planned-redis-password"
TIMEOUT = 90.0  # seconds each step of the started controller may take


def _bodies(plan: Plan, kind: str) -> list[dict[str, Any]]:
    return [reveal(r.inputs) for r in plan.resources if r.type.endswith(f":{kind}") and r.custom]


def planned_identity(plan: Plan, namespace: str, account: str) -> Identity:
    """What the API server would authorize for the service account, from the planned RBAC objects."""
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"] for r in _bodies(plan, "Role")}
    cluster_roles = {r["metadata"]["name"]: r["rules"] for r in _bodies(plan, "ClusterRole")}
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}

    def rules(raw: list[dict[str, Any]]) -> tuple[Rule, ...]:
        return tuple(
            Rule(
                tuple(r["apiGroups"]),
                tuple(r["resources"]),
                tuple(r["verbs"]),
                tuple(r.get("resourceNames") or ()),
            )
            for r in raw
        )

    identity = Identity(user=f"system:serviceaccount:{namespace}:{account}")
    for binding in _bodies(plan, "RoleBinding"):
        if subject in binding["subjects"]:
            ns = binding["metadata"]["namespace"]
            ref = binding["roleRef"]
            granted = (
                rules(roles[(ns, ref["name"])])
                if ref["kind"] == "Role"
                else rules(cluster_roles[ref["name"]])
            )
            identity.namespace_rules[ns] = identity.namespace_rules.get(ns, ()) + granted
    for binding in _bodies(plan, "ClusterRoleBinding"):
        if subject in binding["subjects"]:
            identity.cluster_rules += rules(cluster_roles[binding["roleRef"]["name"]])
    return identity


def _check_mesh(api: KubeApiDouble, config: dict[str, Any], pki: Pki, tmp_path: Path) -> None:
    """The planned controller's mesh: the webhook answers a real review over HTTPS (verified with its CA), and
    the routes reconciler gives the meshed namespace its Secret and routes within the planned RBAC."""
    context = ssl.create_default_context(cadata=pki.ca_pem.decode())
    review = admission_review(app_pod("web"), namespace=MESH_NAMESPACE)
    url = f"https://127.0.0.1:{config['webhook']['port']}{config['webhook']['path']}"
    raw = socket.create_connection(("127.0.0.1", config["webhook"]["port"]), timeout=5)
    connection = http.client.HTTPSConnection(
        SERVICE_DNS, config["webhook"]["port"], timeout=5, context=context
    )
    connection.sock = context.wrap_socket(raw, server_hostname=SERVICE_DNS)
    connection.request("POST", config["webhook"]["path"], body=json.dumps(review))
    answer = json.loads(connection.getresponse().read())
    connection.close()
    assert answer["response"]["allowed"] is True and answer["response"]["patchType"] == "JSONPatch", url
    secret = wait_for(lambda: api.get("v1", "Secret", MESH_NAMESPACE, "tyk-mesh"), TIMEOUT, "the mesh Secret")
    assert base64.b64decode(secret["data"]["redisPassword"]).decode() == REDIS_PASSWORD
    routes = wait_for(
        lambda: api.get("v1", "ConfigMap", MESH_NAMESPACE, "tyk-mesh-routes"),
        TIMEOUT,
        "the mesh routes ConfigMap",
    )
    assert set(routes["data"]) == {"orders.route.json"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_planned_deployment_serves_the_simple_example(
    stack: str, api: KubeApiDouble, gateway: GatewayEmulator, tmp_path: Path
) -> None:
    plan = stack_plan(stack)
    [deployment] = _bodies(plan, "Deployment")
    namespace = deployment["metadata"]["namespace"]
    pod_spec = deployment["spec"]["template"]["spec"]
    [container] = pod_spec["containers"]
    account = pod_spec["serviceAccountName"]

    # The cluster side: what the program declares, plus the example, plus the address the cloud would give.
    for body in _bodies(plan, "IngressClass"):
        api.apply(body)
    [entry] = [s for s in _bodies(plan, "Service") if s["spec"].get("type") == "LoadBalancer"]
    api.apply({**entry, "status": {"loadBalancer": {"ingress": [{"ip": LB_ADDRESS}]}}})
    example = [
        d for d in yaml.safe_load_all((PROJECT_DIR / "examples" / "ingress-simple.yaml").read_text()) if d
    ]
    for document in example:
        if document["kind"] in ("Service", "Ingress"):
            api.apply(document)
    [example_ingress] = [d for d in example if d["kind"] == "Ingress"]
    token = "planned-service-account-token"
    api.grant(token, planned_identity(plan, namespace, account))

    # The mounted files: the planned ConfigMaps, with only the in-cluster addresses swapped for the doubles'.
    config_maps = {c["metadata"]["name"]: c["data"] for c in _bodies(plan, "ConfigMap")}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    env = {e["name"]: e for e in container["env"]}
    config_path = Path(env["TYK_CONTROLLER_CONFIG"]["value"])
    config = json.loads(config_maps[mounts[str(config_path.parent)]["configMap"]["name"]][config_path.name])
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in config_maps[mounts[config["templatesDir"]]["configMap"]["name"]].items():
        (templates / name).write_text(text)
    health_port = free_port()
    config |= {"gatewayUrl": gateway.url, "healthPort": health_port, "templatesDir": str(templates)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "kubeconfig").write_text(json.dumps(api.kubeconfig(token)))

    # The environment as the kubelet fills it in from the pod spec.
    field_values = {"metadata.name": POD, "metadata.namespace": namespace}
    process_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_DIR)}
    for name, item in env.items():
        source = item.get("valueFrom")
        if source is None:
            process_env[name] = item["value"]
        elif "fieldRef" in source:
            process_env[name] = field_values[source["fieldRef"]["fieldPath"]]
        elif source["secretKeyRef"]["key"] == "APISecret":  # the gateway's own Secret
            process_env[name] = gateway.secret
        else:  # the mesh: the gateways' Redis password, copied into meshed namespaces
            assert (name, source["secretKeyRef"]["key"]) == (REDIS_PASSWORD_ENV, "redis-password")
            process_env[name] = REDIS_PASSWORD
    # The mesh webhook's serving pair where the planned Secret volume would put it, on a free port.
    if config.get("webhook"):
        pki = make_pki(tmp_path / "webhook")
        config["webhook"] |= {
            "certFile": str(pki.cert_file),
            "keyFile": str(pki.key_file),
            "port": free_port(),
        }
        (tmp_path / "config.json").write_text(json.dumps(config))
    process_env["TYK_CONTROLLER_CONFIG"] = str(tmp_path / "config.json")
    process_env["KUBECONFIG"] = str(tmp_path / "kubeconfig")  # outside a pod: no mounted token

    if config.get("mesh"):
        # A pod the webhook injected, and its Service, already there when the controller starts.
        mesh = MeshConfig.model_validate(config["mesh"])
        pod = app_pod("orders")
        patch = plan_injection(pod, MESH_NAMESPACE, mesh).patch
        assert patch is not None
        injected = jsonpatch.apply_patch(pod, patch)
        injected["metadata"] |= {"name": "orders-1", "namespace": MESH_NAMESPACE}
        api.apply({**injected, "status": {"phase": "Running"}})
        api.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "orders", "namespace": MESH_NAMESPACE},
                "spec": {"selector": {"app": "orders"}, "ports": [{"port": 80, "targetPort": "http"}]},
            }
        )

    # The image's entry point (tests/test_image.py ties it to the Dockerfile).
    log = tmp_path / "controller.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tyk_controller"],
            env=process_env,
            stdout=output,
            stderr=output,
            cwd=PROJECT_DIR,
        )
    try:

        def health(path: str) -> int:
            try:
                return requests.get(f"http://127.0.0.1:{health_port}{path}", timeout=2).status_code
            except requests.RequestException:
                return 0

        wait_for(lambda: health("/readyz") == 200, TIMEOUT, "readiness on the probed port and path")
        assert health("/healthz") == 200
        host = example_ingress["spec"]["rules"][0]["host"]
        apis = wait_for(
            lambda: [a for a in gateway.loaded_apis.values() if owner_of(a) == ("default", "httpbin")],
            TIMEOUT,
            "the example's API on the gateway",
        )
        assert {a["domain"] for a in apis} == {host}
        wait_for(
            lambda: (
                (api.get("networking.k8s.io/v1", "Ingress", "default", "httpbin") or {}).get("status")
                == {"loadBalancer": {"ingress": [{"ip": LB_ADDRESS}]}}
            ),
            TIMEOUT,
            "the entry Service's address on the Ingress",
        )
        lease = api.get("coordination.k8s.io/v1", "Lease", namespace, config["leaderElection"]["leaseName"])
        assert lease is not None and lease["spec"]["holderIdentity"] == POD
        if config.get("webhook"):
            _check_mesh(api, config, pki, tmp_path)
        forbidden = [f"{r.verb} {r.resource} {r.namespace}" for r in api.requests if r.status == 403]
        assert forbidden == [], f"the planned RBAC refused: {forbidden}"
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert gateway.secret not in log.read_text()
