"""Reading one post: front matter formats, every field's forms, and every bad input."""

from __future__ import annotations

import datetime as dt

import pytest

from feeds.build import make_item
from feeds.config import Settings
from feeds.errors import PostError, Problem
from feeds.posts import Author, Post, parse_post, post_body

from conftest import MakeSettings, post_text

UTC = dt.UTC


def parse(text: str | bytes, settings: Settings, source: str = "harbour-morning.txt") -> Post:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_post(source, data, settings)


def problems_of(text: str | bytes, settings: Settings, source: str = "bad.txt") -> list[Problem]:
    with pytest.raises(PostError) as caught:
        parse(text, settings, source)
    return caught.value.problems


def test_example_style_post(settings: Settings) -> None:
    post = parse(post_text(), settings)
    assert post.title == "A quiet morning at the harbour"
    assert post.date == dt.datetime(2020, 10, 15, 3, 58, 50, 453859, tzinfo=UTC)
    assert post.updated == post.date
    assert post.summary == "Fishing boats, gulls and a cup of tea."
    assert post.permalink == "https://example.com/posts/harbour-morning/"
    assert post.id == post.permalink and post.id_is_permalink
    assert post.image == "https://images.example.com/harbour.jpg"
    assert post.authors == (Author("Site author", ""),)
    assert (
        post_body(post_text().encode()) == "The boats came in early today.\n\nEveryone went home for lunch.\n"
    )
    assert not post.draft


def test_folded_title_over_several_lines_is_one_trimmed_line(settings: Settings) -> None:
    text = post_text(title="Boats   and\n  gulls ")
    assert parse(text, settings).title == "Boats and gulls"


def test_byte_order_mark_and_crlf(settings: Settings) -> None:
    text = post_text().replace("\n", "\r\n")
    data = b"\xef\xbb\xbf" + text.encode()
    post = parse(data, settings)
    assert post.title == "A quiet morning at the harbour"
    assert post_body(data) == "The boats came in early today.\n\nEveryone went home for lunch.\n"


def test_toml_front_matter(settings: Settings) -> None:
    text = '+++\ntitle = "Tide tables"\ndate = 2021-05-04T10:00:00+02:00\ntags = ["sea"]\n+++\nBody.\n'
    post = parse(text, settings)
    assert post.title == "Tide tables"
    assert post.date == dt.datetime(2021, 5, 4, 8, 0, tzinfo=UTC)
    assert post.tags == ("sea",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1602734330", dt.datetime(2020, 10, 15, 3, 58, 50, tzinfo=UTC)),
        ("2021-03-04", dt.datetime(2021, 3, 4, tzinfo=UTC)),
        ("2021-03-04T05:06:07+01:00", dt.datetime(2021, 3, 4, 4, 6, 7, tzinfo=UTC)),
        ("2021-03-04 05:06:07", dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("'Thu, 04 Mar 2021 05:06:07 +0000'", dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)),
    ],
)
def test_date_forms(settings: Settings, value: str, expected: dt.datetime) -> None:
    assert parse(post_text(date=value), settings).date == expected


def test_naive_dates_take_the_configured_timezone(make_settings: MakeSettings) -> None:
    post = parse(post_text(date="2021-07-01 12:00:00"), make_settings(timezone="Europe/Paris"))
    assert post.date == dt.datetime(2021, 7, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("key", ["updated", "lastmod", "modified"])
def test_updated_aliases(settings: Settings, key: str) -> None:
    post = parse(post_text(extra=f"{key}: 2021-01-01T00:00:00Z"), settings)
    assert post.updated == dt.datetime(2021, 1, 1, tzinfo=UTC)


def test_updated_never_before_published(settings: Settings) -> None:
    post = parse(post_text(extra="updated: 2001-01-01"), settings)
    assert post.updated == post.date


@pytest.mark.parametrize("key", ["description", "summary", "excerpt"])
def test_summary_aliases(settings: Settings, key: str) -> None:
    text = post_text(description=None, extra=f"{key}: A  short\n  summary.")
    assert parse(text, settings).summary == "A short summary."


def test_no_description_leaves_the_summary_to_the_body(settings: Settings) -> None:
    assert parse(post_text(description=None), settings).summary is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("author: Ada Lovelace", (Author("Ada Lovelace"),)),
        ("author: Ada Lovelace <ada@example.org>", (Author("Ada Lovelace", "ada@example.org"),)),
        ("author: ada@example.org", (Author("ada@example.org", "ada@example.org"),)),
        (
            "author:\n  name: Ada\n  email: ada@example.org\n  uri: https://ada.example.org/",
            (Author("Ada", "ada@example.org", "https://ada.example.org/"),),
        ),
        (
            "authors:\n  - Ada\n  - name: Grace\n    url: https://g.example",
            (Author("Ada"), Author("Grace", "", "https://g.example")),
        ),
    ],
)
def test_author_forms(settings: Settings, extra: str, expected: tuple[Author, ...]) -> None:
    assert parse(post_text(extra=extra), settings).authors == expected


