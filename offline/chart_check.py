"""Render the real `tyk-oss` chart with a stack's gateway values and check that every value took effect.

The chart silently ignores keys it doesn't know, so a renamed key in a new chart version would turn into a
gateway without its shared volumes, or with the control API on the public port. Run this when bumping
`gateway.chartVersion`, against a checkout of TykTechnologies/tyk-charts at that version:

    pip install helm-python-sdk          # Helm's Go SDK in a wheel; renders offline, no helm binary
    python -m offline.chart_check --charts ../tyk-charts dev

It needs no cluster: the values come from the offline plan, the rendering from the chart source.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from components.gateway import (
    API_SECRET_KEY,
    API_SECRET_NAME,
    CONTROL_SERVICE_NAME,
    DEPLOYMENT_NAME,
    PROXY_PORT,
    PROXY_SERVICE_NAME,
    RELEASE_NAME,
)
from components.redis import PASSWORD_SECRET_NAME
from components.settings import parse_settings
from components.storage import GATEWAY_FOLDERS, claim_name
from offline.plan import read_stack_config, run_program


def render(chart_dir: Path, values: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    import helm_python  # optional dependency, only for this check

    helm_python.dependency_build(str(chart_dir))
    rendered = helm_python.Chart.load(str(chart_dir)).render(
        values, name=RELEASE_NAME, namespace=namespace, is_install=True
    )
    documents: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if path.endswith(".yaml") and text.strip():
            documents.extend(d for d in yaml.safe_load_all(text) if d)
    return documents


def check(stack: str, documents: list[dict[str, Any]]) -> list[str]:
    """Problems found in the rendered objects (empty when every setting took effect)."""
    config, _, _ = read_stack_config(stack)
    settings = parse_settings(config)
    gateway = settings.gateway
    by_kind: dict[tuple[str, str], dict[str, Any]] = {
        (d["kind"], d["metadata"]["name"]): d for d in documents
    }
    problems: list[str] = []

    def expect(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    deployment = by_kind.get(("Deployment", DEPLOYMENT_NAME))
    if deployment is None:
        return [f"no Deployment {DEPLOYMENT_NAME} (rendered: {sorted(by_kind)})"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    expect(deployment["spec"].get("replicas") == gateway.replicas, f"replicas != {gateway.replicas}")
    # `repository:tag`, with the digest the kubelet pulls when the stack pins one (`<tag>@sha256:...` in values).
    pinned = settings.images.pin_digests or gateway.image_digest is not None
    digest = r"@sha256:[0-9a-f]{64}" if pinned else ""
    image = container["image"]
    expect(
        re.fullmatch(rf".+:{re.escape(gateway.image_tag)}{digest}", image) is not None,
        f"image {image} is not tag {gateway.image_tag}" + (" by digest" if pinned else ""),
    )
    init_pinned = settings.images.pin_digests or gateway.init_image_digest is not None
    [init] = [c for c in pod.get("initContainers", []) if c["name"] == "setup-directories"]
    expect(
        re.fullmatch(
            rf"{re.escape(gateway.init_image_repository)}:{re.escape(gateway.init_image_tag)}"
            + (r"@sha256:[0-9a-f]{64}" if init_pinned else ""),
            init["image"],
        )
        is not None,
        f"init image {init['image']} is not {gateway.init_image_repository}:{gateway.init_image_tag}"
        + (" by digest" if init_pinned else ""),
    )
    expect(env.get("TYK_GW_CONTROLAPIPORT") == str(gateway.control_port), "control API not on its own port")
    expect(
        env.get("TYK_GW_SECRET") == {"secretKeyRef": {"name": API_SECRET_NAME, "key": API_SECRET_KEY}},
        f"TYK_GW_SECRET not read from the program's Secret: {env.get('TYK_GW_SECRET')}",
    )
    expect(
        (env.get("TYK_GW_STORAGE_PASSWORD") or {}).get("secretKeyRef", {}).get("name")
        == PASSWORD_SECRET_NAME,
        f"Redis password not read from the program's Secret: {env.get('TYK_GW_STORAGE_PASSWORD')}",
    )
    expect(env.get("TYK_GW_POLICIES_POLICYPATH") == GATEWAY_FOLDERS["policies"], "policy_path not set")
    expect(env.get("TYK_GW_APPPATH") == GATEWAY_FOLDERS["apps"], "app_path moved")
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for folder, path in GATEWAY_FOLDERS.items():
        expect(
            claims.get(mounts.get(path, "")) == claim_name(folder),
            f"{path} is not on claim {claim_name(folder)}",
        )
    for kind, name in by_kind:
        expect(
            not (kind == "Secret" and API_SECRET_KEY in by_kind[(kind, name)].get("stringData", {})),
            f"the chart rendered Secret {name} with an API secret of its own",
        )

    control = by_kind.get(("Service", CONTROL_SERVICE_NAME))
    expect(
        control is not None and control["spec"]["ports"][0]["port"] == gateway.control_port,
        "no control-API service",
    )
    ingress = next((d for d in documents if d["kind"] == "Ingress"), None)
    if gateway.ingress.enabled:
        if ingress is None:
            problems.append("no Ingress rendered")
        else:
            expect([r["host"] for r in ingress["spec"]["rules"]] == gateway.hostnames, "ingress hosts differ")
            backends = {
                (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
                for rule in ingress["spec"]["rules"]
                for p in rule["http"]["paths"]
            }
            expect(
                backends == {(PROXY_SERVICE_NAME, PROXY_PORT)},
                f"ingress must reach the proxy port only: {backends}",
            )
    pdb = next((d for d in documents if d["kind"] == "PodDisruptionBudget"), None)
    if gateway.pdb_min_available is not None:
        expect(
            pdb is not None and pdb["spec"].get("minAvailable") == gateway.pdb_min_available, "PDB missing"
        )
    if gateway.resources is not None:
        expect(bool(container.get("resources")), "resources not rendered")
    expect(bool(pod.get("topologySpreadConstraints")), "topology spread not rendered")
    if settings.controller.enabled:
        problems += _entry_point_problems(pod, container, env)
    return problems


def _entry_point_problems(pod: dict[str, Any], container: dict[str, Any], env: dict[str, Any]) -> list[str]:
    """The gateways' TLS port for Ingress hosts and its default certificate (components/entry_point.py)."""
    from components.entry_point import DEFAULT_CERT_SECRET_NAME, gateway_env

    problems = [
        f"{item['name']} not rendered as {item['value']!r} (got {env.get(item['name'])!r})"
        for item in gateway_env()
        if env.get(item["name"]) != item["value"]
    ]
    if env.get("TYK_GW_HTTPSERVEROPTIONS_CERTIFICATES") != "[]":
        problems.append(
            f"chart file certificates still set: {env.get('TYK_GW_HTTPSERVEROPTIONS_CERTIFICATES')}"
        )
    certificate = Path(str(env.get("TYK_GW_HTTPSERVEROPTIONS_SSLCERTIFICATES", "")))
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    if secrets.get(mounts.get(str(certificate.parent), "")) != DEFAULT_CERT_SECRET_NAME:
        problems.append(f"{certificate.parent} is not the Secret {DEFAULT_CERT_SECRET_NAME}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.chart_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--charts", type=Path, required=True, help="checkout of TykTechnologies/tyk-charts")
    parser.add_argument("stack")
    args = parser.parse_args(argv)
    plan = run_program(args.stack)
    release = plan.one("kubernetes:helm.sh/v3:Release", "gateway-release")
    documents = render(args.charts / "tyk-oss", release.inputs["values"], release.inputs["namespace"])
    problems = check(args.stack, documents)
    for kind, name in sorted((d["kind"], d["metadata"]["name"]) for d in documents):
        print(f"rendered {kind} {name}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("every gateway setting took effect" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
