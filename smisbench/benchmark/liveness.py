"""Is the process behind a ``running`` run (or a cell lease) still there?

A run records its host name, pid and the process's start time, and a background thread
renews a heartbeat timestamp while it works. On the same host the process itself is asked:
a pid that is gone (or a zombie), or that now belongs to a process started at another time
(the pid was reused), means the run is gone. Where that cannot be told (another host, or no
``/proc``), a heartbeat older than ``STALE_AFTER`` intervals means it is gone.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HEARTBEAT_S = 10.0  # how often a working run renews its heartbeat and its leases
STALE_AFTER = 6  # missed heartbeats after which a run whose process cannot be asked is taken as gone


@dataclass(frozen=True)
class ProcessId:
    """Who writes: enough to find the process again and to notice a reused pid."""

    hostname: str
    pid: int
    start: str | None  # "<boot id>:<start tick>" on Linux; None where it cannot be read


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) from /proc, or None."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name in parentheses may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


def process_start(pid: int) -> str | None:
    """The process's start as a token that differs between two processes that had the same pid."""
    stat = _stat(pid)
    boot = _read("/proc/sys/kernel/random/boot_id")
    return None if stat is None or boot is None else f"{boot.strip()}:{stat[1]}"


def this_process() -> ProcessId:
    return ProcessId(socket.gethostname(), os.getpid(), process_start(os.getpid()))


def pid_alive(pid: int) -> bool | None:
    """True, False, or None where this platform cannot tell."""
    if pid <= 0:
        return False
    stat = _stat(pid)
    if stat is not None:
        return stat[0] not in ("Z", "X")  # a zombie has exited; only its exit status is left
    if Path("/proc/self/stat").exists():
        return False  # /proc works here, and there is no such process
    if os.name == "nt":
        return None  # os.kill(pid, 0) would send Ctrl-C on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def _age_s(stamp: str | None, now: _dt.datetime) -> float:
    if not stamp:
        return float("inf")
    then = _dt.datetime.fromisoformat(stamp)
    if then.tzinfo is None:
        then = then.replace(tzinfo=_dt.timezone.utc)
    return (now - then).total_seconds()


def is_gone(hostname: str | None, pid: int | None, start: str | None, heartbeat_at: str | None,
            heartbeat_s: float | None, *, me: ProcessId | None = None, now: _dt.datetime | None = None) -> bool:
    """Whether the process that wrote a ``running`` row is gone (see the module docstring)."""
    me = me or this_process()
    if hostname == me.hostname and pid is not None:
        alive = pid_alive(int(pid))
        if alive is False:
            return True
        current = process_start(int(pid)) if alive else None
        if current is not None and start is not None:
            return current != start
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return _age_s(heartbeat_at, now) > STALE_AFTER * (heartbeat_s or HEARTBEAT_S)


class Heartbeat:
    """Calls ``beat`` every ``interval_s`` from a daemon thread until stopped; a failed beat is retried next time."""

    def __init__(self, beat: Callable[[], None], interval_s: float, close: Callable[[], None] | None = None):
        self._beat, self.interval_s, self._close = beat, interval_s, close
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="smisbench-heartbeat", daemon=True)
        self.beats = 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._beat()
                self.beats += 1
            except Exception:  # noqa: BLE001 - a busy or briefly locked store; the next beat tries again
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._close is not None:
            self._close()
