"""Per-tag, per-category, per-author and per-section feeds: keys, grouping, documents,
URLs and serving."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from feeds import cli
from feeds.build import Build, FeedDocuments
from feeds.config import Settings
from feeds.pipeline import Pipeline
from feeds.published import PublishedStore, default_state_dir
from feeds.taxonomy import MAX_KEY_BYTES, RESERVED_SECTION_KEYS, term_key
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
        ("authors", "site-author", "Site author"),  # the default author of every post
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
    assert [(t.kind, t.key, t.name) for t in built.terms if t.kind == "tags"] == [
        ("tags", "caf\u00e9", "Caf\u00e9")
    ]
    rss, _, _ = check_documents(term_documents(built, "tags/caf\u00e9/"))
    assert [e.title for e in rss.entries] == ["Decomposed", "Composed"]
    Watcher(settings, PublishedStore(default_state_dir(settings)), clock=lambda: NOW, settle_ns=0).poll()
    client = create_app(settings).test_client()
    answers = [client.get(f"/tags/{quote(spelling)}/rss.xml") for spelling in ("Caf\u00e9", "cafe\u0301")]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].headers["ETag"] == answers[1].headers["ETag"]


# --- sections: the top-level folders of the content directory ---------------------------


@pytest.fixture
def sectioned(write_post: WritePost) -> None:
    write_post("Notes/one.md", post_text(title="Note one", date="1600001000", extra="author: Ann Lee"))
    write_post("Notes/2024/deep.md", post_text(title="Deep note", date="1600003000", extra="tags: Deep"))
    write_post("blog/hello.md", post_text(title="Hello", date="1600002000", extra="authors: [Ann Lee, Bo]"))
    write_post("top.md", post_text(title="At the top", date="1600004000"))


def published_client(settings: Settings) -> FlaskClient:
    store = PublishedStore(default_state_dir(settings))
    assert Watcher(settings, store, clock=lambda: NOW, settle_ns=0).poll() is True
    return create_app(settings).test_client()


def test_each_section_has_its_own_valid_feeds(sectioned: None, settings: Settings) -> None:
    built = Pipeline(settings).run(NOW)
    sections = [(t.key, t.name, [p.title for p in t.posts]) for t in built.terms if t.kind == "sections"]
    # A post below a subfolder belongs to its top-level folder; one at the top, to none.
    assert sections == [("blog", "blog", ["Hello"]), ("notes", "Notes", ["Deep note", "Note one"])]
    rss, atom, feed = check_documents(term_documents(built, "notes/"))
    assert [e.title for e in rss.entries] == [e.title for e in atom.entries] == ["Deep note", "Note one"]
    assert rss.feed.title == "My site: Notes" and atom.feed.subtitle == "Posts in “Notes”"
    assert feed["feed_url"] == "https://example.com/notes/feed.json"
    self_link = strict_xml(term_documents(built, "notes/").rss).find(
        "channel/{http://www.w3.org/2005/Atom}link"
    )
    assert self_link is not None and self_link.get("href") == "https://example.com/notes/rss.xml"
    assert "content_html" in feed["items"][0]  # the full text, like the site's feed


def test_section_feeds_are_served_and_listed(sectioned: None, service_settings: Settings) -> None:
    client = published_client(service_settings)
    canonical = client.get("/notes/rss.xml")
    assert canonical.status_code == 200
    assert canonical.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    for variant in ("/Notes/rss.xml", "/NOTES/rss.xml", "/%4Eotes/rss.xml"):
        response = client.get(variant)
        assert response.status_code == 200 and response.headers["ETag"] == canonical.headers["ETag"]
    assert client.get("/blog/atom.xml").status_code == 200
    assert client.get("/blog/feed.json").headers["Content-Type"] == "application/feed+json; charset=utf-8"
    for unknown in ("/nope/rss.xml", "/notes/other.xml", "/notes/2024/rss.xml", "/top/rss.xml", "/notes/"):
        assert client.get(unknown).status_code == 404, unknown
    assert client.post("/notes/rss.xml").status_code == 405
    index = client.get("/").get_data(as_text=True)
    assert "<h2>Sections</h2>" in index and "<li>Notes (2): " in index
    assert '<link rel="alternate" type="application/rss+xml" title="My site: Notes" ' in index
    assert 'href="https://example.com/notes/rss.xml"' in index


def test_build_writes_section_and_author_feeds(
    sectioned: None, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(f'base_url = "https://example.com"\ncontent_dir = "{settings.content_dir}"\n')
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--out", str(out)]) == 0
    for folder in ("notes", "blog", "authors/ann-lee", "authors/bo", "authors/site-author"):
        for name in ("rss.xml", "atom.xml", "feed.json"):
            assert (out / folder / name).is_file(), (folder, name)
    assert [e.title for e in parsed((out / "authors/ann-lee/rss.xml").read_bytes()).entries] == [
        "Hello",
        "Note one",
    ]
    assert (out / "feeds.opml").is_file()
    # A section that goes takes its files with it (the manifest lists them), and the
    # manifest's every entry, the OPML list's included, is one a build writes.
    capsys.readouterr()
    shutil.rmtree(settings.content_dir / "blog")
    assert cli.main(["--config", str(config), "build", "--out", str(out)]) == 0
    assert not (out / "blog").exists() and not (out / "authors/bo").exists()
    printed = capsys.readouterr()
    assert "removed 6 files no longer built" in printed.out
    assert "feeds.opml" in json.loads((out / ".feeds-manifest.json").read_text())["files"]
    assert "ignored" not in printed.err


def test_section_and_author_feeds_are_deterministic(sectioned: None, settings: Settings) -> None:
    first = Pipeline(settings).run(NOW).outputs
    second = Pipeline(settings).run(NOW + dt.timedelta(days=3)).outputs
    assert first == second
    assert {"notes/rss.xml", "authors/bo/feed.json", "feeds.opml"} <= {o.path for o in first}


def test_a_changed_post_rebuilds_only_its_section_and_authors(
    write_post: WritePost, settings: Settings
) -> None:
    write_post("a/one.txt", post_text(title="A", date="1600001000", extra="author: Ann"))
    write_post("b/two.txt", post_text(title="B", date="1600002000", extra="author: Bo"))
    pipeline = Pipeline(settings)
    before = {o.path: o.body for o in pipeline.run(NOW).outputs}
    write_post("a/one.txt", post_text(title="A, edited", date="1600001000", extra="author: Ann"))
    after = {o.path: o.body for o in pipeline.run(NOW).outputs}
    assert (
        after["b/rss.xml"] is before["b/rss.xml"]
        and after["authors/bo/rss.xml"] is before["authors/bo/rss.xml"]
    )
    assert json.loads(after["a/feed.json"])["items"][0]["title"] == "A, edited"
    assert json.loads(after["authors/ann/feed.json"])["items"][0]["title"] == "A, edited"


# Every top-level name a section's folder would share with the site's own files or
# routes; keys are case-folded, so each spelling is one of these.
CLASHING_FOLDERS = [
    "Tags",
    "categories",
    "AUTHORS",
    "archive",
    "healthz",
    "metrics",
    "RSS.xml",
    "feed.json",
    "feed.xsl",
    "feeds.opml",
    "index.html",
    "index.html.gz",
    "atom.xml.gz",
    "build.json",
]


def test_a_section_that_clashes_with_a_route_gets_no_feeds(
    write_post: WritePost, service_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Published, a folder `build.json` or `index.html.gz` would be a folder where the
    # generation holds a file: every publish would fail. They get no section instead.
    for n, folder in enumerate(CLASHING_FOLDERS):
        write_post(f"{folder}/p{n}.md", post_text(title=f"In {folder}", date=str(1_600_001_000 + n)))
    write_post("fine/p.md", post_text(title="Fine", date="1600000999"))
    with caplog.at_level(logging.WARNING, logger="feeds"):
        built = Pipeline(service_settings).run(NOW)
    assert [t.key for t in built.terms if t.kind == "sections"] == ["fine"]
    assert len(parsed(built.documents.rss).entries) == len(CLASHING_FOLDERS) + 1  # every post is used
    refused = [cut for cut in built.cuts if ": section: " in cut]
    assert len(refused) == len(CLASHING_FOLDERS)
    assert (
        "'Tags': section: no section feeds, its key 'tags' is one of the site's own routes; rename the folder"
        in refused
    )
    assert all(f"cut {cut}" in caplog.messages for cut in refused)
    assert {o.path.partition("/")[0] for o in built.outputs if "/" in o.path} == {"fine", "authors"}
    client = published_client(service_settings)
    assert client.get("/fine/rss.xml").status_code == 200
    assert client.get("/rss.xml").status_code == 200 and client.get("/").status_code == 200
    for folder in ("tags", "categories", "authors", "archive", "build.json", "rss.xml"):
        assert client.get(f"/{folder}/rss.xml").status_code == 404


def test_every_top_level_name_of_the_site_is_reserved(
    write_post: WritePost, make_settings: MakeSettings, tmp_path: Path
) -> None:
    # A site with every kind of document, published: each name at the top of a
    # generation (a file, its gzip twin, a folder of feeds) and each route of the app
    # must be a key no section may take. A new top-level file fails this test until it
    # is reserved too.
    for n in range(4):
        write_post(
            f"s{n}/p{n}.md",
            post_text(title=f"P{n}", date=str(1_600_001_000 + n), extra="tags: T\ncategories: C"),
        )
    settings = make_settings(state_dir=str(tmp_path / "state"), item_limit=2, metrics=True)
    client = published_client(settings)
    generation = PublishedStore(default_state_dir(settings)).load_current()
    assert generation is not None
    sections = {"s0", "s1", "s2", "s3"}
    top = {name.partition("/")[0] for name in generation.files}
    # The gzip twins and build.json were files of a 0.1.0 generation folder: still
    # reserved, so that no section's URL comes and goes between versions.
    top |= {f"{name}.gz" for name in top if "." in name} | {"build.json"}
    routes = {rule.rule.strip("/").partition("/")[0] for rule in client.application.url_map.iter_rules()}
    names = (top | routes) - sections - {"", "static"}
    assert names - RESERVED_SECTION_KEYS == set()
    assert {"archive", "tags", "categories", "authors", "feeds.opml", "index.html.gz", "metrics"} <= names


def test_section_keys_like_tags(write_post: WritePost, service_settings: Settings) -> None:
    # NFC and NFD spellings of one folder name (macOS writes NFD) are one section, and
    # so are case and spacing variants; the name is the folder that sorts first.
    write_post("Caf\u00e9/a.md", post_text(title="Composed", date="1600001000"))
    write_post("cafe\u0301/b.md", post_text(title="Decomposed", date="1600002000"))
    write_post("Web Dev/c.md", post_text(title="Spaced", date="1600003000"))
    # 127 dotted capital Is are 254 bytes on disk, but their key folds to 381 bytes.
    long_name = "\u0130" * 127
    write_post(f"{long_name}/d.md", post_text(title="Long", date="1600004000"))
    built = Pipeline(service_settings).run(NOW)
    sections = {t.key: (t.name, [p.title for p in t.posts]) for t in built.terms if t.kind == "sections"}
    long_key = term_key(long_name)
    assert long_key is not None and len(long_key.encode()) <= MAX_KEY_BYTES
    assert sections == {
        "caf\u00e9": ("Caf\u00e9", ["Decomposed", "Composed"]),
        "web-dev": ("Web Dev", ["Spaced"]),
        long_key: (long_name, ["Long"]),
    }
    client = published_client(service_settings)
    for spelling in ("caf\u00e9", "CAFE\u0301", "Web Dev", "web-dev", long_name, long_key):
        response = client.get(f"/{quote(spelling)}/rss.xml")
        assert response.status_code == 200, spelling
    feed = json.loads(client.get(f"/{quote(long_name)}/feed.json").data)
    assert feed["feed_url"] == f"https://example.com/{quote(long_key, safe='')}/feed.json"


def test_a_folder_name_that_is_not_text_gets_no_section(content_dir: Path, settings: Settings) -> None:
    for n, folder in enumerate((b"\xff\xfe", b"tab\x01here", b"-")):
        path = bytes(content_dir) + b"/" + folder
        os.mkdir(path)
        with open(path + b"/p%d.md" % n, "w") as file:
            file.write(post_text(title="Inside", date="1600001000"))
    built = Pipeline(settings).run(NOW)
    assert built.used == 3 and not built.problems
    assert [t for t in built.terms if t.kind == "sections"] == []
    not_text = "no section feeds, its name has bytes that are not UTF-8 text, or control characters"
    assert sorted(cut.partition(": section: ")[2] for cut in built.cuts) == [
        f"{not_text}; rename the folder",
        f"{not_text}; rename the folder",
        "no section feeds, its name leaves no key for a URL; rename the folder",
    ]
    assert "'\\udcff\\udcfe': section: " in " ".join(built.cuts)


# --- authors, keyed like tags ------------------------------------------------------------


def test_each_author_has_a_feed(write_post: WritePost, service_settings: Settings) -> None:
    write_post(
        "a.md", post_text(title="By Jane", date="1600001000", extra="author: Jane Doe <jane@example.com>")
    )
    write_post(
        "b.md", post_text(title="By jane too", date="1600002000", extra="author: {name: '  jane   DOE '}")
    )
    write_post(
        "c.md",
        post_text(title="Two of them", date="1600003000", extra="authors: [Jane Doe, {name: 'R&D <b>'}]"),
    )
    write_post("d.md", post_text(title="Nobody named", date="1600004000"))
    write_post("e.md", post_text(title="Dots", date="1600005000", extra="author: ../../etc"))
    built = Pipeline(service_settings).run(NOW)
    authors = {t.key: (t.name, [p.title for p in t.posts]) for t in built.terms if t.kind == "authors"}
    assert authors == {
        "jane-doe": ("Jane Doe", ["Two of them", "By jane too", "By Jane"]),
        "r&d-<b>": ("R&D <b>", ["Two of them"]),  # one post is enough for a feed
        "site-author": ("Site author", ["Nobody named"]),  # the default author is an author
        "etc": ("../../etc", ["Dots"]),
    }
    rss, _, feed = check_documents(term_documents(built, "authors/jane-doe/"))
    assert rss.feed.title == "My site: Jane Doe" and rss.feed.description == "Posts by “Jane Doe”"
    assert feed["feed_url"] == "https://example.com/authors/jane-doe/feed.json"
    check_documents(term_documents(built, "authors/r&d-<b>/"))
    client = published_client(service_settings)
    for path in ("/authors/jane-doe/rss.xml", "/authors/Jane%20Doe/atom.xml", "/authors/JANE-DOE/feed.json"):
        assert client.get(path).status_code == 200, path
    response = client.get("/authors/R%26D%20%3Cb%3E/rss.xml")
    assert response.status_code == 200 and parsed(response.data).feed.title == "My site: R&D <b>"
    assert client.get("/authors/etc/rss.xml").status_code == 200
    assert client.get("/authors/nobody/rss.xml").status_code == 404
    index = client.get("/").get_data(as_text=True)
    assert "<h2>Authors</h2>" in index and "<li>R&amp;D &lt;b&gt; (1): " in index
    assert "R&D <b>" not in index
    assert 'href="https://example.com/authors/r%26d-%3Cb%3E/rss.xml"' in index
