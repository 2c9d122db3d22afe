"""Adopt an API definition or policy that already lives on a gateway: write it as a definitions file.

`pulumi import` can't reach a Python dynamic provider's `read()` (the engine sends no provider state with an
import, so the plugin fails before it runs), so adoption goes through the files the program declares from:

    export TYK_GW_SECRET=...            # the admin secret; never a command-line argument (shell history)
    python -m tyk_gateway.adopt api httpbin                 # through the API server, current kubeconfig context
    python -m tyk_gateway.adopt --context kind-tyk policy httpbin-basic
    python -m tyk_gateway.adopt --aks tyk-prod/tyk-prod api httpbin      # Entra ID token, as the provider
    python -m tyk_gateway.adopt --gateway-url https://tyk-control.internal api httpbin   # access: url
    python -m tyk_gateway.adopt oas petstore                # a Tyk OAS API: its document as the gateway returns it

Each writes `definitions/apis/<id>.yaml` (or `policies/`, `oas/`) with the live object's non-default fields. The next
`pulumi up` declares a resource with the same id and, since the content is the same, creates it by writing
identical content; Pulumi manages it from then on. (An object whose live content differs from the declared one
is never overwritten by a create unless stack config `apiManagement.adopt` lists its id.) Review the file before committing it: the gateway
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
from tyk_gateway.kube import kubernetes_target
from tyk_gateway.models import DefinitionError, normalize_api, normalize_policy
from tyk_gateway.oas import normalize_oas
from tyk_gateway.provider import AksRef, ClusterRef, Gateway, ProviderConfig
from tyk_gateway.verify import LISTS

#: Per kind: the definitions folder, the id's field (for messages) and the normalization. Listing and finding
#: the id are `verify.LISTS`.
KINDS = {
    "api": ("apis", "api_id", normalize_api),
    "policy": ("policies", "id", normalize_policy),
    "oas": ("oas", "x-tyk-api-gateway.info.id", normalize_oas),
}


CONTROL_SERVICE = "gateway-control-svc-tyk-gateway"  # components/gateway.py CONTROL_SERVICE_NAME


class AdoptError(RuntimeError):
    """The object can't be adopted (not on the gateway, invalid, or its file exists already)."""


def adopt(
    client: GatewayClient, kind: str, object_id: str, definitions_dir: Path, overwrite: bool = False
) -> Path:
    """Write the live object `object_id` of `kind` ("api" or "policy") into `definitions_dir`; return the file."""
    folder, id_field, normalize = KINDS[kind]
    list_objects, id_of = LISTS[kind]
    found = [item for item in list_objects(client) if id_of(item) == object_id]
    if not found:
        raise AdoptError(
            f"no {kind} with {id_field} {object_id!r} is loaded on {client.label} "
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
        f"# Adopted from {client.label} by `python -m tyk_gateway.adopt`; fields at their defaults omitted.\n"
        + yaml.safe_dump(definition, sort_keys=False, allow_unicode=True)
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tyk_gateway.adopt", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--gateway-url", help="control API URL (access: url); default: through the API server"
    )
    parser.add_argument("--namespace", default="tyk", help="gateway namespace (tyk-aks:namespace)")
    parser.add_argument("--service", default=CONTROL_SERVICE, help="control Service name")
    parser.add_argument("--port", type=int, default=9696, help="control port (gateway.controlPort)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--aks", metavar="GROUP/NAME", help="an AKS cluster, reached with an Entra ID token")
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
    cluster = ClusterRef(kubeconfig=args.kubeconfig, context=args.context)
    if args.aks:
        group, _, name = args.aks.partition("/")
        cluster = ClusterRef(mode="aks", aks=AksRef(resource_group_name=group, cluster_name=name))
    url = args.gateway_url or kubernetes_target(args.namespace, args.service, args.port)
    try:
        client = Gateway(url, ProviderConfig(Secret(secret), ClientSettings(), cluster)).client
        path = adopt(client, args.kind, args.id, args.definitions_dir, args.overwrite)
    except (AdoptError, TykGatewayError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}: `pulumi up` now manages {args.kind} {args.id!r} (its preview shows a create)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
