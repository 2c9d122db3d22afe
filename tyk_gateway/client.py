"""A small, thread-safe client for the Tyk Gateway REST API (``/tyk/...``).

Why it looks like this:

* One ``requests.Session`` per thread: the dynamic-provider plugin serves up to four
  calls at once from one provider instance, and a Session is not thread-safe.
* Every request has a ``(connect, read)`` timeout.
* Retries are urllib3's ``Retry`` with exponential backoff, for connection errors,
  timeouts, 429 and 5xx only. POST/PUT/DELETE are retried too: every write we send
  names its object by a client-chosen id, so repeating it is an upsert, not a duplicate.
  A 4xx is never retried; it surfaces with the gateway's own message.
* A DELETE answered with 500 "Delete failed" is not retried: the gateway's delete handlers
  answer that when the file is already gone, which a retry cannot change. Any other 500 on
  a DELETE (from a proxy in front of the gateway, or the gateway failing transiently) is
  retried like any other transient error. urllib3 can't see the body, so this retry is ours.
* Redirects are never followed. ``requests`` strips ``Authorization`` when a redirect leaves
  the host, but not ``X-Tyk-Authorization``: following one would hand the admin secret (and
  the definition) to whatever host the ``Location`` names. A 3xx is an error naming that host.
* The admin secret travels only in the ``X-Tyk-Authorization`` header; it is never part
  of an error message or a ``repr``.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

AUTH_HEADER = "X-Tyk-Authorization"
SECRET_CONFIG_KEY = "tyk-aks:apiSecret"
SECRET_ENV_VAR = "TYK_GW_SECRET"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRY_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})


class Secret:
    """Holds the admin secret so that it cannot leak through ``repr``, ``str`` or pickling."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("the Tyk admin secret must never be serialized")


class ClientSettings(BaseModel):
    """Timeouts, retries and caching. Production defaults; tests and benchmarks shrink them.

    Read from the optional stack config object ``tyk-aks:gatewayClient`` (camelCase keys).
    """

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to open a connection to the control API."""
    read_timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for an answer."""
    retries: int = Field(default=5, ge=0, le=50)
    """Retries of a call that failed transiently (connection error, 429, 5xx); never of another 4xx."""
    backoff_factor: float = Field(default=0.5, ge=0)
    """Exponential backoff between retries, in seconds (urllib3 Retry `backoff_factor`)."""
    backoff_max: float = Field(default=10.0, ge=0)
    """Longest pause between two retries, in seconds."""
    list_cache_ttl: float = Field(default=10.0, ge=0)
    """Seconds one GET /tyk/apis (or /tyk/policies) answers the reads of every resource during a refresh."""


class TykGatewayError(Exception):
    """A gateway call failed. Carries method, path, HTTP status (None: no response) and the gateway's message."""

    def __init__(self, method: str, path: str, status: int | None, message: str, gateway: str = "") -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.gateway = gateway
        super().__init__(self._describe())

    def _describe(self) -> str:
        call = f"{self.method} {self.path}"
        if self.status is None:
            return f"Tyk gateway {self.gateway} unreachable for {call}: {self.message}"
        if self.status == 403:
            return (
                f"Tyk gateway refused {call} (403): {self.message} The admin secret is wrong or missing: "
                f"set it with `pulumi config set --secret apiSecret <secret>` (stack config {SECRET_CONFIG_KEY})"
                f" or the {SECRET_ENV_VAR} environment variable."
            )
        if self.status >= 500:
            return f"Tyk gateway failed {call} ({self.status}): {self.message}"
        return f"Tyk gateway rejected {call} ({self.status}): {self.message}"


class MissingSecretError(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            f"No Tyk admin secret configured: run `pulumi config set --secret apiSecret <secret>` "
            f"(stack config {SECRET_CONFIG_KEY}) or set the {SECRET_ENV_VAR} environment variable."
        )


class DeleteOutcome(enum.Enum):
    DELETED = "deleted"
    ALREADY_GONE = "already gone"  # 500 "Delete failed": the file no longer exists
    NOT_LOADED = "not loaded"  # API DELETE 404: the gateway has not loaded this API (yet)


