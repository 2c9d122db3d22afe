"""Turn Tyk Operator manifests into this project's definition files, keeping the ids the Operator assigned.

    python -m tyk_gateway.migrate_operator manifests/*.yaml --out definitions/

Reads every YAML document of the given files (``kubectl get ... -o yaml`` lists work too) and writes:

* ``ApiDefinition``        -> ``apis/<namespace>-<name>.yaml`` (the classic definition of its ``spec``)
* ``TykOasApiDefinition``  -> ``oas/<namespace>-<name>.yaml`` (the document its ConfigMap holds at
  ``spec.tykOAS.configmapRef``; pass the ConfigMap's manifest too)
* ``SecurityPolicy``       -> ``policies/<namespace>-<name>.yaml`` (``access_rights_array`` references by
  name/namespace become ``access_rights`` keyed by the referenced API's id)

Ids are kept as the Operator set them (``tyk-operator`` v0.18.0, ``controllers/apidefinition_controller.go``
and ``securitypolicy_controller.go``): ``spec.api_id`` / ``spec.id`` when the manifest sets one, otherwise
``EncodeNS("<namespace>/<name>")``, i.e. unpadded URL-safe base64 (``base64.RawURLEncoding``). Keys and
policies issued against those ids keep working.

Nothing is dropped silently: fields that only make sense to the Operator (Kubernetes Secret references, the
``contextRef``) or that the gateway does not know are listed on the terminal and in a comment at the top of
the file they came from. Every file is validated like the program validates it before anything is written;
an error names the manifest file, the object and the field, and writes nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .loader import YamlLoader
from .models import DefinitionError, normalize_api, normalize_policy
from .oas import EXTENSION, normalize_oas

OPERATOR_GROUP = "tyk.tyk.io/"
KIND_API, KIND_OAS, KIND_POLICY = "ApiDefinition", "TykOasApiDefinition", "SecurityPolicy"

#: ApiDefinition spec fields (tyk-operator v0.18.0 api/model/api.go APIDefinitionSpec) that are the gateway's
#: classic API definition fields: carried over as they are.
API_FIELDS = frozenset(
    [
        "id",
        "api_id",
        "name",
        "org_id",
        "active",
        "proxy",
        "listen_port",
        "protocol",
        "enable_proxy_protocol",
        "domain",
        "do_not_track",
        "use_keyless",
        "use_oauth2",
        "oauth_meta",
        "use_openid",
        "openid_options",
        "strip_auth_data",
        "auth",
        "auth_configs",
        "use_standard_auth",
        "use_basic_auth",
        "basic_auth",
        "use_mutual_tls_auth",
        "client_certificates",
        "pinned_public_keys",
        "upstream_certificates",
        "enable_jwt",
        "use_go_plugin_auth",
        "enable_coprocess_auth",
        "jwt_signing_method",
        "jwt_source",
        "jwt_identity_base_field",
        "jwt_client_base_field",
        "jwt_policy_field_name",
        "jwt_default_policies",
        "jwt_issued_at_validation_skew",
        "jwt_expires_at_validation_skew",
        "jwt_not_before_validation_skew",
        "jwt_skip_kid",
        "jwt_scope_to_policy_mapping",
        "jwt_scope_claim_name",
        "notifications",
        "enable_signature_checking",
        "hmac_allowed_clock_skew",
        "hmac_allowed_algorithms",
        "request_signing",
        "base_identity_provided_by",
        "definition",
        "version_data",
        "uptime_tests",
        "disable_rate_limit",
        "disable_quota",
        "global_rate_limit",
        "custom_middleware",
        "custom_middleware_bundle",
        "cache_options",
        "session_lifetime",
        "internal",
        "auth_provider",
        "session_provider",
        "event_handlers",
        "enable_batch_request_support",
        "enable_ip_whitelisting",
        "allowed_ips",
        "enable_ip_blacklisting",
        "blacklisted_ips",
        "dont_set_quota_on_create",
        "expire_analytics_after",
        "response_processors",
        "CORS",
        "certificates",
        "tags",
        "enable_context_vars",
        "config_data",
        "tag_headers",
        "enable_detailed_recording",
        "graphql",
        "analytics_plugin",
        "detailed_tracing",
    ]
)
#: Operator-only fields: they name Kubernetes objects the Operator resolved; nothing here can.
OPERATOR_ONLY = {
    "contextRef": "the Operator's connection to the gateway; this project connects through apiManagement",
    "certificate_secret_names": "upload the certificates (e.g. with the gateway's /tyk/certs) and list their ids in certificates",
    "client_certificate_refs": "upload the certificates and list their ids in client_certificates",
    "upstream_certificate_refs": "upload the certificates and map domains to their ids in upstream_certificates",
    "pinned_public_keys_refs": "upload the public keys and map domains to their ids in pinned_public_keys",
}
#: SecurityPolicy spec fields (api/model/security_policy.go) the gateway's user.Policy knows.
POLICY_FIELDS = frozenset(
    [
        "_id",
        "id",
        "name",
        "org_id",
        "active",
        "is_inactive",
        "access_rights",
        "rate",
        "per",
        "quota_max",
        "quota_renewal_rate",
        "throttle_interval",
        "throttle_retry_limit",
        "max_query_depth",
        "hmac_enabled",
        "enable_http_signature_validation",
        "tags",
        "key_expires_in",
        "partitions",
        "meta_data",
    ]
)
POLICY_DROPPED = {
    "state": "a Tyk Dashboard field; the gateway's policies have active / is_inactive",
    "contextRef": OPERATOR_ONLY["contextRef"],
}
#: access_rights_array entry fields: the reference (name, namespace, kind) becomes the api_id.
ACCESS_REFERENCE = frozenset({"name", "namespace", "kind"})


class MigrationError(ValueError):
    """One line naming the manifest file, the object and the field."""


def operator_id(namespace: str, name: str) -> str:
    """EncodeNS in tyk-operator's controllers/common.go: base64.RawURLEncoding of "<namespace>/<name>"."""
    return base64.urlsafe_b64encode(f"{namespace}/{name}".encode()).decode().rstrip("=")


