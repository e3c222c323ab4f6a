"""When a post's id changes, as the README states it: ids are permalinks, so a date
moved under a permalink pattern with date parts moves the id, an explicit `id:` pins
it, and the service warns in its log when it sees an id move."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest

from feeds.posts import Post, parse_post
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher

from conftest import MakeSettings, WritePost, post_text

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DATED = "/{year}/{month}/{slug}/"


def post(make_settings: MakeSettings, date: str, extra: str = "", pattern: str = DATED) -> Post:
    text = post_text(title="Moving day", date=date, extra=extra)
    return parse_post("moving.md", text.encode(), make_settings(permalink=pattern))


def test_a_moved_date_moves_the_id_under_a_dated_pattern(make_settings: MakeSettings) -> None:
    before = post(make_settings, "2024-01-01")
    after = post(make_settings, "2025-02-01")
    assert before.id == "https://example.com/2024/01/moving/"
    assert after.id == "https://example.com/2025/02/moving/"
    # Within the same month the pattern names, nothing moves.
    assert post(make_settings, "2024-01-31T23:00:00").id == before.id


def test_an_explicit_id_keeps_the_id_when_the_date_moves(make_settings: MakeSettings) -> None:
    pin = "id: https://example.com/2024/01/moving/"
    before = post(make_settings, "2024-01-01", pin)
    after = post(make_settings, "2025-02-01", pin)
    assert before.id == after.id == "https://example.com/2024/01/moving/"
    assert after.permalink == "https://example.com/2025/02/moving/"  # the link follows the page


def test_without_date_parts_the_date_never_moves_the_id(make_settings: MakeSettings) -> None:
    ids = {post(make_settings, date, pattern="/posts/{slug}/").id for date in ("2024-01-01", "2025-02-01")}
    assert ids == {"https://example.com/posts/moving/"}


def edit(path: Path, text: str, step: int) -> None:
    path.write_text(text, encoding="utf-8")
    seconds = 1_700_000_000 + step  # a distinct mtime for each version, whatever the clock
    os.utime(path, (seconds, seconds))


def test_the_watcher_warns_when_an_id_moves(
    write_post: WritePost,
    make_settings: MakeSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(permalink=DATED, state_dir=str(tmp_path / "state"))
    path = write_post("moving.md", post_text(title="Moving day", date="2024-01-01"))
    pinned = write_post("pinned.md", post_text(title="Pinned", date="2024-01-01", extra="id: urn:x:pinned"))
    watcher = Watcher(settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0)
    watcher.poll()
    caplog.set_level(logging.WARNING, logger="feeds")

    edit(path, post_text(title="Moving day", date="2024-01-20"), 1)  # same month: same id
    edit(pinned, post_text(title="Pinned", date="2025-02-01", extra="id: urn:x:pinned"), 1)
    watcher.poll()
    assert [r for r in caplog.records if "id moved" in r.getMessage()] == []

    edit(path, post_text(title="Moving day", date="2025-02-01"), 2)
    watcher.poll()
    moved = [r.getMessage() for r in caplog.records if "id moved" in r.getMessage()]
    assert moved == [
        "moving.md: its id moved with its permalink from https://example.com/2024/01/moving/ to "
        "https://example.com/2025/02/moving/, so feed readers show it as a new post; to keep the old "
        "id, add `id: https://example.com/2024/01/moving/` to its front matter"
    ]
