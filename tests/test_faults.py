"""Faults in the content directory: files that move under the reader, unreadable files,
folders that come and go, links that lead outside, and a server killed mid-build."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feeds import pipeline
from feeds.config import Settings
from feeds.pipeline import Reading
from feeds.published import PublishedStore, default_state_dir
from feeds.scan import Scan
from feeds.watcher import SETTLE_NS, Watcher

from conftest import MakeSettings, WritePost, no_wait, post_text
from feedcheck import check_documents, parsed
from server import Server

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SETTLE_SECONDS = SETTLE_NS / 1e9


def watcher_for(settings: Settings, store: PublishedStore) -> Watcher:
    return Watcher(settings, store, clock=lambda: NOW, sleep=no_wait)


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


AfterRead = Callable[[Watcher, Callable[[], object]], None]


@pytest.fixture
def after_read(monkeypatch: pytest.MonkeyPatch) -> AfterRead:
    """Runs an action once in a watcher's next poll, after every changed file was read
    and parsed and before the build reads the bodies it renders."""

    def hook(watcher: Watcher, action: Callable[[], object]) -> None:
        real_read = watcher.pipeline.read
        pending = [action]

        def read_then_act(progress: pipeline.Progress | None = None) -> Reading:
            reading = real_read(progress)
            while pending:
                pending.pop()()
            return reading

        monkeypatch.setattr(watcher.pipeline, "read", read_then_act)

    return hook


def everything_published(store: PublishedStore) -> str:
    """Every byte of every generation still on disk (blobs and manifests, gzip twins
    unpacked), as text."""
    texts = []
    for path in sorted([*store.blobs.rglob("*"), *store.manifests.rglob("*")]):
        if path.is_file():
            data = path.read_bytes()
            texts.append((gzip.decompress(data) if path.suffix == ".gz" else data).decode())
    return "\n".join(texts)


SECRET = "TOP-SECRET-TOKEN"


def twins(original: Path, impostor: Path) -> None:
    """Gives both files the same size and modification time, padding the shorter body
    with newlines: what the scan records of one then fits the other too."""
    size = max(original.stat().st_size, impostor.stat().st_size)
    for path in (original, impostor):
        with path.open("ab") as file:
            file.write(b"\n" * (size - path.stat().st_size))
        backdate(path, 30)
    moment = original.stat().st_mtime_ns
    os.utime(impostor, ns=(moment, moment))


def test_a_half_written_post_waits_and_is_published_whole(
    service_settings: Settings, store: PublishedStore, write_post: WritePost, content_dir: Path
) -> None:
    backdate(write_post("old.txt", post_text(title="Old", date="1600001000")))
    watcher = watcher_for(service_settings, store)
    assert watcher.poll() is True
    whole = post_text(title="New", date="1600002000", body="First paragraph.\n\nThe very last sentence.\n")
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
    keep = write_post("keep.txt", post_text(title="Kept", date="1600001000"))
    victim = write_post("victim.txt", post_text(title="Victim", date="1600002000"))
    for path in (keep, victim):
        backdate(path)

    def append() -> None:
        with victim.open("a") as file:
            file.write("More text.\n")

    actions: dict[str, Callable[[], None]] = {
        "removed": victim.unlink,
        "truncated": lambda: victim.write_bytes(victim.read_bytes()[:30]),
        "rewritten": lambda: victim.write_text(post_text(title="Victim, rewritten", date="1600002000")),
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


def test_a_half_written_rewrite_never_reaches_the_feed_when_its_post_moves_up(
    make_settings: MakeSettings, tmp_path: Path, content_dir: Path, write_post: WritePost
) -> None:
    # The reported case: b.md is not in the feed (item_limit 1), so its item is not
    # cached; while a rewrite of it is half written (and settling), a.md is deleted, and
    # the build needs b's body: it must not take it from the file as it is now.
    settings = make_settings(state_dir=str(tmp_path / "state"), item_limit=1)
    store = PublishedStore(default_state_dir(settings))
    watcher = Watcher(settings, store, clock=lambda: NOW, settle_ns=5_000_000_000, sleep=no_wait)
    backdate(write_post("a.md", post_text(title="A", date="1600002000")), 60)
    b = write_post("b.md", post_text(title="B", date="1600001000", body="The first version.\n"))
    backdate(b, 60)
    assert watcher.poll() is True
    assert titles(store) == ["A"]
    whole = post_text(title="B", date="1600001000", body="NEW VERSION, HALF WRITTEN NO MORE: the end.\n")
    b.write_text(whole[: whole.index("TTEN NO MORE")])
    (content_dir / "a.md").unlink()
    watcher.poll()
    assert watcher.settling == ("b.md",)
    assert "NEW VERSION" not in everything_published(store)
    assert titles(store) == []  # b waits for its writer; a is gone
    b.write_text(whole)
    backdate(b, 60)  # its writer finished a while ago
    assert watcher.poll() is True
    assert titles(store) == ["B"]
    assert "NEW VERSION, HALF WRITTEN NO MORE: the end." in store.load_current().files["rss.xml"].decode()  # type: ignore[union-attr]
    assert "HALF WRI<" not in everything_published(store)


def test_a_post_changed_between_read_and_build_keeps_its_previous_version(
    service_settings: Settings, store: PublishedStore, write_post: WritePost, after_read: AfterRead
) -> None:
    post = write_post("post.txt", post_text(title="Version one", body="Body one.\n"))
    backdate(post)
    watcher = watcher_for(service_settings, store)
    assert watcher.poll() is True
    post.write_text(post_text(title="Version two", body="Body two.\n"))
    backdate(post)
    after_read(watcher, lambda: post.write_text(post_text(title="Version three", body="Body three.\n")))
    watcher.poll()  # read version two; its body is gone when the build needs it
    assert titles(store) == ["Version one"]
    published = everything_published(store)
    assert "Body two." not in published and "Body three." not in published
    backdate(post)
    assert watcher.poll() is True  # the next poll reads the file again
    assert titles(store) == ["Version three"]
    assert "Body three." in store.load_current().files["feed.json"].decode()  # type: ignore[union-attr]


@pytest.mark.parametrize("same_size_and_mtime", [False, True])
def test_a_one_shot_build_reports_a_body_changed_between_read_and_build(
    settings: Settings, write_post: WritePost, same_size_and_mtime: bool
) -> None:
    victim = write_post("victim.txt", post_text(title="Victim", body="The parsed body.\n"))
    write_post("keep.txt", post_text(title="Kept"))
    runner = pipeline.Pipeline(settings)
    reading = runner.read()
    status = victim.stat()
    if same_size_and_mtime:  # the same inode, size and mtime: only the bytes tell
        with victim.open("r+b") as file:
            file.seek(-len(b"parsed body.\n"), os.SEEK_END)
            file.write(b"sneaky body.\n")
        os.utime(victim, ns=(status.st_atime_ns, status.st_mtime_ns))
        assert (victim.stat().st_size, victim.stat().st_mtime_ns) == (status.st_size, status.st_mtime_ns)
    else:
        victim.write_text(post_text(title="Victim", body="Another body, longer than the first.\n"))
    result = runner.build(reading, NOW)
    assert [str(p) for p in result.problems] == ["victim.txt: file: changed while it was read; build again"]
    assert [item.post.title for item in result.items] == ["Kept"]
    written = b"".join(output.body for output in result.outputs)
    assert b"sneaky" not in written and b"Another body" not in written


def test_a_symlink_swapped_in_between_read_and_build_is_never_published(
    service_settings: Settings,
    store: PublishedStore,
    write_post: WritePost,
    tmp_path: Path,
    after_read: AfterRead,
) -> None:
    # The reported attack: the post is replaced by a link to a file outside the content
    # directory after it was parsed, and put back once the build is published.
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    post = write_post("post.txt", post_text(title="Post", body="The original body.\n"))
    backdate(post)
    write_post("keep.txt", post_text(title="Kept", date="1600001000"))
    backdate(post.with_name("keep.txt"))
    watcher = watcher_for(service_settings, store)
    away = tmp_path / "post.away"

    def swap() -> None:
        post.rename(away)
        post.symlink_to(secret)

    after_read(watcher, swap)
    watcher.poll()
    assert SECRET not in everything_published(store)
    assert titles(store) == ["Kept"]  # left for the next poll
    post.unlink()
    away.rename(post)  # the original, with its inode, size and mtime: nothing looks changed
    assert watcher.poll() is True
    assert titles(store) == ["Post", "Kept"]
    assert "The original body." in store.load_current().files["feed.json"].decode()  # type: ignore[union-attr]
    assert SECRET not in everything_published(store)


def test_a_symlink_swapped_in_between_scan_and_read_is_refused_even_when_it_looks_the_same(
    service_settings: Settings,
    store: PublishedStore,
    write_post: WritePost,
    tmp_path: Path,
    after_scan: Callable[[Callable[[], None]], None],
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(post_text(title="Secret", body=f"{SECRET}\n"))
    post = write_post("post.txt", post_text(title="Post", body="The original body.\n"))
    twins(post, secret)  # the link's target has the size and mtime the scan saw
    away = tmp_path / "post.away"

    def swap() -> None:
        post.rename(away)
        post.symlink_to(secret)

    after_scan(swap)
    watcher = watcher_for(service_settings, store)
    watcher.poll()
    assert SECRET not in everything_published(store)
    post.unlink()
    away.rename(post)
    watcher.poll()
    assert titles(store) == ["Post"]
    assert SECRET not in everything_published(store)


@pytest.mark.parametrize("swap", ["the link", "the folder of its target"])
def test_a_link_inside_redirected_outside_after_the_scan_never_reads_outside(
    settings: Settings,
    write_post: WritePost,
    content_dir: Path,
    tmp_path: Path,
    after_scan: Callable[[Callable[[], None]], None],
    swap: str,
) -> None:
    real = write_post("posts/real.txt", post_text(title="Real", body="The real body.\n"))
    (content_dir / "alias.txt").symlink_to(Path("posts") / "real.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    impostor = elsewhere / "real.txt"
    impostor.write_text(post_text(title="Secret", body=f"{SECRET}\n"))
    twins(real, impostor)

    def redirect() -> None:
        if swap == "the link":
            (content_dir / "alias.txt").unlink()
            (content_dir / "alias.txt").symlink_to(impostor)
        else:
            (content_dir / "posts").rename(tmp_path / "posts.away")
            (content_dir / "posts").symlink_to(elsewhere, target_is_directory=True)

    after_scan(redirect)
    result = pipeline.Pipeline(settings).run(NOW)
    written = b"".join(output.body for output in result.outputs)
    assert SECRET.encode() not in written
    if swap == "the link":  # the scan saw the link's target inside: that file is read
        assert sorted(item.post.title for item in result.items) == ["Real", "Real"]
    else:  # both names now lead to another file than the scan saw
        assert result.items == ()
        assert [problem.path for problem in result.problems] == ["alias.txt", "posts/real.txt"]


@pytest.mark.parametrize("moment", ["between scan and read", "between read and build"])
def test_a_fifo_swapped_in_for_a_post_never_blocks_the_watcher(
    service_settings: Settings,
    store: PublishedStore,
    write_post: WritePost,
    after_scan: Callable[[Callable[[], None]], None],
    after_read: AfterRead,
    moment: str,
) -> None:
    post = write_post("post.txt", post_text(title="Post", date="1600002000"))
    backdate(post)
    backdate(write_post("keep.txt", post_text(title="Kept", date="1600001000")))
    watcher = watcher_for(service_settings, store)

    def swap() -> None:
        post.unlink()
        os.mkfifo(post)

    if moment == "between scan and read":
        after_scan(swap)
    else:
        after_read(watcher, swap)
    poll = threading.Thread(target=watcher.poll, daemon=True)
    poll.start()
    poll.join(5)
    try:
        assert not poll.is_alive(), "the watcher is stuck opening a FIFO"
    finally:
        if poll.is_alive():  # give the blocked reader a writer, so the thread can end
            os.close(os.open(post, os.O_WRONLY | os.O_NONBLOCK))
            poll.join(5)
    assert titles(store) == ["Kept"]
    post.unlink()
    assert watcher.poll() is False  # the FIFO is no post: nothing new to publish


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
        return real_open(path, flags, *args, **kwargs)  # the scan and the state directory open with dir_fd

    monkeypatch.setattr(os, "open", open_denying)
    watcher = watcher_for(service_settings, store)
    assert watcher.poll() is True
    assert titles(store) == ["Open"]
    health = store.read_health()
    assert health is not None and health["skipped"] == ["locked.txt: file: Permission denied"]


def test_a_folder_that_disappears_and_comes_back(
    service_settings: Settings, store: PublishedStore, write_post: WritePost, content_dir: Path
) -> None:
    for relpath, title, date in (("a/one.txt", "One", "1600001000"), ("b/two.txt", "Two", "1600002000")):
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
