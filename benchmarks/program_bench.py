"""Evaluation time and peak memory of the Pulumi program against the number of managed definitions.

Run: ``./run bench program_bench [--sizes 0 1000 10000] [--stack dev] [--oas-share 0.5]``

For each N it writes N API files (classic; ``--oas-share`` of them as Tyk OAS documents) and N/10 policies
(each granting 10 of the APIs) to a temporary folder, points the stack's ``apiManagement.definitionsDir`` at it
and runs the offline plan (the whole program under Pulumi's mocks) in a fresh child process. It prints the
wall time and CPU time (user + system: steadier on a shared machine) of that run and the child's peak
resident memory (``ru_maxrss``); the first row (N=0) is the
baseline of an empty folder, and the "beyond" columns subtract it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from offline.plan import PROJECT_DIR, read_stack_config

APIS_PER_POLICY = 10


def api_document(i: int) -> dict[str, Any]:
    """The i-th classic API, shaped like `definitions/apis/httpbin.yaml`."""
    api_id = f"api-{i:05d}"
    return {
        "api_id": api_id,
        "name": api_id,
        "org_id": "default",
        "active": True,
        "use_keyless": False,
        "use_standard_auth": True,
        "auth_configs": {"authToken": {"auth_header_name": "Authorization"}},
        "proxy": {
            "listen_path": f"/{api_id}/",
            "target_url": f"http://upstream-{i % 50}.apps.svc:8080",
            "strip_listen_path": True,
        },
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }


def oas_document(i: int) -> dict[str, Any]:
    """The i-th Tyk OAS API, shaped like `definitions/oas/petstore.yaml`."""
    api_id = f"oas-{i:05d}"
    return {
        "openapi": "3.0.3",
        "info": {"title": api_id, "version": "1.0.0"},
        "servers": [{"url": f"https://api.example.com/{api_id}/"}],
        "security": [{"authToken": []}],
        "paths": {
            "/items": {"get": {"operationId": "listItems", "responses": {"200": {"description": "ok"}}}}
        },
        "components": {
            "securitySchemes": {"authToken": {"type": "apiKey", "in": "header", "name": "Authorization"}}
        },
        "x-tyk-api-gateway": {
            "info": {"id": api_id, "name": api_id, "state": {"active": True}},
            "upstream": {"url": f"http://upstream-{i % 50}.apps.svc:8080"},
            "server": {
                "listenPath": {"value": f"/{api_id}/", "strip": True},
                "authentication": {"enabled": True, "securitySchemes": {"authToken": {"enabled": True}}},
            },
        },
    }


def write_definitions(folder: Path, n: int, oas_share: float = 0.0) -> None:
    """N API files (``oas_share`` of them OAS) and N/10 policies in ``folder``."""
    n_oas = int(n * oas_share)
    api_ids: list[str] = []
    for sub in ("apis", "oas", "policies"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n - n_oas):
        document = api_document(i)
        api_ids.append(document["api_id"])
        (folder / "apis" / f"{document['api_id']}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    for i in range(n_oas):
        document = oas_document(i)
        api_ids.append(document["x-tyk-api-gateway"]["info"]["id"])
        (folder / "oas" / f"{api_ids[-1]}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    for p in range(n // APIS_PER_POLICY):
        granted = api_ids[p * APIS_PER_POLICY : (p + 1) * APIS_PER_POLICY]
        policy = {
            "id": f"policy-{p:05d}",
            "name": f"policy {p}",
            "org_id": "default",
            "rate": 100,
            "per": 60,
            "quota_max": -1,
            "access_rights": {
                api_id: {"api_id": api_id, "api_name": api_id, "versions": ["Default"]} for api_id in granted
            },
        }
        (folder / "policies" / f"policy-{p:05d}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))


def run_child(stack: str, folder: Path) -> dict[str, Any]:
    """Plan the stack with ``folder`` as its definitions in a fresh process; its time and peak memory."""
    code = (
        "import json, resource, sys, time\n"
        "start = time.perf_counter()\n"
        "from offline.plan import run_program\n"
        "config = json.loads(sys.argv[1])\n"
        "plan = run_program(sys.argv[2], config=config, secret_keys=[])\n"
        "seconds = time.perf_counter() - start\n"
        "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(json.dumps({'seconds': seconds, 'cpu': usage.ru_utime + usage.ru_stime,\n"
        "                  'resources': len(plan.resources), 'max_rss_kib': usage.ru_maxrss}))\n"
    )
    config, _secret_keys, _notes = read_stack_config(stack)
    management = json.loads(config.get("tyk-aks:apiManagement", "{}"))
    config["tyk-aks:apiManagement"] = json.dumps(
        {**management, "enabled": True, "definitionsDir": str(folder)}
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config), stack],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.program_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 1000])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--oas-share", type=float, default=0.0, help="fraction of the N APIs written as OAS")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes) | {0})
    print(
        f"{'APIs':>6} {'policies':>8} {'resources':>9} {'seconds':>8} {'beyond':>7} {'CPU s':>7} {'beyond':>7}"
        f" {'peak MiB':>8} {'beyond':>7}"
    )
    baseline: dict[str, Any] | None = None
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="tyk-definitions-") as tmp:
            write_definitions(Path(tmp), n, args.oas_share)
            row = run_child(args.stack, Path(tmp))
        if "error" in row:
            print(f"{n:>6} {n // APIS_PER_POLICY:>8} failed: {row['error']}")
            continue
        mib = row["max_rss_kib"] / 1024
        if baseline is None:
            baseline = row
        extra_s = row["seconds"] - baseline["seconds"]
        extra_cpu = row["cpu"] - baseline["cpu"]
        extra_mib = mib - baseline["max_rss_kib"] / 1024
        print(
            f"{n:>6} {n // APIS_PER_POLICY:>8} {row['resources']:>9} {row['seconds']:>8.2f} {extra_s:>7.2f}"
            f" {row['cpu']:>7.2f} {extra_cpu:>7.2f} {mib:>8.0f} {extra_mib:>7.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
