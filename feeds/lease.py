"""The builder's lease: an exclusive file lock in the state directory. Whoever holds it
is the one process that scans, builds and publishes into that directory; the kernel
frees it when that process exits, however it exits. Standard library only, because the
web workers ask it whether a builder is running (for /healthz)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LEASE_FILE = "watcher.lock"


class Lease:
    """An exclusive, non-blocking file lock, held until release or process exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def is_held(path: Path) -> bool:
    """Whether some process holds the lease at `path` now. A shared lock is refused
    exactly while an exclusive one is held; when granted, it is dropped at once (a
    builder waiting for the lease at that instant tries again at its next tick)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
