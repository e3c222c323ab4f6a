"""The persistent parse cache: a restart or a second `feeds build` parses only what
changed, and a damaged, foreign or old cache is ignored and rebuilt, never trusted."""

from __future__ import annotations

import datetime as dt
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

import feeds.parsecache
import feeds.pipeline
from feeds.build import Build
from feeds.cli import main
from feeds.config import Settings
from feeds.parsecache import CACHE_FILE, ParseCache, post_from_record, post_record, seal, unseal
from feeds.pipeline import Pipeline
from feeds.posts import parse_post
from feeds.published import PublishedStore
from feeds.watcher import Watcher

from conftest import MakeSettings, WritePost, post_text

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Parses:
    """Counts the files parsed (`parse_post` calls) while a test runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sources: list[str] = []
        original = feeds.pipeline.parse_post

        def counted(source: str, data: bytes, settings: Settings) -> Any:
            self.sources.append(source)
            return original(source, data, settings)

        monkeypatch.setattr(feeds.pipeline, "parse_post", counted)


def write_site(write_post: WritePost, count: int = 12) -> None:
    for n in range(count):
        extra = f"tags: [t{n % 3}]\nauthor: Ann <ann@example.com>" if n % 2 else ""
        body = f"Post {n} opens *here*.\n\nMore.\n"
        write_post(
            f"{('a', 'b')[n % 2]}/p{n:02d}.md",
            post_text(
                title=f"Title {n}",
                date=str(1_601_000_000 + n * 3600),
                description=None,
                extra=extra,
                body=body,
            ),
        )
    write_post("broken.md", "---\ntitle: [unclosed\n---\nbody\n")


def run(settings: Settings, cache: bool = True) -> Build:
    state = PublishedStore(Path(settings.state_dir)).root
    return Pipeline(settings, cache=ParseCache(state, settings) if cache else None).run(NOW)


def documents(built: Build) -> dict[str, bytes]:
    return {output.path: output.body for output in built.outputs}


@pytest.fixture
def cached_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    return make_settings(state_dir=str(tmp_path / "state"), item_limit=4)


def cache_path(settings: Settings) -> Path:
    return Path(settings.state_dir) / CACHE_FILE


def test_a_second_run_parses_only_what_changed(
    write_post: WritePost, cached_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_site(write_post)
    cold = run(cached_settings)
    assert cache_path(cached_settings).is_file()
    parses = Parses(monkeypatch)
    warm = run(cached_settings)
    # Only the file with problems is read again: problems are never cached.
    assert parses.sources == ["broken.md"]
    assert documents(warm) == documents(cold) and warm.problems == cold.problems
    write_post(
        "a/p00.md", post_text(title="Edited", date="1601000000", description=None, body="New *text*.\n")
    )
    write_post("c/new.md", post_text(title="New", date="1602000000"))
    (Path(cached_settings.content_dir) / "b/p01.md").unlink()
    parses.sources.clear()
    edited = run(cached_settings)
    assert sorted(parses.sources) == ["a/p00.md", "broken.md", "c/new.md"]
    assert documents(edited) == documents(run(cached_settings, cache=False))


def test_a_restarted_watcher_parses_only_what_changed(
    write_post: WritePost, cached_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_site(write_post)
    store = PublishedStore(Path(cached_settings.state_dir))
    first = Watcher(cached_settings, store, clock=lambda: NOW, settle_ns=0)
    assert first.poll()
    first.poll()  # the poll after a build writes the cache, off the path of the change
    assert cache_path(cached_settings).is_file()
    write_post("a/p10.md", post_text(title="Edited", date="1601036000", description=None))
    parses = Parses(monkeypatch)
    again = Watcher(cached_settings, store, clock=lambda: NOW, settle_ns=0)
    assert again.poll()
    assert sorted(parses.sources) == ["a/p10.md", "broken.md"]
    assert b"<title>Edited</title>" in again.published_bodies["rss.xml"]


def test_feeds_build_twice_with_one_state_dir_parses_once(
    write_post: WritePost,
    content_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_site(write_post)
    config = tmp_path / "feeds.toml"
    config.write_text('base_url = "https://example.com"\nitem_limit = 4\n')
    monkeypatch.setenv("FEEDS_STATE_DIR", str(tmp_path / "state"))
    argv = ["--config", str(config), "build", "--content", str(content_dir), "--out"]
    parses = Parses(monkeypatch)
    assert main([*argv, str(tmp_path / "one")]) == 0
    assert len(parses.sources) == 13
    parses.sources.clear()
    assert main([*argv, str(tmp_path / "two")]) == 0
    assert parses.sources == ["broken.md"]
    for path in (tmp_path / "one").rglob("*.xml"):
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()
    capsys.readouterr()


def damage_cases(data: bytes, settings: Settings) -> dict[str, bytes]:
    payload = unseal(data)
    header, records = pickle.loads(payload)  # the test's own file
    middle = len(data) // 2
    cases = {
        "random bytes": os.urandom(len(data)),
        "empty": b"",
        "not a pickle": b"hello, world\n" * 50,
        "one byte changed": data[:middle] + bytes([data[middle] ^ 0x20]) + data[middle + 1 :],
        "sealed, not a pickle": seal(b"hello, world\n" * 50),
        "records of another shape": seal(pickle.dumps((header, [(r[0], r[1]) for r in records]))),
        "a post record of another shape": seal(
            pickle.dumps((header, [(*r[:6], r[6][:-2]) for r in records]))
        ),
        "an older format": seal(pickle.dumps(((0, *header[1:]), records))),
        "other code": seal(pickle.dumps(((header[0], "0" * 32, header[2]), records))),
        "other settings": seal(
            pickle.dumps((ParseCache(Path(settings.state_dir), _other(settings)).header, records))
        ),
        "a global in it": seal(pickle.dumps((header, [os.getcwd]))),
    }
    for whole, name, seal_it in ((data, "truncated", False), (payload, "sealed, truncated", True)):
        for cut in (1, 2, 10, len(whole) // 3, len(whole) // 2, len(whole) - 10, len(whole) - 1):
            cases[f"{name} at {cut}"] = seal(whole[:cut]) if seal_it else whole[:cut]
    return cases


def _other(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, timezone="Europe/Paris", author_name="Someone else")


def test_a_damaged_foreign_or_old_cache_is_ignored_and_rebuilt(
    write_post: WritePost,
    cached_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_site(write_post)
    cold = documents(run(cached_settings, cache=False))
    run(cached_settings)
    good = cache_path(cached_settings).read_bytes()
    parses = Parses(monkeypatch)
    for name, data in damage_cases(good, cached_settings).items():
        cache_path(cached_settings).write_bytes(data)
        parses.sources.clear()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="feeds.parsecache"):
            built = run(cached_settings)
        assert documents(built) == cold, name
        assert len(parses.sources) == 13, name  # every file parsed again: nothing trusted
        assert len([r for r in caplog.records if r.name == "feeds.parsecache"]) == 1, (name, caplog.text)
        # ... and the cache was written anew, good for the next run.
        assert ParseCache(Path(cached_settings.state_dir), cached_settings).load(), name


def test_a_cache_written_under_other_settings_is_not_used(
    write_post: WritePost, make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_site(write_post)
    state = str(tmp_path / "state")
    run(make_settings(state_dir=state))
    parses = Parses(monkeypatch)
    dated = make_settings(
        state_dir=state, timezone="America/New_York", permalink="/{year}/{month}/{day}/{slug}/"
    )
    with_cache = documents(run(dated))
    assert len(parses.sources) == 13  # the cache was written for other settings: all parsed
    assert with_cache == documents(run(dated, cache=False))
    # A setting that no parse reads keeps the cache.
    parses.sources.clear()
    run(
        make_settings(
            state_dir=state,
            timezone="America/New_York",
            permalink="/{year}/{month}/{day}/{slug}/",
            item_limit=2,
            title="Other",
        )
    )
    assert parses.sources == ["broken.md"]


def test_a_cache_another_user_could_write_or_a_link_is_not_read(
    write_post: WritePost, cached_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_site(write_post)
    run(cached_settings)
    path = cache_path(cached_settings)
    cache = ParseCache(Path(cached_settings.state_dir), cached_settings)
    assert cache.load()
    path.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="feeds.parsecache"):
        assert cache.load() == {}
    assert "another user owns it or may write to it" in caplog.text
    elsewhere = tmp_path / "elsewhere"
    path.chmod(0o644)
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    assert cache.load() == {}


def test_a_file_changed_keeping_size_and_mtime_is_left_out_then_read_again(
    write_post: WritePost, cached_settings: Settings
) -> None:
    """The known limit of a cache keyed by stat: a file rewritten in place with its size
    and mtime_ns set back keeps its cached parse. A rendered post is still never shown
    with the wrong text: its body must have the digest that was parsed, so the build
    leaves it out ("build again") and the cache is written without it."""
    write_site(write_post)
    run(cached_settings)
    path = Path(cached_settings.content_dir) / "b/p11.md"  # the newest: rendered in every build
    before = path.stat()
    text = path.read_text()
    path.write_text(text.replace("Post 11 opens", "Post 11 OPENS"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_ino == before.st_ino
    built = run(cached_settings)
    assert "b/p11.md: file: changed while it was read; build again" in [str(p) for p in built.problems]
    again = run(cached_settings)
    assert "OPENS" in documents(again)["feed.json"].decode()


@pytest.mark.parametrize(
    "date",
    ["1601000000.123456", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2024-03-15T10:00:00+05:30"],
)
def test_a_record_gives_back_the_very_post(settings: Settings, date: str) -> None:
    text = post_text(
        date=date,
        description=None,
        extra="tags: [Café, b]\ncategories: x\nid: urn:x\n"
        "authors: [Ann <a@example.com>, {name: Bo, uri: /bo}]",
    )
    post = parse_post("p.md", text.encode(), settings)
    back = post_from_record(pickle.loads(pickle.dumps(post_record(post))))
    assert back == post and repr(back) == repr(post)
    assert back.date.tzinfo is post.date.tzinfo and back.updated.tzinfo is post.updated.tzinfo


def test_nothing_in_the_cache_can_name_a_global(tmp_path: Path, settings: Settings) -> None:
    cache = ParseCache(tmp_path, settings)
    target = tmp_path / "made-by-the-cache"
    cache.path.write_bytes(seal(pickle.dumps((cache.header, [_Crafted(str(target))]))))
    assert cache.load() == {}
    assert not target.exists()


class _Crafted:
    """Unpickled by plain `pickle`, this would call os.mkdir."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))
