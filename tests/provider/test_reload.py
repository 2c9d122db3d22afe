"""ReloadCoordinator: O(1) reloads for concurrent writes, and always one after the last write."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tyk_gateway.reload import Change, ReloadCoordinator


class Recorder:
    """A fake group reload that records when each reload started and can be slowed down or failed."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.started: list[float] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def __call__(self, changes: list[Change] | None = None) -> None:
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
    # Group commit: a batch holds about as many writes as there are workers, never one reload per write.
    assert 1 <= len(reload.started) <= 200 // workers + 10, reload.started
    assert sum(coordinator.batches) == 200
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


def test_a_write_whose_batch_reload_fails_fails_too() -> None:
    """Two writes share one reload; when it fails, neither is reported done."""
    reload = Recorder()
    reload.fail_next = 1
    coordinator = ReloadCoordinator(reload)
    slow_started = threading.Event()
    errors: dict[str, BaseException | None] = {}

    def write(name: str, seconds: float) -> None:
        try:
            with coordinator.write(Change("api", name, {"api_id": name})):
                if name == "slow":
                    slow_started.set()
                time.sleep(seconds)
            errors[name] = None
        except RuntimeError as error:
            errors[name] = error

    slow = threading.Thread(target=write, args=("slow", 0.1))
    slow.start()
    slow_started.wait()
    write("fast", 0.0)  # finishes while "slow" is still writing: its reload is the batch's
    slow.join()
    assert len(reload.started) == 1  # one reload for both...
    assert isinstance(errors["fast"], RuntimeError) and isinstance(
        errors["slow"], RuntimeError
    )  # ...failing both
    assert coordinator.batches == [2]
