"""d. Freshness: how long a new post takes to appear in GET /rss.xml, with poll_interval
1 s, over the corpus of each size. Each probe writes a new post (atomically, at a
random phase against the poll ticks) and asks /rss.xml every 10 ms until its title is
there. Polling sets the floor: a post written just after a poll waits a whole interval,
so the baseline is the poll interval itself."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from bench import corpus
from bench.common import Report, Row, http_get, median, met, percentile, seconds
from bench.servers import FeedsServer

POLL_INTERVAL = 1.0  # seconds
MARGINS = {"10k": 0.1, "100k": 0.3}  # seconds over the poll interval, for the p99 (issue 12)
PROBE_TIMEOUT = 10.0  # seconds: a probe not seen by then counts as missed
READY_TIMEOUT = 900.0


def freshness(label: str, posts: Path, work: Path, probes: int, report: Report) -> None:
    server = FeedsServer(work, posts, f"fresh-{label}", poll_interval=f"{POLL_INTERVAL:g}")
    rng = random.Random(11)
    latencies: list[float] = []
    missed = 0
    try:
        ready = server.wait_ready(timeout=READY_TIMEOUT)
        print(f"  feeds ready (healthz 200) after {ready:.1f} s", flush=True)
        folder = posts / "news"
        for number in range(probes):
            time.sleep(rng.uniform(0, POLL_INTERVAL))  # a random phase against the poll ticks
            title = f"Freshness probe {label} {number} {rng.getrandbits(40):010x}"
            path = folder / f"probe_{label}_{number:03d}.md"
            temporary = folder / f".probe_{label}_{number:03d}.tmp"
            temporary.write_text(corpus.new_post(title, time.time() - 1, seed=number), encoding="utf-8")
            os.replace(temporary, path)
            written = time.perf_counter()
            deadline = written + PROBE_TIMEOUT
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
        raise RuntimeError(f"no probe appeared within {PROBE_TIMEOUT:g} s ({missed} missed)")
    p50, p99 = median(latencies), percentile(latencies, 99)
    target = POLL_INTERVAL + MARGINS[label]
    seen = f"{len(latencies)} probes" + (f", {missed} never seen in {PROBE_TIMEOUT:g} s" if missed else "")
    report.add(
        Row(
            f"freshness {label}: a new post until /rss.xml has it, poll_interval 1 s ({seen})",
            f"p50 {seconds(p50)}, p99 {seconds(p99)}",
            f"poll_interval {seconds(POLL_INTERVAL)}",
            f"p99 - interval = {(p99 - POLL_INTERVAL) * 1000:+.0f} ms",
            f"p99 <= {seconds(target)}",
            met(p99 <= target and not missed),
        )
    )
