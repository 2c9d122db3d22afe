"""Pydantic models for Tyk classic API definitions and security policies.

The models type the fields this project relies on and leave everything else alone
(``extra="allow"``), so any Tyk field we do not model passes through to the gateway
untouched. They exist to fail at ``pulumi preview`` with the offending field named,
instead of at ``pulumi up`` with the gateway's terse ``Request malformed``.

Ids are required and chosen by the user: with a client-chosen id every write is an
idempotent upsert, so a POST retried after a dropped response can never create a
second object.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: The value Pulumi sends for inputs that are not known yet (during preview).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

#: Policy ids the gateway accepts (``pkg/identifier/custom.go`` in TykTechnologies/tyk, v5.13+).
POLICY_ID_RE = re.compile(r"^[a-zA-Z0-9.\-_~]+$")
_OBJECT_ID_RE = re.compile(r"^[0-9a-fA-F]{24}$")
_API_ID_MAX = 255


def is_unknown(value: Any) -> bool:
    """True when ``value`` is, or contains, a Pulumi preview placeholder."""
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(v) for v in value)
    return False


def canonical(value: Any) -> Any:
    """Return a JSON-shaped copy that compares equal whenever the gateway would see the same thing.

    * Integral floats become ints: Pulumi's wire format turns every number into a float,
      and Go refuses ``3.0`` for an ``int`` field (``Request malformed``).
    * ``None`` values inside objects are dropped: Go decodes ``null`` as "leave the zero
      value", which is what omitting the key does.
    * Tuples become lists.
    """
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def dig(value: Any, *path: str) -> Any:
    """The field at ``path`` inside nested mappings; None when some level is missing or not a mapping."""
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def validate_api_id(value: str) -> str:
    """An api_id must be one safe path segment: it names ``<app_path>/<api_id>.json``."""
    if value == UNKNOWN:
        return value
    decoded = unquote(value)
    if not value or decoded in {".", ".."}:
        raise ValueError("must not be empty, '.' or '..'")
    if len(value) > _API_ID_MAX:
        raise ValueError(f"must be at most {_API_ID_MAX} characters")
    if any(c in decoded for c in "/\\") or any(c.isspace() or not c.isprintable() for c in decoded):
        raise ValueError("must be a single path segment (no '/', '\\', whitespace or control characters)")
    if "%" in value or "?" in value or "#" in value:
        raise ValueError("must not contain '%', '?' or '#'")
    if value == "oas":
        raise ValueError("'oas' is reserved: GET /tyk/apis/oas is the OAS API list")
    return value


def validate_policy_id(value: str) -> str:
    if value != UNKNOWN and not POLICY_ID_RE.fullmatch(value):
        raise ValueError("allowed characters are a-z, A-Z, 0-9, '.', '_', '-', '~'")
    return value


def _validate_object_id(value: str | None) -> str | None:
    # Go decodes these fields as Mongo ObjectIds: anything but "" or 24 hex digits makes
    # the whole body undecodable ("Request malformed").
    if value in (None, "", UNKNOWN) or _OBJECT_ID_RE.fullmatch(value or ""):
        return value
    raise ValueError("must be empty or a 24-character hex ObjectId (leave it out; use api_id / id)")


class _TykModel(BaseModel):
    """Base: unknown Tyk fields pass through; typed fields are coerced the way JSON would be."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ProxyConfig(_TykModel):
    listen_path: str
    target_url: str
    strip_listen_path: bool | None = None
    preserve_host_header: bool | None = None
    disable_strip_slash: bool | None = None
    enable_load_balancing: bool | None = None
    target_list: list[str] | None = None

    @field_validator("listen_path")
    @classmethod
    def _listen_path(cls, value: str) -> str:
        # The gateway keeps such APIs in its registry but never routes them (api_loader.go).
        if value == UNKNOWN:
            return value
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        if any(c.isspace() for c in value):
            raise ValueError("must not contain whitespace")
        return value

    @field_validator("target_url")
    @classmethod
    def _target_url(cls, value: str) -> str:
        if value == UNKNOWN:
            return value
        parts = urlsplit(value)
        if not parts.scheme or not parts.netloc:
            raise ValueError("must be an absolute URL such as http://service:8080")
        return value

    @model_validator(mode="after")
    def _load_balancing(self) -> ProxyConfig:
        # Same rule as apidef.RuleLoadBalancingTargets.
        if self.enable_load_balancing and not self.target_list and not is_unknown(self.target_list):
            raise ValueError("enable_load_balancing needs a non-empty target_list")
        return self


