"""One list call shared by many reads.

``pulumi refresh`` calls ``read`` once per resource, four at a time. Instead of one GET
per resource, every read looks its object up in a short-lived snapshot of
``GET /tyk/apis`` (or ``/tyk/policies``) that concurrent readers share; the first reader
fetches it while the others wait. Writes invalidate the snapshot.

The gateway lists what it has *loaded*, not what is on disk, so an object written but not
reloaded yet looks missing. Before reporting anything as gone, a reader asks the gateway
to load its files (a blocking local reload) and looks at a fresh snapshot; readers that
miss at the same time share that one reload and list call, and a miss in a snapshot that was
itself taken after such a reload is final: a refresh that finds k objects missing costs one
local reload and two list calls, not k of each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Item = dict[str, Any]


def by_id(items: Iterable[Item], id_of: Callable[[Item], Any]) -> dict[str, list[Item]]:
    """``items`` grouped by their id (policies may repeat one across orgs); items without a string id are left out."""
    grouped: dict[str, list[Item]] = {}
    for item in items:
        object_id = id_of(item)
        if isinstance(object_id, str):
            grouped.setdefault(object_id, []).append(item)
    return grouped


@dataclass(frozen=True)
class _Snapshot:
    items: dict[str, list[Item]]
    fetched_at: float
    epoch: int
    serial: int
    after_reload: bool


class SharedList:
    def __init__(
        self,
        fetch: Callable[[], list[Item]],
        key: str | Callable[[Item], Any],
        ttl: float,
        load_files: Callable[[], None],
    ) -> None:
        self._fetch = fetch
        self._key: Callable[[Item], Any] = (lambda item: item.get(key)) if isinstance(key, str) else key
        self._ttl = ttl
        self._load_files = load_files
        self._cond = threading.Condition()
        self._snapshot: _Snapshot | None = None
        self._epoch = 0
        self._serial = 0
        self._fetching = False

    def invalidate(self) -> None:
        """Called after every write: later reads must not be served from an older snapshot."""
        with self._cond:
            self._epoch += 1

    def find(self, object_id: str) -> list[Item]:
        """All live objects with this id (policies may repeat an id across orgs); [] when gone."""
        snapshot = self._get(None)
        found = snapshot.items.get(object_id)
        if found or snapshot.after_reload:
            return found or []
        return self._get(snapshot).items.get(object_id, [])

    def _usable(self, snapshot: _Snapshot | None, missed_in: _Snapshot | None) -> bool:
        if snapshot is None or snapshot.epoch != self._epoch:
            return False
        if time.monotonic() - snapshot.fetched_at > self._ttl:
            return False
        return missed_in is None or (snapshot.after_reload and snapshot.serial > missed_in.serial)

    def _get(self, missed_in: _Snapshot | None) -> _Snapshot:
        """A usable snapshot; with ``missed_in``, one taken after a reload newer than that snapshot."""
        with self._cond:
            while True:
                if self._usable(self._snapshot, missed_in):
                    assert self._snapshot is not None
                    return self._snapshot
                if not self._fetching:
                    break
                self._cond.wait()
            self._fetching = True
            epoch = self._epoch
        try:
            if missed_in is not None:
                self._load_files()
            items = by_id(self._fetch(), self._key)
        except BaseException:
            with self._cond:
                self._fetching = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._serial += 1
            snapshot = _Snapshot(items, time.monotonic(), epoch, self._serial, missed_in is not None)
            self._snapshot = snapshot
            self._fetching = False
            self._cond.notify_all()
        return snapshot
