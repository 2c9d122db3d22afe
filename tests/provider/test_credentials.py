"""Cluster credentials the provider finds on its own: kubeconfig users, exec plugins, AKS via ARM + Entra ID."""

from __future__ import annotations

import base64
import json
import stat
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tyk_gateway import kubeconfig as kc
from tyk_gateway.kubeconfig import (
    AKS_SERVER_APP_SCOPE,
    AksCluster,
    CredentialsError,
    aks_credentials,
    load_kubeconfig,
)

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def write_kubeconfig(path: Path, user: dict[str, Any], current: str = "one", **cluster: Any) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "one", "context": {"cluster": "c", "user": "u"}},
            {"name": "other", "context": {"cluster": "c", "user": "missing"}},
        ],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_token_and_inline_ca(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        {"token": "t0k3n"},
        **{"certificate-authority-data": base64.b64encode(CA).decode()},
    )
    credentials = load_kubeconfig(str(path), None)
    assert credentials.server == "https://10.0.0.1:6443"
    assert credentials.token() == "t0k3n"
    assert credentials.ca_file and Path(credentials.ca_file).read_bytes() == CA
    assert stat.S_IMODE(Path(credentials.ca_file).stat().st_mode) == 0o600
    assert "t0k3n" not in repr(credentials)


def test_client_certificate_files_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config", {"client-certificate": "certs/me.crt", "client-key": "certs/me.key"},
        **{"certificate-authority": "certs/ca.crt"},
    )  # fmt: skip
    credentials = load_kubeconfig(str(path), None)
    assert credentials.client_cert == (str(tmp_path / "certs/me.crt"), str(tmp_path / "certs/me.key"))
    assert credentials.ca_file == str(tmp_path / "certs/ca.crt")


def test_token_file_is_read_per_request(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    credentials = load_kubeconfig(str(write_kubeconfig(tmp_path / "config", {"tokenFile": "token"})), None)
    assert credentials.token() == "first"
    (tmp_path / "token").write_text("rotated\n")
    assert credentials.token() == "rotated"


def test_exec_plugin_is_run_once_until_its_credential_expires(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    script = tmp_path / "plugin.py"
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    script.write_text(
        "import json, os, sys\n"
        f"open({str(calls)!r}, 'a').write('x')\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "assert info['spec']['interactive'] is False and os.environ['EXTRA'] == 'yes'\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential',"
        f" 'status': {{'token': 'from-plugin', 'expirationTimestamp': {expiry!r}}}}}))\n"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script)],
            "env": [{"name": "EXTRA", "value": "yes"}],
        }
    }
    credentials = load_kubeconfig(str(write_kubeconfig(tmp_path / "config", user)), None)
    assert credentials.token() == "from-plugin"
    assert credentials.token() == "from-plugin"
    assert calls.read_text() == "x"


