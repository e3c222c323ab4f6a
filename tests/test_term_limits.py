"""Tags whose keys would be longer than a file name may be: every build succeeds, and
each such tag feed is served under its whole name and under its short key, through
`feeds build`, the watcher with the Flask app, and the real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from feeds.posts import MAX_TERM_LENGTH
from feeds.published import PublishedStore, default_state_dir
from feeds.taxonomy import MAX_KEY_BYTES, term_key
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import MakeSettings, WritePost, post_text
from feedcheck import parsed
from server import Server

# Tags as posts keep them (cut to MAX_TERM_LENGTH characters), most over 255 bytes.
LONG_TAGS = {
    "cjk": "漢字" * 45,  # 90 characters, 270 bytes: the reported case
    "emoji-zwj": "👨\u200d👩\u200d👧\u200d👦" * 14,  # astral characters joined by U+200D, 350 bytes
    "devanagari-combining": "नमस्ते" * 16,  # vowel signs and viramas are combining marks, 288 bytes
    "cyrillic-emoji": "Салют🎆🎇🎉" * 12,  # 264 bytes
    "arabic-emoji": "عيد🎉🎆" * 20,  # 280 bytes
    # Two bytes a character: at most 200 bytes within 100 characters, so the key stays as it was.
    "cyrillic": "Новости" * 14,
    "arabic": "مرحبا" * 20,
}


@pytest.fixture
def long_tagged(write_post: WritePost) -> None:
    for number, (label, tag) in enumerate(LONG_TAGS.items()):
        assert len(tag) <= MAX_TERM_LENGTH, label
        text = post_text(title=f"Post {label}", date=str(1_600_001_000 + number), extra=f"tags: {tag}")
        write_post(f"{label}.txt", text)


def request_forms(tag: str) -> tuple[str, str]:
    """The request paths of a tag's RSS feed: its whole name, and its key."""
    key = term_key(tag)
    assert key is not None
    return f"/tags/{quote(tag, safe='')}/rss.xml", f"/tags/{quote(key, safe='')}/rss.xml"


def test_the_keys_fit_a_file_name() -> None:
    for label, tag in LONG_TAGS.items():
        key = term_key(tag)
        assert key is not None and len(key.encode()) <= MAX_KEY_BYTES, label
        if len(tag.encode()) <= MAX_KEY_BYTES:
            assert key == tag.casefold(), label  # unchanged: an existing URL stays


def test_feeds_build_succeeds_and_writes_every_tag_feed(
    long_tagged: None, content_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(f"base_url = 'https://example.com'\ncontent_dir = '{content_dir}'\n")
    out = tmp_path / "out"
    feeds = str(Path(sys.executable).with_name("feeds"))
    done = subprocess.run(
        [feeds, "--config", str(config), "build", "--strict", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    for label, tag in LONG_TAGS.items():
        key = term_key(tag)
        assert key is not None
        folder = out / "tags" / key
        assert sorted(p.name for p in folder.iterdir()) == ["atom.xml", "feed.json", "rss.xml"], label
        assert [e.title for e in parsed((folder / "rss.xml").read_bytes()).entries] == [f"Post {label}"]
        feed = json.loads((folder / "feed.json").read_bytes())
        assert feed["feed_url"] == f"https://example.com/tags/{quote(key, safe='')}/feed.json"


def test_the_watcher_publishes_and_the_app_serves_every_tag_feed(
    long_tagged: None, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(state_dir=str(tmp_path / "state"))
    watcher = Watcher(settings, PublishedStore(default_state_dir(settings)), settle_ns=0)
    watcher.poll()
    client = create_app(settings).test_client()
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["error"] is None
    for label, tag in LONG_TAGS.items():
        by_name, by_key = (client.get(path) for path in request_forms(tag))
        assert (by_name.status_code, by_key.status_code) == (200, 200), label
        assert by_name.headers["ETag"] == by_key.headers["ETag"]
        assert [e.title for e in parsed(by_name.get_data()).entries] == [f"Post {label}"]
    index = client.get("/").get_data(as_text=True)
    assert all(quote(term_key(tag) or "", safe="") in index for tag in LONG_TAGS.values())


@pytest.fixture
def server(tmp_path: Path, content_dir: Path, long_tagged: None) -> Iterator[Server]:
    running = Server(tmp_path, content_dir, workers=1, state_dir=str(tmp_path / "state"))
    yield running
    running.stop()


def test_the_real_server_serves_every_tag_feed(server: Server) -> None:
    server.wait_until_ready()
    for label, tag in LONG_TAGS.items():
        by_name, by_key = (server.request(path) for path in request_forms(tag))
        assert (by_name[0], by_key[0]) == (200, 200), label
        assert by_name[1]["etag"] == by_key[1]["etag"]
        assert [e.title for e in parsed(by_name[2]).entries] == [f"Post {label}"]