class VersionInfo(_TykModel):
    name: str | None = None
    expires: str | None = None
    use_extended_paths: bool | None = None
    global_headers: dict[str, str] | None = None
    global_headers_remove: list[str] | None = None
    global_response_headers: dict[str, str] | None = None
    global_response_headers_remove: list[str] | None = None
    override_target: str | None = None


class VersionData(_TykModel):
    not_versioned: bool = False
    default_version: str | None = None
    versions: dict[str, VersionInfo]

    @model_validator(mode="after")
    def _resolvable(self) -> VersionData:
        if not self.versions:
            raise ValueError("versions must contain at least one version (e.g. Default)")
        if (
            self.not_versioned
            and len(self.versions) > 1
            and not ({"Default", "default"} & self.versions.keys())
        ):
            raise ValueError("a not_versioned API needs exactly one version, or one named 'Default'")
        return self


class AuthConfig(_TykModel):
    name: str | None = None
    auth_header_name: str | None = None
    use_param: bool | None = None
    param_name: str | None = None
    use_cookie: bool | None = None
    cookie_name: str | None = None
    disable_header: bool | None = None
    use_certificate: bool | None = None
    validate_signature: bool | None = None


# auth_configs entry -> the flag that enables that auth method (apidef/validator.go).
_AUTH_FLAGS = {
    "authToken": "use_standard_auth",
    "jwt": "enable_jwt",
    "hmac": "enable_signature_checking",
    "oauth": "use_oauth2",
    "oidc": "use_openid",
    "coprocess": "enable_coprocess_auth",
}

_DEFAULT_VERSION_DATA: dict[str, Any] = {"not_versioned": True, "versions": {"Default": {"name": "Default"}}}


class ApiDefinition(_TykModel):
    """A Tyk classic API definition (``apidef.APIDefinition``); unknown fields pass through."""

    api_id: str
    name: str
    org_id: str | None = None
    active: bool | None = None
    internal: bool | None = None
    domain: str | None = None
    slug: str | None = None
    proxy: ProxyConfig
    version_data: VersionData
    use_keyless: bool | None = None
    use_standard_auth: bool | None = None
    use_basic_auth: bool | None = None
    use_oauth2: bool | None = None
    use_openid: bool | None = None
    use_mutual_tls_auth: bool | None = None
    enable_jwt: bool | None = None
    enable_signature_checking: bool | None = None
    enable_coprocess_auth: bool | None = None
    use_go_plugin_auth: bool | None = None
    strip_auth_data: bool | None = None
    auth: AuthConfig | None = None
    auth_configs: dict[str, AuthConfig] | None = None
    enable_ip_whitelisting: bool | None = None
    allowed_ips: list[str] | None = None
    enable_ip_blacklisting: bool | None = None
    blacklisted_ips: list[str] | None = None
    tags: list[str] | None = None
    config_data: dict[str, Any] | None = None
    disable_rate_limit: bool | None = None
    disable_quota: bool | None = None
    id: str | None = None
    is_oas: Literal[False] | None = None

    @field_validator("api_id")
    @classmethod
    def _check_api_id(cls, value: str) -> str:
        return validate_api_id(value)

    @field_validator("id")
    @classmethod
    def _check_object_id(cls, value: str | None) -> str | None:
        return _validate_object_id(value)

    @model_validator(mode="before")
    @classmethod
    def _default_version_data(cls, data: Any) -> Any:
        # Without version_data every request fails version resolution, so supply the
        # standard "not versioned, one Default version" block rather than failing.
        if isinstance(data, Mapping) and data.get("version_data") is None:
            return {**data, "version_data": _DEFAULT_VERSION_DATA}
        return data

    @model_validator(mode="after")
    def _gateway_rules(self) -> ApiDefinition:
        # Mirrors apidef.DefaultValidationRuleSet so these fail at preview, not at up.
        for enabled, ips in (
            (self.enable_ip_whitelisting, self.allowed_ips),
            (self.enable_ip_blacklisting, self.blacklisted_ips),
        ):
            for ip in (ips or []) if enabled else []:
                if ip != UNKNOWN and not _is_ip_or_cidr(ip):
                    raise ValueError(f"invalid IP/CIDR {ip!r}")
        for name, conf in (self.auth_configs or {}).items():
            flag = _AUTH_FLAGS.get(name, "")
            if (
                getattr(self, flag, False)
                and conf.disable_header
                and not conf.use_param
                and not conf.use_cookie
            ):
                raise ValueError(
                    f"auth_configs.{name}: all auth sources are disabled, enable one of header/cookie/query"
                )
        return self


