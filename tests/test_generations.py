"""Generations: a publisher killed at any step never stops later publishing, and a
worker under threads only ever moves forward from one generation to the next."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from feeds.config import Settings
from feeds.published import KEEP_GENERATIONS, PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import Snapshots, create_app

from conftest import MakeSettings, WritePost, no_wait, post_text

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Killed(BaseException):
    """Stands for SIGKILL: no `except Exception` and no clean-up code sees it."""


# Every call through which publishing changes the state directory.
STEPS: list[tuple[Any, str]] = [
    (os, "mkdir"),
    (os, "rename"),
    (os, "replace"),
    (os, "link"),
    (os, "symlink"),
    (os, "unlink"),
    (os, "rmdir"),
    (os, "chmod"),
    (pathlib.Path, "write_bytes"),
    (pathlib.Path, "write_text"),
]


@contextmanager
def steps_counted(monkeypatch: pytest.MonkeyPatch, kill_at: int | None = None) -> Iterator[list[str]]:
    """Counts the publishing steps in the block, and raises Killed at step `kill_at`."""
    done: list[str] = []
    with monkeypatch.context() as patch:
        for owner, name in STEPS:
            real = getattr(owner, name)

            def step(*args: Any, _real: Callable[..., Any] = real, _name: str = name, **kwargs: Any) -> Any:
                done.append(_name)
                if len(done) == kill_at:
                    raise Killed(f"killed at step {kill_at} ({_name})")
                return _real(*args, **kwargs)

            patch.setattr(owner, name, step)
        yield done


def new_watcher(settings: Settings) -> Watcher:
    """A watcher as a restarted process makes it: new objects over the same state dir."""
    return Watcher(
        settings, PublishedStore(default_state_dir(settings)), lambda: NOW, settle_ns=0, sleep=no_wait
    )


def served(settings: Settings, path: str) -> bytes:
    return create_app(settings).test_client().get(path).data


def served_feed(settings: Settings) -> bytes:
    return served(settings, "/rss.xml")


def blob_names(store: PublishedStore) -> set[str]:
    """Every file below blobs/, temporary ones included."""
    return {path.name for path in store.blobs.rglob("*") if not path.is_dir()}


def referenced_names(store: PublishedStore) -> set[str]:
    """The blob files the manifests on disk name: each digest and its gzip twin."""
    names = set()
    for manifest in store.manifests.iterdir():
        for about in json.loads(manifest.read_bytes())["files"].values():
            names |= {about["digest"], about["digest"] + ".gz"}
    return names


def body_edit(n: int) -> str:
    """Only the body changes: the dates, the post count and every max-age stay the same."""
    return post_text(title="Harbour", date="1600000000", body=f"Edit number {n} of the body.\n")


@pytest.fixture
def state_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    return make_settings(state_dir=str(tmp_path / "state"))


def publish_three(settings: Settings, write_post: WritePost) -> Watcher:
    """Three generations already, so that the next publish also prunes one."""
    watcher = new_watcher(settings)
    for n in range(3):
        write_post("harbour.txt", body_edit(n))
        assert watcher.poll() is True
    return watcher


def test_a_publisher_killed_at_any_step_never_stops_later_publishing(
    make_settings: MakeSettings, tmp_path: Path, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = make_settings(state_dir=str(tmp_path / "counting"))
    watcher = publish_three(counting, write_post)
    write_post("harbour.txt", body_edit(3))
    with steps_counted(monkeypatch) as done:
        assert watcher.poll() is True
    assert {"replace", "symlink", "write_bytes", "unlink"} <= set(done)
    assert len(done) >= 20
    for kill_at in range(1, len(done) + 1):
        settings = make_settings(state_dir=str(tmp_path / f"state-{kill_at}"))
        doomed = publish_three(settings, write_post)
        write_post("harbour.txt", body_edit(3))
        with steps_counted(monkeypatch, kill_at), pytest.raises(Killed):
            doomed.poll()
        # Whatever `current` names is whole: a worker serves one generation's documents.
        rss, json_feed = served(settings, "/rss.xml"), served(settings, "/feed.json")
        assert [n for n in (2, 3) if f"Edit number {n}".encode() in rss] == [
            n for n in (2, 3) if f"Edit number {n}".encode() in json_feed
        ], f"killed at step {kill_at}"
        for n in (4, 5):  # the next change, body only, and the one after it
            write_post("harbour.txt", body_edit(n))
            restarted = new_watcher(settings)
            assert restarted.poll() is True, f"killed at step {kill_at} ({done[kill_at - 1]})"
            assert f"Edit number {n}".encode() in served_feed(settings), f"killed at step {kill_at}"
        store = restarted.store
        # Pruned as usual, leftovers included: the kept manifests, exactly the blobs they
        # name (each with its twin), no temporary file and no temporary link.
        assert len(list(store.manifests.iterdir())) == KEEP_GENERATIONS, f"killed at step {kill_at}"
        assert blob_names(store) == referenced_names(store), f"killed at step {kill_at}"
        assert not list(store.root.glob(".current-*"))


def test_a_generation_left_behind_by_a_kill_is_stepped_over(
    state_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case of the report: killed after the new generation was renamed into place and
    before `current` was swapped, then an edit of the body alone."""
    watcher = publish_three(state_settings, write_post)
    write_post("harbour.txt", body_edit(3))
    real_symlink = os.symlink

    def killed_symlink(*args: Any, **kwargs: Any) -> None:
        raise Killed("killed before current was swapped")

    monkeypatch.setattr(os, "symlink", killed_symlink)
    with pytest.raises(Killed):
        watcher.poll()
    monkeypatch.setattr(os, "symlink", real_symlink)
    store = watcher.store
    assert len([p for p in store.manifests.iterdir() if not p.name.startswith(".")]) == 4
    for n in (4, 5):  # every poll used to fail with "Directory not empty"
        write_post("harbour.txt", body_edit(n))
        assert new_watcher(state_settings).poll() is True
        assert f"Edit number {n}".encode() in served_feed(state_settings)