def test_default_author_comes_from_settings(make_settings: MakeSettings) -> None:
    post = parse(post_text(), make_settings(author_name="Editor", author_email="ed@example.com"))
    assert post.authors == (Author("Editor", "ed@example.com"),)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("image: /img/a.png", "https://example.com/img/a.png"),
        ("image: pics/a.png", "https://example.com/posts/harbour-morning/pics/a.png"),
        ("image: https://cdn.example.net/a b.jpg?w=1&h=2", "https://cdn.example.net/a%20b.jpg?w=1&h=2"),
    ],
)
def test_image_becomes_absolute(settings: Settings, extra: str, expected: str) -> None:
    text = post_text(extra=extra).replace("image: https://images.example.com/harbour.jpg \n", "")
    assert parse(text, settings).image == expected


def test_cover_image_alias(settings: Settings) -> None:
    text = post_text(extra="cover_image: https://x.example/c.webp")
    text = text.replace("image: https://images.example.com/harbour.jpg \n", "")
    assert parse(text, settings).image == "https://x.example/c.webp"


def test_tags_and_categories(settings: Settings) -> None:
    text = post_text(extra="tags: C++, Web Dev, c++ , \ncategories:\n  - News\n  - 2024")
    post = parse(text, settings)
    assert post.tags == ("C++", "Web Dev")
    assert post.categories == ("News", "2024")


@pytest.mark.parametrize(
    ("extra", "draft"),
    [("draft: true", True), ("draft: false", False), ("published: false", True), ("published: yes", False)],
)
def test_drafts(settings: Settings, extra: str, draft: bool) -> None:
    assert parse(post_text(extra=extra), settings).draft is draft


def test_explicit_id_and_guid(settings: Settings) -> None:
    post = parse(post_text(extra="id: post-42"), settings)
    assert (post.id, post.id_is_permalink) == ("post-42", False)
    assert parse(post_text(extra="guid: tag:example.com,2020:1"), settings).id == "tag:example.com,2020:1"


@pytest.mark.parametrize(
    ("extra", "permalink"),
    [
        ("slug: tide tables", "https://example.com/posts/tide%20tables/"),
        ("permalink: /notes/harbour/", "https://example.com/notes/harbour/"),
        ("url: notes/harbour.html", "https://example.com/notes/harbour.html"),
        ("permalink: https://elsewhere.example/p/1", "https://elsewhere.example/p/1"),
    ],
)
def test_permalink_overrides(settings: Settings, extra: str, permalink: str) -> None:
    assert parse(post_text(extra=extra), settings).permalink == permalink


def test_permalink_pattern_with_date(make_settings: MakeSettings) -> None:
    post = parse(post_text(), make_settings(permalink="/{year}/{month}/{day}/{slug}.html"))
    assert post.permalink == "https://example.com/2020/10/15/harbour-morning.html"


def test_slug_of_a_nested_file_is_its_stem(settings: Settings) -> None:
    post = parse(post_text(), settings, source="2020/10/harbour-morning.md")
    assert post.permalink == "https://example.com/posts/harbour-morning/"


def test_control_characters_are_removed_everywhere(settings: Settings) -> None:
    text = post_text(title="Bad\x01 ti\x7ftle\x85", body="Body \x00with\x1b junk\x9f.\n")
    text = text.replace("date:", 'subtitle: "x"\ndate:')
    post = parse(text, settings)
    assert post.title == "Bad title"
    assert make_item(post, post_body(text.encode())).html == "<p>Body with junk.</p>\n"


def test_escaped_control_characters_in_yaml_strings_are_removed(settings: Settings) -> None:
    text = post_text(extra='summary: "tab\\tok, bell\\a gone, \\x01 gone"', description=None)
    assert parse(text, settings).summary == "tab ok, bell gone, gone"


def test_no_front_matter_reports_the_missing_fields(settings: Settings) -> None:
    assert problems_of("Just a body.\n", settings) == [
        Problem("bad.txt", "title", "missing"),
        Problem("bad.txt", "date", "missing"),
    ]


