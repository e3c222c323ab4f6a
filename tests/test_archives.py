"""RFC 5005 paged archives: the main feeds stay bounded, history stays reachable, and a
complete archive page keeps its bytes."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
from pathlib import Path
from typing import Any

import pytest

import feeds.build
import feeds.parallel
from feeds.build import ARCHIVE_MAX_AGE, Build
from feeds.markdown import Rendered
from feeds.pipeline import Pipeline
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import MakeSettings, WritePost, post_text
from feedcheck import NS, parsed, strict_xml

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# The RFC 5861 directives every feed answer carries with the default settings.
STALE = ", stale-while-revalidate=60, stale-if-error=86400"
HISTORY = "{http://purl.org/syndication/history/1.0}archive"


def write_posts(write_post: WritePost, first: int, last: int) -> None:
    for n in range(first, last):
        write_post(f"p{n:03d}.txt", post_text(title=f"Post {n}", date=str(1_601_000_000 + n * 60)))


def bodies(built: Build) -> dict[str, bytes]:
    return {output.path: output.body for output in built.outputs}


def links(document: bytes, kind: str) -> dict[str, str]:
    root = strict_xml(document)
    parent = root.find("channel") if kind == "rss" else root
    assert parent is not None
    return {link.get("rel", ""): link.get("href", "") for link in parent.findall("atom:link", NS)}


def follow_history(files: dict[str, bytes], kind: str) -> list[Any]:
    """Every entry a reader finds from the main feed by following prev-archive links."""
    name = "rss.xml" if kind == "rss" else "atom.xml"
    document = files[name]
    entries = list(parsed(document).entries)
    seen = {name}
    while (previous := links(document, kind).get("prev-archive")) is not None:
        path = previous.removeprefix("https://example.com/")
        assert path not in seen, "archive links go round in a circle"
        seen.add(path)
        document = files[path]
        assert strict_xml(document).find(f".//{HISTORY}") is not None
        entries.extend(parsed(document).entries)
    return entries


def test_history_is_recoverable_from_the_main_feeds(
    write_post: WritePost, make_settings: MakeSettings
) -> None:
    write_posts(write_post, 0, 45)
    files = bodies(Pipeline(make_settings(item_limit=10)).run(NOW))
    assert sorted(p for p in files if p.startswith("archive/")) == sorted(
        f"archive/{n}/{name}" for n in range(1, 5) for name in ("rss.xml", "atom.xml")
    )
    for kind in ("rss", "atom"):
        entries = follow_history(files, kind)
        assert len(parsed(files["rss.xml" if kind == "rss" else "atom.xml"]).entries) == 10
        assert {e.title for e in entries} == {f"Post {n}" for n in range(45)}
    assert links(files["rss.xml"], "rss")["prev-archive"] == "https://example.com/archive/4/rss.xml"
    assert links(files["atom.xml"], "atom")["prev-archive"] == "https://example.com/archive/4/atom.xml"
    page_one = links(files["archive/1/atom.xml"], "atom")
    assert page_one == {
        "self": "https://example.com/archive/1/atom.xml",
        "alternate": "https://example.com/",
        "current": "https://example.com/atom.xml",
        "next-archive": "https://example.com/archive/2/atom.xml",
    }
    page_four = links(files["archive/4/rss.xml"], "rss")
    assert page_four["prev-archive"] == "https://example.com/archive/3/rss.xml"
    assert "next-archive" not in page_four
    oldest = parsed(files["archive/1/rss.xml"]).entries
    assert [e.title for e in oldest] == [f"Post {n}" for n in range(9, -1, -1)]
    assert "content" not in oldest[0]  # archive entries carry their summaries


def test_small_sites_have_no_archives(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_posts(write_post, 0, 9)
    files = bodies(Pipeline(make_settings(item_limit=10)).run(NOW))
    assert not any(path.startswith("archive/") for path in files)
    assert "prev-archive" not in links(files["rss.xml"], "rss")


def test_complete_pages_keep_their_bytes_as_the_site_grows(
    write_post: WritePost, make_settings: MakeSettings
) -> None:
    settings = make_settings(item_limit=10)
    pipeline = Pipeline(settings)
    write_posts(write_post, 0, 25)
    before = bodies(pipeline.run(NOW))
    write_posts(write_post, 25, 38)
    after = bodies(pipeline.run(NOW))
    for page in ("archive/1/rss.xml", "archive/1/atom.xml"):
        assert after[page] == before[page]
    assert after["archive/2/atom.xml"] != before["archive/2/atom.xml"]  # it gained a next-archive link
    assert "archive/3/rss.xml" in after
    assert len(parsed(after["rss.xml"]).entries) == 10


def test_archive_pages_are_served_with_a_long_max_age(
    write_post: WritePost, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(item_limit=10, state_dir=str(tmp_path / "state"))
    write_posts(write_post, 0, 25)
    Watcher(settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0).poll()
    client = create_app(settings).test_client()
    page = client.get("/archive/1/atom.xml")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert page.headers["Cache-Control"] == f"public, max-age={ARCHIVE_MAX_AGE}{STALE}"
    assert client.get("/rss.xml").headers["Cache-Control"] == f"public, max-age=300{STALE}"
    again = client.get("/archive/1/atom.xml", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/archive/3/atom.xml").status_code == 404


def test_only_pages_with_a_newer_page_are_kept_for_a_week(
    write_post: WritePost, make_settings: MakeSettings, tmp_path: Path
) -> None:
    """A page served with the week's max-age must keep its bytes: the newest page still
    gains a next-archive link when the next page fills, so it gets the feeds' max_age."""
    settings = make_settings(item_limit=10, state_dir=str(tmp_path / "state"))
    watcher = Watcher(settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0)
    client = create_app(settings).test_client()
    week, short = f"public, max-age={ARCHIVE_MAX_AGE}{STALE}", f"public, max-age=300{STALE}"
    pages = [f"/archive/{n}/{name}" for n in (1, 2, 3) for name in ("rss.xml", "atom.xml")]

    write_posts(write_post, 0, 25)
    assert watcher.poll() is True
    before = {path: client.get(path) for path in pages}
    assert [before[path].status_code for path in pages] == [200, 200, 200, 200, 404, 404]
    assert [before[path].headers["Cache-Control"] for path in pages[:4]] == [week, week, short, short]
    assert "next-archive" not in links(before["/archive/2/atom.xml"].data, "atom")

    write_posts(write_post, 25, 30)  # page 3 fills
    assert watcher.poll() is True
    after = {path: client.get(path) for path in pages}
    assert [after[path].headers["Cache-Control"] for path in pages] == [week, week, week, week, short, short]
    assert links(after["/archive/2/atom.xml"].data, "atom")["next-archive"].endswith("/archive/3/atom.xml")
    for path in pages[:4]:
        if before[path].headers["Cache-Control"] == week:
            assert after[path].data == before[path].data, f"{path} changed during its week"
            assert after[path].headers["ETag"] == before[path].headers["ETag"]
        else:
            assert after[path].data != before[path].data
        stale = client.get(path, headers={"If-None-Match": before[path].headers["ETag"]})
        assert stale.status_code == (304 if after[path].data == before[path].data else 200)


