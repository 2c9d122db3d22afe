"""Kubernetes RBAC for API management through the API server: exactly what the provider's requests need.

Two Roles in the gateway's namespace, bound to the subjects named in stack config:

- `tyk-api-management` (`apiManagement.rbacSubjects`, whoever runs `pulumi up`/`destroy`): the rules of
  `tyk_gateway.kube.provider_rules` (service proxy of the control Service for every method, that Service's
  selector, the pod list and `get` on the pod proxy for replica verification);
- `tyk-api-management-preview` (`apiManagement.previewSubjects`, e.g. CI's identity): `get` on the control
  Service's proxy only, which is all `pulumi preview --refresh` uses (refresh reads lists; check and diff
  make no calls).

No Role is created for an empty subject list. docs/api-management.md#rbac explains each rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.settings import RbacSubject
from tyk_gateway.kube import Rule, provider_rules

DEPLOY_ROLE = "tyk-api-management"
PREVIEW_ROLE = "tyk-api-management-preview"


def preview_rules(control_service: str) -> tuple[Rule, ...]:
    return (Rule(("services/proxy",), ("get",), (control_service,)),)


def policy_rules(rules: Sequence[Rule]) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    return [
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[""],
            resources=list(rule.resources),
            verbs=list(rule.verbs),
            resource_names=list(rule.resource_names) or None,
        )
        for rule in rules
    ]


def subjects(items: Sequence[RbacSubject]) -> list[k8s.rbac.v1.SubjectArgs]:
    return [
        k8s.rbac.v1.SubjectArgs(
            kind=s.kind,
            name=s.name,
            namespace=s.namespace,
            api_group=None if s.kind == "ServiceAccount" else "rbac.authorization.k8s.io",
        )
        for s in items
    ]


@dataclass
class ApiManagementAccessArgs:
    namespace: pulumi.Input[str]
    control_service: str
    deploy_subjects: Sequence[RbacSubject]
    preview_subjects: Sequence[RbacSubject]
    labels: dict[str, str]


class ApiManagementAccess(pulumi.ComponentResource):
    """Roles and RoleBindings that let the named subjects manage APIs through the API server, and no more."""

    resources: list[pulumi.Resource]

    def __init__(
        self, name: str, args: ApiManagementAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tyk-aks:index:ApiManagementAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.resources = []
        grants = (
            (DEPLOY_ROLE, provider_rules(args.control_service), args.deploy_subjects),
            (PREVIEW_ROLE, preview_rules(args.control_service), args.preview_subjects),
        )
        for role_name, rules, who in grants:
            if not who:
                continue
            metadata = k8s.meta.v1.ObjectMetaArgs(
                name=role_name, namespace=args.namespace, labels=args.labels
            )
            role = k8s.rbac.v1.Role(
                f"{name}-{role_name}", metadata=metadata, rules=policy_rules(rules), opts=child
            )
            binding = k8s.rbac.v1.RoleBinding(
                f"{name}-{role_name}",
                metadata=metadata,
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=role_name
                ),
                subjects=subjects(who),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[role]),
            )
            self.resources += [role, binding]
        self.register_outputs({})
