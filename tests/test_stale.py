"""RFC 5861's stale-while-revalidate and stale-if-error on every feed answer, 200 and 304
alike, from the two settings that set them (0 leaves a directive out)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from feeds.build import ARCHIVE_MAX_AGE
from feeds.caching import Representation, answer, cache_control
from feeds.config import Settings, load_settings
from feeds.errors import ConfigError
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import MakeSettings, WritePost, post_text

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ROUTES = ("/rss.xml", "/atom.xml", "/feed.json", "/", "/tags/gardening/rss.xml")


def test_the_directives_follow_max_age_in_a_fixed_order() -> None:
    assert (
        cache_control(300, 60, 86400)
        == "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    )
    assert cache_control(300, 0, 86400) == "public, max-age=300, stale-if-error=86400"
    assert cache_control(300, 60, 0) == "public, max-age=300, stale-while-revalidate=60"
    assert cache_control(300, 0, 0) == cache_control(300) == "public, max-age=300"


def test_a_304_carries_the_same_cache_control_as_the_200() -> None:
    """A cache that revalidates takes its new freshness from the 304 (RFC 9111 §4.3.4), so
    the stale windows must come with it, or they would be lost after the first expiry."""
    rep = Representation.of(
        b"<rss/>", "application/rss+xml", NOW, 30, stale_while_revalidate=7, stale_if_error=9
    )
    full = answer(rep, accept_encoding="gzip")
    again = answer(rep, accept_encoding="gzip", if_none_match=dict(full.headers)["ETag"])
    assert (full.status, again.status) == (200, 304)
    expected = "public, max-age=30, stale-while-revalidate=7, stale-if-error=9"
    assert dict(full.headers)["Cache-Control"] == dict(again.headers)["Cache-Control"] == expected


def served(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path, **overrides: object
) -> FlaskClient:
    for n in range(25):
        write_post(
            f"p{n:02d}.txt",
            post_text(title=f"Post {n}", date=str(1_600_000_000 + n), extra="tags: [Gardening]"),
        )
    settings = make_settings(item_limit=10, state_dir=str(tmp_path / "state"), **overrides)
    Watcher(settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0).poll()
    return create_app(settings).test_client()


@pytest.mark.parametrize("path", [*ROUTES, "/archive/1/atom.xml"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_every_answer_of_the_app_carries_the_settings_windows(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path, path: str, encoding: str
) -> None:
    client = served(
        make_settings, write_post, tmp_path, max_age=120, stale_while_revalidate=30, stale_if_error=600
    )
    max_age = ARCHIVE_MAX_AGE if path.startswith("/archive/") else 120
    expected = f"public, max-age={max_age}, stale-while-revalidate=30, stale-if-error=600"
    full = client.get(path, headers={"Accept-Encoding": encoding})
    again = client.get(path, headers={"Accept-Encoding": encoding, "If-None-Match": full.headers["ETag"]})
    assert (full.status_code, again.status_code) == (200, 304)
    assert full.headers["Cache-Control"] == again.headers["Cache-Control"] == expected


def test_the_defaults_are_a_minute_and_a_day(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path
) -> None:
    client = served(make_settings, write_post, tmp_path)
    expected = "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    assert client.get("/rss.xml").headers["Cache-Control"] == expected
    assert (Settings().stale_while_revalidate, Settings().stale_if_error) == (60, 86400)


def test_zero_turns_both_off(make_settings: MakeSettings, write_post: WritePost, tmp_path: Path) -> None:
    client = served(make_settings, write_post, tmp_path, stale_while_revalidate=0, stale_if_error=0)
    full = client.get("/feed.json")
    again = client.get("/feed.json", headers={"If-None-Match": full.headers["ETag"]})
    assert full.headers["Cache-Control"] == again.headers["Cache-Control"] == "public, max-age=300"


def test_the_settings_come_from_the_environment(content_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    environ = {"FEEDS_STALE_WHILE_REVALIDATE": "0", "FEEDS_STALE_IF_ERROR": " 3600 "}
    settings = load_settings(empty, environ, overrides={"content_dir": str(content_dir)})
    assert (settings.stale_while_revalidate, settings.stale_if_error) == (0, 3600)


@pytest.mark.parametrize(
    ("toml", "setting", "reason"),
    [
        ("stale_if_error = -1\n", "stale_if_error", "must be at least 0, got -1"),
        ("stale_while_revalidate = 1.5\n", "stale_while_revalidate", "expected a whole number"),
        ('stale_while_revalidate = "60"\n', "stale_while_revalidate", "expected a whole number"),
        ("stale_if_error = true\n", "stale_if_error", "expected a whole number"),
    ],
)
def test_a_bad_window_stops_the_start_naming_the_setting(
    content_dir: Path, tmp_path: Path, toml: str, setting: str, reason: str
) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(f"content_dir = '{content_dir}'\n{toml}")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.setting == setting
    assert caught.value.reason.startswith(reason)