def test_every_document_is_valid_and_byte_stable(write_post: WritePost, make_settings: MakeSettings) -> None:
    for n in range(33):
        extra = f"tags: [T{n % 3}, Shared]\ncategories: C{n % 2}" + (
            f"\nid: custom-{n}" if n % 5 == 0 else ""
        )
        write_post(
            f"p{n:03d}.md", post_text(title=f"Post {n} & <b>", date=str(1_601_000_000 + n * 60), extra=extra)
        )
    settings = make_settings(item_limit=5, websub_hub="https://hub.example/")
    first = Pipeline(settings).run(NOW)
    second = Pipeline(settings).run(NOW + dt.timedelta(days=30))
    assert first.outputs == second.outputs
    kinds: dict[str, int] = {}
    for output in first.outputs:
        name = output.path.rpartition("/")[2]
        kinds[name] = kinds.get(name, 0) + 1
        if name.endswith(".xml"):
            strict_xml(output.body)
            assert parsed(output.body).entries
        elif name == "feed.json":
            assert json.loads(output.body)["items"]
    # The site, its 6 terms and its author (the site's), the 6 archive pages, the lists.
    assert kinds == {
        "rss.xml": 1 + 7 + 6,
        "atom.xml": 1 + 7 + 6,
        "feed.json": 1 + 7,
        "feed.xsl": 1,
        "feeds.opml": 1,
    }


