"""The watcher: when it builds, what it publishes, how it fails, and that only one runs."""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

from feeds.build import Build
from feeds.config import Settings
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Lease, Watcher, WatcherService

from conftest import MakeSettings, WritePost, post_text


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def watcher(service_settings: Settings, store: PublishedStore, clock: Clock) -> Watcher:
    return Watcher(
        service_settings, store, clock, settle_ns=0, sleep=clock.sleep
    )  # the quiet period has its own tests


def titles(store: PublishedStore) -> list[str]:
    generation = store.load_current()
    assert generation is not None
    items = json.loads(generation.files["feed.json"])["items"]
    return [item["title"] for item in items]


def test_first_poll_publishes_and_an_unchanged_poll_does_nothing(
    write_post: WritePost, watcher: Watcher, store: PublishedStore
) -> None:
    write_post("one.txt", post_text(title="One"))
    assert watcher.poll() is True
    first = store.current_name()
    assert first is not None and first.startswith("000001-")
    assert titles(store) == ["One"]
    health_before = store.read_health()
    assert watcher.poll() is False
    assert store.current_name() == first
    assert store.read_health() == health_before  # nothing built, nothing rewritten


def test_added_changed_and_removed_files_rebuild(
    write_post: WritePost, watcher: Watcher, store: PublishedStore
) -> None:
    one = write_post("one.txt", post_text(title="One", date="1600001000"))
    watcher.poll()
    write_post("two.txt", post_text(title="Two", date="1600002000"))
    assert watcher.poll() is True
    assert titles(store) == ["Two", "One"]
    write_post("one.txt", post_text(title="One, edited", date="1600001000", body="Longer body now.\n"))
    assert watcher.poll() is True
    assert titles(store) == ["Two", "One, edited"]
    one.unlink()
    assert watcher.poll() is True
    assert titles(store) == ["Two"]


def test_a_rebuild_with_the_same_bytes_publishes_nothing(
    write_post: WritePost, watcher: Watcher, store: PublishedStore
) -> None:
    path = write_post("one.txt", post_text())
    watcher.poll()
    first = store.current_name()
    path.touch()  # new mtime, same content
    assert watcher.poll() is False
    assert store.current_name() == first


def test_future_post_appears_at_the_first_poll_after_its_date(
    write_post: WritePost, watcher: Watcher, store: PublishedStore, clock: Clock
) -> None:
    write_post("now.txt", post_text(title="Now", date="2025-01-01T00:00:00Z"))
    write_post("later.txt", post_text(title="Later", date="2026-01-01T00:10:00Z"))
    watcher.poll()
    assert titles(store) == ["Now"]
    clock.now += dt.timedelta(minutes=5)
    assert watcher.poll() is False
    clock.now += dt.timedelta(minutes=5, seconds=1)
    assert watcher.poll() is True
    assert titles(store) == ["Later", "Now"]


