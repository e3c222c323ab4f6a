"""Faults in the content directory: files that move under the reader, unreadable files,
folders that come and go, links that lead outside, and a server killed mid-build."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feeds import pipeline
from feeds.config import Settings
from feeds.published import PublishedStore
from feeds.scan import Scan
from feeds.watcher import SETTLE_NS, Watcher

from conftest import WritePost, post_text
from feedcheck import check_documents, parsed
from server import Server

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SETTLE_SECONDS = SETTLE_NS / 1e9


def watcher_for(settings: Settings, store: PublishedStore) -> Watcher:
    return Watcher(settings, store, clock=lambda: NOW)


def titles(store: PublishedStore) -> list[str]:
    generation = store.load_current()
    assert generation is not None
    return [item["title"] for item in json.loads(generation.files["feed.json"])["items"]]


def backdate(path: Path, seconds: float = 5) -> None:
    """Makes `path` look saved a while ago, past the watcher's quiet period."""
    moment = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(moment, moment))


def settled_poll(watcher: Watcher) -> bool:
    time.sleep(SETTLE_SECONDS * 1.5)
    return watcher.poll()


@pytest.fixture
def after_scan(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[], None]], None]]:
    """Runs an action once, right after the next scan and before any file is read."""
    actions: list[Callable[[], None]] = []
    real_scan = pipeline.scan

    def scan_then_act(root: Path, extensions: tuple[str, ...]) -> Scan:
        found = real_scan(root, extensions)
        while actions:
            actions.pop()()
        return found

    monkeypatch.setattr(pipeline, "scan", scan_then_act)
    yield actions.append


