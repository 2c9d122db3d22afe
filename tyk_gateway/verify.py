"""After each batch's group reload: every ready replica serves exactly what the batch wrote.

The gateways share one folder, but each replica serves what *it* loaded at its last reload,
and the group reload travels over Redis pub/sub: a replica that missed it (Redis restarting),
or that read a stale file (SMB attribute caching on Azure Files), keeps serving old content.
So after a batch, for every ready replica:

1. reload it directly and wait (``/tyk/reload?block=true``: it joins the queued group reload
   in the same tick, so it costs the gateway nothing extra, and it is what makes one list
   call enough: after it returns, the replica's list is what it loaded from the folder);
2. what the batch touched, compared with what was written (managed fields, as refresh compares
   them; deleted objects must be absent): for a batch of at most ``GET_LIMIT`` objects of a kind,
   one ``GET /tyk/apis/{id}`` each (a few kB); for a larger one, one list call. Listing every
   object after each four-write batch would move N objects per batch: for 1,000 APIs on three
   replicas, about 750 lists of 2.5 MB each (measured: benchmarks/provider_bench.py);
3. a replica that disagrees is given the newest content again (an idempotent upsert or
   delete: this also repairs a late duplicate of an older write that landed after the
   newer one) and reloaded directly again, until ``wait_seconds`` have passed; then the
   batch fails naming the replica and the objects.

A replica that disappears while it is checked (a pod restarting) is not waited for: it loads
the folder when it starts. Replicas that became ready meanwhile are checked too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .client import GatewayClient, TykGatewayError
from .drift import API_MAP_PATHS, OAS_MAP_PATHS, POLICY_MAP_PATHS, project
from .oas import oas_api_id
from .reload import Change

#: Per kind: how to list the loaded objects, and where a listed object's id is (an OAS API's is in its extension).
LISTS: dict[
    str, tuple[Callable[[GatewayClient], list[dict[str, Any]]], Callable[[Mapping[str, Any]], Any]]
] = {
    "api": (GatewayClient.list_apis, lambda item: item.get("api_id")),
    "policy": (GatewayClient.list_policies, lambda item: item.get("id")),
    "oas": (GatewayClient.list_oas_apis, oas_api_id),
}
GETS: dict[str, Callable[[GatewayClient, str], list[dict[str, Any]]]] = {
    "api": GatewayClient.get_api,
    "policy": GatewayClient.get_policy,
    "oas": GatewayClient.get_oas_api,
}
#: Up to this many objects of a kind in a batch are fetched one by one instead of listing them all.
GET_LIMIT = 4
MAP_PATHS = {"api": API_MAP_PATHS, "policy": POLICY_MAP_PATHS, "oas": OAS_MAP_PATHS}


class ReplicaMismatchError(RuntimeError):
    """A replica still serves something other than what was written after the wait."""


Replica = tuple[str, GatewayClient]


def serves(live: list[dict[str, Any]], kind: str, object_id: str, content: Mapping[str, Any] | None) -> bool:
    id_of = LISTS[kind][1]
    found = [item for item in live if id_of(item) == object_id]
    if content is None:
        return not found
    return any(project(item, content, MAP_PATHS[kind]) == content for item in found)


class ReplicaVerifier:
    def __init__(
        self,
        replicas: Callable[[], list[Replica]],
        rewrite: Callable[[Change], None],
        wait_seconds: float,
        pause: float = 0.5,
    ) -> None:
        self._replicas = replicas
        self._rewrite = rewrite
        self.wait_seconds = wait_seconds
        self._pause = pause
        self.list_calls = 0  # for benchmarks
        self.get_calls = 0
        self._lock = threading.Lock()

    def verify(self, changes: list[Change]) -> None:
        expected: dict[tuple[str, str], Change] = {}
        for change in changes:
            expected[(change.kind, change.object_id)] = change  # the batch's last write of an object wins
        if not expected:
            return
        deadline = time.monotonic() + self.wait_seconds
        rewritten: set[tuple[str, str]] = set()
        checked: set[str] = set()
        failures: dict[str, list[str]] = {}
        while True:
            replicas = [(name, client) for name, client in self._replicas() if name not in checked]
            if not replicas:
                break
            with ThreadPoolExecutor(min(8, len(replicas))) as pool:
                outcomes = list(pool.map(lambda r: self._check(r, expected, deadline, rewritten), replicas))
            for (name, _), bad in zip(replicas, outcomes, strict=True):
                checked.add(name)
                if bad:
                    failures[name] = bad
        if not checked:
            raise ReplicaMismatchError(
                "no ready gateway pod to verify the batch on (is the gateway running?)"
            )
        if failures:
            lines = "; ".join(f"{pod}: {', '.join(objects)}" for pod, objects in sorted(failures.items()))
            raise ReplicaMismatchError(
                f"after {self.wait_seconds:g}s some gateway replicas still don't serve what was written: {lines}"
            )

    def _check(
        self,
        replica: Replica,
        expected: dict[tuple[str, str], Change],
        deadline: float,
        rewritten: set[tuple[str, str]],
    ) -> list[str]:
        name, client = replica
        kinds = sorted({kind for kind, _ in expected})
        while True:
            try:
                client.reload_local()
                live: dict[str, list[dict[str, Any]]] = {}
                for kind in kinds:
                    ids = [object_id for k, object_id in expected if k == kind]
                    if len(ids) <= GET_LIMIT:
                        live[kind] = [item for object_id in ids for item in GETS[kind](client, object_id)]
                        with self._lock:
                            self.get_calls += len(ids)
                    else:
                        live[kind] = LISTS[kind][0](client)
                        with self._lock:
                            self.list_calls += 1
            except TykGatewayError as error:
                if error.status in (None, 404, 502, 503) and not self._still_ready(name):
                    return []  # restarted or gone: a new pod loads the folder when it starts
                if time.monotonic() >= deadline:
                    return [f"unreachable ({error})"]
                time.sleep(self._pause)
                continue
            bad = [
                key
                for key, change in expected.items()
                if not serves(live[key[0]], change.kind, change.object_id, change.content)
            ]
            if not bad:
                return []
            if time.monotonic() >= deadline:
                return [f"{kind} {object_id}" for kind, object_id in bad]
            for key in bad:
                with self._lock:
                    first = key not in rewritten
                    rewritten.add(key)
                if first:
                    self._rewrite(expected[key])  # newest content again: undoes a late older write
            time.sleep(self._pause)

    def _still_ready(self, name: str) -> bool:
        try:
            return any(pod == name for pod, _ in self._replicas())
        except TykGatewayError:
            return True
