"""The three documents a build writes: valid, complete, ordered and byte-stable."""

from __future__ import annotations

import datetime as dt
import json
import re

from feeds.build import Build
from feeds.config import Settings
from feeds.pipeline import Pipeline

from conftest import MakeSettings, WritePost, post_text
from feedcheck import NS, check_documents, strict_xml

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def build(settings: Settings, now: dt.datetime = NOW) -> Build:
    return Pipeline(settings).run(now)


def test_rss_document(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_post(
        "harbour.txt",
        post_text(
            body="See [the map](../map/) and ![gulls](gulls.png).\n",
            extra="tags: Boats, Sea\nauthor: Ada <ada@example.org>",
        ),
    )
    write_post("quay.md", post_text(title="Quay", date="1602734000", extra="author: Grace"))
    settings = make_settings(title="Harbour news", description="Boats & tides", language="en-GB")
    documents = build(settings).documents
    rss, _, _ = check_documents(documents)
    channel = strict_xml(documents.rss).find("channel")
    assert channel is not None
    assert channel.findtext("title") == "Harbour news"
    assert channel.findtext("link") == "https://example.com/"
    assert channel.findtext("description") == "Boats & tides"
    assert channel.findtext("language") == "en-GB"
    assert channel.findtext("lastBuildDate") == "Thu, 15 Oct 2020 03:58:50 +0000"
    self_link = channel.find("atom:link", NS)
    assert self_link is not None and self_link.attrib == {
        "href": "https://example.com/rss.xml",
        "rel": "self",
        "type": "application/rss+xml",
    }
    first, second = channel.findall("item")
    assert first.findtext("title") == "A quiet morning at the harbour"
    assert first.findtext("link") == "https://example.com/posts/harbour/"
    assert first.findtext("description") == "Fishing boats, gulls and a cup of tea."
    assert first.findtext("pubDate") == "Thu, 15 Oct 2020 03:58:50 +0000"
    guid = first.find("guid")
    assert guid is not None and guid.text == "https://example.com/posts/harbour/"
    assert guid.get("isPermaLink") == "true"
    assert [c.text for c in first.findall("category")] == ["Boats", "Sea"]
    assert first.findtext("author") == "ada@example.org (Ada)"
    assert second.findtext("dc:creator", namespaces=NS) == "Grace"
    enclosure = first.find("enclosure")
    assert enclosure is not None and enclosure.attrib == {
        "url": "https://images.example.com/harbour.jpg",
        "length": "0",
        "type": "image/jpeg",
    }
    media = first.find("media:content", NS)
    assert media is not None and media.get("url") == "https://images.example.com/harbour.jpg"
    assert first.find("media:group", NS) is None
    html = first.findtext("content:encoded", namespaces=NS)
    assert html is not None
    assert '<a href="https://example.com/posts/map/">the map</a>' in html
    assert 'src="https://example.com/posts/harbour/gulls.png"' in html
    assert 'href="https://example.com/posts/map/"' in rss.entries[0].content[0].value


def test_atom_document(write_post: WritePost, settings: Settings) -> None:
    write_post("harbour.txt", post_text(extra="updated: 2021-01-02T03:04:05+01:00\ntags: Boats"))
    documents = build(settings).documents
    _, atom, _ = check_documents(documents)
    root = strict_xml(documents.atom)
    assert root.findtext("atom:id", namespaces=NS) == "https://example.com/"
    assert root.findtext("atom:updated", namespaces=NS) == "2021-01-02T02:04:05+00:00"
    links = {link.get("rel"): link.get("href") for link in root.findall("atom:link", NS)}
    assert links == {"self": "https://example.com/atom.xml", "alternate": "https://example.com/"}
    entry = root.find("atom:entry", NS)
    assert entry is not None
    assert entry.findtext("atom:id", namespaces=NS) == "https://example.com/posts/harbour/"
    assert entry.findtext("atom:published", namespaces=NS) == "2020-10-15T03:58:50+00:00"
    assert entry.findtext("atom:updated", namespaces=NS) == "2021-01-02T02:04:05+00:00"
    assert entry.findtext("atom:author/atom:name", namespaces=NS) == "Site author"
    assert entry.findtext("atom:summary", namespaces=NS) == "Fishing boats, gulls and a cup of tea."
    content = entry.find("atom:content", NS)
    assert content is not None and content.get("type") == "html"
    assert content.text is not None and content.text.startswith("<p>The boats came in early today.</p>")
    assert [c.get("term") for c in entry.findall("atom:category", NS)] == ["Boats"]
    entry_links = [dict(link.attrib) for link in entry.findall("atom:link", NS)]
    assert entry_links == [
        {"rel": "alternate", "type": "text/html", "href": "https://example.com/posts/harbour/"},
        {
            "rel": "enclosure",
            "type": "image/jpeg",
            "length": "0",
            "href": "https://images.example.com/harbour.jpg",
        },
    ]
    assert atom.entries[0].link == "https://example.com/posts/harbour/"


def test_json_feed_document(write_post: WritePost, settings: Settings) -> None:
    write_post("harbour.txt", post_text(extra="tags: Boats\ncategories: News\nauthor: a@example.org"))
    _, _, feed = check_documents(build(settings).documents)
    assert feed["feed_url"] == "https://example.com/feed.json"
    assert feed["home_page_url"] == "https://example.com/"
    (item,) = feed["items"]
    assert item == {
        "id": "https://example.com/posts/harbour/",
        "url": "https://example.com/posts/harbour/",
        "title": "A quiet morning at the harbour",
        "content_html": "<p>The boats came in early today.</p>\n<p>Everyone went home for lunch.</p>\n",
        "summary": "Fishing boats, gulls and a cup of tea.",
        "date_published": "2020-10-15T03:58:50Z",
        "date_modified": "2020-10-15T03:58:50Z",
        "authors": [{"name": "a@example.org", "url": "mailto:a@example.org"}],
        "image": "https://images.example.com/harbour.jpg",
        "tags": ["Boats", "News"],
    }


def test_newest_first_ties_by_path_and_item_limit(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_post("b.txt", post_text(title="B", date="1600002000"))
    write_post("a.txt", post_text(title="A", date="1600002000"))
    write_post("c.txt", post_text(title="C", date="1600003000"))
    write_post("d.txt", post_text(title="D", date="1600001000"))
    documents = build(make_settings(item_limit=3)).documents
    rss, atom, feed = check_documents(documents)
    assert [e.title for e in rss.entries] == ["C", "A", "B"]
    assert [e.title for e in atom.entries] == ["C", "A", "B"]
    assert [i["title"] for i in feed["items"]] == ["C", "A", "B"]


def test_drafts_and_future_posts_are_left_out_until_due(write_post: WritePost, settings: Settings) -> None:
    write_post("now.txt", post_text(title="Now"))
    write_post("draft.txt", post_text(title="Draft", extra="draft: true"))
    write_post("later.txt", post_text(title="Later", date="2026-06-01T00:00:00Z"))
    pipeline = Pipeline(settings)
    before = pipeline.run(NOW)
    assert [i.post.title for i in before.items] == ["Now"]
    assert (before.used, before.held_back, before.next_release) == (
        1,
        2,
        dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
    )
    after = pipeline.run(dt.datetime(2026, 6, 1, 0, 0, 1, tzinfo=dt.UTC))
    assert [i.post.title for i in after.items] == ["Later", "Now"]
    assert pipeline.read().unchanged  # no file changed: the clock alone released it


def test_bad_post_is_skipped_and_the_rest_built(write_post: WritePost, settings: Settings) -> None:
    write_post("good.txt", post_text(title="Good"))
    write_post("bad.txt", "---\ntitle: [x]\ndate: 1600000000\n---\n")
    write_post("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\xff")
    result = build(settings)
    rss, _, _ = check_documents(result.documents)
    assert [e.title for e in rss.entries] == ["Good"]
    assert [str(p) for p in result.problems] == [
        "bad.txt: title: expected text, got a list",
        "binary.md: file: not valid UTF-8 (byte 0)",
    ]
    assert result.files_read == result.used + result.held_back + result.skipped == 3


def test_oversized_post_is_skipped(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_post("big.txt", post_text(body="x" * 2000))
    write_post("small.txt", post_text(title="Small"))
    result = build(make_settings(max_post_bytes=1000))
    assert [i.post.title for i in result.items] == ["Small"]
    assert [str(p) for p in result.problems] == ["big.txt: file: larger than max_post_bytes (1000 bytes)"]


def test_duplicate_permalinks_and_ids_keep_the_first_by_path(
    write_post: WritePost, settings: Settings
) -> None:
    write_post("a/same.txt", post_text(title="First"))
    write_post("b/same.txt", post_text(title="Second"))
    write_post("c.txt", post_text(title="Third", extra="id: shared"))
    write_post("d.txt", post_text(title="Fourth", extra="guid: shared"))
    result = build(settings)
    rss, _, _ = check_documents(result.documents)
    assert sorted(e.title for e in rss.entries) == ["First", "Third"]
    assert [str(p) for p in result.problems] == [
        "b/same.txt: permalink: same permalink as a/same.txt, which is kept",
        "d.txt: id: same id as c.txt, which is kept",
    ]


def test_ids_survive_edits_of_text_title_and_date(write_post: WritePost, settings: Settings) -> None:
    write_post("harbour.txt", post_text())
    before = build(settings).items[0].post.id
    write_post("harbour.txt", post_text(title="New title", date="1700000000", body="Rewritten.\n"))
    after = build(settings).items[0]
    assert after.post.title == "New title"
    assert after.post.id == before


def test_explicit_non_uri_id(write_post: WritePost, settings: Settings) -> None:
    write_post("harbour.txt", post_text(extra="id: post-42"))
    documents = build(settings).documents
    _rss, atom, feed = check_documents(documents)
    guid = strict_xml(documents.rss).find("channel/item/guid")
    assert guid is not None and (guid.text, guid.get("isPermaLink")) == ("post-42", "false")
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", atom.entries[0].id)
    assert feed["items"][0]["id"] == "post-42"


def test_summary_from_the_first_paragraph(write_post: WritePost, settings: Settings) -> None:
    words = " ".join(f"word{n}" for n in range(100))
    write_post("long.txt", post_text(description=None, body=f"# Heading\n\n**{words}**\n\nSecond.\n"))
    write_post("short.txt", post_text(description=None, body="Short *one*\nline.\n\nMore.\n"))
    summaries = {i.post.source: i.summary for i in build(settings).items}
    assert summaries["short.txt"] == "Short one line."
    long = summaries["long.txt"]
    assert long.endswith("…") and 250 <= len(long) <= 301
    assert long[:-1].split()[-1] in words.split()


def test_xml_illegal_characters_never_break_a_feed(write_post: WritePost, settings: Settings) -> None:
    write_post(
        "junk.txt",
        post_text(
            title="Tab\there \x0b\x0cformfeed", body="Nul \x00 and \ufffe and \x85 and ]]> and <b>x</b>\n"
        ),
    )
    documents = build(settings).documents
    rss, _atom, feed = check_documents(documents)
    assert rss.entries[0].title == "Tab here formfeed"
    html = strict_xml(documents.rss).findtext("channel/item/content:encoded", namespaces=NS)
    assert html == "<p>Nul  and  and  and ]]&gt; and <b>x</b></p>\n"
    assert "\x00" not in feed["items"][0]["content_html"]


def test_same_content_gives_identical_bytes(write_post: WritePost, settings: Settings) -> None:
    for n in range(5):
        write_post(f"post-{n}.txt", post_text(title=f"Post {n}", date=str(1_600_000_000 + n)))
    first = build(settings).documents
    second = build(settings, now=NOW + dt.timedelta(days=300)).documents
    assert first == second


def test_empty_content_directory_gives_valid_empty_feeds(settings: Settings) -> None:
    result = build(settings)
    rss, atom, feed = check_documents(result.documents)
    assert rss.entries == [] and atom.entries == [] and feed["items"] == []
    assert b"<lastBuildDate>Thu, 01 Jan 1970 00:00:00 +0000</lastBuildDate>" in result.documents.rss


def test_unknown_image_type(write_post: WritePost, settings: Settings) -> None:
    write_post("x.txt", post_text().replace("harbour.jpg", "harbour"))
    documents = build(settings).documents
    check_documents(documents)
    enclosure = strict_xml(documents.rss).find("channel/item/enclosure")
    assert enclosure is not None and enclosure.get("type") == "application/octet-stream"


def test_json_is_utf8_and_pretty(write_post: WritePost, settings: Settings) -> None:
    write_post("x.txt", post_text(title="Café — “quoted” 🍞"))
    data = build(settings).documents.json
    assert "Café — “quoted” 🍞".encode() in data
    assert json.loads(data)["items"][0]["title"] == "Café — “quoted” 🍞"


def test_an_edit_to_the_body_alone_reaches_the_feeds(write_post: WritePost, settings: Settings) -> None:
    pipeline = Pipeline(settings)
    for version in ("First words.", "Second words.", "Third words."):
        write_post("post.txt", post_text(body=version + "\n"))
        html = pipeline.run(NOW).items[0].html
        assert html == f"<p>{version}</p>\n"
