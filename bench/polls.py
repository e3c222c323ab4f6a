"""b. Watcher polls, in this process: `Watcher.poll()` over a corpus with nothing
changed, and after one post was edited, each timed until the poll returns, which
includes publishing into a real state dir. The baseline is the floor of any poll: a
walk of the content folder with `os.scandir` and one stat per file, measured here."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from bench import corpus
from bench.common import BASE_URL, ITEM_LIMIT, Report, Row, median, met, replace_text, seconds

NO_CHANGE_TARGETS = {"10k": 0.020, "100k": 0.200}  # seconds (issue 11)
CHANGE_TARGETS = {"10k": 0.040, "100k": 0.300}


def scan_floor(folder: Path) -> int:
    """Walks `folder` as cheaply as Python can: `os.scandir` and a stat per file."""
    count = 0
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count


def timed_floor(folder: Path, samples: int) -> float:
    scan_floor(folder)  # warm-up, as the polls get one
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        scan_floor(folder)
        times.append(time.perf_counter() - started)
    return median(times)


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
    floor = timed_floor(posts, samples)
    baseline = f"scan floor {seconds(floor)}"
    no_change_target = NO_CHANGE_TARGETS[label]
    report.add(
        Row(
            f"poll, nothing changed, {label} posts (median of {samples})",
            seconds(median(quiet)),
            baseline,
            f"{median(quiet) / floor:.1f}x the floor",
            f"<= {seconds(no_change_target)}",
            met(median(quiet) <= no_change_target),
        )
    )
    cold = report.figures.get(f"feeds cold wall {label}")
    report.add(
        Row(
            f"first poll, {label} posts (full build and publish, in-process)",
            seconds(first),
            f"cold `feeds build` {seconds(cold)} (section a)" if cold else "—",
            f"{first / cold:.2f}x" if cold else "—",
        )
    )

    # The watcher leaves a file modified in the last moment (SETTLE_NS) for a later poll:
    # the timed poll comes once the edit has settled, and is the one that picks it up.
    import feeds.watcher as watcher_module

    settle = getattr(watcher_module, "SETTLE_NS", 0) / 1e9 + 0.02
    ordered = corpus.newest(posts)
    rng = random.Random(5)
    edits = samples if label == "10k" else max(1, samples // 2)  # a 100k poll can take seconds
    recent = ordered[:edits]
    old = rng.sample(ordered[ITEM_LIMIT * 2 :], edits)
    change_target = CHANGE_TARGETS[label]
    # Each edit gives the post a new body and title, so that it changes a published
    # document: the site's feeds for a post in them, its archive page for an old one.
    for kind, files, seed in (("a post in the feed", recent, 1000), ("an old post", old, 2000)):
        times: list[float] = []
        at_once = later = never = 0
        for number, path in enumerate(files):
            text = corpus.rewritten(
                path.read_text(encoding="utf-8"), seed=seed + number, revision=seed + number
            )
            replace_text(path, text)
            time.sleep(settle)
            elapsed, published = timed_poll()
            times.append(elapsed)
            if published:
                at_once += 1
            elif label == "10k":
                time.sleep(1.0)
                if watcher.poll():
                    later += 1
                else:
                    never += 1
        figure = median(times)
        report.add(
            Row(
                f"poll after editing {kind} (body and title) until published, {label} "
                f"(median of {edits}, different files)",
                seconds(figure),
                baseline,
                f"{figure / floor:.1f}x the floor",
                f"<= {seconds(change_target)}",
                met(figure <= change_target),
            )
        )
        report.add(
            Row(
                f"correctness: edits of {kind} published by the poll that timed them, {label}",
                f"{at_once} of {edits} at that poll, {later} later, {never} never"
                if label == "10k"
                else f"{at_once} of {edits} at that poll (later polls not checked)",
                "—",
                "—",
                f"{edits} of {edits}",
                met(at_once == edits),
            )
        )