def test_every_problem_of_a_post_is_reported(settings: Settings) -> None:
    text = "---\ntitle: [a, list]\ndate: next tuesday\ntags: {a: 1}\ndraft: maybe\n---\n"
    found = {(p.field, p.reason.split(",")[0]) for p in problems_of(text, settings)}
    assert found == {
        ("title", "expected text"),
        ("date", "not a date: 'next tuesday' (use ISO 8601"),
        ("tags", "expected a list or a comma-separated string"),
        ("draft", "expected true or false"),
    }


@pytest.mark.parametrize(
    ("text", "field", "reason_start"),
    [
        (b"---\ntitle: x\ndate: 1\n---\n\xff\xfe broken", "file", "not valid UTF-8"),
        ("---\n- a\n- b\n---\n", "front matter", "must be a mapping, got list"),
        ("---\ntitle: [unclosed\ndate: 1\n---\n", "front matter", "cannot be parsed"),
        ("---\ntitle: x\ndate: 1\n", "front matter", "no closing fence line"),
        ("+++\ntitle = \n+++\n", "front matter", "cannot be parsed"),
        (post_text(title="x").replace("title: > \n  x ", "title:"), "title", "missing"),
        (post_text(date="''"), "date", "missing"),
        (post_text(date="99999999999999999999"), "date", "timestamp out of range"),
        (post_text(date="true"), "date", "expected a date"),
        (post_text(extra="author: [[nested]]"), "author", "expected text"),
        (post_text(extra="author:\n  email: [x]"), "author", "expected text"),
        (post_text(extra="image: [a]"), "image", "expected text"),
        (post_text(extra="permalink: ftp://x/y"), "permalink", "expected an http(s) URL"),
        (post_text(extra="id: {a: 1}"), "id", "expected text"),
        (post_text(extra="updated: soon"), "updated", "not a date"),
    ],
)
def test_bad_posts(settings: Settings, text: str | bytes, field: str, reason_start: str) -> None:
    found = problems_of(text, settings)
    assert [p.field for p in found] == [field]
    assert found[0].path == "bad.txt"
    assert found[0].reason.startswith(reason_start), found[0].reason


def test_problem_reads_as_path_field_reason() -> None:
    assert str(Problem("a/b.txt", "date", "missing")) == "a/b.txt: date: missing"


# --- permalink date parts are the site's local date -----------------------------------


@pytest.mark.parametrize(
    "date",
    [
        "2024-12-31 21:00:00",  # no offset: read in the site's zone
        "1735696800",  # a timestamp: 2025-01-01T02:00:00Z
        "2025-01-01T03:00:00+01:00",  # an explicit offset
        "'Wed, 01 Jan 2025 02:00:00 +0000'",
    ],
)
def test_permalink_date_parts_use_the_site_timezone(make_settings: MakeSettings, date: str) -> None:
    settings = make_settings(timezone="America/New_York", permalink="/{year}/{month}/{day}/{slug}/")
    post = parse(post_text(date=date), settings, source="nye.md")
    assert post.date == dt.datetime(2025, 1, 1, 2, 0, tzinfo=UTC)  # the instant is unchanged
    assert post.permalink == "https://example.com/2024/12/31/nye/"
    assert post.id == post.permalink


def test_permalink_date_parts_east_of_utc(make_settings: MakeSettings) -> None:
    settings = make_settings(timezone="Asia/Tokyo", permalink="/{year}/{month}/{slug}/")
    post = parse(post_text(date="2024-01-31T20:00:00Z"), settings, source="late.md")
    assert post.permalink == "https://example.com/2024/02/late/"


def test_permalink_date_out_of_range_in_the_site_timezone(make_settings: MakeSettings) -> None:
    settings = make_settings(timezone="America/New_York", permalink="/{year}/{slug}/")
    found = problems_of(post_text(date="0001-01-01T01:00:00Z"), settings)
    assert [(p.field, p.reason) for p in found] == [
        ("permalink", "the date is out of range in America/New_York")
    ]


# --- eight-digit dates, whichever YAML reader sees them ------------------------------


@pytest.mark.parametrize(
    ("front", "reader"),
    [
        ("date: 20240315", "fast path: an int"),
        ('date: "20240315"', "PyYAML: a string"),
        ("date: 20240315\nflow: [PyYAML]", "PyYAML: an int"),
        ("date: '20240315'", "PyYAML: a string"),
    ],
)
def test_eight_digit_date_is_a_basic_iso_date(settings: Settings, front: str, reader: str) -> None:
    post = parse(f"---\ntitle: Ides\n{front}\n---\n", settings)
    assert post.date == dt.datetime(2024, 3, 15, tzinfo=UTC), reader


