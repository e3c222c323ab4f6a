"""Per-tag and per-category feeds: keys, grouping, documents, URLs and serving."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from feeds import cli
from feeds.build import Build, FeedDocuments
from feeds.config import Settings
from feeds.pipeline import Pipeline
from feeds.published import PublishedStore, default_state_dir
from feeds.taxonomy import MAX_KEY_BYTES, term_key
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import MakeSettings, WritePost, post_text
from feedcheck import check_documents, parsed, strict_xml

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("C++", "c++"),
        ("Web Dev", "web-dev"),
        ("  web \t dev ", "web-dev"),
        ("C#", "c#"),
        ("Café", "café"),
        ("Cafe\u0301", "caf\u00e9"),  # NFD: the same key as NFC
        ("CAFE\u0301", "caf\u00e9"),
        ("\u01f0", "\u01f0"),  # folds to j and a combining caron, and composes back
        ("a/b", "a-b"),
        ("..", None),
        ("../../etc", "etc"),
        ("-", None),
    ],
)
def test_term_keys(name: str, key: str | None) -> None:
    assert term_key(name) == key


def term_documents(built: Build, folder: str) -> FeedDocuments:
    bodies = {output.path: output.body for output in built.outputs}
    return FeedDocuments(
        bodies[folder + "rss.xml"], bodies[folder + "atom.xml"], bodies[folder + "feed.json"]
    )


@pytest.fixture
def tagged(write_post: WritePost) -> None:
    write_post("a.txt", post_text(title="Pointers", date="1600001000", extra="tags: C++, Web Dev"))
    write_post("b.txt", post_text(title="Templates", date="1600002000", extra="tags:\n  - c++\n  - Rust"))
    write_post(
        "c.txt", post_text(title="Layouts", date="1600003000", extra="tags: web dev\ncategories: [Guides]")
    )


def test_each_term_has_its_own_valid_feeds(tagged: None, settings: Settings) -> None:
    built = Pipeline(settings).run(NOW)
    assert [(t.kind, t.key, t.name) for t in built.terms] == [
        ("categories", "guides", "Guides"),
        ("tags", "c++", "C++"),
        ("tags", "rust", "Rust"),
        ("tags", "web-dev", "Web Dev"),
    ]
    rss, atom, feed = check_documents(term_documents(built, "tags/c++/"))
    assert [e.title for e in rss.entries] == ["Templates", "Pointers"]
    assert [e.title for e in atom.entries] == ["Templates", "Pointers"]
    assert feed["feed_url"] == "https://example.com/tags/c%2B%2B/feed.json"
    assert rss.feed.title == "My site: C++"
    self_link = strict_xml(term_documents(built, "tags/c++/").rss).find(
        "channel/{http://www.w3.org/2005/Atom}link"
    )
    assert self_link is not None and self_link.get("href") == "https://example.com/tags/c%2B%2B/rss.xml"
    rss, _, _ = check_documents(term_documents(built, "tags/web-dev/"))
    assert [e.title for e in rss.entries] == ["Layouts", "Pointers"]
    rss, _, _ = check_documents(term_documents(built, "categories/guides/"))
    assert [e.title for e in rss.entries] == ["Layouts"]


def test_term_feeds_keep_the_item_limit(write_post: WritePost, make_settings: MakeSettings) -> None:
    for n in range(7):
        write_post(f"p{n}.txt", post_text(title=f"P{n}", date=str(1_600_001_000 + n), extra="tags: Busy"))
    built = Pipeline(make_settings(item_limit=3)).run(NOW)
    rss, _, _ = check_documents(term_documents(built, "tags/busy/"))
    assert [e.title for e in rss.entries] == ["P6", "P5", "P4"]


def test_build_writes_term_feeds(tagged: None, settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(f'base_url = "https://example.com"\ncontent_dir = "{settings.content_dir}"\n')
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--out", str(out)]) == 0
    for folder in ("tags/c++", "tags/web-dev", "tags/rust", "categories/guides"):
        for name in ("rss.xml", "atom.xml", "feed.json"):
            assert (out / folder / name).is_file()
    assert parsed((out / "tags/c++/rss.xml").read_bytes()).entries[0].title == "Templates"


def test_term_feeds_are_served_case_insensitively(
    tagged: None, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(state_dir=str(tmp_path / "state"))
    Watcher(settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0).poll()
    client = create_app(settings).test_client()
    canonical = client.get("/tags/c%2B%2B/rss.xml")
    assert canonical.status_code == 200
    assert canonical.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    for variant in ("/tags/C++/rss.xml", "/tags/C%2b%2B/rss.xml", "/tags/c++/rss.xml"):
        response = client.get(variant)
        assert response.status_code == 200 and response.headers["ETag"] == canonical.headers["ETag"]
    assert client.get("/tags/Web%20Dev/atom.xml").status_code == 200
    assert client.get("/tags/WEB-DEV/feed.json").status_code == 200
    assert client.get("/categories/guides/rss.xml").status_code == 200
    for unknown in ("/tags/nope/rss.xml", "/tags/c++/other.xml", "/tags/rss.xml", "/categories/rust/rss.xml"):
        assert client.get(unknown).status_code == 404
    assert client.post("/tags/c++/rss.xml").status_code == 405
    index = client.get("/").get_data(as_text=True)
    assert 'href="https://example.com/tags/c%2B%2B/rss.xml"' in index
    assert 'title="My site: Web Dev"' in index
    assert "<h2>Tags</h2>" in index and "<h2>Categories</h2>" in index


def test_term_feeds_are_deterministic(tagged: None, settings: Settings) -> None:
    first = Pipeline(settings).run(NOW).outputs
    second = Pipeline(settings).run(NOW + dt.timedelta(days=3)).outputs
    assert first == second


def test_a_changed_post_rebuilds_only_its_terms(write_post: WritePost, settings: Settings) -> None:
    write_post("a.txt", post_text(title="A", date="1600001000", extra="tags: One"))
    write_post("b.txt", post_text(title="B", date="1600002000", extra="tags: Two"))
    pipeline = Pipeline(settings)
    before = {o.path: o.body for o in pipeline.run(NOW).outputs}
    write_post("a.txt", post_text(title="A, edited", date="1600001000", extra="tags: One"))
    after = {o.path: o.body for o in pipeline.run(NOW).outputs}
    assert after["tags/two/rss.xml"] is before["tags/two/rss.xml"]  # reused, not rebuilt
    assert after["tags/one/rss.xml"] != before["tags/one/rss.xml"]
    assert json.loads(after["tags/one/feed.json"])["items"][0]["title"] == "A, edited"


# --- keys bounded in bytes, and one key per Unicode spelling ---------------------------

# Long names in several scripts; each repeats a short unit well past 255 bytes of UTF-8.
LONG_NAMES = {
    "cjk": "漢字かな交じり文" * 40,
    "cyrillic": "Новости города " * 30,
    "emoji": "🎉🚲" * 80,
    "astral-letters": "\U00010400\U00010401\U00013000" * 30,  # Deseret capitals fold to small ones
    "combining": "q\u0307\u0323" * 120,  # marks that compose with nothing, reordered by NFC
    "devanagari": "नमस्ते दुनिया " * 30,
    "arabic": "مرحبا بالعالم " * 30,
}


@pytest.mark.parametrize("name", LONG_NAMES.values(), ids=LONG_NAMES.keys())
def test_long_keys_are_bounded_in_bytes_unique_and_stable(name: str) -> None:
    key = term_key(name)
    assert key is not None
    assert len(key.encode()) <= MAX_KEY_BYTES
    assert term_key(name) == key  # stable
    assert term_key(key) == key  # a key finds itself, so the short form is a valid request
    head, _, digest = key.rpartition("-")
    assert len(digest) == 16 and int(digest, 16) >= 0
    full = "-".join(unicodedata.normalize("NFC", name.casefold()).split())
    assert full.startswith(head) and len(head.encode()) >= MAX_KEY_BYTES - 20
    # Names that differ only past the cut still get keys of their own.
    assert term_key(name + "x") != key
    assert term_key(name[:-3] + name[-1] + name[-3:-1]) not in (None, key)


def test_keys_that_fit_are_unchanged() -> None:
    assert term_key("字" * 85) == "字" * 85  # 255 bytes exactly: the URL stays what it was
    assert term_key("ж" * 100) == "ж" * 100
    assert term_key("字" * 86) != "字" * 86


any_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=("Cs",)),
        st.sampled_from("e\u0301\u0345\u0323\u0302 /.-ßİΣς字🎉"),
    ),
    max_size=300,
)


@hypothesis_settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(any_text)
@example("\u03ac\u0345\u0301")  # folding before decomposing would differ here
def test_term_key_properties(name: str) -> None:
    key = term_key(name)
    if key is None:
        return
    assert len(key.encode()) <= MAX_KEY_BYTES
    assert term_key(key) == key
    assert unicodedata.is_normalized("NFC", key)
    assert term_key(unicodedata.normalize("NFD", name)) == key
    assert term_key(unicodedata.normalize("NFC", name)) == key
    assert "/" not in key and key not in (".", "..")


def test_nfc_and_nfd_spellings_share_one_feed(
    write_post: WritePost, make_settings: MakeSettings, tmp_path: Path
) -> None:
    write_post("a.txt", post_text(title="Composed", date="1600001000", extra="tags: Caf\u00e9"))
    write_post("b.txt", post_text(title="Decomposed", date="1600002000", extra="tags: Cafe\u0301"))
    settings = make_settings(state_dir=str(tmp_path / "state"))
    built = Pipeline(settings).run(NOW)
    assert [(t.key, t.name) for t in built.terms] == [("caf\u00e9", "Caf\u00e9")]
    rss, _, _ = check_documents(term_documents(built, "tags/caf\u00e9/"))
    assert [e.title for e in rss.entries] == ["Decomposed", "Composed"]
    Watcher(settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0).poll()
    client = create_app(settings).test_client()
    answers = [client.get(f"/tags/{quote(spelling)}/rss.xml") for spelling in ("Caf\u00e9", "cafe\u0301")]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].headers["ETag"] == answers[1].headers["ETag"]