def test_a_worker_never_goes_back_to_an_older_generation(
    state_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thread A reads `current` just before a publish and is held there; thread B comes
    after the publish and serves the new generation; then A goes on. A must not take the
    worker back to the old generation (and keep it there until the next request)."""
    write_post("harbour.txt", post_text(title="Old news"))
    watcher = new_watcher(state_settings)
    assert watcher.poll() is True
    store = PublishedStore(default_state_dir(state_settings))
    snapshots = Snapshots(store, 300)
    assert snapshots.representation("/rss.xml") is not None
    real_current_name = store.current_name
    a_has_read, a_may_go_on = threading.Event(), threading.Event()

    def current_name_holding_a() -> str | None:
        name = real_current_name()
        if threading.current_thread().name == "A":
            a_has_read.set()
            assert a_may_go_on.wait(10)
        return name

    monkeypatch.setattr(store, "current_name", current_name_holding_a)
    answers: dict[str, bytes] = {}

    def request(thread: str) -> None:
        representation = snapshots.representation("/rss.xml")
        assert representation is not None
        answers[thread] = representation.identity.body

    a = threading.Thread(target=request, args=("A",), name="A")
    a.start()
    assert a_has_read.wait(10)
    write_post("harbour.txt", post_text(title="New news"))
    assert watcher.poll() is True
    b = threading.Thread(target=request, args=("B",), name="B")
    b.start()
    b.join(10)
    a_may_go_on.set()
    a.join(10)
    b.join(10)
    assert b"New news" in answers["B"]
    assert b"New news" in answers["A"], "A served the old generation after B served the new one"
    held = snapshots.representation("/rss.xml")
    assert held is not None and b"New news" in held.identity.body
    assert snapshots._name == real_current_name()


def test_a_worker_follows_a_state_dir_started_afresh(state_settings: Settings, write_post: WritePost) -> None:
    """Generations only move forward, unless the one held is gone: a state directory
    emptied and started again counts from 1."""
    publish_three(state_settings, write_post)
    store = PublishedStore(default_state_dir(state_settings))
    snapshots = Snapshots(store, 300)
    assert snapshots.representation("/rss.xml") is not None
    shutil.rmtree(store.manifests)
    shutil.rmtree(store.blobs)
    store.current_link.unlink()
    write_post("harbour.txt", body_edit(9))
    assert new_watcher(state_settings).poll() is True
    assert (store.current_name() or "").startswith("000001-")
    representation = snapshots.representation("/rss.xml")
    assert representation is not None and b"Edit number 9" in representation.identity.body
