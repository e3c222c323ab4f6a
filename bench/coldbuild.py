"""a. Cold builds: `feeds build` as a fresh process, truly cold, paired with Hugo building
the home RSS of the same posts; and a second `feeds build` over the same state dir.

Truly cold means that nothing either tool could keep between runs survives: every feeds
run gets a new state dir (FEEDS_STATE_DIR, where the parse cache lives), a new output
folder, and new TMPDIR, XDG_STATE_HOME and XDG_CACHE_HOME folders; every Hugo run a new
`--cacheDir` (also HUGO_CACHEDIR), destination and TMPDIR, and the site's `resources/`
folder is removed. Only the operating system's page cache stays warm, for both alike.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    BASE_URL,
    ITEM_LIMIT,
    MIB,
    VENV_BIN,
    Report,
    Row,
    count_items,
    median,
    met,
    paired_ratio,
    seconds,
)
from bench.processes import Measured, run_measured
from bench.tools import hugo_binary

RATIO_TARGET = 0.5  # feeds' cold build at most half of Hugo's time (issue 11), at 10k
WALL_TARGETS = {"100k": 8.0}  # seconds
MEMORY_TARGETS = {"100k": 250.0}  # MB, the whole process tree
TIMEOUT = 900.0  # seconds, one build


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


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _feeds_build(posts: Path, work: Path, state: Path, out: Path, scratch: Path, log: Path) -> Measured:
    """One `feeds build` into the new folder `out`, over the state dir `state`, with
    its temporary and XDG folders below the new folder `scratch`; checked to write a
    full rss.xml."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FEEDS_")}
    env.update(
        FEEDS_ITEM_LIMIT=str(ITEM_LIMIT),
        FEEDS_BASE_URL=BASE_URL,
        FEEDS_STATE_DIR=str(state),
        TMPDIR=str(_fresh(scratch / "tmp")),
        XDG_STATE_HOME=str(_fresh(scratch / "xdg-state")),
        XDG_CACHE_HOME=str(_fresh(scratch / "xdg-cache")),
    )
    argv = [str(VENV_BIN / "feeds"), "--config", str(work / "empty.toml"), "build"]
    argv += ["--content", str(posts), "--out", str(out)]
    measured = run_measured(argv, env, timeout=TIMEOUT, log=log)
    items = count_items((out / "rss.xml").read_bytes())
    if items != ITEM_LIMIT:
        raise RuntimeError(f"feeds' rss.xml has {items} items, expected {ITEM_LIMIT}")
    return measured


def _hugo_build(hugo: Path, site: Path, scratch: Path, log: Path) -> Measured:
    """One Hugo build of `site` with a new cache, destination and TMPDIR; checked to
    write a full home RSS."""
    destination, cache = scratch / "public", _fresh(scratch / "cache")
    shutil.rmtree(site / "resources", ignore_errors=True)
    env = {**os.environ, "HUGO_CACHEDIR": str(cache), "TMPDIR": str(_fresh(scratch / "tmp"))}
    argv = [str(hugo), "--source", str(site), "--destination", str(destination)]
    argv += ["--cacheDir", str(cache), "--quiet"]
    measured = run_measured(argv, env, timeout=TIMEOUT, log=log)
    items = count_items((destination / "index.xml").read_bytes())
    if items != ITEM_LIMIT:
        raise RuntimeError(f"Hugo's index.xml has {items} items, expected {ITEM_LIMIT}")
    return measured


