"""c. Serving: the service as the Procfile starts it, loaded by wrk for GET /rss.xml with
gzip, against nginx serving the same bytes in the same run (runs interleaved, which
goes first alternating); while posts change; and the memory of its processes.

- quiet (10k): 32 clients, 200 and 304 answers, the default poll interval;
- rebuilding every second (10k): the same loads with poll_interval 1 s while a post
  is rewritten every second;
- changing (10k and 100k): 16 clients, 200 answers, poll_interval 0.25 s (1 s at 100k,
  as issue 12 measured it) and a post changed every 1.5 s; at 100k first without the
  changes (quiet), then with them;
- memory: the peak RSS of every process of every server started at that size (start-up
  runs included), sampled every 0.5 s, by role: web workers, the builder (the process
  whose command line holds `feeds.builder`, with its children), supervisors.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from bench.common import MIB, Report, Row, median, met, paired_ratio, seconds
from bench.processes import BUILDER_MARK, ServerMemory
from bench.servers import (
    FeedsServer,
    Load,
    NginxServer,
    Rewriter,
    check_304,
    feed_variants,
    generation_number,
    start_nginx,
    wrk,
)
from bench.tools import find_program

RATE_TARGET = 0.5  # 200s and 304s per second, at least half of nginx's (issue 12)
P99_RATIO_TARGET = 3.0  # p99 at most 3x nginx's in the same run
P99_TARGET = 0.010  # seconds, p99 while rebuilding every second ("< 10 ms")
WEB_WORKER_MB = 60.0
BUILDER_MB = {"10k": 100.0, "100k": 400.0}
CHANGE_EVERY = 1.5  # seconds between two post changes
CHANGE_POLL = {"10k": "0.25", "100k": "1"}  # poll_interval of the changing runs
CLIENTS_CHANGING = 16
READY_TIMEOUT = 900.0  # seconds until the first generation (a 100k cold start is slow today)

Loads = dict[tuple[str, str], list[Load]]


def run_loads(
    targets: list[tuple[str, int, str | None]],
    kinds: tuple[str, ...],
    runs: int,
    duration: float,
    work: Path,
    connections: int,
    title: str,
) -> Loads:
    """`runs` rounds of one wrk run per target and kind (`"200"`, or `"304"` with the
    target's ETag), the order of the targets reversed every other round."""
    results: Loads = {}
    for run in range(runs):
        for kind in kinds:
            ordered = targets if run % 2 == 0 else targets[::-1]
            for who, port, etag in ordered:
                load = wrk(
                    port, duration, work, etag=etag if kind == "304" else None, connections=connections
                )
                results.setdefault((who, kind), []).append(load)
                print(f"  {title}, run {run + 1}/{runs} {who} {kind}: {load.describe()}", flush=True)
    return results


def with_nginx(work: Path, server: FeedsServer, name: str, report: Report) -> tuple[NginxServer | None, str]:
    """nginx serving the bytes `server` serves now, or None (recorded as missing)."""
    identity, gzipped, _ = feed_variants(server.port)
    try:
        return start_nginx(work, identity, gzipped, name)
    except Exception as error:
        print(f"  nginx baseline missing: {type(error).__name__}: {error}")
        report.missing.append(f"nginx ({type(error).__name__}: {error})")
        return None, ""


def require_wrk() -> None:
    if find_program("wrk") is None:
        raise FileNotFoundError("wrk is missing: no load runs")


def quiet(posts: Path, work: Path, runs: int, duration: float, report: Report, memory: ServerMemory) -> Loads:
    """The quiet loads at 10k; returns nginx's loads, the baseline of the rebuilding runs."""
    require_wrk()
    server = FeedsServer(work, posts, "serve")
    nginx: NginxServer | None = None
    try:
        ready = server.wait_ready(timeout=READY_TIMEOUT)
        print(f"  feeds ready (healthz 200) after {ready:.1f} s", flush=True)
        identity, gzipped, etag = feed_variants(server.port)
        check_304(server.port, etag, "feeds")
        report.note(f"server command, from the Procfile: `{shlex.join(server.argv)}` (PORT={server.port})")
        report.note(
            f"served rss.xml at 10k: {len(identity)} bytes, {len(gzipped)} gzipped (default item_limit); "
            f"feeds ETag {etag}"
        )
        nginx, nginx_etag = with_nginx(work, server, "nginx-quiet", report)
        targets: list[tuple[str, int, str | None]] = [("feeds", server.port, etag)]
        if nginx is not None:
            targets.append(("nginx", nginx.port, nginx_etag))
        results = run_loads(targets, ("200", "304"), runs, duration, work, 32, "quiet")
        for kind in ("200", "304"):
            load_rows(f"GET /rss.xml gzip, {kind} answers, 32 clients, 10k", kind, results, report)
        bad = unexpected = 0
        for kind in ("200", "304"):
            for load in results[("feeds", kind)]:
                bad += load.bad
                unexpected += sum(n for status, n in load.statuses.items() if str(status) != kind)
        report.add(
            Row(
                "feeds: non-2xx/3xx answers + socket errors, quiet runs above",
                f"{bad} (and {unexpected} answers of another status than asked)",
                target="0",
                met=met(bad == 0 and unexpected == 0),
            )
        )
    finally:
        memory.feeds.merge(server.stop())
        if nginx is not None:
            memory.nginx.merge(nginx.stop())
    return {key: loads for key, loads in results.items() if key[0] == "nginx"}


def rebuilding(
    posts: Path,
    work: Path,
    runs: int,
    duration: float,
    nginx_loads: Loads,
    report: Report,
    memory: ServerMemory,
) -> None:
    """The quiet loads again at 10k, while the watcher rebuilds every second; nginx's
    figures are those of the quiet runs (its bytes do not change)."""
    require_wrk()
    server = FeedsServer(work, posts, "rebuild", poll_interval="1")
    rewriter = Rewriter(posts, every=1.0, seed=5000)
    try:
        server.wait_ready(timeout=READY_TIMEOUT)
        _, _, etag = feed_variants(server.port)
        generation_before = generation_number(server.port)
        rewriter.start()
        busy = run_loads(
            [("feeds", server.port, etag)], ("200", "304"), runs, duration, work, 32, "rebuilding"
        )
        rewrites = rewriter.stop()
        generations = generation_number(server.port) - generation_before
        busy.update(nginx_loads)
        for kind in ("200", "304"):
            what = f"GET /rss.xml gzip, {kind} run, 32 clients, while rebuilding every 1 s, 10k"
            load_rows(what, kind, busy, report, p99_times=P99_RATIO_TARGET, paired=False)
        loads = busy[("feeds", "304")]
        answers_304 = sum(load.count(304) for load in loads)
        answers_200 = sum(load.count(200) for load in loads)
        bad = sum(load.bad for load in busy[("feeds", "200")] + loads)
        report.add(
            Row(
                "while rebuilding: answers in the conditional runs (ETag followed like a reader)",
                f"{answers_304} x 304, {answers_200} x 200; {bad} non-2xx/3xx + socket errors",
                target="0 errors",
                met=met(bad == 0),
            )
        )
        report.note(
            f"while rebuilding (10k): {rewrites} posts rewritten (one of the 20 newest, once a second, body "
            f"and title, so that each rewrite changes the feed), {generations} new generations published; "
            "nginx's figures for these rows are those of its quiet runs"
        )
    finally:
        rewriter.stop()
        memory.feeds.merge(server.stop())


def changing(
    label: str, posts: Path, work: Path, runs: int, duration: float, report: Report, memory: ServerMemory
) -> None:
    """16 clients, GET /rss.xml gzip, with a post changing every 1.5 s (at 100k also
    without changes first), paired with nginx."""
    require_wrk()
    poll = CHANGE_POLL[label]
    server = FeedsServer(work, posts, f"changing-{label}", poll_interval=poll)
    rewriter = Rewriter(posts, every=CHANGE_EVERY, seed=7000)
    nginx: NginxServer | None = None
    try:
        ready = server.wait_ready(timeout=READY_TIMEOUT)
        print(f"  feeds ready (healthz 200) after {ready:.1f} s", flush=True)
        nginx, _ = with_nginx(work, server, f"nginx-changing-{label}", report)
        targets: list[tuple[str, int, str | None]] = [("feeds", server.port, None)]
        if nginx is not None:
            targets.append(("nginx", nginx.port, None))
        if label != "10k":
            still = run_loads(targets, ("200",), runs, duration, work, CLIENTS_CHANGING, "no changes")
            what = f"GET /rss.xml gzip, 16 clients, poll_interval {poll} s, no changes, {label}"
            load_rows(
                what, "200", still, report, rate_target=False, p99_limit=None, p99_times=P99_RATIO_TARGET
            )
        generation_before = generation_number(server.port)
        rewriter.start()
        busy = run_loads(targets, ("200",), runs, duration, work, CLIENTS_CHANGING, "changing")
        rewrites = rewriter.stop()
        generations = generation_number(server.port) - generation_before
        what = f"GET /rss.xml gzip, 16 clients, poll_interval {poll} s, a post changed every 1.5 s, {label}"
        load_rows(what, "200", busy, report, rate_target=False, p99_limit=None, p99_times=P99_RATIO_TARGET)
        bad = sum(load.bad for load in busy[("feeds", "200")])
        report.note(
            f"changing ({label}): {rewrites} posts rewritten, {generations} new generations published, "
            f"{bad} non-2xx/3xx answers + socket errors from feeds; nginx serves the bytes of the start"
        )
    finally:
        rewriter.stop()
        memory.feeds.merge(server.stop())
        if nginx is not None:
            memory.nginx.merge(nginx.stop())


def load_rows(
    what: str,
    kind: str,
    results: Loads,
    report: Report,
    *,
    rate_target: bool = True,
    p99_limit: float | None = P99_TARGET,
    p99_times: float | None = None,
    paired: bool = True,
) -> None:
    """A row for the answers per second and one for the p99, against nginx's: ratios of
    runs paired in time (medians of the runs' ratios), or of medians when `paired` is
    false (nginx was measured in other runs). The p99 is held against `p99_limit`
    seconds and against `p99_times` nginx's, each where given."""
    feeds_loads = results[("feeds", kind)]
    nginx_loads = results.get(("nginx", kind))
    runs = len(feeds_loads)
    rates = [load.requests_per_second for load in feeds_loads]
    p99s = [load.p99 for load in feeds_loads]
    rate, p99 = median(rates), median(p99s)
    rate_ratio = p99_ratio = None
    rate_baseline = p99_baseline = "missing"
    how = "paired" if paired else "of medians"
    if nginx_loads:
        nginx_rates = [load.requests_per_second for load in nginx_loads]
        nginx_p99s = [load.p99 for load in nginx_loads]
        if paired:
            rate_ratio, p99_ratio = paired_ratio(rates, nginx_rates), paired_ratio(p99s, nginx_p99s)
        else:
            rate_ratio, p99_ratio = rate / median(nginx_rates), p99 / median(nginx_p99s)
        rate_baseline = f"nginx {median(nginx_rates):.0f} req/s"
        p99_baseline = f"nginx {seconds(median(nginx_p99s))}"
    rate_text = f"feeds/nginx {rate_ratio:.2f} ({how})" if rate_ratio is not None else "—"
    if not rate_target:
        rate_cells = ("—", "—")
    elif rate_ratio is None:
        rate_cells = (f">= {RATE_TARGET}x nginx", "missing")
    else:
        rate_cells = (f">= {RATE_TARGET}x nginx", met(rate_ratio >= RATE_TARGET))
    what_rate = f"{what}: {kind}s per second (median of {runs})"
    report.add(Row(what_rate, f"{rate:.0f} req/s", rate_baseline, rate_text, *rate_cells))

    targets, verdicts = [], []
    if p99_times is not None:
        targets.append(f"<= {p99_times:g}x nginx")
        verdicts.append(None if p99_ratio is None else p99_ratio <= p99_times)
    if p99_limit is not None:
        targets.append(f"< {seconds(p99_limit)}")
        verdicts.append(p99 < p99_limit)
    verdict = "missing" if None in verdicts else met(all(verdicts))
    p99_text = f"feeds/nginx {p99_ratio:.1f}x ({how})" if p99_ratio is not None else "—"
    report.add(
        Row(f"{what}: p99 latency", seconds(p99), p99_baseline, p99_text, " and ".join(targets), verdict)
    )


def memory_rows(label: str, memory: ServerMemory, report: Report) -> None:
    """The web workers', the builder's and the supervisors' peaks over every server
    started at this size."""
    mb = [size / MIB for size in memory.feeds.sizes("web")]
    nginx = memory.nginx.largest("web")
    nginx_text = f"nginx worker {nginx / MIB:.0f} MB" if nginx else "missing"
    if mb:
        listed = ", ".join(f"{size:.0f}" for size in mb)
        report.add(
            Row(
                f"web workers, peak RSS of each over every server run at {label} "
                f"({len(mb)} workers: {listed} MB)",
                f"{max(mb):.0f} MB",
                nginx_text,
                f"{max(mb) / (nginx / MIB):.0f}x" if nginx else "—",
                f"<= {WEB_WORKER_MB:g} MB each",
                met(max(mb) <= WEB_WORKER_MB),
            )
        )
    else:
        report.add(
            Row(
                f"web workers, {label}",
                "none found",
                nginx_text,
                target=f"<= {WEB_WORKER_MB:g} MB",
                met="missing",
            )
        )
    hugo = report.figures.get(f"hugo peak MB {label}")
    hugo_text = f"Hugo's cold build {hugo:.0f} MB (section a)" if hugo else "missing"
    builder_target = BUILDER_MB[label]
    own = memory.feeds.largest("builder")
    if own is None:
        report.add(
            Row(
                f"builder, peak memory at {label}",
                f"not measured: no process with `{BUILDER_MARK}` in its command line (the watcher runs "
                "inside a web worker, counted above)",
                hugo_text,
                "—",
                f"<= {builder_target:g} MB",
                "missing",
            )
        )
    else:
        figure = max(own, memory.feeds.builder_tree) / MIB
        report.add(
            Row(
                f"builder, peak memory at {label} (largest process {own / MIB:.0f} MB RSS; its processes' "
                f"summed PSS {memory.feeds.builder_tree / MIB:.0f} MB; sampled every 0.5 s, start-ups "
                "included)",
                f"{figure:.0f} MB",
                hugo_text,
                f"{figure / hugo:.2f}x" if hugo else "—",
                f"<= {builder_target:g} MB",
                met(figure <= builder_target),
            )
        )
    supervisors = [size / MIB for size in memory.feeds.sizes("supervisor")]
    if supervisors:
        listed = ", ".join(f"{size:.0f}" for size in supervisors)
        master = memory.nginx.largest("supervisor")
        report.add(
            Row(
                f"supervising processes (server masters), peak RSS at {label} ({listed} MB)",
                f"{max(supervisors):.0f} MB",
                f"nginx master {master / MIB:.0f} MB" if master else "missing",
                f"{max(supervisors) / (master / MIB):.0f}x" if master else "—",
            )
        )
