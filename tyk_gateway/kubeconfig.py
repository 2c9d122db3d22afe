"""Cluster credentials for the provider's own process: a kubeconfig (``existing``) or Entra ID (``aks``).

The provider reaches the control API through the cluster's API server, so it needs what kubectl
needs, and it must find it without the program (``pulumi refresh``/``destroy`` don't run it):

* ``existing``: the kubeconfig named by stack config ``cluster.kubeconfig``, else ``$KUBECONFIG``
  (a ``:``-separated list, merged like kubectl: the first file that sets a name wins), else
  ``~/.kube/config``; the context from ``cluster.context`` or the current one. Supported users:
  bearer ``token``/``tokenFile``, client certificates (file or ``-data``), and ``exec`` plugins
  (kubelogin, ``aws eks get-token``, ...; the ``client.authentication.k8s.io`` ExecCredential
  protocol, cached until its expiry). Legacy ``auth-provider`` entries are refused by name.
* ``aks``: nothing is stored. The endpoint and CA come from ARM (``listClusterUserCredential``:
  with Entra ID integration it holds no secret) and the bearer token is an Entra ID token for the
  AKS server application, obtained with the Azure credentials pulumi-azure-native uses
  (``ARM_*`` variables: OIDC, client secret; else the Azure CLI login).

Certificates and keys given inline are written to a private temporary folder (0700, removed at
exit) because Python's ``ssl`` loads client certificates only from files.
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The AKS AAD server application (the same id on every cluster with Entra ID integration).
AKS_SERVER_APP_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
AKS_API_VERSION = "2024-09-01"
_REFRESH_MARGIN = 60.0  # seconds before expiry when a token is fetched again


class CredentialsError(RuntimeError):
    """The cluster's credentials can't be found or used; the message says where it looked."""


@dataclass
class ClusterCredentials:
    """What a request to the API server needs. ``token`` is called per request (it caches)."""

    server: str
    ca_file: str | None = None
    insecure: bool = False
    client_cert: tuple[str, str] | None = None
    token: Callable[[], str | None] = field(default=lambda: None)
    source: str = ""  # where they came from, for error messages (never the secret itself)

    def __repr__(self) -> str:
        return f"ClusterCredentials({self.server!r}, from {self.source})"


_private_dir: str | None = None
_private_lock = threading.Lock()


def _private_file(name: str, data: bytes) -> str:
    """A 0600 file holding ``data``, named by its content (several clusters may share one process)."""
    global _private_dir
    with _private_lock:
        if _private_dir is None:
            _private_dir = tempfile.mkdtemp(prefix="tyk-aks-kube-")
            os.chmod(_private_dir, 0o700)
            atexit.register(shutil.rmtree, _private_dir, True)
        path = os.path.join(_private_dir, f"{hashlib.sha256(data).hexdigest()[:16]}-{name}")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return path


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=False)
    except ValueError:
        raise CredentialsError(f"{what} is not valid base64") from None


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _named(entries: Any, what: str, origin: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    out: dict[str, tuple[dict[str, Any], Path]] = {}
    for entry in entries or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            out.setdefault(entry["name"], (dict(entry.get(what) or {}), origin))
    return out


def load_kubeconfig(explicit: str | None, context: str | None) -> ClusterCredentials:
    """The credentials of ``context`` (or the current context) in the kubeconfig kubectl would use."""
    paths = kubeconfig_paths(explicit)
    clusters: dict[str, tuple[dict[str, Any], Path]] = {}
    users: dict[str, tuple[dict[str, Any], Path]] = {}
    contexts: dict[str, tuple[dict[str, Any], Path]] = {}
    current: str | None = None
    found = []
    for path in paths:
        if not path.is_file():
            continue
        found.append(path)
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise CredentialsError(f"kubeconfig {path}: unreadable: {error}") from None
        if not isinstance(document, Mapping):
            raise CredentialsError(f"kubeconfig {path}: not a kubeconfig (expected a mapping)")
        for key, value in _named(document.get("clusters"), "cluster", path).items():
            clusters.setdefault(key, value)
        for key, value in _named(document.get("users"), "user", path).items():
            users.setdefault(key, value)
        for key, value in _named(document.get("contexts"), "context", path).items():
            contexts.setdefault(key, value)
        current = current or document.get("current-context") or None
    where = ", ".join(str(p) for p in paths)
    if not found:
        raise CredentialsError(
            f"no kubeconfig found at {where}: set stack config cluster.kubeconfig or $KUBECONFIG"
        )
    name = context or current
    if not name:
        raise CredentialsError(f"kubeconfig {where}: no current-context; set stack config cluster.context")
    if name not in contexts:
        raise CredentialsError(f"kubeconfig {where}: context {name!r} not found (have: {sorted(contexts)})")
    ctx, _ = contexts[name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in clusters:
        raise CredentialsError(f"kubeconfig {where}: context {name!r} names unknown cluster {cluster_name!r}")
    cluster, cluster_origin = clusters[cluster_name]
    user, user_origin = users.get(user_name, ({}, cluster_origin)) if user_name else ({}, cluster_origin)
    source = f"kubeconfig {where}, context {name}"
    credentials = _cluster_part(cluster, cluster_origin, source)
    _user_part(credentials, user, user_origin, source)
    return credentials


def _relative(origin: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else origin.parent / path)


def _cluster_part(cluster: Mapping[str, Any], origin: Path, source: str) -> ClusterCredentials:
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise CredentialsError(f"{source}: cluster has no https server URL")
    credentials = ClusterCredentials(server=server.rstrip("/"), source=source)
    if cluster.get("certificate-authority-data"):
        data = _b64(cluster["certificate-authority-data"], f"{source}: certificate-authority-data")
        credentials.ca_file = _private_file("ca.crt", data)
    elif cluster.get("certificate-authority"):
        credentials.ca_file = _relative(origin, cluster["certificate-authority"])
    credentials.insecure = bool(cluster.get("insecure-skip-tls-verify"))
    return credentials


def _user_part(credentials: ClusterCredentials, user: Mapping[str, Any], origin: Path, source: str) -> None:
    if user.get("auth-provider"):
        provider = (user["auth-provider"] or {}).get("name", "?")
        raise CredentialsError(
            f"{source}: auth-provider {provider!r} is not supported (removed from kubectl); "
            "use an exec plugin such as kubelogin"
        )
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if cert and key:
        credentials.client_cert = (
            _private_file("client.crt", _b64(cert, f"{source}: client-certificate-data")),
            _private_file("client.key", _b64(key, f"{source}: client-key-data")),
        )
    elif user.get("client-certificate") and user.get("client-key"):
        credentials.client_cert = (
            _relative(origin, user["client-certificate"]),
            _relative(origin, user["client-key"]),
        )
    if user.get("token"):
        token = str(user["token"])
        credentials.token = lambda: token
    elif user.get("tokenFile"):
        token_file = _relative(origin, user["tokenFile"])
        credentials.token = lambda: Path(token_file).read_text().strip()
    elif user.get("exec"):
        credentials.token = ExecPlugin(user["exec"], credentials, source).token


class ExecPlugin:
    """The client.authentication.k8s.io ExecCredential protocol (kubelogin, cloud CLIs), cached until expiry."""

    def __init__(self, spec: Mapping[str, Any], credentials: ClusterCredentials, source: str) -> None:
        if not isinstance(spec.get("command"), str):
            raise CredentialsError(f"{source}: exec plugin without a command")
        self._spec = spec
        self._credentials = credentials
        self._source = source
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def token(self) -> str | None:
        with self._lock:
            if self._token is None or time.time() > self._expires - _REFRESH_MARGIN:
                self._run()
            return self._token

    def _run(self) -> None:
        spec = self._spec
        api_version = spec.get("apiVersion", "client.authentication.k8s.io/v1")
        env = dict(os.environ)
        for item in spec.get("env") or []:
            env[str(item["name"])] = str(item["value"])
        exec_info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        env["KUBERNETES_EXEC_INFO"] = json.dumps(exec_info)
        command = [spec["command"], *[str(a) for a in spec.get("args") or []]]
        try:
            done = subprocess.run(  # the kubeconfig's own plugin, as kubectl runs it
                command, env=env, capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise CredentialsError(f"{self._source}: exec plugin {command[0]!r} failed: {error}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise CredentialsError(
                f"{self._source}: exec plugin {command[0]!r} exited {done.returncode}: {last}"
            )
        try:
            status = json.loads(done.stdout)["status"]
        except (ValueError, KeyError, TypeError):
            raise CredentialsError(
                f"{self._source}: exec plugin {command[0]!r} printed no ExecCredential"
            ) from None
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            self._credentials.client_cert = (
                _private_file("exec-client.crt", status["clientCertificateData"].encode()),
                _private_file("exec-client.key", status["clientKeyData"].encode()),
            )
        self._token = status.get("token")
        expiry = status.get("expirationTimestamp")
        self._expires = _parse_time(expiry) if expiry else float("inf")


def _parse_time(value: str) -> float:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# --- aks: Entra ID token + endpoint/CA from ARM ------------------------------------------------------------


def azure_credential() -> Any:
    """The Azure credential pulumi-azure-native would use, from its ``ARM_*`` variables.

    ``ARM_USE_OIDC`` + ``ARM_CLIENT_ID`` + ``ARM_TENANT_ID``: a federated token (``ARM_OIDC_TOKEN``,
    ``ARM_OIDC_TOKEN_FILE_PATH``, or GitHub Actions' ID token request); ``ARM_CLIENT_SECRET``: a
    service principal secret; otherwise the default chain (workload/managed identity, Azure CLI).
    """
    from azure.identity import ClientAssertionCredential, ClientSecretCredential, DefaultAzureCredential

    client_id, tenant_id = os.environ.get("ARM_CLIENT_ID"), os.environ.get("ARM_TENANT_ID")
    if os.environ.get("ARM_USE_OIDC", "").lower() == "true" and client_id and tenant_id:
        return ClientAssertionCredential(tenant_id, client_id, _oidc_assertion)
    if os.environ.get("ARM_CLIENT_SECRET") and client_id and tenant_id:
        return ClientSecretCredential(tenant_id, client_id, os.environ["ARM_CLIENT_SECRET"])
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def _oidc_assertion() -> str:
    if os.environ.get("ARM_OIDC_TOKEN"):
        return os.environ["ARM_OIDC_TOKEN"]
    if os.environ.get("ARM_OIDC_TOKEN_FILE_PATH"):
        return Path(os.environ["ARM_OIDC_TOKEN_FILE_PATH"]).read_text().strip()
    url = os.environ.get("ARM_OIDC_REQUEST_URL") or os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = os.environ.get("ARM_OIDC_REQUEST_TOKEN") or os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise CredentialsError(
            "ARM_USE_OIDC is set but no ID token is available (ARM_OIDC_TOKEN, ARM_OIDC_TOKEN_FILE_PATH, "
            "or GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL with `permissions: id-token: write`)"
        )
    import requests

    answer = requests.get(
        url,
        params={"audience": "api://AzureADTokenExchange"},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["value"])


@dataclass(frozen=True)
class AksCluster:
    subscription_id: str
    resource_group: str
    name: str


class EntraToken:
    """An Entra ID access token for ``scope``, fetched again shortly before it expires."""

    def __init__(self, credential: Any, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - _REFRESH_MARGIN:
                try:
                    access = self._credential.get_token(self._scope)
                except Exception as error:  # azure-identity raises several types; all mean "no token"
                    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    raise CredentialsError(
                        f"no Azure token for {self._scope}: {first} (log in with `az login`, or set "
                        "ARM_USE_OIDC/ARM_CLIENT_ID/ARM_TENANT_ID, or ARM_CLIENT_SECRET)"
                    ) from None
                self._token, self._expires = access.token, float(access.expires_on)
            return self._token


def aks_credentials(
    cluster: AksCluster, credential: Any, arm_endpoint: str = ARM_ENDPOINT, verify: str | bool = True
) -> ClusterCredentials:
    """Endpoint and CA from ``listClusterUserCredential`` (no secret in it with Entra ID), token from Entra."""
    import requests

    arm_token = EntraToken(credential, ARM_SCOPE)
    url = (
        f"{arm_endpoint}/subscriptions/{cluster.subscription_id}/resourceGroups/{cluster.resource_group}"
        f"/providers/Microsoft.ContainerService/managedClusters/{cluster.name}/listClusterUserCredential"
    )
    source = f"AKS cluster {cluster.resource_group}/{cluster.name}"
    try:
        answer = requests.post(
            url,
            params={"api-version": AKS_API_VERSION, "format": "exec"},
            headers={"Authorization": f"Bearer {arm_token()}"},
            timeout=30,
            verify=verify,
        )
    except requests.RequestException as error:
        raise CredentialsError(f"{source}: Azure Resource Manager unreachable: {error}") from None
    if answer.status_code != 200:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text[:200]
        raise CredentialsError(
            f"{source}: listClusterUserCredential answered {answer.status_code}: {message} (the identity needs "
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action, e.g. the "
            "'Azure Kubernetes Service Cluster User Role')"
        )
    try:
        kubeconfig = yaml.safe_load(_b64(answer.json()["kubeconfigs"][0]["value"], source).decode())
        cluster_entry = kubeconfig["clusters"][0]["cluster"]
    except (ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
        raise CredentialsError(f"{source}: listClusterUserCredential returned no usable kubeconfig") from None
    credentials = _cluster_part(cluster_entry, Path("."), source)
    credentials.token = EntraToken(credential, AKS_SERVER_APP_SCOPE)
    return credentials


def azure_subscription(config_value: str | None) -> str:
    """The subscription as pulumi-azure-native finds it: its config, ``ARM_SUBSCRIPTION_ID``, the CLI default."""
    for value in (
        config_value,
        os.environ.get("ARM_SUBSCRIPTION_ID"),
        os.environ.get("AZURE_SUBSCRIPTION_ID"),
    ):
        if value:
            return value
    try:
        done = subprocess.run(
            ["az", "account", "show", "--query", "id", "--output", "tsv"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    raise CredentialsError(
        "no Azure subscription: set `pulumi config set azure-native:subscriptionId <id>`, ARM_SUBSCRIPTION_ID, "
        "or `az account set --subscription <id>`"
    )
