"""Output budgets: one post may name 100 tags and categories and 20 authors, each a feed
of its own, so entries over `max_term_entry_bytes` carry a short summary there, and only
the terms with the most posts get feeds, within `max_term_feeds` and `max_term_bytes`.
Every post without an author has the site's author, whose feed counts like the others."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from feeds.build import Build, FeedDocuments
from feeds.config import load_settings
from feeds.errors import ConfigError
from feeds.index import index_html
from feeds.pipeline import Pipeline
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher

from conftest import MakeSettings, WritePost, post_text
from feedcheck import check_documents, strict_xml

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TERM_FOLDERS = ("tags/", "categories/", "authors/")


def terms_post(
    n: int, tags: int, categories: int, body: str = "A short body.\n", shared: str = "", **fields: str
) -> str:
    """A post with its own `tags` and `categories` (and a `shared` tag, if given)."""
    own = [f"tag-{n}-{i}" for i in range(tags)] + ([shared] if shared else [])
    extra = f"tags: [{', '.join(own)}]\ncategories: [{', '.join(f'cat-{n}-{i}' for i in range(categories))}]"
    return post_text(title=f"Post {n}", date=str(1_700_000_000 + n), body=body, extra=extra, **fields)


def term_outputs(built: Build) -> dict[str, bytes]:
    return {o.path: o.body for o in built.outputs if o.path.startswith(TERM_FOLDERS)}


def term_folders(built: Build) -> list[str]:
    return sorted({path.rpartition("/")[0] for path in term_outputs(built)})


def test_an_entry_over_max_term_entry_bytes_carries_a_short_summary_in_term_feeds(
    make_settings: MakeSettings, write_post: WritePost
) -> None:
    long_body = "First paragraph, which is the summary.\n\n" + "Every word of the long text. " * 200
    write_post("long.txt", terms_post(1, 2, 2, long_body, description=None))  # type: ignore[arg-type]
    write_post("short.txt", terms_post(2, 0, 0, shared="tag-1-0"))
    settings = make_settings(max_term_entry_bytes=2000)
    built = Pipeline(settings).run(NOW)
    site = built.documents.rss.decode()
    assert site.count("Every word of the long text.") == 200  # the site's feed has it all
    feeds = term_outputs(built)
    assert len(feeds) == 5 * 3  # two tags of its own, a shared one, two categories, the author
    for path, body in feeds.items():
        assert b"Every word of the long text." not in body, path
        assert b"First paragraph, which is the summary." in body, path
    folder = "tags/tag-1-0/"
    check_documents(FeedDocuments(*(feeds[folder + name] for name in ("rss.xml", "atom.xml", "feed.json"))))
    shared = json.loads(feeds[folder + "feed.json"])
    assert [item["title"] for item in shared["items"]] == ["Post 2", "Post 1"]
    assert "content_html" in shared["items"][0] and "content_html" not in shared["items"][1]
    (cut,) = built.cuts
    size = int(cut.split()[2])
    assert size > 2000 * 2
    assert cut == (
        f"long.txt: content: {size} bytes as XML, over max_term_entry_bytes (2000): "
        "its tag, category and author feeds carry a short summary"
    )


def test_a_huge_summary_is_shortened_in_term_feeds(
    make_settings: MakeSettings, write_post: WritePost
) -> None:
    summary = "A description that never ends, " * 3000
    write_post("p.txt", terms_post(1, 1, 0, description=summary))
    built = Pipeline(make_settings(max_term_entry_bytes=50_000)).run(NOW)
    feed = json.loads(term_outputs(built)["tags/tag-1-0/feed.json"])
    assert len(feed["items"][0]["summary"]) <= 301
    assert [cut.partition(":")[0] for cut in built.cuts] == ["p.txt"]


def test_forty_posts_of_a_hundred_terms_stay_within_max_term_feeds(
    make_settings: MakeSettings, write_post: WritePost, caplog: pytest.LogCaptureFixture
) -> None:
    # The reported case (40 posts x 100 terms: 12,008 files), with a lower limit.
    for n in range(40):
        write_post(f"p{n:02}.txt", terms_post(n, 49, 50, "Text. " * 680, shared="common"))
    with caplog.at_level(logging.WARNING, logger="feeds"):
        built = Pipeline(make_settings(max_term_feeds=100)).run(NOW)
    assert len(built.outputs) == 3 + 1 + 100 * 3 + 2 * 2 + 1  # site, XSLT, terms, archive pages, OPML
    assert len(built.terms) == 100
    # The most posts first (the site's author and "common" have 40), then by kind and key.
    categories = sorted(f"cat-{n}-{i}" for n in range(40) for i in range(50))
    expected = ["authors/site-author", "tags/common"] + ["categories/" + key for key in categories[:98]]
    assert term_folders(built) == sorted(expected)
    assert [(t.kind, t.key) for t in built.terms] == sorted(tuple(e.split("/")) for e in expected)
    cut = (
        "tags, categories and authors: 3862 of 3962 feeds left out, those with the fewest posts, "
        "to stay within "
    )
    assert built.cuts == (cut + "max_term_feeds (100)",)
    assert f"cut {cut}max_term_feeds (100)" in caplog.messages
    page = index_html(make_settings(), built.items, built.terms).decode()
    assert "/tags/common/rss.xml" in page and "/tags/tag-0-0/" not in page


def test_term_feeds_stay_within_max_term_bytes(make_settings: MakeSettings, write_post: WritePost) -> None:
    for n in range(10):
        write_post(f"p{n}.txt", terms_post(n, 3, 0, "Some text here. " * 200))
    whole = term_outputs(Pipeline(make_settings()).run(NOW))
    author = sum(len(body) for path, body in whole.items() if path.startswith("authors/site-author/"))
    per_term = sum(len(body) for path, body in whole.items() if path.startswith("tags/tag-0-0/"))
    # Room for the author's feed (it has every post, so it comes first) and seven and a
    # half terms of one post.
    budget = author + per_term * 7 + per_term // 2
    built = Pipeline(make_settings(max_term_bytes=budget)).run(NOW)
    kept = term_outputs(built)
    assert sum(len(body) for body in kept.values()) <= budget
    assert len(term_folders(built)) == 1 + 7
    assert term_folders(built) == sorted(
        ["authors/site-author"]
        + [f"tags/tag-{k}" for k in sorted(f"{n}-{i}" for n in range(10) for i in range(3))[:7]]
    )
    assert kept == {path: whole[path] for path in kept}  # what is kept is not altered
    assert built.cuts == (
        f"tags, categories and authors: 23 of 31 feeds left out, those with the fewest posts, "
        f"to stay within max_term_bytes ({budget})",
    )


def test_the_cut_is_the_same_at_every_build(make_settings: MakeSettings, write_post: WritePost) -> None:
    for n in range(12):
        write_post(f"p{n}.txt", terms_post(n, 5, 5, shared="all" if n % 2 else ""))
    settings = make_settings(max_term_feeds=17)
    first, second = Pipeline(settings).run(NOW), Pipeline(settings).run(NOW)
    assert [(o.path, o.body) for o in first.outputs] == [(o.path, o.body) for o in second.outputs]
    assert first.cuts == second.cuts and len(first.terms) == 17


def test_the_watcher_publishes_only_the_kept_term_feeds(
    make_settings: MakeSettings, write_post: WritePost, tmp_path: Path
) -> None:
    for n in range(3):
        write_post(f"p{n}.txt", terms_post(n, 2, 0, shared="shared"))
    # Three: the site's author (every post), "shared", and the first of the rest by key.
    settings = make_settings(state_dir=str(tmp_path / "state"), max_term_feeds=3)
    store = PublishedStore(default_state_dir(settings))
    assert Watcher(settings, store, clock=lambda: NOW, settle_ns=0).poll() is True
    generation = store.load_current()
    assert generation is not None
    published = sorted({name.rpartition("/")[0] for name in generation.files if name.startswith("tags/")})
    assert published == ["tags/shared", "tags/tag-0-0"]
    index = generation.files["index.html"].decode()
    assert "/tags/tag-0-1/" not in index and "/tags/shared/" in index


def test_a_megabyte_post_in_forty_term_feeds_at_default_budgets(
    make_settings: MakeSettings, write_post: WritePost
) -> None:
    # The reported case: 1,000,237 bytes whose HTML escapes to 8.9 MB, with 20 tags and 20
    # categories, wrote 124 files of 891 MB; each term feed now carries a short summary.
    # The render limit is raised past the post, so that the budgets alone bound the output.
    settings = make_settings(max_render_bytes=2_000_000)
    head = (
        "---\ntitle: Big\ndate: 1700000000\n"
        f"tags: [{', '.join(f't{i}' for i in range(20))}]\n"
        f"categories: [{', '.join(f'c{i}' for i in range(20))}]\n---\n"
    )
    line = "&" * 79 + "\n"
    data = (head + line * (1_000_237 // len(line) + 1))[:1_000_237].encode()
    assert len(data) == 1_000_237
    write_post("big.md", data)
    built = Pipeline(settings).run(NOW)
    assert len(built.outputs) == 124 + 3 + 1  # and its author's feeds, and the OPML list
    terms = term_outputs(built)
    assert len(terms) == 123
    for path, body in terms.items():
        if not path.endswith(".json"):
            strict_xml(body)
    assert all(len(body) < 4_000 for body in terms.values()), max(map(len, terms.values()))
    assert sum(len(o.body) for o in built.outputs) < 25_000_000  # the site's feeds: 8.9 + 8.9 + 5 MB
    assert len(built.documents.rss) > 8_000_000  # the post's full text stays in the site's feeds
    assert [cut.split(",")[0] for cut in built.cuts] == ["big.md: content: 8901219 bytes as XML"]
    # At every default, the render limit stops the post first: its summary, everywhere.
    built = Pipeline(make_settings()).run(NOW)
    assert len(built.outputs) == 128
    assert sum(len(o.body) for o in built.outputs) < 1_000_000
    assert [p.field for p in built.problems] == ["content"] and built.degraded == {"big.md"}


def test_the_budgets_are_settings_checked_at_start(make_settings: MakeSettings, tmp_path: Path) -> None:
    defaults = make_settings()
    assert (defaults.max_term_entry_bytes, defaults.max_term_feeds, defaults.max_term_bytes) == (
        200_000,
        1000,
        200_000_000,
    )
    empty = tmp_path / "none.toml"
    empty.write_text("")
    environ = {"FEEDS_MAX_TERM_FEEDS": "12", "FEEDS_CONTENT_DIR": str(tmp_path)}
    assert load_settings(config_path=empty, environ=environ).max_term_feeds == 12
    with pytest.raises(ConfigError, match=r"^max_term_bytes: must be at least 1, got 0$"):
        make_settings(max_term_bytes=0)
    with pytest.raises(ConfigError, match=r"^max_term_entry_bytes: expected a whole number"):
        make_settings(max_term_entry_bytes="lots")