def test_a_failed_build_keeps_the_last_good_feeds_and_retries(
    write_post: WritePost,
    watcher: Watcher,
    store: PublishedStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_post("one.txt", post_text(title="One"))
    watcher.poll()
    good = store.current_name()
    write_post("two.txt", post_text(title="Two"))
    real_build = watcher.pipeline.build

    def broken(*args: object) -> Build:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(watcher.pipeline, "build", broken)
    with caplog.at_level(logging.ERROR, logger="feeds.watcher"):
        assert watcher.poll() is False
    assert "build failed" in caplog.text and "disk on fire" in caplog.text
    assert store.current_name() == good
    health = store.read_health()
    assert health is not None
    assert health["status"] == "error"
    assert health["last_error"] == "RuntimeError: disk on fire"
    assert health["posts_used"] == 1 and health["last_success"] is not None
    monkeypatch.setattr(watcher.pipeline, "build", real_build)
    assert watcher.poll() is True  # no file changed since, but the failed build is retried
    assert titles(store) == ["One", "Two"] or titles(store) == ["Two", "One"]
    health = store.read_health()
    assert health is not None and health["status"] == "ok" and health["last_error"] is None


def test_skipped_posts_are_reported_on_health_and_in_the_log(
    write_post: WritePost, watcher: Watcher, store: PublishedStore, caplog: pytest.LogCaptureFixture
) -> None:
    write_post("good.txt", post_text())
    write_post("broken.txt", "---\ntitle: Broken\n---\n")
    with caplog.at_level(logging.INFO, logger="feeds.watcher"):
        watcher.poll()
    health = store.read_health()
    assert health is not None
    assert (health["posts_used"], health["posts_skipped"]) == (1, 1)
    assert health["skipped"] == ["broken.txt: date: missing"]
    assert "skipped broken.txt: date: missing" in caplog.text
    assert "1 changed" not in caplog.text and "2 changed, 0 removed, 2 files, 1 posts used" in caplog.text


def test_a_post_that_only_lost_its_content_is_not_logged_as_skipped(
    write_post: WritePost,
    make_settings: MakeSettings,
    store: PublishedStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(state_dir=str(store.root), max_render_bytes=100)
    write_post("long.txt", post_text(body="word " * 100))
    with caplog.at_level(logging.INFO, logger="feeds.watcher"):
        assert Watcher(settings, store, settle_ns=0).poll() is True
    assert "lost content long.txt: content: left out of the feeds" in caplog.text
    assert "skipped long.txt" not in caplog.text and "0 skipped" in caplog.text


@pytest.mark.parametrize("how", ["emptied", "removed"])
def test_guard_keeps_the_last_good_feeds_when_the_content_vanishes(
    write_post: WritePost, watcher: Watcher, store: PublishedStore, content_dir: Path, how: str
) -> None:
    write_post("one.txt", post_text(title="One"))
    watcher.poll()
    good = store.current_name()
    if how == "emptied":
        (content_dir / "one.txt").unlink()
    else:
        shutil.rmtree(content_dir)
    assert watcher.poll() is False
    assert store.current_name() == good
    health = store.read_health()
    assert health is not None and health["status"] == "error"
    assert "missing or has no posts" in health["last_error"]
    content_dir.mkdir(exist_ok=True)
    write_post("one.txt", post_text(title="One again"))
    assert watcher.poll() is True
    assert titles(store) == ["One again"]


def test_guard_survives_a_new_watcher(
    write_post: WritePost, service_settings: Settings, store: PublishedStore, content_dir: Path, clock: Clock
) -> None:
    path = write_post("one.txt", post_text(title="One"))
    Watcher(service_settings, store, clock, settle_ns=0, sleep=clock.sleep).poll()
    good = store.current_name()
    path.unlink()
    assert (
        Watcher(service_settings, store, clock, settle_ns=0, sleep=clock.sleep).poll() is False
    )  # took over the lease
    assert store.current_name() == good


def test_guard_can_be_turned_off(
    write_post: WritePost, make_settings: MakeSettings, tmp_path: Path, content_dir: Path, clock: Clock
) -> None:
    settings = make_settings(state_dir=str(tmp_path / "state"), empty_guard=False)
    store = PublishedStore(default_state_dir(settings))
    watcher = Watcher(settings, store, clock, settle_ns=0, sleep=clock.sleep)
    path = write_post("one.txt", post_text(title="One"))
    watcher.poll()
    path.unlink()
    assert watcher.poll() is True
    assert titles(store) == []


def test_only_a_few_generations_are_kept(
    write_post: WritePost, watcher: Watcher, store: PublishedStore
) -> None:
    for n in range(6):
        write_post("one.txt", post_text(title=f"Version {n}"))
        assert watcher.poll() is True
    names = sorted(p.name for p in store.manifests.iterdir())
    assert len(names) == 3 and names[-1] == f"{store.current_name()}.json"
    assert names[-1].startswith("000006-")


def test_lease_is_exclusive_and_released(tmp_path: Path) -> None:
    first, second = Lease(tmp_path / "lock"), Lease(tmp_path / "lock")
    assert first.acquire() is True
    assert first.acquire() is True  # re-entrant for its holder
    assert second.acquire() is False
    first.release()
    assert second.acquire() is True
    second.release()


def test_two_services_share_one_watcher(
    write_post: WritePost, service_settings: Settings, store: PublishedStore
) -> None:
    write_post("one.txt", post_text())
    services = [WatcherService(service_settings), WatcherService(service_settings)]
    for service in services:
        service.tick()
    watching = [service._watcher is not None for service in services]
    assert watching == [True, False]
    services[0].lease.release()
    services[1].tick()
    assert services[1]._watcher is not None
    services[1].lease.release()


def test_a_slow_build_never_overlaps_the_next(
    write_post: WritePost, service_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_post("one.txt", post_text())
    settings = Settings(**{**service_settings.__dict__, "poll_interval": 0.05})
    service = WatcherService(settings)
    running, overlaps, runs = 0, 0, 0
    guard = threading.Lock()

    def slow_poll(self: Watcher) -> bool:
        nonlocal running, overlaps, runs
        with guard:
            running += 1
            runs += 1
            overlaps = max(overlaps, running)
        time.sleep(0.2)
        with guard:
            running -= 1
        return False

    monkeypatch.setattr(Watcher, "poll", slow_poll)
    service.start()
    try:
        deadline = time.monotonic() + 5
        while runs < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        service.stop()
    assert runs >= 3
    assert overlaps == 1


def test_the_heap_of_the_first_build_is_frozen_once(
    write_post: WritePost, watcher: Watcher, store: PublishedStore
) -> None:
    # A full collection walked every post and item of the site at some later poll; after
    # the first build they are out of the collector's sight, and only then.
    gc.unfreeze()
    write_post("one.txt", post_text(title="One"))
    assert watcher.poll() is True
    frozen = gc.get_freeze_count()
    assert frozen > 0
    write_post("two.txt", post_text(title="Two"))
    assert watcher.poll() is True
    assert gc.get_freeze_count() <= frozen  # none added; some freed since, by reference counting
    gc.unfreeze()
