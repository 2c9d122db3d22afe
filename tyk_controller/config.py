"""The controller's configuration file: one JSON object, camelCase keys, unknown keys refused.

The Pulumi program builds it with ``ControllerConfig(...).model_dump_json(by_alias=True)`` and mounts it at
``TYK_CONTROLLER_CONFIG``; the controller reads it at start. Secrets are never part of it: the gateway admin
secret arrives in the environment (``TYK_CONTROLLER_GATEWAY_SECRET``).

This module imports neither kopf nor aiohttp: the Pulumi program imports it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from tyk_controller.mesh.config import MeshConfig
from tyk_gateway.client import ClientSettings

CONFIG_ENV_VAR = "TYK_CONTROLLER_CONFIG"
DEFAULT_CONFIG_PATH = "/etc/tyk-controller/config.json"
SECRET_ENV_VAR = "TYK_CONTROLLER_GATEWAY_SECRET"
POD_NAME_ENV_VAR = "POD_NAME"
POD_NAMESPACE_ENV_VAR = "POD_NAMESPACE"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LeaderElection(_Model):
    """One active replica, elected on a ``coordination.k8s.io/v1`` Lease (client-go's timings by default)."""

    enabled: bool = True
    lease_name: str = "tyk-controller"
    """Lease in the controller's own namespace (``POD_NAMESPACE``); its holder is ``POD_NAME``."""
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    """A standby takes over when the holder has not renewed for this long."""
    renew_deadline_seconds: float = Field(default=10.0, gt=0)
    """The leader steps down when it could not renew for this long (must be below the lease duration)."""
    retry_period_seconds: float = Field(default=2.0, gt=0)
    """How often the leader renews and a standby tries to acquire."""

    @field_validator("lease_name")
    @classmethod
    def _lease_name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid Kubernetes object name")
        return value


class WebhookServer(_Model):
    """The mesh admission webhook's HTTPS server (details belong to ``tyk_controller.mesh``)."""

    port: int = Field(default=9443, ge=1, le=65535)
    cert_file: str = "/etc/tyk-controller/webhook/tls.crt"
    key_file: str = "/etc/tyk-controller/webhook/tls.key"
    path: str = "/mutate-pods"
    """The URL path the MutatingWebhookConfiguration calls."""


class ControllerConfig(_Model):
    gateway_url: str
    """Control API of the gateways, e.g. ``http://gateway-control-svc-tyk-gateway.<ns>.svc:9696``."""
    org_id: str = "default"
    ingress_class: str = "tyk"
    """Name of the IngressClass (and value of the legacy ``kubernetes.io/ingress.class`` annotation) handled."""
    controller_name: str = "tyk-aks.io/ingress-controller"
    """``spec.controller`` of the IngressClasses this controller serves."""
    watch_namespaces: list[str] = []
    """Namespaces whose Ingresses, Services and TLS Secrets are watched; [] watches every namespace."""
    templates_dir: str = "/etc/tyk-controller/templates"
    templates_poll_seconds: float = Field(default=5.0, gt=0)
    """How often the template files are checked for changes (a ConfigMap volume is updated in place)."""
    publish_service: str | None = None
    """``<namespace>/<name>`` of the Service whose ``status.loadBalancer`` every handled Ingress reports."""
    http_port: int = Field(default=8080, ge=1, le=65535)
    https_port: int = Field(default=8443, ge=1, le=65535)
    resync_seconds: float = Field(default=300.0, gt=0)
    """Full resync period: desired state recomputed and compared with the gateway's API list."""
    leader_election: LeaderElection = LeaderElection()
    health_port: int = Field(default=8081, ge=1, le=65535)
    """``GET /healthz`` (liveness) and ``GET /readyz`` (readiness)."""
    webhook: WebhookServer | None = None
    mesh: MeshConfig | None = None
    """The service mesh (sidecar settings, egress routes); the webhook injects sidecars only with it set."""
    gateway_client: ClientSettings = ClientSettings()
    debounce_seconds: float = Field(default=0.5, ge=0)
    """Changes arriving within this window are reconciled as one batch."""
    min_reload_interval_seconds: float = Field(default=1.0, ge=0)
    """At most one group reload per this many seconds, however many batches of changes arrive."""
    retry_backoff_max_seconds: float = Field(default=60.0, gt=0)
    """Longest pause between two attempts of a failed reconcile (exponential backoff from 1 s)."""
    probe_interval_seconds: float = Field(default=5.0, gt=0)
    """How often Kubernetes and the gateway are probed; ``/readyz`` fails after three silent intervals."""

    @field_validator("watch_namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        for namespace in value:
            if not _DNS_LABEL.fullmatch(namespace):
                raise ValueError(f"{namespace!r} is not a valid namespace name")
        return value

    @field_validator("publish_service")
    @classmethod
    def _publish_service(cls, value: str | None) -> str | None:
        if value is None:
            return value
        namespace, _, name = value.partition("/")
        if not (_DNS_LABEL.fullmatch(namespace) and _DNS_LABEL.fullmatch(name)):
            raise ValueError(f"{value!r} must be '<namespace>/<service name>'")
        return value

    @property
    def publish_service_ref(self) -> tuple[str, str] | None:
        if self.publish_service is None:
            return None
        namespace, _, name = self.publish_service.partition("/")
        return namespace, name


class ConfigError(Exception):
    """The configuration file is missing or invalid; the message names the file and the field."""


def load_config(path: str | Path) -> ControllerConfig:
    """Read and validate the configuration file; raise ConfigError with one line per problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the controller configuration: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from None
    try:
        return ControllerConfig.model_validate(raw)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"]) or "(top level)"
            value = f" (got {item['input']!r})" if item["type"] != "missing" else ""
            lines.append(f"{path}: {where}: {item['msg']}{value}")
        raise ConfigError("\n".join(lines)) from None