@dataclass
class Manifest:
    kind: str
    namespace: str
    name: str
    body: dict[str, Any]
    source: Path

    @property
    def where(self) -> str:
        return f"{self.source}: {self.kind} {self.namespace}/{self.name}"


@dataclass
class Migrated:
    folder: str  # "apis", "oas" or "policies"
    stem: str
    definition: dict[str, Any]
    origin: Manifest
    notes: list[str] = field(default_factory=list)

    @property
    def object_id(self) -> Any:
        """The id the gateway knows it by: the policy's id, or the API's (classic or OAS)."""
        return self.definition["id"] if self.folder == "policies" else _api_identity(self)[0]


def read_manifests(paths: Iterable[Path], default_namespace: str) -> tuple[list[Manifest], list[str]]:
    """Every object of the files (``kind: List`` expanded); notes about objects that are not migrated."""
    manifests: list[Manifest] = []
    notes: list[str] = []
    for path in paths:
        try:
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=YamlLoader))
        except (OSError, UnicodeDecodeError) as error:
            raise MigrationError(f"{path}: cannot read: {error}") from None
        except yaml.YAMLError as error:
            raise MigrationError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
        objects: list[Any] = []
        for document in documents:
            if isinstance(document, Mapping) and document.get("kind") == "List":
                objects.extend(document.get("items") or [])
            elif document is not None:
                objects.append(document)
        for index, obj in enumerate(objects):
            if not isinstance(obj, Mapping):
                raise MigrationError(f"{path}: document {index + 1}: not a Kubernetes object")
            kind, api_version = obj.get("kind"), str(obj.get("apiVersion", ""))
            metadata = obj.get("metadata") or {}
            name = metadata.get("name") if isinstance(metadata, Mapping) else None
            if kind == "ConfigMap" or (api_version.startswith(OPERATOR_GROUP) and kind):
                if not isinstance(name, str) or not name:
                    raise MigrationError(f"{path}: {kind} (document {index + 1}): metadata.name: missing")
                namespace = metadata.get("namespace") or default_namespace
                manifests.append(Manifest(str(kind), str(namespace), name, dict(obj), path))
                if api_version.startswith(OPERATOR_GROUP) and kind not in (KIND_API, KIND_OAS, KIND_POLICY):
                    notes.append(
                        f"{path}: {kind} {namespace}/{name}: not migrated (no equivalent in Tyk OSS files)"
                    )
    return manifests, notes


def _spec(manifest: Manifest) -> dict[str, Any]:
    spec = manifest.body.get("spec")
    if not isinstance(spec, Mapping):
        raise MigrationError(f"{manifest.where}: spec: missing or not an object")
    return dict(spec)


