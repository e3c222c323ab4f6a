"""Keeping the published feeds fresh: poll the content directory, rebuild on change,
publish, and report health. One watcher runs per state directory, however many web
workers there are: each worker's scheduler asks for a file lock on every tick, and
only the holder polls. If the holder dies, the kernel frees the lock and another
worker takes over at its next tick.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from apscheduler.schedulers.background import BackgroundScheduler

from feeds.build import FEED_FILES, Build
from feeds.caching import compress
from feeds.config import Settings
from feeds.dates import rfc3339
from feeds.errors import FeedsError
from feeds.index import INDEX_FILE, index_html
from feeds.metrics import Metrics, for_process
from feeds.parsecache import ParseCache
from feeds.pipeline import Pipeline, Reading
from feeds.published import Generation, PublishedStore, default_state_dir, describe
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
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.publisher = publisher
        self.metrics = metrics
        self.pipeline = Pipeline(settings, settle_ns, pages=True, cache=ParseCache(store.root, settings))
        self.settling: tuple[str, ...] = ()  # files being written, to look at again soon
        self.retry = True  # the first poll always builds
        self.next_release: dt.datetime | None = None
        self.published = store.load_current()  # the generation in service
        self.published_posts = int(self.published.meta.get("posts", 0)) if self.published else 0
        self.last_success: str | None = None

    @property
    def published_files(self) -> Mapping[str, bytes]:
        return self.published.files if self.published else {}

    @property
    def published_meta(self) -> Mapping[str, Any]:
        return self.published.meta if self.published else {}

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
            built = self.pipeline.build(reading, now)
            files = self._files(built, self.published_files)
            published = None
            meta: dict[str, Any] = {}
            # A generation from before Last-Modified was stamped is published again.
            if files != self.published_files or "last_modified_max" not in self.published_meta:
                meta = self._meta(built, files, self._publication_moment(built, files))
                published = self.store.publish(files, meta, self.published_files)
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
            self.publisher.publish(self._changed_feeds(built, self.published_files))
        if published:
            self.published = Generation(published, files, meta)
        self.next_release = built.next_release
        self.published_posts = built.used
        self.last_success = rfc3339(now)
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

    def _publication_moment(self, built: Build, files: Mapping[str, bytes]) -> dt.datetime:
        """The clock at publication, once it has reached the date the changed documents
        get. Changed bytes are dated at least a second past their previous date, so two
        publishes within one second would otherwise date the second one ahead of the
        clock, and a server MUST NOT send a Last-Modified later than its Date (RFC 9110
        §8.8.2.1). describe() still moves the date forward if the clock went back."""
        now = self.clock()
        latest = self._meta(built, files, now)["last_modified_max"]
        ahead = dt.datetime.fromisoformat(latest) - now if latest else dt.timedelta(0)
        if dt.timedelta(0) < ahead <= MAX_CLOCK_WAIT:
            self.sleep(ahead.total_seconds())
            now = self.clock()
        return now

    def _guard(self, reading: Reading) -> None:
        if self.settings.empty_guard and reading.files_read == 0 and self.published_posts > 0:
            raise EmptyContentGuard(
                f"content_dir {str(self.settings.content_dir)!r} is missing or has no posts, "
                f"but the feeds in service have {self.published_posts}: keeping them "
                "(set empty_guard = false to publish empty feeds)"
            )

    def _files(self, built: Build, before: Mapping[str, bytes]) -> dict[str, bytes]:
        """Every file to publish, each with its gzip twin. Unchanged documents keep the
        very bytes objects of the generation in service (compressed once, linked)."""
        files = {output.path: output.body for output in built.outputs}
        files[INDEX_FILE] = index_html(self.settings, built.items, built.terms)
        for name, data in list(files.items()):
            old = before.get(name)
            if old is not None and old == data and name + ".gz" in before:
                files[name] = old
                files[name + ".gz"] = before[name + ".gz"]
            else:
                files[name + ".gz"] = compress(data)
        return files

    def _changed_feeds(self, built: Build, before: Mapping[str, bytes]) -> list[str]:
        """The URLs of the subscribable feeds whose bytes this build changed."""
        return [
            self.settings.url(quote(output.path, safe="/"))
            for output in built.outputs
            if output.path.rpartition("/")[2] in FEED_FILES.values()
            and not output.path.startswith("archive/")
            and before.get(output.path) != output.body
        ]

    def _meta(self, built: Build, files: Mapping[str, bytes], now: dt.datetime) -> dict[str, Any]:
        """What the web workers need beside the bytes: each document's Last-Modified
        (when its bytes were first published) and cache lifetime, and the number of
        posts (for the empty-directory guard)."""
        documents = {output.path: output.max_age for output in built.outputs}
        documents[INDEX_FILE] = None
        return describe(documents, files, self.published, built.used, now)

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


class Lease:
    """An exclusive, non-blocking file lock, held until release or process exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class WatcherService:
    """The scheduler of one process: every `poll_interval`, poll if this process holds
    the lease. Started by the process entry point (the gunicorn hooks), never by the app
    factory."""

    def __init__(self, settings: Settings, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.store = PublishedStore(default_state_dir(settings))
        self.lease = Lease(self.store.root / "watcher.lock")
        self.clock = clock
        self._watcher: Watcher | None = None
        self._lock = threading.Lock()
        # One job at a time: a slow build makes the next ticks coalesce, never overlap.
        self.scheduler = BackgroundScheduler(
            timezone=dt.UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )

    def start(self) -> None:
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.settings.poll_interval,
            next_run_time=dt.datetime.now(dt.UTC),
            id="poll",
        )
        self.scheduler.start()

    def tick(self) -> None:
        with self._lock:
            if not self.lease.acquire():
                return
            if self._watcher is None:
                log.info("this process (pid %d) is the watcher of %s", os.getpid(), self.store.root)
                publisher = Publisher(self.settings.websub_hub) if self.settings.websub_hub else None
                metrics = for_process(self.store.root / "metrics") if self.settings.metrics else None
                self._watcher = Watcher(
                    self.settings, self.store, self.clock, publisher=publisher, metrics=metrics
                )
            self._watcher.poll()
            for _ in range(SETTLE_RECHECKS):
                if not self._watcher.settling:
                    break
                time.sleep(SETTLE_NS / 1e9)
                self._watcher.poll()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self._watcher and self._watcher.publisher:
            self._watcher.publisher.close()
        self.lease.release()
