"""WebSub: hub links in every feed, and publish pings to a hub on 127.0.0.1 after a
build changed feeds, retried when the hub fails, never holding up the build."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from feeds.config import Settings
from feeds.pipeline import Pipeline
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.websub import Publisher

from conftest import MakeSettings, WritePost, no_wait, post_text
from feedcheck import NS, check_documents, strict_xml

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Hub:
    """A WebSub hub on 127.0.0.1 that records publish pings; it can fail the first
    few and answer slowly."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.pings: list[dict[str, list[str]]] = []
        self.attempts = 0
        self.failures = failures
        self.delay = delay
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                time.sleep(hub.delay)
                with hub.lock:
                    hub.attempts += 1
                    failing = hub.attempts <= hub.failures
                    if not failing:
                        hub.pings.append(form)
                self.send_response(503 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def urls(self) -> list[str]:
        with self.lock:
            return sorted(url for form in self.pings for url in form["hub.url"])

    def wait_for(self, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.urls()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.urls()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[Hub]:
    running = Hub()
    yield running
    running.close()


def test_every_feed_names_the_hub(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_post("a.txt", post_text(extra="tags: Boats"))
    settings = make_settings(websub_hub="https://hub.example.org/")
    built = Pipeline(settings).run(NOW)
    _, atom, feed = check_documents(built.documents)
    channel = strict_xml(built.documents.rss).find("channel")
    assert channel is not None
    rss_links = {link.get("rel"): link.get("href") for link in channel.findall("atom:link", NS)}
    assert rss_links["hub"] == "https://hub.example.org/"
    assert rss_links["self"] == "https://example.com/rss.xml"
    atom_links = {
        link.get("rel"): link.get("href")
        for link in strict_xml(built.documents.atom).findall("atom:link", NS)
    }
    assert atom_links["hub"] == "https://hub.example.org/"
    assert feed["hubs"] == [{"type": "WebSub", "url": "https://hub.example.org/"}]
    assert "https://hub.example.org/" in [link.href for link in atom.feed.links if link.rel == "hub"]
    term_rss = {o.path: o.body for o in built.outputs}["tags/boats/rss.xml"]
    assert b'rel="hub"' in term_rss


def test_no_hub_no_links(write_post: WritePost, settings: Settings) -> None:
    write_post("a.txt", post_text())
    built = Pipeline(settings).run(NOW)
    assert b'rel="hub"' not in built.documents.rss and "hubs" not in json.loads(built.documents.json)


def test_a_build_that_changed_feeds_pings_the_hub(
    hub: Hub, write_post: WritePost, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(websub_hub=hub.url, state_dir=str(tmp_path / "state"))
    publisher = Publisher(settings.websub_hub, retry_delays=(0.05, 0.05))
    watcher = Watcher(
        settings, PublishedStore(default_state_dir(settings)), lambda: NOW, 0, publisher, sleep=no_wait
    )
    write_post("a.txt", post_text(title="A", extra="tags: C++"))
    assert watcher.poll() is True
    names = ("rss.xml", "atom.xml", "feed.json")
    # The site's feeds, the tag's and those of the post's author (the site's).
    expected = sorted(
        [f"https://example.com/{name}" for name in names]
        + [f"https://example.com/tags/c%2B%2B/{name}" for name in names]
        + [f"https://example.com/authors/site-author/{name}" for name in names]
    )
    assert hub.wait_for(len(expected)) == expected
    for form in hub.pings:
        assert form["hub.mode"] == ["publish"]
    write_post("b.txt", post_text(title="B", date="1700000000"))  # no tag: the C++ feeds stay as they are
    assert watcher.poll() is True
    changed = [f"https://example.com/{name}" for name in names]
    changed += [f"https://example.com/authors/site-author/{name}" for name in names]
    assert hub.wait_for(len(expected) + 6) == sorted([*expected, *changed])
    assert watcher.poll() is False
    time.sleep(0.2)
    assert len(hub.urls()) == len(expected) + 6  # nothing changed, nothing pinged
    publisher.close()


def test_failed_pings_are_retried_and_never_block_the_build(
    write_post: WritePost, make_settings: MakeSettings, tmp_path: Path
) -> None:
    hub = Hub(failures=2, delay=0.3)
    try:
        settings = make_settings(websub_hub=hub.url, state_dir=str(tmp_path / "state"))
        publisher = Publisher(settings.websub_hub, retry_delays=(0.05, 0.1, 0.2))
        watcher = Watcher(
            settings, PublishedStore(default_state_dir(settings)), lambda: NOW, 0, publisher, sleep=no_wait
        )
        write_post("a.txt", post_text(title="A"))
        started = time.monotonic()
        assert watcher.poll() is True
        assert time.monotonic() - started < 0.3, "the build waited for the hub"
        assert hub.wait_for(3) == sorted(
            ["https://example.com/rss.xml", "https://example.com/atom.xml", "https://example.com/feed.json"]
        )
        assert hub.attempts == 5  # two refusals, then the three pings
        publisher.close()
    finally:
        hub.close()


def test_an_unreachable_hub_is_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    publisher = Publisher("http://127.0.0.1:9/hub", retry_delays=(0.01, 0.01), timeout=1)
    with caplog.at_level("WARNING", logger="feeds.websub"):
        publisher.publish(["https://example.com/rss.xml"])
        publisher.close(timeout=10)
    assert caplog.text.count("failed") == 3
    assert "giving up on the ping for https://example.com/rss.xml after 3 attempts" in caplog.text