def cold_builds(
    label: str, posts: Path, work: Path, runs: int, report: Report, variant: str = "", warm_runs: int = 0
) -> None:
    """`runs` paired cold builds of `posts` by feeds and Hugo (which goes first
    alternates), and after the first `warm_runs` feeds builds a second one over the
    same state dir. `label` names the corpus size; `variant` describes the corpus."""
    name = f"{label}{variant}"
    slug = re.sub(r"\W+", "-", name).strip("-")
    hugo = hugo_binary()
    site = work / f"hugo-site-{slug}"
    if hugo is None:
        print("  hugo is missing: no baseline (marked missing)")
        report.missing.append("hugo")
    else:
        started = time.perf_counter()
        hugo_site(posts, site)
        print(f"  converted the corpus to a Hugo site in {time.perf_counter() - started:.1f} s", flush=True)

    feeds_runs: list[Measured] = []
    warm: list[Measured] = []
    hugo_runs: list[Measured] = []
    for run in range(runs):
        scratch = _fresh(work / f"cold-{slug}-{run}")

        def run_feeds(run: int = run, scratch: Path = scratch) -> None:
            state = scratch / "state"  # made by feeds itself, as on a new disk
            log = work / f"feeds-build-{slug}.log"
            feeds_runs.append(_feeds_build(posts, work, state, scratch / "out", scratch / "feeds", log))
            if run < warm_runs:
                out = scratch / "out-again"  # a new output folder: only the state dir is kept
                warm.append(_feeds_build(posts, work, state, out, scratch / "feeds-again", log))

        def run_hugo(scratch: Path = scratch) -> None:
            if hugo is not None:
                hugo_runs.append(_hugo_build(hugo, site, scratch / "hugo", work / f"hugo-{slug}.log"))

        # Alternate which goes first, so that neither always runs on a warmer machine.
        order: tuple[Callable[[], None], ...] = (
            (run_feeds, run_hugo) if run % 2 == 0 else (run_hugo, run_feeds)
        )
        for step in order:
            step()
        shutil.rmtree(scratch, ignore_errors=True)
        line = f"  run {run + 1}/{runs}: feeds {feeds_runs[-1].wall:.2f} s"
        if run < warm_runs:
            line += f" (again over the same state dir: {warm[-1].wall:.2f} s)"
        if hugo is not None:
            line += f", hugo {hugo_runs[-1].wall:.2f} s"
        print(line, flush=True)
    _rows(label, name, feeds_runs, hugo_runs, warm, report)


def _rows(
    label: str,
    name: str,
    feeds_runs: list[Measured],
    hugo_runs: list[Measured],
    warm: list[Measured],
    report: Report,
) -> None:
    runs = len(feeds_runs)
    wall = median([m.wall for m in feeds_runs])
    walls = [m.wall for m in feeds_runs]
    have_hugo = len(hugo_runs) == runs
    hugo_wall = median([m.wall for m in hugo_runs]) if have_hugo else None
    ratio = paired_ratio(walls, [m.wall for m in hugo_runs]) if have_hugo else None
    baseline = f"Hugo {seconds(hugo_wall)}" if hugo_wall is not None else "missing"
    ratio_text = f"feeds/Hugo {ratio:.2f}x (paired)" if ratio is not None else "missing"
    wall_target = WALL_TARGETS.get(label)
    if wall_target is not None:
        target, ok = f"<= {wall_target:g} s", met(wall <= wall_target)
    else:
        target = f"<= {RATIO_TARGET}x Hugo"
        ok = met(ratio <= RATIO_TARGET) if ratio is not None else "missing"
    report.figures[f"feeds cold wall {name}"] = wall
    report.add(
        Row(f"cold build {name}: wall (median of {runs})", seconds(wall), baseline, ratio_text, target, ok)
    )

    cpu = median([m.cpu for m in feeds_runs])
    hugo_cpu = median([m.cpu for m in hugo_runs]) if have_hugo else None
    report.add(
        Row(
            f"cold build {name}: CPU user+sys",
            seconds(cpu),
            f"Hugo {seconds(hugo_cpu)}" if hugo_cpu is not None else "missing",
            f"{cpu / hugo_cpu:.2f}x" if hugo_cpu else "—",
        )
    )

    peak = median([m.peak for m in feeds_runs]) / MIB
    single = median([m.peak_rss for m in feeds_runs]) / MIB
    tree = median([m.tree_peak for m in feeds_runs]) / MIB
    hugo_peak = median([m.peak for m in hugo_runs]) / MIB if have_hugo else None
    if hugo_peak is not None:
        report.figures[f"hugo peak MB {name}"] = hugo_peak
    memory_target = MEMORY_TARGETS.get(label)
    report.add(
        Row(
            f"cold build {name}: peak memory, whole process tree (largest process {single:.0f} MB by "
            f"wait4; summed PSS {tree:.0f} MB, sampled every 0.1 s)",
            f"{peak:.0f} MB",
            f"Hugo {hugo_peak:.0f} MB" if hugo_peak is not None else "missing",
            f"{peak / hugo_peak:.2f}x" if hugo_peak else "—",
            f"<= {memory_target:g} MB" if memory_target else "—",
            met(peak <= memory_target) if memory_target else "—",
        )
    )

    if warm:
        again = median([m.wall for m in warm])
        cold_pairs = walls[: len(warm)]
        report.add(
            Row(
                f"second `feeds build` {name}, same state dir (parse cache warm), new output folder "
                f"(median of {len(warm)})",
                seconds(again),
                f"the cold build before it {seconds(median(cold_pairs))}",
                f"again/cold {paired_ratio([m.wall for m in warm], cold_pairs):.2f}x (paired)",
            )
        )