def test_eight_digit_date_in_toml(settings: Settings) -> None:
    assert parse('+++\ntitle = "Ides"\ndate = 20240315\n+++\n', settings).date == dt.datetime(
        2024, 3, 15, tzinfo=UTC
    )


@pytest.mark.parametrize("front", ["date: 20241301", 'date: "20241301"', "updated: 20240230"])
def test_eight_digits_that_are_no_date_are_a_problem(settings: Settings, front: str) -> None:
    field = front.split(":")[0]
    date = "" if field == "date" else "date: 2024-03-15\n"
    found = problems_of(f"---\ntitle: Ides\n{date}{front}\n---\n", settings)
    assert [p.field for p in found] == [field]
    assert "YYYYMMDD" in found[0].reason


def test_the_users_float_timestamps_are_unchanged(settings: Settings) -> None:
    post = parse(post_text(date="1602734330.453859"), settings)
    assert post.date == dt.datetime(2020, 10, 15, 3, 58, 50, 453859, tzinfo=UTC)


# --- Unicode normal forms -------------------------------------------------------------

NFC_CAFE, NFD_CAFE = "Caf\u00e9", "Cafe\u0301"


def test_text_fields_are_nfc(settings: Settings) -> None:
    text = post_text(
        title=f"{NFD_CAFE} opens",
        description=f"A {NFD_CAFE} by the harbour",
        extra=f"author: {NFD_CAFE} Owner <owner@example.org>\ntags: {NFD_CAFE}, {NFC_CAFE}, Tea\n"
        f"categories: [{NFD_CAFE}]",
    )
    post = parse(text, settings)
    assert post.title == f"{NFC_CAFE} opens"
    assert post.summary == f"A {NFC_CAFE} by the harbour"
    assert post.authors == (Author(f"{NFC_CAFE} Owner", "owner@example.org"),)
    assert post.tags == (NFC_CAFE, "Tea")  # the two spellings are one tag
    assert post.categories == (NFC_CAFE,)


def test_identifiers_keep_their_code_points(settings: Settings) -> None:
    # Normalising ids, slugs or links would change the ids of posts that already exist.
    post = parse(post_text(extra=f"id: {NFD_CAFE}"), settings, source=f"{NFD_CAFE}.md")
    assert post.id == NFD_CAFE
    assert post.permalink == "https://example.com/posts/Cafe%CC%81/"


# --- author links ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ("{name: Ada, uri: 'https://ada.example.org/'}", Author("Ada", "", "https://ada.example.org/")),
        ("{name: Ada, url: /about/ada/}", Author("Ada", "", "https://example.com/about/ada/")),
        (
            "{name: Ada, uri: ada.html}",
            Author("Ada", "", "https://example.com/posts/harbour-morning/ada.html"),
        ),
        ("{name: Ada, uri: 'https://x.example/a b'}", Author("Ada", "", "https://x.example/a%20b")),
        ("{name: Ada, uri: 'mailto:ada@example.org'}", Author("Ada", "ada@example.org")),
        ("{name: Ada, email: a@x.example, uri: 'MAILTO:b@x.example'}", Author("Ada", "a@x.example")),
    ],
)
def test_author_uri_is_checked_and_absolute(settings: Settings, author: str, expected: Author) -> None:
    assert parse(post_text(extra=f"author: {author}"), settings).authors == (expected,)


@pytest.mark.parametrize(
    ("author", "reason"),
    [
        ("{name: A, uri: 'javascript:alert(1)'}", "uri: expected an http(s) URL or a path, got 'javascript:"),
        ("{name: A, url: ' JavaScript:alert(1)'}", "url: expected an http(s) URL or a path, got 'JavaScr"),
        ("{name: A, uri: 'data:text/html,<b>x</b>'}", "uri: expected an http(s) URL or a path, got 'data:"),
        ("{name: A, uri: 'ftp://example.com/'}", "uri: expected an http(s) URL or a path, got 'ftp:"),
        ("{name: A, uri: 'http://a:99999/'}", "uri: malformed URL"),
        ("{name: A, uri: 'mailto:'}", "uri: expected one email address after mailto:"),
        ("[B, {name: A, uri: 'vbscript:x'}]", "uri: expected an http(s) URL or a path, got 'vbscript:x'"),
    ],
)
def test_author_uri_that_is_not_http_is_a_problem(settings: Settings, author: str, reason: str) -> None:
    key = "authors" if author.startswith("[") else "author"
    found = problems_of(post_text(extra=f"{key}: {author}"), settings)
    assert [p.field for p in found] == [key]
    assert found[0].reason.startswith(reason), found[0].reason
