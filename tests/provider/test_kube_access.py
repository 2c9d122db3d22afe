"""The provider through the Kubernetes API server (service proxy, pod proxy) in front of three replicas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gateway_cluster import GatewayCluster
from tests.kube_proxy_double import KubeProxyDouble
from tests.provider.conftest import (
    SECRET,
    api_definition,
    new_command,
    plugin_provider,
    policy_definition,
    props,
    stack_config,
)
from tyk_gateway.kube import KubernetesAccessError, allows, kubernetes_target, provider_rules
from tyk_gateway.provider import TykApiProvider, TykPolicyProvider, _TykProvider
from tyk_gateway.verify import GET_LIMIT, ReplicaMismatchError

SERVICE = "gateway-control-svc-tyk-gateway"
TARGET = kubernetes_target("tyk", SERVICE, 9696)
RULES = provider_rules(SERVICE)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[GatewayCluster]:
    with GatewayCluster(tmp_path / "share", SECRET, replicas=3) as gateways:
        yield gateways


@pytest.fixture
def kube(cluster: GatewayCluster) -> Iterator[KubeProxyDouble]:
    double = KubeProxyDouble(cluster, service=SERVICE)
    yield double
    double.down()


def providers(
    kube: KubeProxyDouble, tmp_path: Path, secret: str = SECRET, **management: Any
) -> tuple[_TykProvider, _TykProvider]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(kube.kubeconfig()))
    return providers_from(kubeconfig, secret, **management)


def providers_from(
    kubeconfig: Path, secret: str = SECRET, **management: Any
) -> tuple[_TykProvider, _TykProvider]:
    config = stack_config(
        secret,
        management=management,
        extra={"tyk-aks:cluster": json.dumps({"mode": "existing", "kubeconfig": str(kubeconfig)})},
    )
    return plugin_provider(TykApiProvider, config), plugin_provider(TykPolicyProvider, config)


def create_all(provider: _TykProvider, definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(4) as pool:
        return [
            r.outs or {} for r in pool.map(lambda d: provider.create(props(provider, TARGET, d)), definitions)
        ]


def test_every_replica_serves_every_write_through_the_api_server(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, policies = providers(kube, tmp_path)
    created = create_all(apis, [api_definition(f"api-{i}") for i in range(12)])
    policy = (
        policies.create(props(policies, TARGET, policy_definition("basic", ("api-0", "api-1")))).outs or {}
    )
    for name, loaded in cluster.loaded("api").items():
        assert sorted(loaded) == sorted(f"api-{i}" for i in range(12)), name
    assert all("basic" in loaded for loaded in cluster.loaded("policy").values())

    # Verification of small batches: one GET per object and replica (12 APIs), no list of everything.
    for replica in cluster.replicas.values():
        assert replica.stats.calls["GET /tyk/apis/{id}"] == 12
        assert replica.stats.calls["GET /tyk/apis"] <= 1  # the create-time existence check, on one replica
    # The bearer token stops at the API server; the admin secret reaches the gateway.
    assert kube.forwarded_headers and all("Authorization" not in h for h in kube.forwarded_headers)
    assert all(h.get("X-Tyk-Authorization") == SECRET for h in kube.forwarded_headers)
    # Only requests the documented RBAC rules allow.
    assert all(allows(RULES, r.verb, r.resource, r.name) for r in kube.requests), kube.requests

    # A new command reads everything back through the same path; then deletes.
    new_command()
    assert [apis.read(o["api_id"], o).id for o in created] == [o["api_id"] for o in created]
    policies.delete("basic", policy)
    for outs in created:
        apis.delete(outs["api_id"], outs)
    assert all(not loaded for loaded in cluster.loaded("api").values())


def test_share_emptied_refresh_and_up_restore_every_object(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, policies = providers(kube, tmp_path)
    wanted = [api_definition(f"api-{i}") for i in range(8)]
    create_all(apis, wanted)
    policies.create(props(policies, TARGET, policy_definition("basic", ("api-0",))))
    for folder in ("apps", "policies"):
        for path in (cluster.root / folder).glob("*.json"):
            path.unlink()  # the share is lost (a new, empty volume)
    for replica in cluster.replicas.values():
        replica.reload_now()

    new_command()  # `pulumi refresh`: every object reads as gone...
    gone = [apis.read(d["api_id"], {"gateway_url": TARGET, "definition": d}).id for d in wanted]
    assert gone == [""] * len(wanted)
    new_command()  # ...so `pulumi up` creates them again from git.
    create_all(apis, wanted)
    policies.create(props(policies, TARGET, policy_definition("basic", ("api-0",))))
    for loaded in cluster.loaded("api").values():
        assert sorted(loaded) == sorted(d["api_id"] for d in wanted)
    assert all("basic" in loaded for loaded in cluster.loaded("policy").values())


def test_a_replica_that_missed_the_group_reload_is_reloaded_directly(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, _ = providers(kube, tmp_path)
    lagging = cluster.first()
    lagging.deaf = True  # the pub/sub message never reaches it
    apis.create(props(apis, TARGET, api_definition("a")))
    assert "a" in lagging.loaded_apis
    assert lagging.stats.calls["GET /tyk/reload"] >= 1


def test_a_replica_that_still_disagrees_fails_the_write_naming_the_pod_and_object(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, _ = providers(kube, tmp_path, replicaWaitSeconds=0.3)
    stuck = cluster.first()
    stuck.stale = True
    with pytest.raises(ReplicaMismatchError) as caught:
        apis.create(props(apis, TARGET, api_definition("a")))
    assert f"pod {stuck.name}: api a" in str(caught.value)
    others = [r for r in cluster.replicas.values() if r is not stuck]
    assert all(f"pod {r.name}" not in str(caught.value) for r in others)


def test_a_pod_restarting_mid_batch_is_not_waited_for(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, _ = providers(kube, tmp_path)
    leaving = cluster.first()
    original = leaving.handle
    restarted: list[str] = []

    def restart_on_first_list(method: str, raw_path: str, query: dict[str, list[str]], body: bytes) -> Any:
        if raw_path == "/tyk/reload" and not restarted:
            restarted.append(cluster.restart(leaving.name).name)  # this pod goes away, a new one starts
        return original(method, raw_path, query, body)

    leaving.handle = restart_on_first_list  # type: ignore[method-assign]
    apis.create(props(apis, TARGET, api_definition("a")))
    assert restarted and leaving.name not in cluster.replicas
    assert all("a" in loaded for loaded in cluster.loaded("api").values())


def test_rbac_denial_names_the_verb_and_resource(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    kube.allowed = {("get", "services/proxy"), ("get", "services"), ("list", "pods"), ("get", "pods/proxy")}
    apis, _ = providers(kube, tmp_path)
    with pytest.raises(KubernetesAccessError) as caught:
        apis.create(props(apis, TARGET, api_definition("a")))
    message = str(caught.value)
    assert "Kubernetes RBAC denied POST" in message
    assert f"verb 'create' on services/proxy '{SERVICE}' in namespace 'tyk' is missing" in message
    assert SECRET not in message and kube.token not in message


def test_preview_refresh_needs_only_get_on_the_service_proxy(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, _ = providers(kube, tmp_path)
    outs = apis.create(props(apis, TARGET, api_definition("a"))).outs or {}
    kube.allowed = {("get", "services/proxy")}  # what CI's identity gets for `pulumi preview --refresh`
    new_command()
    assert apis.read("a", outs).id == "a"


def test_api_server_down(cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path) -> None:
    apis, _ = providers(kube, tmp_path)
    kube.down()
    with pytest.raises(KubernetesAccessError) as caught:
        apis.create(props(apis, TARGET, api_definition("a")))
    assert f"Kubernetes API server {kube.url} unreachable" in str(caught.value)


def test_wrong_token_and_wrong_admin_secret_are_told_apart(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, _ = providers(kube, tmp_path, secret="wrong-admin-secret")
    with pytest.raises(Exception) as caught:
        apis.create(props(apis, TARGET, api_definition("a")))
    assert "Tyk gateway refused" in str(caught.value) and "apiSecret" in str(caught.value)

    new_command()
    kube.token = "rotated"
    apis, _ = providers(kube, tmp_path)
    kube.token = "kube-bearer-token-2"
    with pytest.raises(KubernetesAccessError) as unauthorized:
        apis.create(props(apis, TARGET, api_definition("a")))
    assert "rejected the credentials" in str(unauthorized.value) and "401" in str(unauthorized.value)


def test_no_ready_gateway_pod(cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path) -> None:
    apis, _ = providers(kube, tmp_path)
    for replica in cluster.replicas.values():
        replica.ready = False
    with pytest.raises(KubernetesAccessError) as caught:
        apis.create(props(apis, TARGET, api_definition("a")))
    assert "no ready gateway pod" in str(caught.value)


def test_adopt_command_reads_through_the_api_server(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tyk_gateway import adopt

    apis, _ = providers(kube, tmp_path)  # writes the kubeconfig
    apis.create(props(apis, TARGET, api_definition("legacy")))
    monkeypatch.setenv("TYK_GW_SECRET", SECRET)
    arguments = ["--kubeconfig", str(tmp_path / "kubeconfig"), "--definitions-dir", str(tmp_path / "defs")]
    assert adopt.main([*arguments, "api", "legacy"]) == 0
    assert yaml.safe_load((tmp_path / "defs" / "apis" / "legacy.yaml").read_text())["api_id"] == "legacy"


def test_a_large_batch_is_verified_with_one_list_per_replica(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path
) -> None:
    apis, _ = providers(kube, tmp_path)
    apis.create(props(apis, TARGET, api_definition("warm-up")))  # existence check and pod lookup done
    for replica in cluster.replicas.values():
        replica.reset_stats()
    definitions = [props(apis, TARGET, api_definition(f"api-{i}")) for i in range(20)]
    with ThreadPoolExecutor(20) as pool:  # more concurrent writes than GET_LIMIT end up in one batch
        list(pool.map(apis.create, definitions))
    batches = apis._gateway({"gateway_url": TARGET}).reloads.batches
    large = sum(1 for size in batches[1:] if size > GET_LIMIT)
    assert large >= 1
    for replica in cluster.replicas.values():
        assert replica.stats.calls["GET /tyk/apis"] == large
        assert sorted(replica.loaded_apis) == sorted(["warm-up", *(f"api-{i}" for i in range(20))])


def test_https_api_server_verified_with_the_kubeconfig_ca(cluster: GatewayCluster, tmp_path: Path) -> None:
    kube = KubeProxyDouble(cluster, service=SERVICE, tls=True)
    try:
        apis, _ = providers(kube, tmp_path)  # kubeconfig with certificate-authority-data
        apis.create(props(apis, TARGET, api_definition("a")))
        assert all("a" in loaded for loaded in cluster.loaded("api").values())

        new_command()
        config = kube.kubeconfig()
        del config["clusters"][0]["cluster"]["certificate-authority-data"]  # trust the system CAs only
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
        untrusted, _ = providers_from(tmp_path / "kubeconfig")
        with pytest.raises(KubernetesAccessError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.create(props(untrusted, TARGET, api_definition("b")))
    finally:
        kube.down()


def test_aks_cluster_reached_with_an_entra_token_and_the_endpoint_from_arm(
    cluster: GatewayCluster, kube: KubeProxyDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cluster.mode aks: no kubeconfig anywhere; ARM says where the API server is, Entra ID signs us in."""
    import base64
    import threading
    from functools import partial
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tyk_gateway import provider as provider_module
    from tyk_gateway.kubeconfig import AKS_SERVER_APP_SCOPE

    user_kubeconfig = {"clusters": [{"name": "tyk-prod", "cluster": {"server": kube.url}}], "users": []}

    class Arm(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert self.path.startswith(
                "/subscriptions/sub-1/resourceGroups/tyk-prod/providers/Microsoft.ContainerService/"
                "managedClusters/tyk-prod/listClusterUserCredential"
            )
            value = base64.b64encode(yaml.safe_dump(user_kubeconfig).encode()).decode()
            body = json.dumps({"kubeconfigs": [{"name": "clusterUser", "value": value}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    arm = ThreadingHTTPServer(("127.0.0.1", 0), Arm)
    threading.Thread(target=arm.serve_forever, daemon=True).start()

    class Entra:
        def get_token(self, scope: str) -> Any:
            token = kube.token if scope == AKS_SERVER_APP_SCOPE else "arm-token"
            return type("AccessToken", (), {"token": token, "expires_on": 4102444800})()

    monkeypatch.setattr(provider_module, "azure_credential", Entra)
    monkeypatch.setattr(
        provider_module,
        "aks_credentials",
        partial(provider_module.aks_credentials, arm_endpoint=f"http://127.0.0.1:{arm.server_address[1]}"),
    )
    config = stack_config(
        extra={
            "tyk-aks:cluster": json.dumps(
                {"mode": "aks", "aks": {"resourceGroupName": "tyk-prod", "clusterName": "tyk-prod"}}
            ),
            "azure-native:subscriptionId": "sub-1",
        }
    )
    try:
        apis = plugin_provider(TykApiProvider, config)
        outs = apis.create(props(apis, TARGET, api_definition("a"))).outs or {}
        assert all("a" in loaded for loaded in cluster.loaded("api").values())
        assert kube.token not in json.dumps(outs) and "arm-token" not in json.dumps(outs)
    finally:
        arm.shutdown()