def _is_ip_or_cidr(value: str) -> bool:
    try:
        if value.count("/") == 1:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class AccessDefinition(_TykModel):
    api_id: str | None = None
    api_name: str | None = None
    versions: list[str] | None = None
    allowed_urls: list[dict[str, Any]] | None = None
    limit: dict[str, Any] | None = None


class Policy(_TykModel):
    """A Tyk security policy (``user.Policy``); unknown fields pass through."""

    id: str
    name: str | None = None
    org_id: str | None = None
    rate: float | None = None
    per: float | None = None
    quota_max: int | None = None
    quota_renewal_rate: int | None = None
    throttle_interval: float | None = None
    throttle_retry_limit: int | None = None
    max_query_depth: int | None = None
    access_rights: dict[str, AccessDefinition] | None = None
    hmac_enabled: bool | None = None
    active: bool | None = None
    is_inactive: bool | None = None
    tags: list[str] | None = None
    key_expires_in: int | None = None
    meta_data: dict[str, Any] | None = None
    object_id: str | None = Field(default=None, alias="_id")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return validate_policy_id(value)

    @field_validator("object_id")
    @classmethod
    def _check_object_id(cls, value: str | None) -> str | None:
        return _validate_object_id(value)

    @field_validator("access_rights", mode="before")
    @classmethod
    def _access_rights_list(cls, value: Any) -> Any:
        """Accept a list of entries and key it by api_id.

        A dict key cannot be a ``pulumi.Output``, so Python programs pass
        ``[access_right(api), ...]``; the gateway wants ``{api_id: entry}``.
        """
        if not isinstance(value, list | tuple):
            return value
        keyed: dict[str, Any] = {}
        for index, entry in enumerate(value):
            api_id = entry.get("api_id") if isinstance(entry, Mapping) else None
            if not isinstance(api_id, str) or api_id == UNKNOWN:
                return value  # reported as a type error (or ignored while unknown)
            if api_id in keyed:
                raise ValueError(f"entry {index}: api_id {api_id!r} is listed twice")
            keyed[api_id] = entry
        return keyed

    @model_validator(mode="after")
    def _keys_match(self) -> Policy:
        # The gateway applies rights by map key; an inner api_id that disagrees is a typo.
        for key, entry in (self.access_rights or {}).items():
            if entry.api_id not in (None, UNKNOWN) and key != UNKNOWN and entry.api_id != key:
                raise ValueError(
                    f"access_rights.{key}.api_id is {entry.api_id!r}; it must equal its key {key!r}"
                )
        return self


class DefinitionError(ValueError):
    """A definition failed validation; ``problems`` are ``"definition.<field>: <reason>"`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def format_errors(
    error: ValidationError, prefix: str = "definition", skip_unknown: bool = False
) -> list[str]:
    """Turn pydantic errors into ``definition.proxy.listen_path: <reason> (got ...)`` lines."""
    lines: list[str] = []
    for err in error.errors():
        if skip_unknown and is_unknown(err.get("input")):
            continue
        location = ".".join([prefix, *(str(part) for part in err["loc"])])
        message = err["msg"].removeprefix("Value error, ")
        got = ""
        value = err.get("input")
        if err["type"] != "missing" and isinstance(value, str | int | float | bool):
            shown = repr(value)
            got = f" (got {shown[:80]}{'...' if len(shown) > 80 else ''})"
        lines.append(f"{location}: {message}{got}")
    return lines


def dump_definition(model: BaseModel) -> dict[str, Any]:
    """The normalised form: only fields that were given (plus filled-in defaults), canonical JSON."""
    result: dict[str, Any] = canonical(model.model_dump(mode="json", exclude_unset=True, by_alias=True))
    return result


def normalize_api(definition: Any) -> dict[str, Any]:
    """Validate and normalise an API definition; raise DefinitionError naming the fields."""
    if not isinstance(definition, Mapping):
        raise DefinitionError([f"definition: must be an object (got {type(definition).__name__})"])
    try:
        return dump_definition(ApiDefinition.model_validate(canonical(definition)))
    except ValidationError as error:
        raise DefinitionError(format_errors(error)) from None


def normalize_policy(definition: Any) -> dict[str, Any]:
    """Validate and normalise a policy; raise DefinitionError naming the fields."""
    if not isinstance(definition, Mapping):
        raise DefinitionError([f"definition: must be an object (got {type(definition).__name__})"])
    try:
        return dump_definition(Policy.model_validate(canonical(definition)))
    except ValidationError as error:
        raise DefinitionError(format_errors(error)) from None
