"""Group commit of gateway reloads: a write returns only once a reload that covers it has succeeded.

The gateway serves only what it loaded at its last reload, so every write must be followed
by a reload (and, with replica verification, a check that every replica serves it). One
reload per write would be wasteful, so writes are batched like a database group commit:

1. **Batch.** A write that finishes while other writes are still running waits for them.
   The writer that finds no write running (and no reload in flight) takes every finished
   write as one batch and runs the batch's reload once, for all of them. Under the plugin's
   four worker threads a batch holds up to four writes.
2. **Start after the write.** A batch holds only writes that had finished when its reload
   started, so its reload always follows every write it covers.
3. **Nobody is told "done" early.** Every write of a batch waits for the batch's reload;
   if that reload (or its verification) fails, every write of the batch fails with that
   error. Pulumi then records none of them as done, and the next `pulumi up` redoes them.

Failed writes join batches too (a dropped response may hide an applied change): they are
reloaded for, but keep their own error, and nothing is verified for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """What one write left on the gateway: ``content`` None means the object was deleted."""

    kind: str  # "api", "oas" or "policy"
    object_id: str
    content: dict[str, Any] | None


class _Ticket:
    __slots__ = ("change", "done", "error")

    def __init__(self, change: Change | None) -> None:
        self.change = change
        self.done = False
        self.error: BaseException | None = None


class ReloadCoordinator:
    """Thread-safe group commit around one gateway group's reload (and verification) call."""

    def __init__(self, reload: Callable[[list[Change]], None]) -> None:
        self._reload = reload
        self._cond = threading.Condition()
        self._active = 0  # writes in progress
        self._pending: list[_Ticket] = []  # finished writes not yet in a batch
        self._in_flight = False
        self.reloads = 0  # completed (successful) batch reloads, for tests and benchmarks
        self.batches: list[int] = []  # size of every batch, for benchmarks

    @contextmanager
    def write(self, change: Change | None = None) -> Iterator[None]:
        """Wrap one gateway write; on exit, wait until a reload covering it succeeded (or raise)."""
        with self._cond:
            self._active += 1
        failed = True
        try:
            yield
            failed = False
        finally:
            ticket = _Ticket(None if failed else change)
            with self._cond:
                self._active -= 1
                self._pending.append(ticket)
                self._cond.notify_all()
            if failed:
                try:
                    self._settle(ticket)
                except Exception as error:  # the write's own error is the one to report
                    log.warning("gateway reload after a failed write also failed: %s", error)
            else:
                self._settle(ticket)

    def _settle(self, ticket: _Ticket) -> None:
        while True:
            with self._cond:
                while not ticket.done and (self._active > 0 or self._in_flight):
                    self._cond.wait()
                if not ticket.done:
                    batch, self._pending = self._pending, []
                    self._in_flight = True
            if ticket.done:
                if ticket.error is not None:
                    raise ticket.error
                return
            self._run(batch)

    def _run(self, batch: list[_Ticket]) -> None:
        error: BaseException | None = None
        try:
            self._reload([t.change for t in batch if t.change is not None])
        except BaseException as caught:  # handed to every write of the batch
            error = caught
        with self._cond:
            for t in batch:
                t.done = True
                t.error = error
            self._in_flight = False
            if error is None:
                self.reloads += 1
            self.batches.append(len(batch))
            self._cond.notify_all()
