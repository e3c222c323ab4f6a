"""Keeping the published feeds fresh: poll the content directory, rebuild on change,
publish, and report health. This runs in the builder process (`feeds.builder`), never
in a web worker. One builder polls per state directory, however many instances share
it: each builder asks for a file lock on every tick, and only the holder polls. If the
holder dies, the kernel frees the lock and another builder takes over at its next tick.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from feeds.build import FEED_FILES, Build
from feeds.caching import content_digest
from feeds.config import Settings
from feeds.dates import rfc3339
from feeds.errors import FeedsError
from feeds.index import INDEX_FILE, index_html
from feeds.lease import LEASE_FILE, Lease
from feeds.metrics import Metrics, for_process
from feeds.parsecache import ParseCache
from feeds.pipeline import Pipeline, Reading
from feeds.published import PublishedStore, UnsafeStateError, default_state_dir, describe
from feeds.websub import Publisher

log = logging.getLogger("feeds.watcher")

# A post file modified less than this long ago may still be being written; it is read
# at a quick second look instead of now. Short enough that a save still reaches the
# feeds within poll_interval + 100 ms.
SETTLE_NS = 60_000_000
SETTLE_RECHECKS = 10  # a file written to without pause is left for the next regular poll

# The longest a publish waits for the clock to reach the date its changed bytes get.
# Dates of changed bytes are at most one second past the latest date published, and
# that one was not ahead of the clock, so a second is enough unless the clock went back.
MAX_CLOCK_WAIT = dt.timedelta(seconds=1)

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], None]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EmptyContentGuard(FeedsError):
    """The content directory looks unmounted or wiped while the feeds had posts."""


class Watcher:
    """Decides, at each poll, whether to build, and publishes what a build produced.

    A poll builds when a file was added, changed or removed, when a post dated in the
    future has come due, or when the previous attempt failed; otherwise it does nothing.
    """

    def __init__(
        self,
        settings: Settings,
        store: PublishedStore,
        clock: Clock = utc_now,
        settle_ns: int = SETTLE_NS,
        publisher: Publisher | None = None,
        metrics: Metrics | None = None,
        sleep: Sleep = time.sleep,
        site_first: bool = False,
        after_site_first: Callable[[], None] | None = None,
    ) -> None:
        """With `site_first`, a cold start publishes the site's own feeds in a generation
        of their own before the rest (`_publish_site_first`), then calls
        `after_site_first` (the builder lowers its priority there: from then on the
        workers have feeds to serve)."""
        self.settings = settings
        self.site_first = site_first
        self.after_site_first = after_site_first
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.publisher = publisher
        self.metrics = metrics
        self.pipeline = Pipeline(settings, settle_ns, pages=True, cache=ParseCache(store.root, settings))
        self.settling: tuple[str, ...] = ()  # files being written, to look at again soon
        self.retry = True  # the first poll always builds
        self.next_release: dt.datetime | None = None
        self.published_meta = _manifest_in_service(store)
        # The documents of the last build, by path. A document whose bytes did not change
        # comes out of the next build as the very same bytes object, so an `is` (else
        # `==`) here spares its digest. Empty after a restart: then each document is
        # digested once and compared with the manifest in service.
        self.published_bodies: Mapping[str, bytes] = {}
        self.published_posts = int(self.published_meta.get("posts", 0))
        self.last_success: str | None = None
        self.frozen = False  # whether the heap of the first build was frozen (`_freeze_heap`)

    def poll(self) -> bool:
        """One poll; True when it published new feeds. Never raises: a failure is logged,
        reported on /healthz, and retried at the next poll, while the last good feeds stay."""
        started = time.perf_counter()
        now = self.clock()
        try:
            reading = self.pipeline.read()
            self.settling = reading.settling
            due = self.next_release is not None and now >= self.next_release
            if reading.unchanged and not due and not self.retry:
                return False
            self._guard(reading)
            if self.site_first and not self.published_meta:
                self._publish_site_first(reading, now)
            built = self.pipeline.build(reading, now)
            files = self._files(built)
            digests, new_blobs, unverified = self._digests(files)
            if unverified:
                self.store.restore(unverified)
            before = self.published_meta
            published = None
            meta: dict[str, Any] = {}
            if new_blobs or digests.keys() != before.get("files", {}).keys():
                meta = self._manifest(built, digests)
                published = self.store.publish(new_blobs, meta)
        except Exception as error:
            self.retry = True
            if isinstance(error, EmptyContentGuard):
                log.error("%s", error)
            else:
                log.exception("build failed; the last good feeds stay in service")
            self._report(now, error=error)
            if self.metrics:
                self.metrics.build("failed", time.perf_counter() - started)
            return False
        self.retry = False
        if published and self.publisher:
            self.publisher.publish(self._changed_feeds(built, before, digests))
        if published:
            self.published_meta = meta
        self.published_bodies = files
        self.next_release = built.next_release
        self.published_posts = built.used
        self.last_success = rfc3339(now)
        if not self.frozen:
            _freeze_heap()
            self.frozen = True
        elapsed_ms = (time.perf_counter() - started) * 1000
        for problem in built.problems:
            log.warning("%s", built.reported(problem))
        log.info(
            "build: %d changed, %d removed, %d files, %d posts used, %d held back, %d skipped, %.0f ms, %s",
            reading.changed,
            reading.removed,
            built.files_read,
            built.used,
            built.held_back,
            built.skipped,
            elapsed_ms,
            f"published {published}" if published else "same bytes as before",
            extra={"fields": {"changed": reading.changed, "posts": built.used, "ms": round(elapsed_ms, 1)}},
        )
        self._report(now, built=built)
        if self.metrics:
            result = "published" if published else "unchanged"
            self.metrics.build(result, elapsed_ms / 1000, built.used, built.skipped)
        return published is not None

    def _publish_site_first(self, reading: Reading, now: dt.datetime) -> None:
        """On a cold start (nothing published yet), publishes the site's own feeds, their
        page, feed.xsl and the index at once, as a generation of their own: the rest
        (archive, sections, terms, OPML) takes most of a build's time and follows in the
        next generation. Until then those paths answer as before a first build."""
        built = self.pipeline.build(reading, now, site_only=True)
        files = self._files(built)
        digests, new_blobs, _ = self._digests(files)
        meta = self._meta(built, digests, now)
        self.store.publish(new_blobs, meta)
        self.published_meta, self.published_bodies = meta, files
        log.info("published the site's own feeds first (%d posts used)", built.used)
        self._report(now, built=built)  # /healthz names the generation in service at once
        if self.after_site_first:
            self.after_site_first()
        if self.publisher:
            self.publisher.publish(self._changed_feeds(built, {}, digests))

    def _manifest(self, built: Build, digests: Mapping[str, str]) -> dict[str, Any]:
        """The manifest to publish, dated by the clock at publication once it has reached
        the date the changed documents get. Changed bytes are dated at least a second
        past their previous date, so two publishes within one second would otherwise date
        the second one ahead of the clock, and a server MUST NOT send a Last-Modified
        later than its Date (RFC 9110 §8.8.2.1). describe() still moves the date forward
        if the clock went back."""
        now = self.clock()
        meta = self._meta(built, digests, now)
        latest = meta["last_modified_max"]
        ahead = dt.datetime.fromisoformat(latest) - now if latest else dt.timedelta(0)
        if dt.timedelta(0) < ahead <= MAX_CLOCK_WAIT:
            self.sleep(ahead.total_seconds())
            meta = self._meta(built, digests, self.clock())
        return meta

    def _guard(self, reading: Reading) -> None:
        if self.settings.empty_guard and reading.files_read == 0 and self.published_posts > 0:
            raise EmptyContentGuard(
                f"content_dir {str(self.settings.content_dir)!r} is missing or has no posts, "
                f"but the feeds in service have {self.published_posts}: keeping them "
                "(set empty_guard = false to publish empty feeds)"
            )

    def _files(self, built: Build) -> dict[str, bytes]:
        """Every document to publish, by path."""
        files = {output.path: output.body for output in built.outputs}
        files[INDEX_FILE] = index_html(self.settings, built.items, built.terms)
        return files

    def _digests(
        self, files: Mapping[str, bytes]
    ) -> tuple[dict[str, str], dict[str, bytes], dict[str, bytes]]:
        """The digest of every document; the bytes, by digest, of those that the manifest
        in service does not have; and of those it has that this process has not seen
        stored (after a restart: their blobs may have been cut short by a crash). Only
        bytes new since the last build are digested: the others keep the digest the
        manifest gives them."""
        described: Mapping[str, Any] = self.published_meta.get("files", {})
        digests: dict[str, str] = {}
        new_blobs: dict[str, bytes] = {}
        unverified: dict[str, bytes] = {}
        for path, body in files.items():
            about = described.get(path)
            previous = self.published_bodies.get(path)
            if about is not None and previous is not None and (previous is body or previous == body):
                digests[path] = about["digest"]
                continue
            digests[path] = digest = content_digest(body)
            if about is None or about["digest"] != digest:
                new_blobs[digest] = body
            elif previous is None:
                unverified[digest] = body
        return digests, new_blobs, unverified

    def _changed_feeds(
        self, built: Build, before: Mapping[str, Any], digests: Mapping[str, str]
    ) -> list[str]:
        """The URLs of the subscribable feeds whose bytes this build changed (`before` is
        the manifest that was in service)."""
        described: Mapping[str, Any] = before.get("files", {})
        return [
            self.settings.url(quote(output.path, safe="/"))
            for output in built.outputs
            if output.path.rpartition("/")[2] in FEED_FILES.values()
            and not output.path.startswith("archive/")
            and described.get(output.path, {}).get("digest") != digests[output.path]
        ]

    def _meta(self, built: Build, digests: Mapping[str, str], now: dt.datetime) -> dict[str, Any]:
        """The manifest: each document's digest, Last-Modified (when its bytes were first
        published) and cache lifetime, and the number of posts (for the empty-directory
        guard)."""
        documents = {output.path: output.max_age for output in built.outputs}
        documents[INDEX_FILE] = None
        return describe(documents, digests, self.published_meta, built.used, now)

    def _report(self, now: dt.datetime, built: Build | None = None, error: Exception | None = None) -> None:
        """Writes the health record that /healthz reads. `error` names only the class of
        the failure; `last_error` (its text, with server paths) and `skipped` (problem
        files, values quoted) are details that /healthz shows only with health_details."""
        previous = self.store.read_health() or {}
        health: dict[str, Any] = {
            "status": "ok" if error is None else "error",
            "last_attempt": rfc3339(now),
            "last_success": self.last_success,
            "error": type(error).__name__ if error is not None else None,
            "last_error": f"{type(error).__name__}: {error}" if error is not None else None,
            "generation": self.store.current_name(),
        }
        if built is not None:
            health["posts_used"] = built.used
            health["posts_skipped"] = built.skipped
            health["skipped"] = [str(problem) for problem in built.problems]
        else:
            for key in ("posts_used", "posts_skipped", "skipped"):
                health[key] = previous.get(key)
            health["last_success"] = self.last_success or previous.get("last_success")
        self.store.write_health(health)


def _freeze_heap() -> None:
    """Moves every object alive after the first build out of the collector's sight
    (`gc.freeze`). At 10,000 posts the heap is millions of objects (posts, items, parse
    records), and each full collection walked them all: 70-100 ms, landing on whichever
    poll allocated past the threshold. They live until the posts change, and those that
    go are freed by reference counting (posts and items hold no cycles). Collected once
    first, so no cyclic garbage of the cold build is kept for ever."""
    gc.collect()
    gc.freeze()


def _manifest_in_service(store: PublishedStore) -> Mapping[str, Any]:
    """The manifest `current` names; empty (publish afresh) when there is none, or when
    it is missing or not one this service wrote."""
    name = store.current_name()
    if name is None:
        return {}
    try:
        return store.read_manifest(name)
    except (FileNotFoundError, UnsafeStateError) as error:
        log.warning("the generation in service, %s, cannot be read (%s); publishing afresh", name, error)
        return {}


class WatcherService:
    """The poll loop of a builder process (`feeds.builder`): every `poll_interval`,
    poll if this process holds the lease, else try to take it. Two builders over one
    state directory therefore have exactly one polling; the other takes over within a
    tick of the first one's exit."""

    def __init__(
        self, settings: Settings, clock: Clock = utc_now, after_site_first: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self.after_site_first = after_site_first
        self.store = PublishedStore(default_state_dir(settings))
        self.lease = Lease(self.store.root / LEASE_FILE)
        self.clock = clock
        self._watcher: Watcher | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, stop: threading.Event) -> None:
        """Ticks until `stop` is set, one tick at a time: a slow build makes the next
        ticks coalesce, never overlap. Ticks keep to a fixed rate from the start."""
        interval = self.settings.poll_interval
        next_tick = time.monotonic()
        while not stop.is_set():
            self.tick()
            next_tick = max(next_tick + interval, time.monotonic())
            stop.wait(next_tick - time.monotonic())

    def start(self) -> None:
        """Runs the loop in a thread of this process (tests, embedding)."""
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stopping,), name="feeds-poll", daemon=True
        )
        self._thread.start()

    def tick(self) -> None:
        with self._lock:
            if not self.lease.acquire():
                return
            if self._watcher is None:
                log.info("this process (pid %d) is the watcher of %s", os.getpid(), self.store.root)
                publisher = Publisher(self.settings.websub_hub) if self.settings.websub_hub else None
                metrics = for_process(self.store.root / "metrics") if self.settings.metrics else None
                self._watcher = Watcher(
                    self.settings,
                    self.store,
                    self.clock,
                    publisher=publisher,
                    metrics=metrics,
                    site_first=True,
                    after_site_first=self.after_site_first,
                )
            self._watcher.poll()
            for _ in range(SETTLE_RECHECKS):
                if not self._watcher.settling:
                    break
                time.sleep(SETTLE_NS / 1e9)
                self._watcher.poll()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._watcher and self._watcher.publisher:
            self._watcher.publisher.close()
        self.lease.release()