def test_a_failing_exec_plugin_is_named(tmp_path: Path) -> None:
    user = {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('login required')"]}}
    credentials = load_kubeconfig(str(write_kubeconfig(tmp_path / "config", user)), None)
    with pytest.raises(CredentialsError, match="exited 1: login required"):
        credentials.token()


def test_kubeconfig_errors_name_the_file_and_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_kubeconfig(tmp_path / "config", {"token": "t"})
    with pytest.raises(CredentialsError, match=r"context 'nope' not found \(have: \['one', 'other'\]\)"):
        load_kubeconfig(str(path), "nope")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(CredentialsError, match=r"no kubeconfig found at .*absent"):
        load_kubeconfig(None, None)
    legacy = write_kubeconfig(tmp_path / "legacy", {"auth-provider": {"name": "azure"}})
    with pytest.raises(CredentialsError, match="auth-provider 'azure' is not supported"):
        load_kubeconfig(str(legacy), None)


def test_kubeconfig_list_merges_like_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write_kubeconfig(tmp_path / "first", {"token": "from-first"})
    second = tmp_path / "second"
    second.write_text(yaml.safe_dump({"users": [{"name": "u", "user": {"token": "from-second"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{second}:{first}")
    assert load_kubeconfig(None, None).token() == "from-second"  # the first file defining a name wins


# --- aks ------------------------------------------------------------------------------------------------------


class FakeCredential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, scope: str) -> Any:
        self.scopes.append(scope)
        return type("AccessToken", (), {"token": f"token-for-{scope}", "expires_on": time.time() + 3600})()


@pytest.fixture
def arm() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    kubeconfig = {
        "clusters": [
            {"name": "tyk-prod", "cluster": {"server": "https://tyk-prod.hcp.westeurope.azmk8s.io:443",
                                             "certificate-authority-data": base64.b64encode(CA).decode()}}
        ],
        "users": [{"name": "clusterUser", "user": {"exec": {"command": "kubelogin", "args": ["get-token"]}}}],
    }  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            body = json.dumps(
                {
                    "kubeconfigs": [
                        {
                            "name": "clusterUser",
                            "value": base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode(),
                        }
                    ]
                }
            ).encode()
            status = 200 if "/resourceGroups/tyk-prod/" in self.path else 403
            if status == 403:
                body = json.dumps({"error": {"code": "AuthorizationFailed", "message": "no access"}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_aks_endpoint_and_ca_from_arm_and_an_entra_token_for_the_aks_server_app(
    arm: tuple[str, list[dict[str, Any]]],
) -> None:
    endpoint, seen = arm
    credential = FakeCredential()
    credentials = aks_credentials(
        AksCluster("sub-1", "tyk-prod", "tyk-prod"), credential, arm_endpoint=endpoint
    )
    assert credentials.server == "https://tyk-prod.hcp.westeurope.azmk8s.io:443"
    assert credentials.ca_file and Path(credentials.ca_file).read_bytes() == CA
    assert seen[0]["path"].startswith(
        "/subscriptions/sub-1/resourceGroups/tyk-prod/providers/Microsoft.ContainerService/managedClusters/"
        "tyk-prod/listClusterUserCredential?"
    )
    assert seen[0]["auth"] == "Bearer token-for-https://management.azure.com/.default"
    assert credentials.token() == f"token-for-{AKS_SERVER_APP_SCOPE}"  # never the kubeconfig's exec stub
    assert credentials.client_cert is None


def test_aks_without_the_cluster_user_role_says_so(arm: tuple[str, list[dict[str, Any]]]) -> None:
    endpoint, _ = arm
    with pytest.raises(CredentialsError, match=r"answered 403: no access .*Cluster User Role"):
        aks_credentials(AksCluster("sub-1", "other", "tyk-prod"), FakeCredential(), arm_endpoint=endpoint)


def test_azure_credential_follows_the_arm_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ARM_USE_OIDC", "ARM_CLIENT_SECRET", "ARM_OIDC_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARM_CLIENT_ID", "00000000-0000-0000-0000-0000000000c1")
    monkeypatch.setenv("ARM_TENANT_ID", "00000000-0000-0000-0000-0000000000d1")
    monkeypatch.setenv("ARM_USE_OIDC", "true")
    assert type(kc.azure_credential()).__name__ == "ClientAssertionCredential"
    token_file = tmp_path / "oidc"
    token_file.write_text("github-id-token\n")
    monkeypatch.setenv("ARM_OIDC_TOKEN_FILE_PATH", str(token_file))
    assert kc._oidc_assertion() == "github-id-token"
    monkeypatch.delenv("ARM_OIDC_TOKEN_FILE_PATH")
    with pytest.raises(CredentialsError, match="id-token: write"):
        kc._oidc_assertion()
    monkeypatch.setenv("ARM_USE_OIDC", "false")
    monkeypatch.setenv("ARM_CLIENT_SECRET", "s")
    assert type(kc.azure_credential()).__name__ == "ClientSecretCredential"


def test_subscription_from_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "from-env")
    assert kc.azure_subscription("from-config") == "from-config"
    assert kc.azure_subscription(None) == "from-env"


def test_the_provider_reads_the_cluster_settings_the_program_validates() -> None:
    """The provider parses `tyk-aks:cluster` leniently on its own; its defaults must be the program's."""
    from components.settings import AksSettings, ClusterSettings
    from tyk_gateway.provider import AksRef, ClusterRef

    assert AksRef().resource_group_name == AksSettings().resource_group_name
    assert AksRef().cluster_name == AksSettings().cluster_name
    assert ClusterRef().mode == ClusterSettings().mode
    raw = {"mode": "aks", "aks": {"resourceGroupName": "rg", "clusterName": "c", "vmSize": "Standard_D4s_v5"}}
    parsed = ClusterRef.model_validate(raw)
    assert (parsed.aks.resource_group_name, parsed.aks.cluster_name) == ("rg", "c")  # type: ignore[union-attr]
