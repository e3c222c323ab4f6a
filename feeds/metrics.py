"""Prometheus metrics at /metrics, off unless the `metrics` setting turns them on.

Requests are served by several worker processes and builds happen in whichever one
holds the watcher lease, so the counters live in prometheus-client's multiprocess
files under `<state_dir>/metrics`, and a scrape of any worker adds them all up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROUTE_GROUPS = ("/tags/", "/categories/", "/authors/", "/archive/")
EXACT_ROUTES = frozenset(
    {"/", "/rss.xml", "/atom.xml", "/feed.json", "/feed.xsl", "/feeds.opml", "/healthz", "/metrics"}
)
SECTION_ROUTE = "/<section>/*"  # every /<folder>/rss.xml, atom.xml and feed.json
_SECTION_FEED = re.compile(r"/[^/]+/(?:rss\.xml|atom\.xml|feed\.json)")
FEED_ROUTES = (
    *("/rss.xml", "/atom.xml", "/feed.json", "/tags/*", "/categories/*", "/authors/*", "/archive/*"),
    SECTION_ROUTE,
)


def route_label(path: str) -> str:
    """A bounded label for a request path: one per fixed route, one per kind of feed
    folder (thousands of tags must not make thousands of series), and `other`."""
    if path in EXACT_ROUTES:
        return path
    for prefix in ROUTE_GROUPS:
        if path.startswith(prefix):
            return prefix + "*"
    return SECTION_ROUTE if _SECTION_FEED.fullmatch(path) else "other"


class Metrics:
    """The metric objects of this process, writing to the shared directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # prometheus-client chooses its multiprocess storage when first imported, from
        # this variable: it must be set before that import, hence the imports below.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(directory))
        from prometheus_client import Counter, Gauge, Histogram

        self.directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        self.builds = Counter("feeds_builds", "Polls that built, by result", ["result"])
        self.build_seconds = Histogram(
            "feeds_build_duration_seconds",
            "Time a build took",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.posts_used = Gauge(
            "feeds_posts_used", "Posts in the last good build", multiprocess_mode="mostrecent"
        )
        self.posts_skipped = Gauge(
            "feeds_posts_skipped", "Posts left out of the last build", multiprocess_mode="mostrecent"
        )
        self.requests = Counter("feeds_http_requests", "HTTP requests answered", ["route", "status"])

    def request(self, path: str, status: int) -> None:
        self.requests.labels(route_label(path), str(status)).inc()

    def build(self, result: str, seconds: float, used: int | None = None, skipped: int | None = None) -> None:
        self.builds.labels(result).inc()
        self.build_seconds.observe(seconds)
        if used is not None and skipped is not None:
            self.posts_used.set(used)
            self.posts_skipped.set(skipped)

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, summed over every process, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        collector = MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        registry.register(_NotModifiedRatio(collector))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _NotModifiedRatio:
    """feeds_not_modified_ratio: the share of feed requests answered 304 so far."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        total = not_modified = 0.0
        for family in self.source.collect():
            for sample in family.samples:
                if sample.name == "feeds_http_requests_total" and sample.labels["route"] in FEED_ROUTES:
                    total += sample.value
                    not_modified += sample.value if sample.labels["status"] == "304" else 0
        yield GaugeMetricFamily(
            "feeds_not_modified_ratio",
            "Share of feed requests answered 304 Not Modified",
            value=not_modified / total if total else 0.0,
        )


_current: Metrics | None = None


def for_process(directory: Path) -> Metrics:
    """This process's metrics (created once: metric names are process-wide)."""
    global _current
    if _current is None:
        _current = Metrics(directory)
    return _current
