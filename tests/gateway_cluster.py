"""Several gateway replicas sharing one folder, with a reload bus standing for Redis pub/sub.

Each replica is a ``GatewayEmulator`` on the same root folder (the shared Azure Files volume).
``/tyk/reload/group`` on any replica publishes on the bus, and every subscribed replica queues a
reload (as ``groupResetHandler`` publishing ``GroupReload``, and each gateway's pub/sub loop
queuing a local reload, do in gateway/api.go and gateway/redis_signals.go). Test switches:

* ``deaf``: the replica misses bus messages (a reload lost while Redis restarted); a direct
  ``/tyk/reload`` on it still works;
* ``stale``: the replica's reloads keep serving what it had (SMB attribute caching that never
  clears within the test), so only the replica's name can be reported;
* ``restart(name)``: the pod goes away (its server stops) and a new pod with a new name starts,
  loading the folder as a starting gateway does.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from tests.gateway_emulator import GatewayEmulator, _json, _Reply


class Replica(GatewayEmulator):
    def __init__(
        self, name: str, cluster: GatewayCluster, root: Path, secret: str, reload_interval: float
    ) -> None:
        super().__init__(root, secret=secret, reload_interval=reload_interval)
        self.name = name
        self.cluster = cluster
        self.deaf = False
        self.stale = False
        self.ready = True

    def handle(self, method: str, raw_path: str, query: dict[str, list[str]], body: bytes) -> _Reply:
        if raw_path.rstrip("/") == "/tyk/reload/group" and method == "GET":
            with self._lock:
                self.stats.reload_requested.append(time.monotonic())
            self.cluster.publish_group_reload()
            return _json(200, {"status": "ok", "message": ""})
        return super().handle(method, raw_path, query, body)

    def do_reload(self) -> None:
        if self.stale:
            with self._lock:
                self.stats.reloads += 1
            return
        super().do_reload()


class GatewayCluster:
    """N replicas on one folder; ``replicas`` maps pod name to the running replica."""

    def __init__(self, root: Path, secret: str, replicas: int = 3, reload_interval: float = 0.01) -> None:
        self.root = root
        self.secret = secret
        self.reload_interval = reload_interval
        self._names = (f"gateway-tyk-gateway-7d9f-{i:05d}" for i in itertools.count())
        self.replicas: dict[str, Replica] = {}
        self.bus_messages = 0
        for _ in range(replicas):
            self._start()

    def _start(self) -> Replica:
        replica = Replica(next(self._names), self, self.root, self.secret, self.reload_interval)
        replica.start()
        replica.do_reload()  # a starting gateway loads the folder
        self.replicas[replica.name] = replica
        return replica

    def publish_group_reload(self) -> None:
        self.bus_messages += 1
        for replica in list(self.replicas.values()):
            if not replica.deaf:
                replica.queue_reload(wait=False)

    def restart(self, name: str) -> Replica:
        """The pod stops; a new pod (new name) starts and loads the folder."""
        self.replicas.pop(name).stop()
        return self._start()

    def stop(self) -> None:
        for replica in self.replicas.values():
            replica.stop()

    def __enter__(self) -> GatewayCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def first(self) -> Replica:
        return next(iter(self.replicas.values()))

    def calls(self, route: str) -> dict[str, int]:
        return {name: r.stats.calls[route] for name, r in self.replicas.items()}

    def loaded(self, kind: str = "api") -> dict[str, dict[str, Any]]:
        return {
            name: (r.loaded_apis if kind == "api" else r.loaded_policies) for name, r in self.replicas.items()
        }
