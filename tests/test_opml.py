"""/feeds.opml, the OPML 2.0 list of every feed: valid, one outline per feed, the same
bytes for the same content, hostile names escaped, served like the feeds, and imported
by a real feed reader (the `reader` library) that then fetches every feed it lists from
a real server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree
from reader import make_reader

from feeds.build import Build
from feeds.config import Settings
from feeds.pipeline import Pipeline
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import MakeSettings, WritePost, post_text
from feedcheck import parsed, strict_xml
from server import HOST, Server, free_port

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
GROUPS = ["Sections", "Tags", "Categories", "Authors"]


@pytest.fixture
def varied(write_post: WritePost) -> None:
    """A site with a feed of every kind: sections (one nested deeper), tags, categories,
    authors (the site's own by default), names in several scripts and some with markup."""
    write_post("Notes/one.md", post_text(title="Note one", date="1600001000", extra="tags: [C++, Café]"))
    write_post(
        "Notes/2024/two.md", post_text(title="Note two", date="1600002000", extra="author: Zoë Ålander")
    )
    write_post("日記/three.md", post_text(title="Three", date="1600003000", extra="categories: [Guides]"))
    write_post(
        "blog/four.md", post_text(title="Four", date="1600004000", extra="authors: [Ann, {name: 'R&D <b>'}]")
    )
    write_post("five.md", post_text(title="Five at the top", date="1600005000", extra="tags: Web Dev"))


def opml_of(built: Build) -> bytes:
    return {output.path: output.body for output in built.outputs}["feeds.opml"]


def feed_outlines(data: bytes) -> list[etree._Element]:
    root = strict_xml(data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    return root.findall(".//outline[@type='rss']")


def self_links(built: Build) -> dict[str, str]:
    """Each subscribable RSS document's own URL (its atom:link rel="self"), by title."""
    links = {}
    for output in built.outputs:
        if output.path.endswith("rss.xml") and not output.path.startswith("archive/"):
            channel = strict_xml(output.body).find("channel")
            assert channel is not None
            link = channel.find("{http://www.w3.org/2005/Atom}link[@rel='self']")
            assert link is not None
            links[channel.findtext("title") or ""] = link.get("href") or ""
    return links


def test_the_list_names_every_feed_once(varied: None, settings: Settings) -> None:
    built = Pipeline(settings).run(NOW)
    data = opml_of(built)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<opml version=\"2.0\">")
    root = strict_xml(data)
    assert root.findtext("head/title") == "My site"
    outlines = feed_outlines(data)
    listed = {outline.get("title"): outline.get("xmlUrl") for outline in outlines}
    assert len(listed) == len(outlines)  # one outline per feed
    assert listed == self_links(built)  # and every feed, as it names itself
    assert len(listed) == 1 + 3 + 3 + 1 + 4  # site; sections; tags; categories; authors
    for outline in outlines:
        assert outline.get("text") == outline.get("title")
        assert outline.get("htmlUrl") == "https://example.com/"
        assert urlsplit(outline.get("xmlUrl")).scheme == "https"
    # The site's feed first, then a folder per kind, each with its feeds by key.
    body = root.find("body")
    assert body is not None
    assert [child.get("text") for child in body] == ["My site", *GROUPS]
    sections = [outline.get("xmlUrl") for outline in body[1]]
    assert sections == [
        "https://example.com/blog/rss.xml",
        "https://example.com/notes/rss.xml",
        "https://example.com/%E6%97%A5%E8%A8%98/rss.xml",
    ]
    assert body[4][1].get("title") == "My site: R&D <b>"
    assert opml_of(Pipeline(settings).run(NOW + dt.timedelta(days=9))) == data  # no date in it


def test_an_empty_site_lists_its_own_feed(settings: Settings) -> None:
    body = strict_xml(opml_of(Pipeline(settings).run(NOW))).find("body")
    assert body is not None
    assert [(child.get("type"), child.get("xmlUrl")) for child in body] == [
        ("rss", "https://example.com/rss.xml")
    ]


HOSTILE = "\"><script>alert(1)</script>&amp; '\u2028"


def test_hostile_names_are_escaped(write_post: WritePost, make_settings: MakeSettings) -> None:
    names = json.dumps(HOSTILE)
    write_post(
        f"{HOSTILE.replace('/', '')}/p.md",
        post_text(title="T", extra=f"tags: [{names}]\ncategories: [{names}]\nauthor: {{name: {names}}}"),
    )
    settings = make_settings(title=HOSTILE, description=HOSTILE)
    data = opml_of(Pipeline(settings).run(NOW))
    assert b"<script>" not in data
    outlines = feed_outlines(data)
    assert len(outlines) == 5
    expected = f"{HOSTILE}: {HOSTILE.replace('/', '').replace(chr(0x2028), ' ').strip()}"
    assert outlines[1].get("title") == expected  # the section: its name as one line
    for outline in outlines[2:]:
        assert outline.get("title") == f"{HOSTILE}: \"><script>alert(1)</script>&amp; '", outline.attrib
    assert strict_xml(data).findtext("head/title") == HOSTILE


def test_the_list_is_served_and_linked(varied: None, service_settings: Settings) -> None:
    store = PublishedStore(default_state_dir(service_settings))
    assert Watcher(service_settings, store, clock=lambda: NOW, settle_ns=0).poll() is True
    client = create_app(service_settings).test_client()
    response = client.get("/feeds.opml")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/x-opml; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.data == opml_of(Pipeline(service_settings).run(NOW))
    etag = response.headers["ETag"]
    assert client.get("/feeds.opml", headers={"If-None-Match": etag}).status_code == 304
    zipped = client.get("/feeds.opml", headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(zipped.data) == response.data
    index = client.get("/").get_data(as_text=True)
    assert '<a href="https://example.com/feeds.opml" type="text/x-opml">feeds.opml</a> (OPML)' in index
    for outline in feed_outlines(response.data):  # every URL listed answers with its feed
        answer = client.get(urlsplit(outline.get("xmlUrl")).path)
        assert answer.status_code == 200 and parsed(answer.data).feed.title == outline.get("title")


def test_a_feed_reader_imports_the_list_and_fetches_every_feed(
    varied: None, content_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    server = Server(tmp_path, content_dir, port=port, base_url=f"http://{HOST}:{port}")
    reader = make_reader(str(tmp_path / "reader.sqlite"))
    try:
        server.wait_until_ready()
        status, headers, data = server.request("/feeds.opml")
        assert status == 200 and headers["content-type"] == "text/x-opml; charset=utf-8"
        listed = {outline.get("xmlUrl"): outline.get("title") for outline in feed_outlines(data)}
        assert len(listed) == 12
        reader.import_feeds(io.BytesIO(data))
        assert sorted(feed.url for feed in reader.get_feeds()) == sorted(listed)
        results = list(reader.update_feeds_iter())
        assert sorted(result.url for result in results) == sorted(listed)
        assert [(r.url, r.error) for r in results if r.error is not None] == []
        assert all(r.updated_feed is not None and r.updated_feed.new > 0 for r in results), results
        for feed in reader.get_feeds():
            assert feed.last_exception is None and feed.title == listed[feed.url], feed
            entries = list(reader.get_entries(feed=feed))
            _, _, body = server.request(urlsplit(feed.url).path)
            expected = [entry.title for entry in parsed(body).entries]
            assert expected and sorted(entry.title for entry in entries) == sorted(expected), feed.url
        by_title = {feed.title: feed.url for feed in reader.get_feeds()}
        notes = [entry.title for entry in reader.get_entries(feed=by_title["My site: Notes"])]
        assert sorted(notes) == ["Note one", "Note two"]
    finally:
        reader.close()
        server.stop()
