"""The HTTP face end to end, through Flask's test client over a published state directory."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from feeds.caching import Representation
from feeds.config import Settings, load_settings
from feeds.errors import ConfigError
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import HEALTH_KEYS, create_app

from conftest import MakeSettings, WritePost, post_text

FIXED_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NASTY_TITLE = "Fish & chips <script>alert(1)</script>"
BROKEN_POST = "---\ntitle: No date at all\n---\nThis post forgot its date.\n"
# Last-Modified is when the bytes were first published: FIXED_NOW, the watcher's clock
# (not the newest post's date, which stays put through edits and deletions).
LAST_MODIFIED = "Thu, 01 Jan 2026 00:00:00 GMT"
# The RFC 5861 directives every feed answer carries with the default settings.
STALE = ", stale-while-revalidate=60, stale-if-error=86400"

FEED_TYPES = {
    "/rss.xml": "application/rss+xml; charset=utf-8",
    "/atom.xml": "application/atom+xml; charset=utf-8",
    "/feed.json": "application/feed+json; charset=utf-8",
    "/": "text/html; charset=utf-8",
    "/feeds.opml": "text/x-opml; charset=utf-8",
    "/notes/rss.xml": "application/rss+xml; charset=utf-8",  # a section's
    "/authors/site-author/feed.json": "application/feed+json; charset=utf-8",  # an author's
}
FILES = {"/": "index.html", **{path: path[1:] for path in FEED_TYPES if path != "/"}}
ROUTES = list(FEED_TYPES)
# What answers 503 before the first build: every other path is a 404 until then.
CORE_ROUTES = ["/rss.xml", "/atom.xml", "/feed.json", "/", "/feeds.opml"]
# RSS and Atom also vary with Accept: a browser's page request gets them as XML; every
# feed varies with Fetch Metadata too: a browser's navigation gets the feed's HTML page.
VARY = {
    path: "Accept, Accept-Encoding, Sec-Fetch-Dest, Sec-Fetch-Mode"
    if path.endswith(("/rss.xml", "/atom.xml"))
    else "Accept-Encoding, Sec-Fetch-Dest, Sec-Fetch-Mode"
    if path.endswith("/feed.json")
    else "Accept-Encoding"
    for path in ROUTES
}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class Site:
    settings: Settings
    store: PublishedStore
    watcher: Watcher

    def client(self) -> FlaskClient:
        return create_app(self.settings).test_client()

    def published(self, path: str) -> bytes:
        generation = self.store.load_current()
        assert generation is not None
        return generation.files[FILES[path]]

    def etag(self, path: str, gzipped: bool = False) -> str:
        """The ETag feeds.caching gives the published bytes of `path`."""
        rep = Representation.of(self.published(path), FEED_TYPES[path], None, self.settings.max_age)
        return rep.gzipped.etag if gzipped else rep.identity.etag


@pytest.fixture
def state_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    return make_settings(state_dir=str(tmp_path / "state"))


@pytest.fixture
def unpublished(state_settings: Settings, write_post: WritePost) -> Site:
    write_post("harbour.txt")
    write_post("quay.txt", post_text(title=NASTY_TITLE, date="1602800000"))
    write_post("broken.txt", BROKEN_POST)
    write_post("notes/pier.txt", post_text(title="On the pier", date="1602700000"))
    store = PublishedStore(default_state_dir(state_settings))
    return Site(state_settings, store, Watcher(state_settings, store, clock=lambda: FIXED_NOW, settle_ns=0))


@pytest.fixture
def site(unpublished: Site) -> Site:
    assert unpublished.watcher.poll() is True
    return unpublished


@pytest.fixture
def client(site: Site) -> FlaskClient:
    return site.client()


def assert_nosniff(response: TestResponse) -> None:
    assert response.headers.get("X-Content-Type-Options") == "nosniff"


def assert_not_modified(response: TestResponse, etag: str, last_modified: str = LAST_MODIFIED) -> None:
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == f"public, max-age=300{STALE}"
    assert response.headers["Vary"] == VARY[response.request.path]
    assert response.headers["Last-Modified"] == last_modified
    for name in ("Content-Type", "Content-Length", "Content-Encoding"):
        assert name not in response.headers
    assert_nosniff(response)


# --- plain GET ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_get_serves_published_bytes_with_every_header(site: Site, client: FlaskClient, path: str) -> None:
    response = client.get(path)
    body = site.published(path)
    assert response.status_code == 200
    assert response.data == body
    assert response.headers["Content-Type"] == FEED_TYPES[path]
    assert response.headers["Content-Length"] == str(len(body))
    assert response.headers["ETag"] == site.etag(path)
    assert response.headers["Cache-Control"] == f"public, max-age=300{STALE}"
    assert response.headers["Vary"] == VARY[path]
    assert response.headers["Last-Modified"] == LAST_MODIFIED
    assert "Content-Encoding" not in response.headers
    assert_nosniff(response)


def test_rss_body_equals_published_file(site: Site, client: FlaskClient) -> None:
    manifest = json.loads((site.store.root / os.readlink(site.store.current_link)).read_bytes())
    digest = manifest["files"]["rss.xml"]["digest"]
    rss = (site.store.blobs / digest[:2] / digest).read_bytes()
    assert rss.startswith(b"<?xml")
    assert client.get("/rss.xml").data == rss


def test_max_age_comes_from_settings(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path
) -> None:
    write_post("harbour.txt")
    settings = make_settings(state_dir=str(tmp_path / "state"), max_age=42)
    Watcher(
        settings, PublishedStore(default_state_dir(settings)), clock=lambda: FIXED_NOW, settle_ns=0
    ).poll()
    response = create_app(settings).test_client().get("/atom.xml")
    assert response.headers["Cache-Control"] == f"public, max-age=42{STALE}"


def test_etags_differ_between_routes(client: FlaskClient) -> None:
    etags = {client.get(path).headers["ETag"] for path in ROUTES}
    assert len(etags) == len(ROUTES)


def test_csp_on_index_only(client: FlaskClient) -> None:
    assert client.get("/").headers["Content-Security-Policy"] == HTML_POLICY
    for path in ("/rss.xml", "/atom.xml", "/feed.json"):
        assert "Content-Security-Policy" not in client.get(path).headers


# --- If-None-Match --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_matching_etag_gives_304(site: Site, client: FlaskClient, path: str) -> None:
    etag = client.get(path).headers["ETag"]
    assert_not_modified(client.get(path, headers={"If-None-Match": etag}), etag)


def test_mismatching_etag_gives_200(site: Site, client: FlaskClient) -> None:
    response = client.get("/rss.xml", headers={"If-None-Match": '"0123456789abcdef"'})
    assert response.status_code == 200
    assert response.data == site.published("/rss.xml")


def test_etag_of_another_route_gives_200(client: FlaskClient) -> None:
    atom_etag = client.get("/atom.xml").headers["ETag"]
    response = client.get("/rss.xml", headers={"If-None-Match": atom_etag})
    assert response.status_code == 200


def test_etag_list_containing_current_gives_304(site: Site, client: FlaskClient) -> None:
    etag = site.etag("/feed.json")
    response = client.get("/feed.json", headers={"If-None-Match": f'"a", "b", {etag}'})
    assert_not_modified(response, etag)


def test_etag_list_without_current_gives_200(client: FlaskClient) -> None:
    response = client.get("/feed.json", headers={"If-None-Match": '"a", "b", W/"c"'})
    assert response.status_code == 200
    assert response.data != b""


def test_star_gives_304(site: Site, client: FlaskClient) -> None:
    assert_not_modified(client.get("/atom.xml", headers={"If-None-Match": "*"}), site.etag("/atom.xml"))


def test_weak_etag_gives_304(site: Site, client: FlaskClient) -> None:
    etag = site.etag("/rss.xml")
    assert_not_modified(client.get("/rss.xml", headers={"If-None-Match": "W/" + etag}), etag)


def test_if_none_match_takes_precedence_over_if_modified_since(client: FlaskClient) -> None:
    response = client.get(
        "/rss.xml",
        headers={"If-None-Match": '"stale"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    )
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.data))
    assert response.data != b""


# --- If-Modified-Since ----------------------------------------------------------------------------


def test_if_modified_since_the_date_served_gives_304(site: Site, client: FlaskClient) -> None:
    response = client.get("/atom.xml", headers={"If-Modified-Since": LAST_MODIFIED})
    assert_not_modified(response, site.etag("/atom.xml"))


@pytest.mark.parametrize(
    "since",
    [
        "Wed, 31 Dec 2025 23:59:59 GMT",
        "Mon, 01 Jan 1990 00:00:00 GMT",
        "nonsense",
        "Thu, 01 Jan 2026 00:00:01 GMT",  # later: another instance's date, maybe for older bytes
    ],
)
def test_if_modified_since_other_than_served_or_malformed_gives_200(
    site: Site, client: FlaskClient, since: str
) -> None:
    response = client.get("/atom.xml", headers={"If-Modified-Since": since})
    assert response.status_code == 200
    assert response.data == site.published("/atom.xml")


# --- HEAD -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("accept_encoding", [None, "gzip"])
def test_head_matches_get_without_body(client: FlaskClient, path: str, accept_encoding: str | None) -> None:
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    get = client.get(path, headers=headers)
    head = client.head(path, headers=headers)
    assert head.status_code == get.status_code == 200
    assert head.data == b""
    assert get.data != b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.data))
    assert head.headers["ETag"] == get.headers["ETag"]
    assert sorted(head.headers.items()) == sorted(get.headers.items())


def test_conditional_head_gives_304(site: Site, client: FlaskClient) -> None:
    etag = site.etag("/rss.xml")
    get = client.get("/rss.xml", headers={"If-None-Match": etag})
    head = client.head("/rss.xml", headers={"If-None-Match": etag})
    assert_not_modified(head, etag)
    assert sorted(head.headers.items()) == sorted(get.headers.items())


# --- gzip -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_gzip_when_accepted(site: Site, client: FlaskClient, path: str) -> None:
    identity = client.get(path)
    response = client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == FEED_TYPES[path]
    assert response.headers["Vary"] == VARY[path]
    assert response.headers["Content-Length"] == str(len(response.data))
    assert gzip.decompress(response.data) == identity.data == site.published(path)
    assert response.headers["ETag"] == site.etag(path, gzipped=True)
    assert response.headers["ETag"] != identity.headers["ETag"]


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip;q=0", "br"])
def test_identity_when_gzip_not_accepted(site: Site, client: FlaskClient, accept_encoding: str) -> None:
    response = client.get("/rss.xml", headers={"Accept-Encoding": accept_encoding})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.data == site.published("/rss.xml")
    assert response.headers["ETag"] == site.etag("/rss.xml")


def test_identity_etag_with_gzip_gives_200_and_gzip_etag_gives_304(site: Site, client: FlaskClient) -> None:
    identity_etag, gzip_etag = site.etag("/rss.xml"), site.etag("/rss.xml", gzipped=True)
    response = client.get("/rss.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": identity_etag})
    assert response.status_code == 200
    assert response.headers["ETag"] == gzip_etag
    assert gzip.decompress(response.data) == site.published("/rss.xml")
    again = client.get("/rss.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": gzip_etag})
    assert_not_modified(again, gzip_etag)
    plain = client.get("/rss.xml", headers={"If-None-Match": gzip_etag})
    assert plain.status_code == 200
    assert plain.headers["ETag"] == identity_etag


# --- methods and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("path", [*ROUTES, "/healthz"])
def test_other_methods_are_405_with_allow(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    allowed = {name.strip() for name in response.headers["Allow"].split(",")}
    assert allowed == {"GET", "HEAD"}
    assert "ETag" not in response.headers
    assert_nosniff(response)


@pytest.mark.parametrize(
    "path", ["/nope", "/rss.xml/extra", "/RSS.XML", "/index.html", "/rss.xml.gz", "/build.json"]
)
def test_unknown_paths_are_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "ETag" not in response.headers
    assert_nosniff(response)


# --- index page -----------------------------------------------------------------------------------


def test_index_escapes_post_titles(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "Fish &amp; chips &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert "alert(1)</script>" not in html
    assert "A quiet morning at the harbour" in html


def test_index_has_three_autodiscovery_links(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    # The site's three, and the RSS feeds of its section and its one author (the site's).
    assert html.count('<link rel="alternate"') == 3 + 1 + 1
    assert 'href="https://example.com/notes/rss.xml"' in html
    assert 'href="https://example.com/authors/site-author/rss.xml"' in html
    for kind, url in [
        ("application/rss+xml", "https://example.com/rss.xml"),
        ("application/atom+xml", "https://example.com/atom.xml"),
        ("application/feed+json", "https://example.com/feed.json"),
    ]:
        assert f'<link rel="alternate" type="{kind}"' in html
        assert f'href="{url}"' in html


# --- before the first build, and health -----------------------------------------------------------


def test_before_first_build(unpublished: Site) -> None:
    client = unpublished.client()
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.headers["Content-Type"] == "application/json"
    assert health.headers["Cache-Control"] == "no-store"
    assert health.get_json() == dict.fromkeys(HEALTH_KEYS) | {"status": "starting", "builder": "stopped"}
    assert_nosniff(health)
    assert client.get("/notes/rss.xml").status_code == 404
    for path in CORE_ROUTES:
        for response in (client.get(path), client.head(path)):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert response.headers["Cache-Control"] == "no-store"
            assert "ETag" not in response.headers
            assert_nosniff(response)


def test_health_after_first_poll_in_the_same_app(unpublished: Site) -> None:
    client = unpublished.client()
    assert client.get("/healthz").status_code == 503
    assert client.get("/rss.xml").status_code == 503
    assert unpublished.watcher.poll() is True
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.headers["Cache-Control"] == "no-store"
    assert_nosniff(health)
    body = health.get_json()
    assert body["status"] == "ok"
    assert body["last_success"] == "2026-01-01T00:00:00Z"
    assert body["posts_used"] == 3
    assert body["posts_skipped"] == 1
    assert body["error"] is None
    assert set(body) == set(HEALTH_KEYS)
    rss = client.get("/rss.xml")
    assert rss.status_code == 200
    assert rss.data == unpublished.published("/rss.xml")


def test_health_body_is_json_with_sorted_keys(client: FlaskClient) -> None:
    health = client.get("/healthz")
    text = health.get_data(as_text=True)
    assert text.endswith("\n")
    parsed = json.loads(text)
    assert list(parsed) == sorted(parsed)
    assert list(parsed) == sorted(HEALTH_KEYS)


def health_of(settings: Settings) -> tuple[int, str]:
    response = create_app(settings).test_client().get("/healthz")
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("details", [False, True])
def test_health_has_the_same_keys_before_and_after_the_first_build(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path, details: bool
) -> None:
    write_post("harbour.txt")
    settings = make_settings(state_dir=str(tmp_path / "state"), health_details=details)
    keys = sorted(HEALTH_KEYS + (("last_error", "skipped") if details else ()))
    status, before = health_of(settings)
    assert status == 503
    assert json.loads(before) == dict.fromkeys(keys) | {"status": "starting", "builder": "stopped"}
    store = PublishedStore(default_state_dir(settings))
    assert Watcher(settings, store, clock=lambda: FIXED_NOW, settle_ns=0).poll() is True
    status, after = health_of(settings)
    assert status == 200
    assert list(json.loads(after)) == keys
    assert json.loads(after) == {
        "status": "ok",
        "last_attempt": "2026-01-01T00:00:00Z",
        "last_success": "2026-01-01T00:00:00Z",
        "generation": store.current_name(),
        "posts_used": 1,
        "posts_skipped": 0,
        "error": None,
        "builder": "stopped",  # no builder process in this test
    } | ({"last_error": None, "skipped": []} if details else {})


def test_health_details_setting_from_the_environment(tmp_path: Path, content_dir: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    environ = {"FEEDS_CONTENT_DIR": str(content_dir)}
    assert load_settings(empty, environ).health_details is False
    assert load_settings(empty, {**environ, "FEEDS_HEALTH_DETAILS": "true"}).health_details is True
    with pytest.raises(ConfigError, match=r"^health_details: expected true or false"):
        load_settings(empty, {**environ, "FEEDS_HEALTH_DETAILS": "sometimes"})


SECRET_DRAFT = (
    "---\ntitle: ACME deal\ndraft: true\ndate: Q3 acquisition of ACME Corp for 40M\n---\nNot yet public.\n"
)


@pytest.mark.parametrize("details", [False, True])
def test_health_tells_no_paths_or_values_unless_asked(
    make_settings: MakeSettings,
    write_post: WritePost,
    content_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    details: bool,
) -> None:
    write_post("harbour.txt")
    write_post("2025-acme-acquisition.md", SECRET_DRAFT)
    settings = make_settings(state_dir=str(tmp_path / "state"), health_details=details)
    watcher = Watcher(
        settings, PublishedStore(default_state_dir(settings)), clock=lambda: FIXED_NOW, settle_ns=0
    )
    with caplog.at_level(logging.INFO, logger="feeds.watcher"):
        assert watcher.poll() is True
        _, skipped = health_of(settings)
        # The content vanishes: the guard keeps the feeds and reports an error whose
        # text names the content directory.
        shutil.rmtree(content_dir)
        assert watcher.poll() is False
        status, failed = health_of(settings)
    assert status == 200
    body = json.loads(failed)
    assert (body["status"], body["error"], body["posts_used"], body["posts_skipped"]) == (
        "error",
        "EmptyContentGuard",
        1,
        1,
    )
    # Every detail is in the log, whatever the setting.
    assert "skipped 2025-acme-acquisition.md: date: not a date: 'Q3 acquisition" in caplog.text
    assert f"content_dir {str(content_dir)!r} is missing" in caplog.text
    secrets = ("acme", "acquisition", "40M", str(tmp_path), "/tmp", "missing or has no posts")
    if not details:
        for text in (skipped, failed):
            assert [secret for secret in secrets if secret.lower() in text.lower()] == [], text
    else:
        assert json.loads(skipped)["skipped"] == [
            "2025-acme-acquisition.md: date: not a date: 'Q3 acquisition of ACME Corp for 40M' "
            "(use ISO 8601, RFC 822 or a Unix timestamp)"
        ]
        assert str(content_dir) in body["last_error"]


# --- a new build ----------------------------------------------------------------------------------


def test_new_post_is_served_with_new_etag(site: Site, client: FlaskClient, write_post: WritePost) -> None:
    old = client.get("/rss.xml")
    old_etag = old.headers["ETag"]
    write_post("later.txt", post_text(title="Later news", date="1700000000"))
    assert site.watcher.poll() is True
    new = client.get("/rss.xml")
    assert new.status_code == 200
    assert new.data == site.published("/rss.xml")
    assert new.data != old.data
    assert b"Later news" in new.data
    assert new.headers["ETag"] == site.etag("/rss.xml")
    assert new.headers["ETag"] != old_etag
    # The clock has not moved: one second after the previous date, never the same one.
    assert new.headers["Last-Modified"] == "Thu, 01 Jan 2026 00:00:01 GMT"
    stale = client.get("/rss.xml", headers={"If-None-Match": old_etag})
    assert stale.status_code == 200
    assert stale.data == new.data
    assert_not_modified(
        client.get("/rss.xml", headers={"If-None-Match": new.headers["ETag"]}),
        new.headers["ETag"],
        new.headers["Last-Modified"],
    )


def test_poll_without_changes_keeps_etag(site: Site, client: FlaskClient) -> None:
    etag = client.get("/rss.xml").headers["ETag"]
    assert site.watcher.poll() is False
    assert_not_modified(client.get("/rss.xml", headers={"If-None-Match": etag}), etag)


def test_second_app_answers_the_same(site: Site, client: FlaskClient) -> None:
    other = site.client()
    for path in ROUTES:
        for headers in ({}, {"Accept-Encoding": "gzip"}):
            first, second = client.get(path, headers=headers), other.get(path, headers=headers)
            assert second.status_code == first.status_code == 200
            assert second.headers["ETag"] == first.headers["ETag"]
            assert second.data == first.data
            etag = first.headers["ETag"]
            assert_not_modified(other.get(path, headers={**headers, "If-None-Match": etag}), etag)


@pytest.mark.parametrize("path", ROUTES)
def test_a_browser_gets_xml_feeds_as_xml_and_the_same_bytes(
    site: Site, client: FlaskClient, path: str
) -> None:
    reader = client.get(path, headers={"Accept": "application/rss+xml, application/atom+xml, */*;q=0.1"})
    browser = client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert reader.headers["Content-Type"] == FEED_TYPES[path]
    xml_feed = path.endswith(("/rss.xml", "/atom.xml"))
    expected = "application/xml; charset=utf-8" if xml_feed else FEED_TYPES[path]
    assert browser.headers["Content-Type"] == expected
    assert browser.data == reader.data
    # A relabelled answer is another representation, with a strong tag of its own.
    assert (browser.headers["ETag"] == reader.headers["ETag"]) is not xml_feed


@pytest.mark.parametrize("path", ["/rss.xml", "/atom.xml"])
@pytest.mark.parametrize("accept_encoding", ["identity", "gzip"])
def test_browser_and_reader_answers_revalidate_with_their_own_tags_only(
    client: FlaskClient, path: str, accept_encoding: str
) -> None:
    reader_accept = {"Accept": "application/rss+xml, application/atom+xml, */*;q=0.1"}
    browser_accept = {"Accept": BROWSER_ACCEPT}
    encoding = {"Accept-Encoding": accept_encoding}
    reader = client.get(path, headers={**reader_accept, **encoding})
    browser = client.get(path, headers={**browser_accept, **encoding})
    reader_tag, browser_tag = reader.headers["ETag"], browser.headers["ETag"]
    assert reader_tag != browser_tag
    digest = reader_tag.strip('"').removesuffix("-gzip")
    assert browser_tag == (f'"{digest}-xml-gzip"' if accept_encoding == "gzip" else f'"{digest}-xml"')
    for accept, own, other in (
        (reader_accept, reader_tag, browser_tag),
        (browser_accept, browser_tag, reader_tag),
    ):
        assert_not_modified(client.get(path, headers={**accept, **encoding, "If-None-Match": own}), own)
        crossed = client.get(path, headers={**accept, **encoding, "If-None-Match": other})
        assert crossed.status_code == 200
        assert crossed.headers["ETag"] == own
        assert crossed.data == (browser if accept is browser_accept else reader).data


def test_a_page_request_refusing_html_gets_the_feed_type(client: FlaskClient) -> None:
    """RFC 9110 §12.4.2: q=0 means "not acceptable"."""
    for accept in ("text/html;q=0, application/rss+xml", "text/html;q=0.0, */*"):
        response = client.get("/rss.xml", headers={"Accept": accept})
        assert response.headers["Content-Type"] == FEED_TYPES["/rss.xml"]
        assert response.headers["ETag"] == client.get("/rss.xml").headers["ETag"]


def test_the_stylesheet_is_served(site: Site, client: FlaskClient) -> None:
    response = client.get("/feed.xsl")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xsl; charset=utf-8"
    assert b"<xsl:stylesheet" in response.data
    assert site.published("/rss.xml").startswith(
        b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet type=\"text/xsl\" href=\"/feed.xsl\"?>"
    )


# --- answers kept between requests ----------------------------------------------------------------


def test_a_warm_worker_answers_every_request_as_a_fresh_one(site: Site) -> None:
    """CachedFeeds answers from what it kept of earlier requests (the representation, its
    prepared answers): after a worker has answered a whole matrix of requests, each one
    gets the status, header lines (in order) and body that a worker seeing it first gives."""
    warm = site.client()
    shapes = [
        {},
        {"Accept-Encoding": "gzip"},
        {"Accept": BROWSER_ACCEPT, "Accept-Encoding": "gzip, br"},
        {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
    ]
    tags = {
        path: sorted({warm.get(path, headers=shape).headers["ETag"] for shape in shapes}) for path in ROUTES
    }
    requests = [
        (method, path, {**shape, **({"If-None-Match": tag} if tag else {}), **dated})
        for method in ("GET", "HEAD")
        for path in ROUTES
        for shape in shapes
        for tag in [None, '"other"', *tags[path]]
        for dated in ({}, {"If-Modified-Since": LAST_MODIFIED})
    ]

    def seen(client: FlaskClient, method: str, path: str, headers: dict[str, str]) -> tuple[object, ...]:
        response = client.open(path, method=method, headers=headers)
        return response.status_code, list(response.headers.items()), response.data

    warm_answers = [seen(warm, *request) for request in reversed(requests)][::-1]
    statuses = set()
    for request, warm_answer in zip(requests, warm_answers, strict=True):
        fresh = seen(site.client(), *request)
        assert warm_answer == fresh == seen(warm, *request), request
        statuses.add(fresh[0])
    assert statuses == {200, 304}
