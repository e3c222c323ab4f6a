"""The supervisor of `feeds serve` with fake children: its restart policy, and what it
does when the server exits or a signal comes (the real processes: test_builder.py)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
from collections.abc import Sequence

import pytest

from feeds.supervisor import EXIT_BUILDER_FAILED, RestartPolicy, Supervisor

SERVER, BUILDER = ("server",), ("builder",)


class FakeChild:
    """A child that exits by itself after `lives` polls (never, when None), and on a
    signal unless it `ignores_signals`."""

    def __init__(
        self, pid: int, lives: int | None = None, status: int = 1, ignores_signals: bool = False
    ) -> None:
        self.pid = pid
        self.lives = lives
        self.status = status
        self.ignores_signals = ignores_signals
        self.returncode: int | None = None
        self.signals: list[int] = []
        self.killed = False

    def poll(self) -> int | None:
        if self.returncode is None and self.lives is not None:
            self.lives -= 1
            if self.lives <= 0:
                self.returncode = self.status
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if not self.ignores_signals:
            self.returncode = -sig

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired("fake", timeout or 0)
        return self.returncode

    def kill(self) -> None:
        self.killed = True
        self.returncode = -signal.SIGKILL


class Clock:
    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Spawner:
    """Makes the children the scenario asks for, one list per command."""

    def __init__(self, servers: list[FakeChild], builders: list[FakeChild], steady: FakeChild) -> None:
        self.plans = {SERVER: list(servers), BUILDER: list(builders)}
        self.steady = steady
        self.spawned: dict[tuple[str, ...], list[FakeChild]] = {SERVER: [], BUILDER: []}

    def __call__(self, argv: Sequence[str]) -> FakeChild:
        plan = self.plans[tuple(argv)]
        child = plan.pop(0) if plan else self.steady
        self.spawned[tuple(argv)].append(child)
        return child


def supervisor(spawner: Spawner, policy: RestartPolicy, clock: Clock) -> Supervisor:
    return Supervisor(SERVER, BUILDER, spawner, policy, clock=clock, poll_seconds=0, stop_timeout=5)


def test_a_builder_that_keeps_dying_stops_the_server_with_one_clear_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = FakeChild(1)
    dying = [FakeChild(10 + n, lives=1, status=70) for n in range(3)]
    spawner = Spawner([server], dying, FakeChild(99))
    status = supervisor(spawner, RestartPolicy(max_deaths=3, window=60), Clock(step=1)).run()
    assert status == EXIT_BUILDER_FAILED
    assert spawner.spawned[BUILDER] == dying  # started twice more, then no more
    assert server.signals == [signal.SIGTERM]
    # (Log records go wherever an earlier test configured the `feeds` logger: not compared.)
    errors = capsys.readouterr().err.splitlines()
    assert [line for line in errors if line.startswith("feeds: ")] == [
        "feeds: the builder exited 3 times within 60 s (last status 70); "
        "stopping the server rather than serve feeds that no longer update"
    ]


def test_builder_deaths_further_apart_than_the_window_are_restarted_for_ever() -> None:
    dying = [FakeChild(10 + n, lives=1) for n in range(6)]
    steady = FakeChild(99)
    server = FakeChild(1, lives=40, status=3)  # ends the scenario
    spawner = Spawner([server], dying, steady)
    # Each look at the clock moves it 100 s on: no two deaths within 60 s.
    status = supervisor(spawner, RestartPolicy(max_deaths=2, window=60), Clock(step=100)).run()
    assert status == 3
    assert spawner.spawned[BUILDER] == [*dying, steady]
    assert steady.signals == [signal.SIGTERM]


def test_the_server_exiting_stops_the_builder_and_gives_its_status() -> None:
    server, builder = FakeChild(1, lives=3, status=4), FakeChild(2)
    status = supervisor(Spawner([server], [builder], FakeChild(99)), RestartPolicy(), Clock()).run()
    assert status == 4
    assert builder.signals == [signal.SIGTERM]


def test_a_signal_goes_to_both_children_and_ends_with_status_0() -> None:
    server, builder = FakeChild(1), FakeChild(2)
    running = supervisor(Spawner([server], [builder], FakeChild(99)), RestartPolicy(), Clock())
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(running.run()))
    thread.start()
    while running.builder is None or running.server is None:
        pass
    running.stop(signal.SIGINT)
    thread.join(10)
    assert result == [0]
    assert server.signals[0] == builder.signals[0] == signal.SIGINT


def test_a_child_that_ignores_the_signal_is_killed_after_the_timeout() -> None:
    server, builder = FakeChild(1, ignores_signals=True), FakeChild(2)
    running = supervisor(Spawner([server], [builder], FakeChild(99)), RestartPolicy(), Clock(step=1))
    running.stop()
    assert running.run() == 0
    assert server.killed and not builder.killed


def test_a_builder_that_exited_starts_again_after_a_pause_that_doubles() -> None:
    """A builder that fails as it starts (a bad edit of the settings file) must not be
    started ten times a second: each restart waits twice as long as the one before."""
    dying = [FakeChild(10 + n, lives=1) for n in range(4)]
    server = FakeChild(1, lives=2000, status=3)
    spawner = Spawner([server], dying, FakeChild(99))
    clock = Clock(step=0.01)
    started: list[float] = []
    real_spawn = spawner.__call__

    def spawn(argv: Sequence[str]) -> FakeChild:
        if tuple(argv) == BUILDER:
            started.append(clock.now)
        return real_spawn(argv)

    running = Supervisor(
        SERVER, BUILDER, spawn, RestartPolicy(max_deaths=10, window=60), clock=clock, poll_seconds=0
    )
    assert running.run() == 3
    pauses = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert len(pauses) == 4
    for pause, least in zip(pauses, (0.5, 1.0, 2.0, 4.0), strict=True):
        assert least <= pause < least + 0.2, pauses


def test_each_child_gets_the_stopping_signal_once() -> None:
    """A second SIGTERM can reach a process inside its handler of the first one and
    hang it there (granian's master and the builder both did), so the supervisor sends
    it once, however it comes to stop them."""
    server, builder = FakeChild(1, ignores_signals=True), FakeChild(2, ignores_signals=True)
    running = supervisor(Spawner([server], [builder], FakeChild(99)), RestartPolicy(), Clock(step=1))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(running.run()))
    thread.start()
    while running.builder is None or running.server is None:
        pass
    running._on_signal(signal.SIGTERM, None)
    running._on_signal(signal.SIGTERM, None)  # the platform's second notice
    thread.join(10)
    assert result == [0]
    assert server.signals == builder.signals == [signal.SIGTERM]
    assert server.killed and builder.killed  # they ignored it: killed after the timeout