def test_archived_posts_are_summarized_not_rendered(
    write_post: WritePost, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty posts, two in the main feed: only those two are rendered. The others' archive
    entries take their summaries from the head of the body, as a render would give them;
    a body that takes seconds to render costs nothing once it is archived."""
    for n in range(40):
        body = f"The *first* paragraph of post {n}.\n\nA second paragraph.\n"
        if n == 3:
            body = "![" * 249_999  # about 9 s to render whole
        write_post(
            f"p{n:03d}.md",
            post_text(title=f"Post {n}", date=str(1_601_000_000 + n * 60), description=None, body=body),
        )
    renders: list[str] = []
    real_render = feeds.build.render

    def counted(body: str, base_url: str) -> Rendered:
        renders.append(base_url)
        return real_render(body, base_url)

    monkeypatch.setattr(feeds.build, "render", counted)
    pipeline = Pipeline(make_settings(item_limit=2))
    built = pipeline.run(NOW)
    assert len(renders) == 2 and {item.post.title for item in built.items} == {"Post 39", "Post 38"}
    summaries = {
        entry.title: entry.summary
        for output in built.outputs
        if output.path.startswith("archive/") and output.path.endswith("atom.xml")
        for entry in parsed(output.body).entries
    }
    assert len(summaries) == 40  # every complete page is archived, the newest too
    for n in range(40):
        if n != 3:
            assert summaries[f"Post {n}"] == f"The first paragraph of post {n}."
    assert summaries["Post 3"].startswith("![![") and len(summaries["Post 3"]) <= 301
    assert pipeline.run(NOW).outputs == built.outputs and len(renders) == 2  # kept for the next build
    # The same summaries as a full render gives them, in the main feeds.
    monkeypatch.setattr(feeds.build, "render", real_render)
    (make_settings().content_dir / "p003.md").unlink()
    everything = Pipeline(make_settings(item_limit=40)).run(NOW)
    rendered = {item.post.title: item.summary for item in everything.items}
    assert all(summaries[title] == rendered[title] for title in rendered)


def test_a_cold_build_makes_the_archive_pages_in_forked_processes_with_the_same_bytes(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each archive document notes the process that made it; the children inherit the
    # patch, since they are forked. 31 pages of 2 posts: 62 documents, over MIN_JOBS.
    write_posts(write_post, 0, 62)
    settings = make_settings(item_limit=2)
    makers = tmp_path / "makers"
    makers.mkdir()
    original = feeds.build._archive_feed

    def noted(*args: Any) -> bytes:
        (makers / str(os.getpid())).touch()
        return original(*args)

    monkeypatch.setattr(feeds.build, "_archive_feed", noted)
    built = bodies(Pipeline(settings).build(Pipeline(settings).read(), NOW))
    assert sum(path.startswith("archive/") for path in built) == 62
    assert {int(path.name) for path in makers.iterdir()} - {os.getpid()}, "no archive page made elsewhere"
    monkeypatch.setattr(feeds.parallel, "MIN_JOBS", 10**9)  # the same build, all in this process
    assert bodies(Pipeline(settings).build(Pipeline(settings).read(), NOW)) == built


def test_the_processes_that_make_documents_collect_no_garbage() -> None:
    with feeds.parallel.forked_pool(2) as pool:
        assert pool.apply(gc.isenabled) is False
    assert gc.isenabled()
