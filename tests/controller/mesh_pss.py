"""A checker for the Kubernetes Pod Security Standards, `baseline` and `restricted` profiles.

Written from the specification (kubernetes.io/docs/concepts/security/pod-security-standards, policy version
"latest", Kubernetes 1.31+), control by control, so it is independent of the code that builds pods. It
returns every violation as "<field>: <why>"; an empty list means the pod passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(kind) or []):
            yield f"spec.{kind}[{i}]", container


def baseline(pod: Mapping[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    problems = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(f"spec.{key}: host namespaces are forbidden")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("spec.securityContext.windowsOptions.hostProcess: forbidden")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"spec.volumes[{volume.get('name')}]: hostPath volumes are forbidden")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"spec.securityContext.sysctls[{sysctl.get('name')}]: not a safe sysctl")
    problems += _selinux("spec.securityContext", pod_sc)
    problems += _seccomp_not_unconfined("spec.securityContext", pod_sc)
    problems += _apparmor("spec.securityContext", pod_sc)
    for key, value in ((pod.get("metadata") or {}).get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            problems.append(f"metadata.annotations[{key}]: AppArmor profile {value!r} is forbidden")
    for where, container in _containers(spec):
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{where}.securityContext.privileged: forbidden")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{where}.securityContext.windowsOptions.hostProcess: forbidden")
        added = set((sc.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            problems.append(
                f"{where}.securityContext.capabilities.add: {sorted(added - BASELINE_CAPABILITIES)}"
            )
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}.ports: hostPort {port['hostPort']} is forbidden")
        if sc.get("procMount") not in (None, "Default"):
            problems.append(f"{where}.securityContext.procMount: must be Default")
        problems += _selinux(f"{where}.securityContext", sc)
        problems += _seccomp_not_unconfined(f"{where}.securityContext", sc)
        problems += _apparmor(f"{where}.securityContext", sc)
    return problems


def _selinux(where: str, sc: Mapping[str, Any]) -> list[str]:
    options = sc.get("seLinuxOptions") or {}
    problems = []
    if options.get("type", "") not in SELINUX_TYPES:
        problems.append(f"{where}.seLinuxOptions.type: {options['type']!r} is forbidden")
    for key in ("user", "role"):
        if options.get(key):
            problems.append(f"{where}.seLinuxOptions.{key}: must not be set")
    return problems


def _seccomp_not_unconfined(where: str, sc: Mapping[str, Any]) -> list[str]:
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        return [f"{where}.seccompProfile.type: Unconfined is forbidden"]
    return []


def _apparmor(where: str, sc: Mapping[str, Any]) -> list[str]:
    profile = (sc.get("appArmorProfile") or {}).get("type")
    if profile not in (None, "RuntimeDefault", "Localhost"):
        return [f"{where}.appArmorProfile.type: {profile!r} is forbidden"]
    return []


def restricted(pod: Mapping[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    problems = baseline(pod)
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"spec.volumes[{volume.get('name')}]: volume type {sorted(kinds)} is not allowed")
    if pod_sc.get("runAsUser") == 0:
        problems.append("spec.securityContext.runAsUser: must not be 0")
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
    windows = (spec.get("os") or {}).get("name") == "windows"
    for where, container in _containers(spec):
        sc = container.get("securityContext") or {}
        if not windows and sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}.securityContext.allowPrivilegeEscalation: must be false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            problems.append(f"{where}.securityContext.runAsNonRoot: must be true (here or on the pod)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{where}.securityContext.runAsUser: must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is None and not pod_seccomp:
            problems.append(f"{where}.securityContext.seccompProfile: RuntimeDefault or Localhost required")
        capabilities = sc.get("capabilities") or {}
        if not windows and "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}.securityContext.capabilities.drop: must include ALL")
        added = set(capabilities.get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}.securityContext.capabilities.add: only NET_BIND_SERVICE is allowed")
    return problems
