"""Coalesced gateway reloads: k concurrent writes cost O(1) group reloads, never zero.

The gateway serves only what it loaded at its last reload, so every write must be
followed by a reload. Sending one per write is wasteful: the gateway collapses all
reloads queued within its 1-second ticker into one anyway. Two rules keep the count low
and the guarantee intact:

1. **Hand-off.** A writer that finishes while other writes are still running does not
   reload; it hands the duty to them. The writer that finishes last (no other write
   in progress) reloads, and that covers everybody before it. Under the plugin's four
   worker threads a burst of k writes therefore costs about one reload.
2. **Start after the write.** A reload only counts for a write if it *started* after the
   write finished. A writer that finds a reload already in flight waits for it and then
   makes (or joins) a fresh one; many such writers share that fresh reload.

Failed writes count as writes (a dropped response may hide an applied change), and the
last writer out reloads even when its own write failed, so there is always at least one
reload after the last change. The trade-off: a write handed off to a still-running
writer returns before its reload is sent; if the process were killed in between, the
change would wait for the next reload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class ReloadCoordinator:
    """Thread-safe bookkeeping around one gateway group's reload call."""

    def __init__(self, reload: Callable[[], None]) -> None:
        self._reload = reload
        self._cond = threading.Condition()
        self._active = 0  # writes in progress
        self._written = 0  # writes finished so far (a generation counter)
        self._covered = 0  # highest generation that a completed reload started after
        self._in_flight = False
        self.reloads = 0  # completed reloads, for tests and benchmarks

    @contextmanager
    def write(self) -> Iterator[None]:
        """Wrap one gateway write. On exit, reload unless another write will do it later."""
        with self._cond:
            self._active += 1
        failed = True
        try:
            yield
            failed = False
        finally:
            with self._cond:
                self._active -= 1
                self._written += 1
                generation = self._written
                last_out = self._active == 0
            if last_out:
                if failed:
                    try:
                        self._reload_through(generation)
                    except Exception as error:  # the write's own error is the one to report
                        log.warning("gateway reload after a failed write also failed: %s", error)
                else:
                    self._reload_through(generation)

    def _reload_through(self, generation: int) -> None:
        """Return once a reload that started after write number ``generation`` has completed."""
        while True:
            with self._cond:
                while self._in_flight and self._covered < generation:
                    self._cond.wait()
                if self._covered >= generation:
                    return
                self._in_flight = True
                target = self._written
            try:
                self._reload()
            except BaseException:
                with self._cond:
                    self._in_flight = False
                    self._cond.notify_all()
                raise
            with self._cond:
                self._in_flight = False
                self._covered = max(self._covered, target)
                self.reloads += 1
                self._cond.notify_all()
