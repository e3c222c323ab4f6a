"""Child processes: every long-running one is registered and stopped on exit; one-shot
runs are measured (wall, CPU, memory); a server's process tree is sorted into its roles
(supervisors, web workers, the builder) and its memory sampled while it runs."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

# The builder process is started as `<python> -m feeds.builder` (issue 12), so its command
# line names this module; web workers never do.
BUILDER_MARK = "feeds.builder"

_CHILDREN: list[subprocess.Popen[bytes]] = []


def start_child(argv: Sequence[str], log: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    """A long-running child (a server) in its own process group, its output in `log`."""
    with log.open("ab") as output:
        process = subprocess.Popen(  # type: ignore[call-overload]
            list(argv), stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
    _CHILDREN.append(process)
    return process  # type: ignore[no-any-return]


def stop_child(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM to the child's process group, SIGKILL if it is still there after `timeout`."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    # Anything of its group that outlived it (a builder its supervisor left behind).
    for pid in group_members(process.pid):
        print(f"  warning: process {pid} ({command_line(pid)[:120]}) outlived its server: killed")
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if process in _CHILDREN:
        _CHILDREN.remove(process)


def stop_all_children() -> None:
    for process in list(_CHILDREN):
        try:
            stop_child(process)
        except Exception as error:
            print(f"could not stop child {process.pid}: {error}", file=sys.stderr)


def run_quietly(argv: Sequence[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


# --------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, from the parent ids in /proc/<pid>/stat."""
    parents = _parents()
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def _parents() -> dict[int, int]:
    return {pid: fields[1] for pid, fields in _stats().items()}


def _stats() -> dict[int, tuple[str, int, int, int]]:
    """For every live process: its state, parent, process group and session."""
    found: dict[int, tuple[str, int, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (fields[0], int(fields[1]), int(fields[2]), int(fields[3]))
    return found


def group_members(group: int) -> list[int]:
    """The live processes of process group `group`."""
    return [pid for pid, fields in _stats().items() if fields[2] == group and fields[0] != "Z"]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proportional_bytes(pid: int) -> float:
    """PSS of one process (its RSS where smaps_rollup cannot be read); 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        key = "Pss:"
    except OSError:
        return resident_bytes(pid)
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024.0
    return 0.0


def resident_bytes(pid: int) -> float:
    """RSS of one process; 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024.0
    return 0.0


# --------------------------------------------------------------------------------------
# One-shot runs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the process and its waited-for children
    peak_rss: float  # bytes: the largest resident set of the process or any one child (wait4)
    tree_peak: float  # bytes: the largest sum of PSS over the process tree, sampled
    returncode: int
    output: str

    @property
    def peak(self) -> float:
        """The memory figure held against targets: the larger of the two."""
        return max(self.peak_rss, self.tree_peak)


class TreeSampler(threading.Thread):
    """Samples the summed proportional set size (PSS) of a process and its descendants
    every `interval` seconds: `ru_maxrss` counts one process only, and a build that
    forks workers uses the memory of all of them at once."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(name=f"sampler-{pid}", daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            total = sum(proportional_bytes(pid) for pid in process_tree(self.pid))
            self.peak = max(self.peak, total)


def run_measured(argv: Sequence[str], env: Mapping[str, str], timeout: float, log: Path) -> Measured:
    """Runs one process to completion; its rusage comes from `os.wait4`, its tree's
    memory from a sampler. A watchdog kills it after `timeout` seconds."""
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=output, stderr=subprocess.STDOUT, env=dict(env))
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    sampler = TreeSampler(process.pid)
    sampler.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    finally:
        watchdog.cancel()
        sampler.done.set()
        sampler.join(5)
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if process.returncode != 0:
        reason = "killed after the time limit" if process.returncode == -signal.SIGKILL else "failed"
        raise RuntimeError(f"{shlex.join(argv)} {reason} (exit {process.returncode}): {text[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(wall, cpu, usage.ru_maxrss * 1024, sampler.peak, process.returncode, text)


# --------------------------------------------------------------------------------------
# A running server's processes and their memory
# --------------------------------------------------------------------------------------


def roles(root: int) -> dict[int, str]:
    """Every process of the server started as `root` (its descendants, and any other
    process of its session, such as a builder that was started detached), by role:

    - "builder": a process whose command line holds `feeds.builder`, and its children
      (a parse pool it forks belongs to it);
    - "web": a process with no children that is not the builder's: a web worker;
    - "supervisor": the others (the spawned command, granian's or gunicorn's master).
    """
    stats = _stats()
    parents = {pid: fields[1] for pid, fields in stats.items()}
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    tree += [pid for pid, fields in stats.items() if fields[3] == root and pid not in tree]
    found: dict[int, str] = {}
    builders = {pid for pid in tree if BUILDER_MARK in command_line(pid)}
    for pid in tree:
        ancestor, is_builder = pid, False
        while ancestor in parents and ancestor != root:
            if ancestor in builders:
                is_builder = True
                break
            ancestor = parents[ancestor]
        if is_builder:
            found[pid] = "builder"
        elif pid != root and not any(parent == pid for parent in parents.values()):
            found[pid] = "web"
        else:
            found[pid] = "supervisor"
    return found


@dataclass
class MemoryPeaks:
    """The largest memory seen, per process and per role, over a server's life."""

    rss: dict[int, float] = field(default_factory=dict)  # pid -> peak RSS, bytes
    role: dict[int, str] = field(default_factory=dict)  # pid -> its role
    builder_tree: float = 0.0  # peak of the builder's processes' summed PSS, bytes
    samples: int = 0

    def largest(self, role: str) -> float | None:
        sizes = [size for pid, size in self.rss.items() if self.role.get(pid) == role]
        return max(sizes) if sizes else None

    def sizes(self, role: str) -> list[float]:
        return sorted((size for pid, size in self.rss.items() if self.role.get(pid) == role), reverse=True)

    def merge(self, other: MemoryPeaks) -> None:
        for pid, size in other.rss.items():
            self.rss[pid] = max(self.rss.get(pid, 0.0), size)
            self.role[pid] = other.role[pid]
        self.builder_tree = max(self.builder_tree, other.builder_tree)
        self.samples += other.samples


@dataclass
class ServerMemory:
    """The peaks of every feeds server started for one corpus size, and of nginx's."""

    feeds: MemoryPeaks = field(default_factory=MemoryPeaks)
    nginx: MemoryPeaks = field(default_factory=MemoryPeaks)


class ServerSampler(threading.Thread):
    """Samples the RSS of every process of a running server (and the builder's summed
    PSS) every `interval` seconds, so that a peak during a build or a load is seen, not
    only the size after it."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        super().__init__(name=f"server-sampler-{root}", daemon=True)
        self.root = root
        self.interval = interval
        self.peaks = MemoryPeaks()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        try:
            found = roles(self.root)
        except OSError:
            return
        builder_pss = 0.0
        for pid, role in found.items():
            size = resident_bytes(pid)
            if size == 0:
                continue  # gone, or a zombie
            self.peaks.rss[pid] = max(self.peaks.rss.get(pid, 0.0), size)
            self.peaks.role[pid] = role
            if role == "builder":
                builder_pss += proportional_bytes(pid)
        self.peaks.builder_tree = max(self.peaks.builder_tree, builder_pss)
        self.peaks.samples += 1

    def stop(self) -> MemoryPeaks:
        self.done.set()
        self.join(5)
        return self.peaks
