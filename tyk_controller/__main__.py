"""``python -m tyk_controller``: the container's entry point (and what the end-to-end tests start).

Environment:

* ``TYK_CONTROLLER_CONFIG``: path of the JSON configuration (default ``/etc/tyk-controller/config.json``);
* ``TYK_CONTROLLER_GATEWAY_SECRET``: the gateway admin secret (required);
* ``POD_NAME``, ``POD_NAMESPACE``: the pod's identity (downward API), the Lease holder and namespace;
* ``KUBECONFIG``: only outside a cluster (inside, the service account is used);
* ``TYK_CONTROLLER_LOG_LEVEL``: ``INFO`` by default.

Exit codes: 0 after SIGTERM/SIGINT, 2 for a bad configuration or environment (one line per problem, nothing
started), 1 when a core task failed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from pythonjsonlogger.json import JsonFormatter

from tyk_gateway.client import GatewayClient, Secret

from . import translate
from .config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    POD_NAME_ENV_VAR,
    POD_NAMESPACE_ENV_VAR,
    SECRET_ENV_VAR,
    ConfigError,
    ControllerConfig,
    load_config,
)
from .runtime import Controller, Translator
from .templates import TemplateError, load_templates

log = logging.getLogger("tyk_controller")


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("TYK_CONTROLLER_LOG_LEVEL", "INFO").upper())
    logging.getLogger("kopf").setLevel(logging.WARNING)  # kopf logs every watch event at INFO
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def load_translator(config: ControllerConfig) -> Translator:
    """The translation functions and the templates (a bad template stops the start; later changes of the
    files are picked up while running, see ``Controller._follow_templates``)."""
    return Translator(
        translate=translate.translate_ingress,
        owner_of=translate.owner_of,
        ingress_handled=translate.ingress_handled,
        templates=load_templates(config.templates_dir),
        resolve_conflicts=translate.resolve_conflicts,
        controller_of=translate.controller_of,
        load_templates=lambda: load_templates(config.templates_dir),
    )


async def _main(
    config: ControllerConfig, translator: Translator, secret: Secret, pod_name: str, pod_namespace: str
) -> int:
    gateway = GatewayClient(config.gateway_url, secret, config.gateway_client)
    controller = Controller(config, gateway, translator, pod_name, pod_namespace)
    from .mesh.runtime import MeshRuntime

    mesh = MeshRuntime(
        config, controller.kube, gateway, lambda: controller.is_leader, pod_namespace, translator.templates
    )
    await mesh.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, controller.stop.set)
    log.info(
        "starting",
        extra={
            "gateway": config.gateway_url,
            "namespaces": config.watch_namespaces or "all",
            "ingress_class": config.ingress_class,
            "pod": f"{pod_namespace}/{pod_name}",
        },
    )
    try:
        await controller.run()
    except RuntimeError as error:
        log.error("stopped: %s", error)
        return 1
    finally:
        await mesh.stop()
    log.info("stopped")
    return 0


def main() -> int:
    setup_logging()
    problems: list[str] = []
    config: ControllerConfig | None = None
    try:
        config = load_config(os.environ.get(CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH))
    except ConfigError as error:
        problems.extend(str(error).splitlines())
    secret_value = os.environ.get(SECRET_ENV_VAR, "")
    if not secret_value:
        problems.append(f"environment variable {SECRET_ENV_VAR} (the gateway admin secret) is not set")
    pod_name = os.environ.get(POD_NAME_ENV_VAR, "")
    pod_namespace = os.environ.get(POD_NAMESPACE_ENV_VAR, "")
    if config is not None and config.leader_election.enabled and not (pod_name and pod_namespace):
        problems.append(
            f"leader election needs {POD_NAME_ENV_VAR} and {POD_NAMESPACE_ENV_VAR} (downward API); "
            "set them or disable leaderElection"
        )
    if config is not None:
        from .mesh.runtime import mesh_problems

        problems.extend(mesh_problems(config))
    translator: Translator | None = None
    if config is not None:
        try:
            translator = load_translator(config)
        except TemplateError as error:
            problems.append(str(error))
    if problems or config is None or translator is None:
        for problem in problems:
            log.error(problem)
        return 2
    return asyncio.run(_main(config, translator, Secret(secret_value), pod_name, pod_namespace))


if __name__ == "__main__":
    sys.exit(main())