def test_a_half_written_post_waits_and_is_published_whole(
    service_settings: Settings, store: PublishedStore, write_post: WritePost, content_dir: Path
) -> None:
    backdate(write_post("old.txt", post_text(title="Old", date="1000")))
    watcher = watcher_for(service_settings, store)
    assert watcher.poll() is True
    whole = post_text(title="New", date="2000", body="First paragraph.\n\nThe very last sentence.\n")
    path = content_dir / "new.txt"
    with path.open("w") as writer:
        writer.write(whole[: len(whole) // 2])
        writer.flush()
        assert watcher.poll() is False  # still being written: left for a second look
        assert watcher.settling == ("new.txt",)
        assert titles(store) == ["Old"]
        writer.write(whole[len(whole) // 2 :])
    assert settled_poll(watcher) is True
    assert titles(store) == ["New", "Old"]
    generation = store.load_current()
    assert generation is not None
    assert "The very last sentence." in generation.files["rss.xml"].decode()


def test_an_edit_in_progress_keeps_the_previous_version(
    service_settings: Settings, store: PublishedStore, write_post: WritePost
) -> None:
    path = write_post("post.txt", post_text(title="Version one"))
    backdate(path)
    watcher = watcher_for(service_settings, store)
    watcher.poll()
    path.write_text(post_text(title="Version two")[:40])  # an editor's first chunk
    assert watcher.poll() is False
    assert titles(store) == ["Version one"]
    path.write_text(post_text(title="Version two"))
    assert settled_poll(watcher) is True
    assert titles(store) == ["Version two"]


@pytest.mark.parametrize("fault", ["removed", "truncated", "rewritten", "appended"])
def test_files_that_change_between_scan_and_read(
    service_settings: Settings,
    store: PublishedStore,
    write_post: WritePost,
    after_scan: Callable[[Callable[[], None]], None],
    fault: str,
) -> None:
    keep = write_post("keep.txt", post_text(title="Kept", date="1000"))
    victim = write_post("victim.txt", post_text(title="Victim", date="2000"))
    for path in (keep, victim):
        backdate(path)

    def append() -> None:
        with victim.open("a") as file:
            file.write("More text.\n")

    actions: dict[str, Callable[[], None]] = {
        "removed": victim.unlink,
        "truncated": lambda: victim.write_bytes(victim.read_bytes()[:30]),
        "rewritten": lambda: victim.write_text(post_text(title="Victim, rewritten", date="2000")),
        "appended": append,
    }
    after_scan(actions[fault])
    watcher = watcher_for(service_settings, store)
    watcher.poll()
    assert watcher.settling == ("victim.txt",)
    assert titles(store) == ["Kept"]  # never what was read while it changed
    settled_poll(watcher)
    assert watcher.settling == ()
    expected = {
        "removed": ["Kept"],
        "truncated": ["Kept"],
        "rewritten": ["Victim, rewritten", "Kept"],
        "appended": ["Victim", "Kept"],
    }
    assert titles(store) == expected[fault]
    health = store.read_health()
    assert health is not None
    if fault == "truncated":
        assert health["skipped"] == ["victim.txt: front matter: no closing fence line"]
    else:
        assert health["skipped"] == []


def test_a_one_shot_build_reports_a_file_that_changed_while_read(
    settings: Settings, write_post: WritePost, after_scan: Callable[[Callable[[], None]], None]
) -> None:
    victim = write_post("victim.txt", post_text(title="Victim"))
    write_post("keep.txt", post_text(title="Kept"))
    after_scan(lambda: victim.write_text(post_text(title="Victim, again")))
    result = pipeline.Pipeline(settings).run(NOW)
    assert [str(p) for p in result.problems] == ["victim.txt: file: changed while it was read; build again"]
    assert [item.post.title for item in result.items] == ["Kept"]


def test_a_permission_denied_file_is_skipped_and_named(
    service_settings: Settings, store: PublishedStore, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Running as root, chmod cannot deny a read: the kernel's answer is injected instead.
    locked = write_post("locked.txt", post_text(title="Locked"))
    backdate(locked)
    backdate(write_post("open.txt", post_text(title="Open")))
    real_open = os.open

    def open_denying(path: str, flags: int, *args: int, **kwargs: int) -> int:
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)  # the state directory opens with dir_fd

    monkeypatch.setattr(os, "open", open_denying)
    watcher = watcher_for(service_settings, store)
    assert watcher.poll() is True
    assert titles(store) == ["Open"]
    health = store.read_health()
    assert health is not None and health["skipped"] == ["locked.txt: file: Permission denied"]


def test_a_folder_that_disappears_and_comes_back(
    service_settings: Settings, store: PublishedStore, write_post: WritePost, content_dir: Path
) -> None:
    for relpath, title, date in (("a/one.txt", "One", "1000"), ("b/two.txt", "Two", "2000")):
        backdate(write_post(relpath, post_text(title=title, date=date)))
    watcher = watcher_for(service_settings, store)
    watcher.poll()
    ids_before = json.loads(store.load_current().files["feed.json"])["items"]  # type: ignore[union-attr]
    (content_dir / "b").rename(content_dir.parent / "b-away")
    assert watcher.poll() is True
    assert titles(store) == ["One"]
    (content_dir.parent / "b-away").rename(content_dir / "b")
    assert watcher.poll() is True
    ids_after = json.loads(store.load_current().files["feed.json"])["items"]  # type: ignore[union-attr]
    assert [item["id"] for item in ids_after] == [item["id"] for item in ids_before]


def test_the_content_directory_replaced_by_an_empty_one(
    service_settings: Settings, store: PublishedStore, write_post: WritePost, content_dir: Path
) -> None:
    backdate(write_post("one.txt", post_text(title="One")))
    watcher = watcher_for(service_settings, store)
    watcher.poll()
    good = store.current_name()
    content_dir.rename(content_dir.parent / "content.old")
    content_dir.mkdir()
    assert watcher.poll() is False
    assert store.current_name() == good
    health = store.read_health()
    assert health is not None and "missing or has no posts" in health["last_error"]


def test_a_symlink_loop_and_a_link_outside_are_never_followed(
    settings: Settings, write_post: WritePost, content_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text(post_text(title="Secret"))
    (content_dir / "leak.txt").symlink_to(outside)
    (content_dir / "sub").mkdir()
    (content_dir / "sub" / "loop").symlink_to(content_dir)
    write_post("sub/inside.txt", post_text(title="Inside"))
    opened: list[str] = []
    listening = True

    def audit(event: str, args: tuple[object, ...]) -> None:
        if listening and event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.fsdecode(args[0]))  # type: ignore[arg-type]

    sys.addaudithook(audit)  # hooks cannot be removed: `listening` switches it off
    try:
        result = pipeline.Pipeline(settings).run(NOW)
    finally:
        listening = False
    check_documents(result.documents)
    assert [item.post.title for item in result.items] == ["Inside"]
    assert str(outside) not in opened and str(content_dir / "leak.txt") not in opened
    assert [str(p) for p in result.problems] == [
        "leak.txt: file: symlink leads outside the content directory"
    ]


def test_killed_mid_build_and_started_again_serves_a_complete_feed_at_once(
    tmp_path: Path, content_dir: Path, write_post: WritePost
) -> None:
    for n in range(3000):
        write_post(f"d{n % 10}/post-{n}.txt", post_text(title=f"Post {n}", date=str(1_500_000_000 + n)))
    state = str(tmp_path / "state")
    first = Server(tmp_path, content_dir, workers=1, via_cli=True, state_dir=state)
    first.wait_until_ready(timeout=60)
    _, _, good_body = first.request("/rss.xml")
    assert first.stop() == 0
    write_post("zz/newest.txt", post_text(title="Newest", date="1700000000"))
    doomed = Server(tmp_path, content_dir, workers=1, via_cli=True, state_dir=state)
    deadline = time.monotonic() + 30
    while "is the watcher of" not in doomed.errors() and time.monotonic() < deadline:
        time.sleep(0.01)  # the watcher has started its cold build of 3,001 posts
    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait(10)
    assert "build:" not in doomed.errors(), "the build finished before the kill: make it bigger"
    again = Server(tmp_path, content_dir, workers=1, via_cli=True, state_dir=state)
    try:
        deadline = time.monotonic() + 30
        while True:  # the first answer the restarted server gives
            try:
                status, _headers, body = again.request("/rss.xml")
                break
            except OSError:
                assert time.monotonic() < deadline, again.errors()
                time.sleep(0.005)
        assert status == 200
        entries = parsed(body).entries
        assert len(entries) == 20
        assert body == good_body or b"<title>Newest</title>" in body
        _, _, fresh = again.wait_for("/rss.xml", "Newest", timeout=30)
        assert parsed(fresh).entries[0].title == "Newest"
    finally:
        again.stop()
    assert not list((Path(state) / "generations").glob(".staging-*"))
    shutil.rmtree(content_dir)
