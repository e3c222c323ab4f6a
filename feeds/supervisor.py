"""The process that `feeds serve` becomes: the parent of the HTTP server and of the
builder (`python -m feeds.builder`), which it keeps running.

- SIGTERM or SIGINT is passed on to both children; once they have exited, so does
  the supervisor, with status 0.
- A builder that exits is started again, with a log line, after a pause that doubles
  with each recent exit (a builder that fails at once does not spin). One that keeps exiting
  (`RestartPolicy.max_deaths` times within `RestartPolicy.window` seconds) stops the
  service: the supervisor stops the server and exits with one line saying why, since
  a server without a builder would go on serving feeds that never change again.
- A server that exits takes the builder down with it, and the supervisor exits with
  the server's status.
- Each child runs in a process group of its own, and gets SIGTERM from the kernel if
  the supervisor dies: no server goes on answering without its builder, and killing a
  child that ignored SIGTERM kills the processes it started (granian's workers) too.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

EXIT_BUILDER_FAILED = 1
# What the environment of both children says: a supervisor watches them (its pid).
# The builder exits when it loses that parent; gunicorn's hooks stay quiet about it.
SUPERVISOR_ENV = "SERVE_FEEDS_SUPERVISOR_PID"  # not FEEDS_...: that prefix is for settings
POLL_SECONDS = 0.1  # how often the children are looked at; a restart waits at most this
STOP_TIMEOUT = 15.0  # seconds a child has to exit after SIGTERM before it is killed
# The pause before starting a builder again: this, doubled for each other exit within the
# policy's window, at most RESTART_PAUSE_MAX.
RESTART_PAUSE = 0.5
RESTART_PAUSE_MAX = 30.0
_PR_SET_PDEATHSIG = 1  # prctl(2), Linux

log = logging.getLogger("feeds.supervisor")


@dataclass(frozen=True)
class RestartPolicy:
    """When to stop restarting the builder: `max_deaths` exits within `window` seconds."""

    max_deaths: int = 5
    window: float = 60.0


class Child(Protocol):
    """What the supervisor needs of a child process (a `subprocess.Popen`)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


Spawn = Callable[[Sequence[str]], Child]
Clock = Callable[[], float]


class _GroupProcess(subprocess.Popen[bytes]):
    """A child leading a process group of its own: killing it kills the group."""

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


def popen(env: Mapping[str, str]) -> Spawn:
    """Starts children as real processes with `env`, sharing this one's output, each in
    a process group of its own and ended by the kernel should this process die."""
    parent = os.getpid()

    def end_with_parent() -> None:
        # Between fork and exec, in the child. A SIGKILLed supervisor runs no code, so
        # only the kernel can tell the children; the parent check closes the race of
        # one that died before the request was made.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    def spawn(argv: Sequence[str]) -> Child:
        # argv is built by feeds.cli; no shell is involved.
        return _GroupProcess(argv, env=dict(env), process_group=0, preexec_fn=end_with_parent)

    return spawn


class Supervisor:
    """Runs the server and the builder until a signal, the server's exit, or a builder
    that keeps dying ends it; `run` returns the exit status."""

    def __init__(
        self,
        server_argv: Sequence[str],
        builder_argv: Sequence[str],
        spawn: Spawn,
        policy: RestartPolicy = RestartPolicy(),
        clock: Clock = time.monotonic,
        poll_seconds: float = POLL_SECONDS,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.server_argv = tuple(server_argv)
        self.builder_argv = tuple(builder_argv)
        self.spawn = spawn
        self.policy = policy
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.stop_timeout = stop_timeout
        self.server: Child | None = None
        self.builder: Child | None = None
        self.signalled: int | None = None
        self._wake = threading.Event()
        self._deaths: collections.deque[float] = collections.deque()
        self._restart_at: float | None = None  # when a builder that exited starts again
        self._signalled: set[int] = set()  # pids of the children sent a stopping signal

    def handle_signals(self) -> None:
        """Makes SIGTERM and SIGINT stop the service (call from the main thread)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only the first signal acts: a second one may run this handler while the first
        # is inside _wake.set() holding its lock, which would then wait on itself.
        if self.signalled is None:
            self.stop(signum)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Passes `signum` on to both children; `run` then waits for them and returns 0."""
        self.signalled = signum
        for child in (self.server, self.builder):
            self._signal(child, signum)
        self._wake.set()

    def _signal(self, child: Child | None, signum: int) -> None:
        """Sends `signum` to `child` once: a second SIGTERM can catch a process (the
        builder, granian's master) inside the handler of the first and hang it."""
        if child is not None and child.pid not in self._signalled and child.poll() is None:
            self._signalled.add(child.pid)
            child.send_signal(signum)

    def run(self) -> int:
        self.builder = self.spawn(self.builder_argv)
        self.server = self.spawn(self.server_argv)
        while True:
            if self.signalled is not None:
                self._stop_children(self.signalled)
                return 0
            status = self.server.poll()
            if status is not None:
                log.error("the server exited with status %d; stopping the builder", status)
                self.server.kill()  # its workers, which would go on answering without it
                self._stop_children(signal.SIGTERM)
                return status if status >= 0 else 128 - status
            died = self.builder.poll() if self._restart_at is None else None
            if died is not None and self.signalled is None:
                if self._gives_up(died):
                    self._stop_children(signal.SIGTERM)
                    return EXIT_BUILDER_FAILED
                pause = min(RESTART_PAUSE_MAX, RESTART_PAUSE * 2 ** (len(self._deaths) - 1))
                log.warning(
                    "the builder (pid %d) exited with status %d; starting it again in %g s",
                    self.builder.pid,
                    died,
                    pause,
                )
                self._restart_at = self.clock() + pause
            if self._restart_at is not None and self.clock() >= self._restart_at:
                self._restart_at = None
                self.builder = self.spawn(self.builder_argv)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _gives_up(self, status: int) -> bool:
        now = self.clock()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - self.policy.window:
            self._deaths.popleft()
        if len(self._deaths) < self.policy.max_deaths:
            return False
        print(
            f"feeds: the builder exited {len(self._deaths)} times within {self.policy.window:g} s "
            f"(last status {status}); stopping the server rather than serve feeds that no longer update",
            file=sys.stderr,
            flush=True,
        )
        return True

    def _stop_children(self, signum: int) -> None:
        children = [child for child in (self.server, self.builder) if child is not None]
        for child in children:
            self._signal(child, signum)
        deadline = self.clock() + self.stop_timeout
        for child in children:
            try:
                child.wait(max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                log.error(
                    "pid %d did not exit within %g s of the signal; killing it", child.pid, self.stop_timeout
                )
                child.kill()
                child.wait()
