"""Prometheus metrics: off by default; when on, every worker's counts in one scrape."""

from __future__ import annotations

import re
from pathlib import Path

from feeds.metrics import route_label

from conftest import WritePost, post_text
from server import Server


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert match, f"no {name} {labels} in:\n{text}"
    return float(match.group(1))


def test_route_labels_stay_few() -> None:
    assert route_label("/rss.xml") == "/rss.xml"
    assert route_label("/tags/c++/rss.xml") == "/tags/*"
    assert route_label("/archive/12/atom.xml") == "/archive/*"
    assert route_label("/../../etc/passwd") == "other"


def test_section_author_and_list_routes_have_labels_of_their_own() -> None:
    # A site may have thousands of sections and authors: one label for each kind.
    assert route_label("/authors/jane-doe/feed.json") == "/authors/*"
    assert route_label("/notes/rss.xml") == route_label("/blog/atom.xml") == "/<section>/*"
    assert route_label("/日記/feed.json") == "/<section>/*"  # as canonical_path decodes it
    assert route_label("/feeds.opml") == "/feeds.opml"
    assert route_label("/notes/2024/rss.xml") == route_label("/notes/index.html") == "other"


def test_metrics_add_up_every_worker(tmp_path: Path, write_post: WritePost, content_dir: Path) -> None:
    write_post("one.txt", post_text(title="One", extra="tags: Boats"))
    write_post("bad.txt", "---\ntitle: Bad\n---\n")
    server = Server(tmp_path, content_dir, via_cli=True, state_dir=str(tmp_path / "state"), metrics="true")
    try:
        server.wait_until_ready()
        etag = server.request("/rss.xml")[1]["etag"]
        for _ in range(19):
            server.request("/rss.xml")
        for _ in range(30):
            assert server.request("/rss.xml", headers={"If-None-Match": etag})[0] == 304
        for _ in range(5):
            server.request("/tags/boats/atom.xml")
            server.request("/nowhere")
        scrapes = [server.request("/metrics") for _ in range(6)]  # answered by either worker
    finally:
        server.stop()
    status, headers, body = scrapes[-1]
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    text = body.decode()
    assert sample(text, "feeds_http_requests_total", route="/rss.xml", status="200") == 20
    assert sample(text, "feeds_http_requests_total", route="/rss.xml", status="304") == 30
    assert sample(text, "feeds_http_requests_total", route="/tags/*", status="200") == 5
    assert sample(text, "feeds_http_requests_total", route="other", status="404") == 5
    assert sample(text, "feeds_not_modified_ratio") == 30 / 55
    assert sample(text, "feeds_builds_total", result="published") >= 1
    assert sample(text, "feeds_build_duration_seconds_count") >= 1
    assert sample(text, "feeds_posts_used") == 1
    assert sample(text, "feeds_posts_skipped") == 1


def test_metrics_are_off_by_default(tmp_path: Path, write_post: WritePost, content_dir: Path) -> None:
    write_post("one.txt", post_text())
    server = Server(tmp_path, content_dir, workers=1, via_cli=True, state_dir=str(tmp_path / "state"))
    try:
        server.wait_until_ready()
        assert server.request("/metrics")[0] == 404
    finally:
        server.stop()
