"""Author links in the feeds: only http(s) links, made absolute, reach RSS, Atom and JSON
Feed; any other scheme (`javascript:`, `data:`) keeps the post out with a problem."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from feeds import cli
from feeds.config import Settings
from feeds.pipeline import Pipeline

from conftest import WritePost, post_text
from feedcheck import NS, check_documents, strict_xml

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def authored(write_post: WritePost) -> None:
    write_post(
        "kept.txt",
        post_text(
            title="Kept",
            date="1600002000",
            extra="authors:\n  - {name: Ada, uri: /people/ada/}\n"
            "  - {name: Grace, url: 'mailto:g@example.org'}",
        ),
    )
    write_post(
        "hostile.txt",
        post_text(title="Hostile", date="1600003000", extra="author: {name: A, uri: 'javascript:alert(1)'}"),
    )


def test_only_http_author_links_reach_the_feeds(authored: None, settings: Settings) -> None:
    built = Pipeline(settings).run(NOW)
    assert [str(p) for p in built.problems] == [
        "hostile.txt: author: uri: expected an http(s) URL or a path, got 'javascript:alert(1)'"
    ]
    rss, atom, feed = check_documents(built.documents)
    for document in (built.documents.rss, built.documents.atom, built.documents.json):
        assert b"javascript" not in document
    assert [e.title for e in rss.entries] == ["Kept"]

    authors = strict_xml(built.documents.atom).findall(f"{ATOM}entry/{ATOM}author")
    assert [
        (a.findtext(f"{ATOM}name"), a.findtext(f"{ATOM}uri"), a.findtext(f"{ATOM}email")) for a in authors
    ] == [
        ("Ada", "https://example.com/people/ada/", None),
        ("Grace", None, "g@example.org"),
    ]
    assert atom.entries[0].authors[0]["href"] == "https://example.com/people/ada/"
    assert json.loads(built.documents.json)["items"][0]["authors"] == [
        {"name": "Ada", "url": "https://example.com/people/ada/"},
        {"name": "Grace", "url": "mailto:g@example.org"},
    ]
    item = strict_xml(built.documents.rss).find("channel/item")
    assert item is not None
    assert item.findtext("author") == "g@example.org (Grace)"
    assert [c.text for c in item.findall("dc:creator", NS)] == ["Ada"]
    assert feed["items"][0]["authors"][0]["url"].startswith("https://")


def test_feeds_check_names_the_author_field(
    authored: None, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(f"base_url = 'https://example.com'\ncontent_dir = '{settings.content_dir}'\n")
    assert cli.main(["--config", str(config), "check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "hostile.txt: author: uri: expected an http(s) URL or a path, got 'javascript:alert(1)'"
    ]