class _GatewayRetry(Retry):
    """urllib3 Retry that leaves a DELETE answered with 500 to ``_delete`` and caps Retry-After."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "DELETE" and status_code == 500:
            return False
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.backoff_max)


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None when the body is not JSON
    text: str


def _message(reply: Reply) -> str:
    if isinstance(reply.body, Mapping) and isinstance(reply.body.get("message"), str):
        return str(reply.body["message"])
    text = reply.text.strip()
    return (text[:200] + "...") if len(text) > 200 else (text or "(empty body)")


class Transport(Protocol):
    """How requests reach the control API when it is not a plain URL (e.g. the Kubernetes API server)."""

    def prepare(self, session: requests.Session) -> None:
        """Set TLS verification and client certificates on a new session."""

    def headers(self) -> Mapping[str, str]:
        """Credentials for the hop in front of the gateway (e.g. ``Authorization: Bearer``), fresh per call."""

    def failure(self, method: str, path: str, response: requests.Response) -> Exception | None:
        """An error when the answer came from the transport itself rather than from the gateway."""

    def unreachable(self, method: str, path: str, detail: str) -> Exception:
        """The error for a call that got no answer at all."""


class RedirectError(TykGatewayError):
    """The gateway URL answered with a redirect, which is never followed (it would carry the secret along)."""


class GatewayClient:
    """REST calls against one gateway base URL."""

    def __init__(
        self,
        base_url: str,
        secret: Secret | None,
        settings: ClientSettings,
        transport: Transport | None = None,
        label: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"gateway_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.label = label or self.base_url
        self._secret = secret
        self.settings = settings
        self._transport = transport
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"GatewayClient({self.label!r})"

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            s = self.settings
            retry = _GatewayRetry(
                total=s.retries,
                connect=s.retries,
                read=s.retries,
                status=s.retries,
                redirect=0,
                other=0,
                allowed_methods=_RETRY_METHODS,
                status_forcelist=_RETRY_STATUSES,
                backoff_factor=s.backoff_factor,
                backoff_max=s.backoff_max,
                backoff_jitter=s.backoff_factor,
                raise_on_status=False,
                raise_on_redirect=False,
                respect_retry_after_header=True,
            )
            adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=4)
            session = requests.Session()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            if self._transport is not None:
                self._transport.prepare(session)
            self._local.session = session
        return session

    def call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Reply:
        """One logical call (urllib3 does the retrying). Raises TykGatewayError when no answer came.

        `body` is sent as JSON, or as is when it is bytes (the certificate store reads a raw PEM)."""
        if self._secret is None:
            raise MissingSecretError()
        raw = isinstance(body, bytes)
        data = body if raw or body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {AUTH_HEADER: self._secret.reveal(), "Accept": "application/json"}
        if data is not None and not raw:
            headers["Content-Type"] = "application/json"
        if self._transport is not None:
            headers.update(self._transport.headers())
        session = self._session()
        try:
            response = session.request(
                method,
                self.base_url + path,
                data=data,
                params=params,
                headers=headers,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                allow_redirects=False,
                # Given per request: requests lets REQUESTS_CA_BUNDLE override a session's CA file otherwise.
                verify=session.verify,
            )
        except requests.RequestException as error:
            reason = getattr(error.args[0], "reason", None) if error.args else None
            detail = (
                f"{type(reason or error).__name__}: {reason or error} (after {self.settings.retries} retries)"
            )
            if self._transport is not None:
                raise self._transport.unreachable(method, path, detail) from None
            raise TykGatewayError(method, path, None, detail, self.label) from None
        if response.is_redirect or 300 <= response.status_code < 400:
            location = response.headers.get("Location", "")
            target = urlsplit(urljoin(self.base_url + path, location)).netloc or "(no Location header)"
            raise RedirectError(
                method,
                path,
                response.status_code,
                f"redirect to {target} not followed: the admin secret is only ever sent to {self.label}; "
                "point the gateway URL at the control API itself",
                self.label,
            )
        if self._transport is not None:
            failure = self._transport.failure(method, path, response)
            if failure is not None:
                raise failure
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        return Reply(response.status_code, parsed, response.text)

    def call_ok(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        """Like call(), but anything but 200 becomes TykGatewayError with the gateway's message."""
        reply = self.call(method, path, body, params)
        if reply.status != 200:
            raise self.error(method, path, reply)
        return reply.body

    def error(self, method: str, path: str, reply: Reply) -> TykGatewayError:
        return TykGatewayError(method, path, reply.status, _message(reply), self.label)

    def _expect_list(self, method: str, path: str) -> list[dict[str, Any]]:
        body = self.call_ok(method, path)
        if not isinstance(body, list):
            raise TykGatewayError(method, path, 200, "expected a JSON array", self.label)
        return [item for item in body if isinstance(item, dict)]

    def _expect_key(self, method: str, path: str, body: Any, key: str) -> None:
        answer = self.call_ok(method, path, body)
        if not isinstance(answer, Mapping) or answer.get("status") != "ok" or answer.get("key") != key:
            raise TykGatewayError(method, path, 200, f"unexpected answer {answer!r}", self.label)

    # --- API definitions -------------------------------------------------------------------------

    def list_apis(self) -> list[dict[str, Any]]:
        return self._expect_list("GET", "/tyk/apis")

    def get_api(self, api_id: str) -> list[dict[str, Any]]:
        """The loaded API with this id ([] when this gateway doesn't serve it)."""
        return self._get_one(f"/tyk/apis/{quote(api_id, safe='')}")

    def upsert_api(self, definition: Mapping[str, Any]) -> None:
        """POST /tyk/apis: creates or overwrites ``<api_id>.json`` (works before the API is loaded)."""
        self._expect_key("POST", "/tyk/apis", definition, str(definition["api_id"]))

    def delete_api(self, api_id: str) -> DeleteOutcome:
        return self._delete(f"/tyk/apis/{quote(api_id, safe='')}", not_found=DeleteOutcome.NOT_LOADED)

    # --- Tyk OAS APIs (gateway/api.go: apiOASGetHandler, apiOASPostHandler, apiHandler for DELETE) ----------

    def list_oas_apis(self) -> list[dict[str, Any]]:
        """GET /tyk/apis/oas: every loaded OAS API as its OpenAPI document (classic ones are not listed)."""
        return self._expect_list("GET", "/tyk/apis/oas")

    def get_oas_api(self, api_id: str) -> list[dict[str, Any]]:
        """GET /tyk/apis/oas/{id}: the loaded OAS API ([] when this gateway doesn't serve it)."""
        return self._get_one(f"/tyk/apis/oas/{quote(api_id, safe='')}")

    def upsert_oas_api(self, document: Mapping[str, Any], api_id: str) -> None:
        """POST /tyk/apis/oas: writes ``<id>.json`` and ``<id>-oas.json`` whether or not the API is loaded."""
        self._expect_key("POST", "/tyk/apis/oas", document, api_id)

    def delete_oas_api(self, api_id: str) -> DeleteOutcome:
        """DELETE /tyk/apis/oas/{id}: removes both files; 404 when the gateway has not loaded the API."""
        return self._delete(f"/tyk/apis/oas/{quote(api_id, safe='')}", not_found=DeleteOutcome.NOT_LOADED)

    # --- policies --------------------------------------------------------------------------------

    def list_policies(self) -> list[dict[str, Any]]:
        return self._expect_list("GET", "/tyk/policies")

    def get_policy(self, policy_id: str) -> list[dict[str, Any]]:
        """The loaded policy with this id ([] when this gateway doesn't serve it)."""
        return self._get_one(f"/tyk/policies/{quote(policy_id, safe='')}")

    def _get_one(self, path: str) -> list[dict[str, Any]]:
        reply = self.call("GET", path)
        if reply.status == 404:
            return []
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise self.error("GET", path, reply)
        return [reply.body]

    def create_policy(self, policy: Mapping[str, Any]) -> None:
        self._expect_key("POST", "/tyk/policies", policy, str(policy["id"]))

    def update_policy(self, policy: Mapping[str, Any]) -> None:
        """PUT never checks existence, so it also recreates a policy deleted behind our back."""
        policy_id = str(policy["id"])
        self._expect_key("PUT", f"/tyk/policies/{quote(policy_id, safe='')}", policy, policy_id)

    def delete_policy(self, policy_id: str) -> DeleteOutcome:
        return self._delete(f"/tyk/policies/{quote(policy_id, safe='')}", not_found=None)

    # --- reloads ---------------------------------------------------------------------------------

    def reload_group(self) -> None:
        """Ask every gateway in the group to reload (returns before they do)."""
        self._expect_ok("/tyk/reload/group")

    def reload_local(self) -> None:
        """Reload the gateway that answers, and wait until its reload has finished."""
        self._expect_ok("/tyk/reload", {"block": "true"})

    def _expect_ok(self, path: str, params: Mapping[str, str] | None = None) -> None:
        body = self.call_ok("GET", path, params=params)
        if not isinstance(body, Mapping) or body.get("status") != "ok":
            raise TykGatewayError("GET", path, 200, f"unexpected answer {body!r}", self.label)

    def _delete(self, path: str, not_found: DeleteOutcome | None) -> DeleteOutcome:
        attempt = 0
        while True:
            reply = self.call("DELETE", path)
            if reply.status == 200:
                return DeleteOutcome.DELETED
            if reply.status == 500 and _message(reply) == "Delete failed":
                return DeleteOutcome.ALREADY_GONE
            if reply.status == 404 and not_found is not None:
                return not_found
            if reply.status != 500 or attempt >= self.settings.retries:
                raise self.error("DELETE", path, reply)
            # Another 500 (a proxy in front, a transient gateway failure): retry like urllib3 would.
            time.sleep(min(self.settings.backoff_max, self.settings.backoff_factor * 2**attempt))
            attempt += 1
