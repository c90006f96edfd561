"""exclusive_lock: the lock that lets one of several processes sharing a store train a model while the others wait."""

from __future__ import annotations

import threading
from pathlib import Path

from smisbench.io import exclusive_lock


def test_a_second_holder_waits_until_the_first_lets_go(tmp_path: Path):
    lock = tmp_path / "sub" / "train.lock"
    events: list[str] = []
    first_in, second_tried = threading.Event(), threading.Event()

    def first() -> None:
        with exclusive_lock(lock):
            events.append("first in")
            first_in.set()
            second_tried.wait(10)  # the second is blocked on the lock now (or about to be)
            for _ in range(200000):  # keep holding a little while it waits
                pass
            events.append("first out")

    def second() -> None:
        first_in.wait(10)
        second_tried.set()
        with exclusive_lock(lock):
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert events == ["first in", "first out", "second in"]
    assert lock.is_file()  # its folder was made


def test_the_lock_is_free_again_after_an_exception(tmp_path: Path):
    lock = tmp_path / "x.lock"
    try:
        with exclusive_lock(lock):
            raise RuntimeError("planted")
    except RuntimeError:
        pass
    done = []
    thread = threading.Thread(target=lambda: done.append(exclusive_lock(lock).__enter__() is None))
    thread.start()
    thread.join(10)
    assert done == [True]
