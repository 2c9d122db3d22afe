"""Kubernetes Secrets that carry one Pulumi secret each, for charts that read secrets by Secret name."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def single_value_secret(
    resource_name: str,
    *,
    name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    key: str,
    value: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """An Opaque Secret `name` holding `value` under `key`, kept a Pulumi secret in state and plans.

    Charts get the Secret's name, never the value: a secret inside Helm values would make the whole values
    map one secret and hide every value change from previews.
    """
    return k8s.core.v1.Secret(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels),
        type="Opaque",
        string_data={key: pulumi.Output.secret(value)},
        opts=opts,
    )