def _split(
    spec: dict[str, Any], known: frozenset[str], dropped: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """(fields kept, notes): known fields kept, Operator-only dropped with the reason, unknown kept and noted."""
    kept: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in spec.items():
        if key in dropped:
            notes.append(f"spec.{key}: not migrated: {dropped[key]}")
        else:
            kept[key] = value
            if key not in known:
                notes.append(
                    f"spec.{key}: kept, but not a field tyk-operator v0.18.0 knows; check the gateway does"
                )
    return kept, notes


def _validated(manifest: Manifest, normalize: Any, definition: dict[str, Any]) -> dict[str, Any]:
    try:
        result: dict[str, Any] = normalize(definition)
    except DefinitionError as error:
        raise MigrationError(f"{manifest.where}: {error.problems[0]}") from None
    return result


def _stem(manifest: Manifest) -> str:
    return f"{manifest.namespace}-{manifest.name}"


def migrate_api(manifest: Manifest, org_id: str | None) -> Migrated:
    definition, notes = _split(_spec(manifest), API_FIELDS, OPERATOR_ONLY)
    if not definition.get("api_id"):
        definition["api_id"] = operator_id(manifest.namespace, manifest.name)
    if org_id and not definition.get("org_id"):
        definition["org_id"] = org_id
    return Migrated("apis", _stem(manifest), _validated(manifest, normalize_api, definition), manifest, notes)


def migrate_oas(
    manifest: Manifest, config_maps: Mapping[tuple[str, str], Manifest], org_id: str | None
) -> Migrated:
    spec = _spec(manifest)
    reference = (
        (spec.get("tykOAS") or {}).get("configmapRef") if isinstance(spec.get("tykOAS"), Mapping) else None
    )
    if not isinstance(reference, Mapping) or not reference.get("name") or not reference.get("keyName"):
        raise MigrationError(f"{manifest.where}: spec.tykOAS.configmapRef: needs name and keyName")
    namespace = reference.get("namespace") or manifest.namespace  # the CRD's documented default
    config_map = config_maps.get((namespace, reference["name"]))
    if config_map is None:
        raise MigrationError(
            f"{manifest.where}: spec.tykOAS.configmapRef: ConfigMap {namespace}/{reference['name']} "
            "is not among the manifests given (add its file)"
        )
    data = config_map.body.get("data") or {}
    text = data.get(reference["keyName"]) if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        raise MigrationError(
            f"{config_map.where}: data.{reference['keyName']}: missing (named by {manifest.kind} "
            f"{manifest.namespace}/{manifest.name} spec.tykOAS.configmapRef.keyName)"
        )
    try:
        document = yaml.load(text, Loader=YamlLoader)  # JSON is YAML
    except yaml.YAMLError as error:
        raise MigrationError(
            f"{config_map.where}: data.{reference['keyName']}: not JSON/YAML: {error}".replace("\n", " ")
        ) from None
    if not isinstance(document, dict):
        raise MigrationError(f"{config_map.where}: data.{reference['keyName']}: not an OpenAPI document")
    notes = [
        f"spec.{key}: not migrated: set the equivalent under {EXTENSION} in the document"
        for key in spec
        if key != "tykOAS"
    ]
    extension = document.get(EXTENSION)
    if isinstance(extension, dict):
        info = extension.setdefault("info", {})
        if isinstance(info, dict):
            if not info.get("id"):
                info["id"] = operator_id(manifest.namespace, manifest.name)
                notes.append(
                    f"{EXTENSION}.info.id: set to {info['id']} (base64url of {manifest.namespace}/{manifest.name}, "
                    "as for ApiDefinitions); compare with GET /tyk/apis/oas on the live gateway"
                )
            if org_id and not info.get("orgId"):
                info["orgId"] = org_id
    return Migrated("oas", _stem(manifest), _validated(manifest, normalize_oas, document), manifest, notes)


def migrate_policy(
    manifest: Manifest, apis: Mapping[tuple[str, str, str], Migrated], org_id: str | None
) -> Migrated:
    spec = _spec(manifest)
    references = spec.pop("access_rights_array", None) or []
    definition, notes = _split(spec, POLICY_FIELDS, POLICY_DROPPED)
    if not definition.get("id"):
        definition["id"] = operator_id(manifest.namespace, manifest.name)
    if org_id:
        definition["org_id"] = (
            org_id  # the Operator always set its context's org (securitypolicy_controller.go)
        )
    rights: dict[str, Any] = dict(definition.get("access_rights") or {})
    if not isinstance(references, list):
        raise MigrationError(f"{manifest.where}: spec.access_rights_array: must be a list")
    for index, reference in enumerate(references):
        where = f"{manifest.where}: spec.access_rights_array[{index}]"
        if not isinstance(reference, Mapping) or not reference.get("name"):
            raise MigrationError(f"{where}.name: missing")
        namespace = reference.get("namespace") or manifest.namespace
        kinds = [reference["kind"]] if reference.get("kind") else [KIND_API, KIND_OAS]
        found = [
            apis[(kind, namespace, reference["name"])]
            for kind in kinds
            if (kind, namespace, reference["name"]) in apis
        ]
        if not found:
            raise MigrationError(
                f"{where}: {' or '.join(kinds)} {namespace}/{reference['name']} is not among the manifests given"
            )
        if len(found) > 1:
            raise MigrationError(f"{where}: both an ApiDefinition and a TykOasApiDefinition are named "
                                 f"{namespace}/{reference['name']}; set kind")  # fmt: skip
        target = found[0]
        api_id, api_name = _api_identity(target)
        entry = {k: v for k, v in reference.items() if k not in ACCESS_REFERENCE}
        entry.update(api_id=api_id, api_name=api_name)  # what updateAccess puts in (Status.ApiID, Spec.Name)
        if api_id in rights:
            raise MigrationError(f"{where}: grants {api_id} a second time")
        rights[api_id] = entry
    if rights:
        definition["access_rights"] = rights
    return Migrated(
        "policies", _stem(manifest), _validated(manifest, normalize_policy, definition), manifest, notes
    )


def _api_identity(migrated: Migrated) -> tuple[str, str]:
    if migrated.folder == "oas":
        info = migrated.definition[EXTENSION]["info"]
        return str(info["id"]), str(info.get("name", ""))
    return str(migrated.definition["api_id"]), str(migrated.definition.get("name", ""))


def migrate(manifests: list[Manifest], org_id: str | None = None) -> list[Migrated]:
    """Everything converted and validated (raises MigrationError on the first problem)."""
    config_maps = {(m.namespace, m.name): m for m in manifests if m.kind == "ConfigMap"}
    apis: dict[tuple[str, str, str], Migrated] = {}
    out: list[Migrated] = []
    for manifest in manifests:
        if manifest.kind == KIND_API:
            migrated = migrate_api(manifest, org_id)
        elif manifest.kind == KIND_OAS:
            migrated = migrate_oas(manifest, config_maps, org_id)
        else:
            continue
        key = (manifest.kind, manifest.namespace, manifest.name)
        if key in apis:
            raise MigrationError(f"{manifest.where}: defined twice (also in {apis[key].origin.source})")
        apis[key] = migrated
        out.append(migrated)
    out += [migrate_policy(m, apis, org_id) for m in manifests if m.kind == KIND_POLICY]
    _check_unique(out)
    return out


def _check_unique(migrated: list[Migrated]) -> None:
    files: dict[tuple[str, str], Migrated] = {}
    ids: dict[tuple[str, str], Migrated] = {}
    for item in migrated:
        file_key = (item.folder, item.stem)
        if file_key in files:
            raise MigrationError(f"{item.origin.where}: would be written to {item.folder}/{item.stem}.yaml like "
                                 f"{files[file_key].origin.where}")  # fmt: skip
        files[file_key] = item
        space = "policy" if item.folder == "policies" else "api"
        object_id = item.object_id
        if (space, object_id) in ids:
            raise MigrationError(
                f"{item.origin.where}: id {object_id!r} also used by {ids[(space, object_id)].origin.where}"
            )
        ids[(space, object_id)] = item


def write(migrated: list[Migrated], out: Path, overwrite: bool = False) -> list[Path]:
    targets = [out / item.folder / f"{item.stem}.yaml" for item in migrated]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise MigrationError(f"{existing[0]}: exists already (--overwrite replaces it); nothing written")
    for item, target in zip(migrated, targets, strict=True):
        header = [f"Migrated from Tyk Operator {item.origin.kind} {item.origin.namespace}/{item.origin.name} "
                  f"({item.origin.source.name}) by `python -m tyk_gateway.migrate_operator`."]  # fmt: skip
        header += [f"Review: {note}" for note in item.notes]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            "".join(f"# {line}\n" for line in header)
            + yaml.safe_dump(item.definition, sort_keys=False, allow_unicode=True, width=110)
        )
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tyk_gateway.migrate_operator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "manifests", nargs="+", type=Path, help="YAML files with the Operator's objects and ConfigMaps"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("definitions"), help="definitions folder (default: definitions)"
    )
    parser.add_argument(
        "--namespace", default="default", help="namespace of objects without metadata.namespace"
    )
    parser.add_argument("--org-id", help="org_id the Operator's context used (it set it on every policy)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    try:
        manifests, notes = read_manifests(args.manifests, args.namespace)
        migrated = migrate(manifests, args.org_id)
        paths = write(migrated, args.out, args.overwrite)
    except MigrationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for item, path in zip(migrated, paths, strict=True):
        print(
            f"wrote {path} ({item.origin.kind} {item.origin.namespace}/{item.origin.name}, id {item.object_id})"
        )
        for note in item.notes:
            print(f"  review: {note}")
    for note in notes:
        print(f"note: {note}")
    print(json.dumps({"apis": sum(i.folder == "apis" for i in migrated), "oas": sum(i.folder == "oas" for i in migrated),
                      "policies": sum(i.folder == "policies" for i in migrated)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
