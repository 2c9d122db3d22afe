"""Adopt an API definition or policy that already lives on a gateway: write it as a definitions file.

`pulumi import` can't reach a Python dynamic provider's `read()` (the engine sends no provider state with an
import, so the plugin fails before it runs), so adoption goes through the files the program declares from:

    export TYK_GW_SECRET=...            # the admin secret; never a command-line argument (shell history)
    python -m tyk_gateway.adopt --gateway-url http://localhost:9696 api httpbin
    python -m tyk_gateway.adopt --gateway-url http://localhost:9696 policy httpbin-basic
    python -m tyk_gateway.adopt --gateway-url http://localhost:9696 oas petstore

Each writes `definitions/apis/<id>.yaml` (or `policies/`, `oas/`) with the live object's non-default fields
(an OAS API's document as the gateway returns it). The next
`pulumi up` declares a resource with the same id; the gateway's POST is an upsert, so it overwrites the object
with the same content and Pulumi manages it from then on. Review the file before committing it: the gateway
answers with `env://`/`secrets://` references already resolved.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from tyk_gateway.client import SECRET_ENV_VAR, ClientSettings, GatewayClient, Secret, TykGatewayError
from tyk_gateway.drift import strip_zero
from tyk_gateway.models import DefinitionError, normalize_api, normalize_policy
from tyk_gateway.oas import normalize_oas, oas_api_id

KINDS = {
    "api": ("apis", "api_id", GatewayClient.list_apis, normalize_api),
    "policy": ("policies", "id", GatewayClient.list_policies, normalize_policy),
    "oas": ("oas", "x-tyk-api-gateway.info.id", GatewayClient.list_oas_apis, normalize_oas),
}


def _id_of(kind: str, item: dict[str, Any]) -> Any:
    return oas_api_id(item) if kind == "oas" else item.get(KINDS[kind][1])


class AdoptError(RuntimeError):
    """The object can't be adopted (not on the gateway, invalid, or its file exists already)."""


def adopt(
    client: GatewayClient, kind: str, object_id: str, definitions_dir: Path, overwrite: bool = False
) -> Path:
    """Write the live object `object_id` of `kind` ("api" or "policy") into `definitions_dir`; return the file."""
    folder, id_field, list_objects, normalize = KINDS[kind]
    found = [item for item in list_objects(client) if _id_of(kind, item) == object_id]
    if not found:
        raise AdoptError(
            f"no {kind} with {id_field} {object_id!r} is loaded on {client.base_url} "
            "(one written but not reloaded yet is not visible: GET /tyk/reload/group first)"
        )
    # An OAS document keeps its zero values: the extension's schema requires some (info.state.active).
    live: dict[str, Any] = found[-1] if kind == "oas" else strip_zero(found[-1])
    try:
        definition = normalize(live)
    except DefinitionError as error:
        raise AdoptError(
            f"the live {kind} {object_id!r} is not a definition the program accepts: {error}"
        ) from None
    path = definitions_dir / folder / f"{object_id}.yaml"
    if path.exists() and not overwrite:
        raise AdoptError(f"{path} exists already (--overwrite replaces it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Adopted from {client.base_url} by `python -m tyk_gateway.adopt`; fields at their defaults omitted.\n"
        + yaml.safe_dump(definition, sort_keys=False, allow_unicode=True)
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tyk_gateway.adopt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway-url", required=True, help="control API, e.g. http://localhost:9696")
    parser.add_argument("--definitions-dir", type=Path, default=Path("definitions"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument(
        "id", help="api_id of the API (x-tyk-api-gateway.info.id for oas), or id of the policy"
    )
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_ENV_VAR)
    if not secret:
        print(f"error: set {SECRET_ENV_VAR} to the gateway's admin secret", file=sys.stderr)
        return 2
    client = GatewayClient(args.gateway_url, Secret(secret), ClientSettings())
    try:
        path = adopt(client, args.kind, args.id, args.definitions_dir, args.overwrite)
    except (AdoptError, TykGatewayError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}: `pulumi up` now manages {args.kind} {args.id!r} (its preview shows a create)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
