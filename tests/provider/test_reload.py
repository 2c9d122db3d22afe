"""ReloadCoordinator: O(1) reloads for concurrent writes, and always one after the last write."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tyk_gateway.reload import ReloadCoordinator


class Recorder:
    """A fake group reload that records when each reload started and can be slowed down or failed."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.started: list[float] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.started.append(time.monotonic())
            fail = self.fail_next > 0
            self.fail_next -= fail
        time.sleep(self.duration)
        if fail:
            raise RuntimeError("reload failed")


def test_a_single_write_reloads_once_after_it() -> None:
    reload = Recorder()
    coordinator = ReloadCoordinator(reload)
    with coordinator.write():
        written_at = time.monotonic()
    assert len(reload.started) == 1 and reload.started[0] >= written_at
    assert coordinator.reloads == 1


def test_sequential_writes_each_get_a_reload() -> None:
    reload = Recorder()
    coordinator = ReloadCoordinator(reload)
    for _ in range(3):
        with coordinator.write():
            pass
    assert len(reload.started) == 3


@pytest.mark.parametrize("workers", [4, 50])
def test_concurrent_writes_share_few_reloads_and_the_last_one_follows_every_write(workers: int) -> None:
    reload = Recorder(duration=0.005)
    coordinator = ReloadCoordinator(reload)
    finished: list[float] = []
    lock = threading.Lock()

    def write(_: int) -> None:
        with coordinator.write():
            time.sleep(0.002)  # the HTTP call
            with lock:
                finished.append(time.monotonic())

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, range(200)))
    assert len(finished) == 200
    # O(1): a handful when the pool ramps up or drains, never one per write.
    assert 1 <= len(reload.started) <= 10, reload.started
    assert max(reload.started) >= max(finished)


def test_a_write_finishing_during_a_reload_gets_a_new_one() -> None:
    reload = Recorder(duration=0.1)
    coordinator = ReloadCoordinator(reload)

    def writer() -> None:
        with coordinator.write():
            pass

    one = threading.Thread(target=writer)
    one.start()
    time.sleep(0.03)  # the first reload is now in flight
    with coordinator.write():
        late_write_at = time.monotonic()
    one.join()
    assert len(reload.started) == 2
    assert reload.started[1] >= late_write_at


def test_a_failed_write_still_reloads_and_keeps_its_own_error() -> None:
    reload = Recorder()
    coordinator = ReloadCoordinator(reload)
    reload.fail_next = 1
    with pytest.raises(ValueError, match="write failed"), coordinator.write():
        raise ValueError("write failed")
    assert len(reload.started) == 1


def test_a_failed_reload_fails_the_write_and_the_next_write_retries_it() -> None:
    reload = Recorder()
    reload.fail_next = 1
    coordinator = ReloadCoordinator(reload)
    with pytest.raises(RuntimeError, match="reload failed"), coordinator.write():
        pass
    with coordinator.write():
        pass
    assert len(reload.started) == 2 and coordinator.reloads == 1
