"""Bounded load tools for a feeds server running on this machine (loopback only), and
process hygiene for the tests that start one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Protocol


class _Stoppable(Protocol):
    process: subprocess.Popen[bytes]

    def stop(self, timeout: float = ...) -> int: ...


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def stop_server(server: _Stoppable) -> int:
    """`server.stop()`; when the server does not exit in time, `stop()` kills only the
    master process, so also kill the workers it had started (by pid), lest they keep the
    port and the content directory busy after the test, then re-raise."""
    workers = child_pids(server.process.pid) if server.process.poll() is None else []
    try:
        return server.stop()
    except subprocess.TimeoutExpired:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(pid, signal.SIGKILL)
        raise
