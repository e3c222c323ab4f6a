"""A feed's HTML page: built beside every folder of feeds, published with the other
documents, and answered to a browser's navigation (Sec-Fetch-Mode: navigate and
Sec-Fetch-Dest: document) at every feed URL with its own validators, while every other
request gets the feed's own bytes and ETag, as before pages existed."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
from flask.testing import FlaskClient

from feeds.build import FEED_FILES
from feeds.caching import Representation, content_digest
from feeds.feedpage import feed_page, page_path
from feeds.pipeline import Pipeline
from feeds.posts import Author
from feeds.published import PublishedStore, default_state_dir, describe
from feeds.watcher import Watcher
from feeds.web import HTML_POLICY, create_app
from feeds.xmlfeeds import Channel

from conftest import MakeSettings, WritePost, post_text
from feedcheck import check_page, parsed
from server import Server

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Requests that are no browser navigation, each as some client sends it.
NOT_NAVIGATIONS = {
    "feedparser": {
        "Accept": "application/atom+xml,application/rdf+xml,application/rss+xml,application/x-netcdf,"
        "application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1",
        "A-IM": "feed",
    },
    "fetch()": {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Accept": "*/*"},
    "curl": {"Accept": "*/*", "User-Agent": "curl/8.5.0"},
    "frame": {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Accept": BROWSER_ACCEPT},
    "mode only": {"Sec-Fetch-Mode": "navigate"},
    "dest only": {"Sec-Fetch-Dest": "document"},
    "image": {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
}
# Every kind of feed: the site's, a tag's, a category's, and archive pages (item_limit 2).
FEED_PATHS = {
    "/rss.xml": "rss.xml",
    "/atom.xml": "atom.xml",
    "/feed.json": "feed.json",
    "/tags/boats/rss.xml": "tags/boats/rss.xml",
    "/tags/Boats/atom.xml": "tags/boats/atom.xml",
    "/categories/harbour-news/feed.json": "categories/harbour-news/feed.json",
    "/archive/1/rss.xml": "archive/1/rss.xml",
    "/archive/2/atom.xml": "archive/2/atom.xml",
}


def write_site(write_post: WritePost) -> None:
    for n in range(6):
        extra = "tags: Boats\ncategories: Harbour news" if n % 2 else "tags: Sea"
        write_post(
            f"p{n}.md", post_text(title=f"Post {n} <b>&amp;", date=str(1600000000 + 100 * n), extra=extra)
        )


@dataclass
class Site:
    store: PublishedStore
    client: FlaskClient

    def file(self, name: str) -> bytes:
        generation = self.store.load_current()
        assert generation is not None
        return generation.files[name]


@pytest.fixture
def site(make_settings: MakeSettings, write_post: WritePost, tmp_path: Path) -> Site:
    write_site(write_post)
    settings = make_settings(state_dir=str(tmp_path / "state"), item_limit=2)
    store = PublishedStore(default_state_dir(settings))
    assert Watcher(settings, store, clock=lambda: NOW, settle_ns=0).poll() is True
    return Site(store, create_app(settings).test_client())


def tag(body: bytes, suffix: str = "") -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}{suffix}"'


# --- the documents ---------------------------------------------------------------------------


def test_every_folder_of_feeds_has_a_valid_page(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_site(write_post)
    settings = make_settings(item_limit=2)
    built = Pipeline(settings, pages=True).run(NOW)
    pages = {o.path: o for o in built.outputs if o.path.endswith(".html")}
    folders = {
        o.path.rpartition("/")[0] for o in built.outputs if o.path.endswith(tuple(FEED_FILES.values()))
    }
    assert set(pages) == {page_path(folder + "/rss.xml" if folder else "rss.xml") for folder in folders}
    assert {
        "feed.html",
        "tags/boats/feed.html",
        "categories/harbour-news/feed.html",
        "archive/2/feed.html",
    } <= set(pages)
    titles = {path: [text for _, text in check_page(page.body)] for path, page in pages.items()}
    assert titles["feed.html"] == ["Post 5 <b>&amp;", "Post 4 <b>&amp;"]
    assert titles["tags/boats/feed.html"] == ["Post 5 <b>&amp;", "Post 3 <b>&amp;"]
    assert titles["archive/1/feed.html"] == ["Post 1 <b>&amp;", "Post 0 <b>&amp;"]
    tag_page = pages["tags/boats/feed.html"].body.decode()
    for file in FEED_FILES.values():
        assert f"<code>https://example.com/tags/boats/{file}</code>" in tag_page
    # An archive page sends readers to the current feeds, not to itself.
    archive = pages["archive/1/feed.html"].body.decode()
    assert "<code>https://example.com/rss.xml</code>" in archive and "archive/1/rss.xml" not in archive
    assert pages["archive/1/feed.html"].max_age == 7 * 24 * 3600  # as long as its feeds
    assert pages["archive/3/feed.html"].max_age is None  # the newest page
    # Deterministic: another pipeline, another day, the same bytes.
    again = Pipeline(settings, pages=True).run(NOW + dt.timedelta(days=3))
    assert {o.path: o.body for o in again.outputs if o.path in pages} == {p: o.body for p, o in pages.items()}
    # `feeds build` writes no pages: a static host has no way to choose them.
    assert not [o.path for o in Pipeline(settings).run(NOW).outputs if o.path.endswith(".html")]


def test_the_page_escapes_every_value() -> None:
    hostile = '<script>alert("x")</script>&amp;'
    channel = Channel(
        id="https://example.com/",
        title=hostile,
        description=hostile,
        home_url="https://example.com/?a=1&b=<2>",
        language='en"><script>',
        author=Author("a", ""),
        rss_url='https://example.com/"rss.xml',
        atom_url="https://example.com/atom.xml",
        json_url="https://example.com/feed.json",
        icon="https://example.com/i.png?'x'",
    )
    page = feed_page(channel, []).decode()
    assert "<script" not in page and '"><' not in page.replace('">\n<', "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in page
    assert 'href="https://example.com/?a=1&amp;b=&lt;2&gt;"' in page
    assert 'href="https://example.com/i.png?&#x27;x&#x27;"' in page
    check_page(page.encode())


# --- what each request gets ------------------------------------------------------------------


@pytest.mark.parametrize("path", FEED_PATHS)
def test_a_navigation_gets_the_page_with_its_own_validators(site: Site, path: str) -> None:
    feed_file = FEED_PATHS[path]
    page = site.file(page_path(feed_file))
    feed = site.client.get(path)
    response = site.client.get(path, headers=NAVIGATE | {"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200 and response.data == page
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == HTML_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Vary"] == feed.headers["Vary"]
    assert "Sec-Fetch-Mode" in response.headers["Vary"] and "Sec-Fetch-Dest" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == feed.headers["Cache-Control"]
    assert response.headers["ETag"] == tag(page)
    body = site.file(feed_file)
    assert response.headers["ETag"] not in (tag(body), tag(body, "-xml"), tag(body, "-gzip"))
    # Its gzip variant, with a tag of its own.
    zipped = site.client.get(path, headers=NAVIGATE | {"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.data) == page
    assert zipped.headers["ETag"] == tag(page, "-gzip")
    assert zipped.headers["Vary"] == feed.headers["Vary"]
    # HEAD: the same headers, no body.
    head = site.client.head(path, headers=NAVIGATE)
    assert head.data == b"" and head.headers["ETag"] == tag(page)
    assert head.headers["Content-Length"] == str(len(page))


@pytest.mark.parametrize("path", FEED_PATHS)
def test_the_page_revalidates_with_its_own_tag_only(site: Site, path: str) -> None:
    page_tag = site.client.get(path, headers=NAVIGATE).headers["ETag"]
    feed_tag = site.client.get(path).headers["ETag"]
    again = site.client.get(path, headers=NAVIGATE | {"If-None-Match": page_tag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == page_tag
    assert again.headers["Content-Security-Policy"] == HTML_POLICY
    assert again.headers["Vary"] == site.client.get(path).headers["Vary"]
    assert "Last-Modified" in again.headers
    # The feed's tag never revalidates the page, nor the page's tag the feed.
    other = site.client.get(path, headers=NAVIGATE | {"If-None-Match": feed_tag})
    assert other.status_code == 200 and other.headers["ETag"] == page_tag
    reader = site.client.get(path, headers={"If-None-Match": page_tag})
    assert reader.status_code == 200 and reader.headers["ETag"] == feed_tag
    assert site.client.get(path, headers={"If-None-Match": feed_tag}).status_code == 304


@pytest.mark.parametrize("client_name", NOT_NAVIGATIONS)
@pytest.mark.parametrize("path", FEED_PATHS)
def test_every_other_request_gets_the_answer_of_before(site: Site, path: str, client_name: str) -> None:
    """The very answer that the same request without Fetch Metadata gets, which is what
    the service answered before pages existed: the feed, or for a frame that asks for
    HTML first, the stylesheet view."""
    headers = NOT_NAVIGATIONS[client_name]
    body = site.file(FEED_PATHS[path])
    response = site.client.get(path, headers=headers)
    before = site.client.get(path, headers={k: v for k, v in headers.items() if not k.startswith("Sec-")})
    assert response.status_code == 200 and response.data == body
    for name in ("ETag", "Content-Type", "Content-Length", "Vary"):
        assert response.headers[name] == before.headers[name], name
    if client_name != "frame":
        assert response.headers["ETag"] == tag(body)
        assert response.headers["Content-Type"].startswith(
            ("application/rss+xml", "application/atom+xml", "application/feed+json")
        )
    assert "Content-Security-Policy" not in response.headers


@pytest.mark.parametrize("path", ["/rss.xml", "/tags/Boats/atom.xml", "/archive/1/rss.xml"])
def test_a_browser_without_fetch_metadata_still_gets_the_xslt_view(site: Site, path: str) -> None:
    """Browsers send Sec-Fetch-* to secure origins only: over plain http (or from an older
    browser) a page request is recognised by Accept alone and gets the stylesheet view."""
    body = site.file(FEED_PATHS[path])
    response = site.client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert response.data == body and response.headers["ETag"] == tag(body, "-xml")
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet")


def test_the_icon_is_allowed_by_the_pages_policy(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path
) -> None:
    write_site(write_post)
    settings = make_settings(state_dir=str(tmp_path / "state"), icon="https://cdn.example.org/icon.png")
    assert Watcher(
        settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0
    ).poll()
    client = create_app(settings).test_client()
    policy = HTML_POLICY + "; img-src https://cdn.example.org"
    for path in ("/", "/rss.xml", "/tags/sea/feed.json"):
        response = client.get(path, headers=NAVIGATE)
        assert response.headers["Content-Security-Policy"] == policy, path
        assert b'<link rel="icon" href="https://cdn.example.org/icon.png">' in response.data, path
        assert "Content-Security-Policy" not in client.get(path if path != "/" else "/rss.xml").headers


def test_a_generation_without_pages_is_served_as_before(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path
) -> None:
    """One published before pages existed (or by an older worker): navigation gets the
    feed, and Vary names only what chooses among the answers there are."""
    write_site(write_post)
    settings = make_settings(state_dir=str(tmp_path / "state"))
    built = Pipeline(settings).run(NOW)
    files = {output.path: output.body for output in built.outputs}
    digests = {path: content_digest(body) for path, body in files.items()}
    store = PublishedStore(default_state_dir(settings))
    documents: Mapping[str, int | None] = dict.fromkeys(files)
    store.publish(
        {digests[path]: body for path, body in files.items()},
        describe(documents, digests, None, built.used, NOW),
    )
    client = create_app(settings).test_client()
    response = client.get("/rss.xml", headers=NAVIGATE)
    assert response.data == files["rss.xml"] and response.headers["Vary"] == "Accept, Accept-Encoding"
    assert client.get("/feed.json", headers=NAVIGATE).headers["Vary"] == "Accept-Encoding"


# --- a real server, real clients ---------------------------------------------------------------


def curl(url: str, *headers: str) -> tuple[dict[str, str], bytes]:
    """`curl` itself, as a person types it (plus headers), against the loopback server."""
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--include",
            *(f"-H{h}" for h in headers),
            url,
        ],
        check=True,
        capture_output=True,
        timeout=20,
    )
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    found = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    found[":status"] = lines[0].split()[1]
    return found, body


def test_feedparser_fetch_and_curl_get_the_feed_and_a_browser_the_page(
    tmp_path: Path, write_post: WritePost, content_dir: Path
) -> None:
    write_site(write_post)
    server = Server(tmp_path, content_dir, workers=2, item_limit="2")
    try:
        server.wait_until_ready()
        for path in ("/rss.xml", "/feed.json", "/tags/boats/atom.xml", "/archive/1/rss.xml"):
            url = f"http://127.0.0.1:{server.port}{path}"
            _, plain_headers, body = server.request(path)
            etag = plain_headers["etag"]
            assert etag == tag(body)
            headers, curled = curl(url)
            assert (headers[":status"], curled, headers["etag"]) == ("200", body, etag)
            status, fetched_headers, fetched = server.request(
                path, headers={"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Accept": "*/*"}
            )
            assert (status, fetched, fetched_headers["etag"]) == (200, body, etag)
            if not path.endswith(".json"):
                result = feedparser.parse(url)  # it asks for gzip
                assert result.status == 200 and result.etag == tag(body, "-gzip") and not result.bozo
                assert [e.id for e in result.entries] == [e.id for e in parsed(body).entries]
                assert feedparser.parse(url, etag=result.etag).status == 304
            # A browser's navigation gets the page, and revalidates it with its own tag.
            navigate = ("Sec-Fetch-Mode: navigate", "Sec-Fetch-Dest: document")
            page_headers, page = curl(url, *navigate)
            assert page_headers["content-type"] == "text/html; charset=utf-8"
            assert page_headers["content-security-policy"] == HTML_POLICY
            assert page_headers["etag"] == tag(page) != etag
            assert page_headers["vary"] == plain_headers["vary"]
            check_page(page)
            again, nothing = curl(url, *navigate, f"If-None-Match: {page_headers['etag']}")
            assert (again[":status"], nothing) == ("304", b"")
    finally:
        server.stop()


def test_representation_vary_names_every_choice() -> None:
    page = Representation.of(b"<!doctype html>", "text/html; charset=utf-8", None, 60)
    both = Representation.of(
        b"<rss/>", "application/rss+xml", None, 60, browser_type="application/xml", page=page
    )
    assert both.vary == "Accept, Accept-Encoding, Sec-Fetch-Dest, Sec-Fetch-Mode"
    assert Representation.of(b"{}", "application/feed+json", None, 60, page=page).vary == (
        "Accept-Encoding, Sec-Fetch-Dest, Sec-Fetch-Mode"
    )
    assert Representation.of(b"{}", "application/feed+json", None, 60).vary == "Accept-Encoding"
