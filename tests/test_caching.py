"""Validators, content coding and conditional GET, without a server (feeds.caching)."""

from __future__ import annotations

import datetime as dt
import gzip
import random
import re

import pytest

from feeds.caching import (
    Answer,
    Representation,
    accepts_gzip,
    answer,
    compress,
    http_date,
    parse_http_date,
    wants_page,
)

BODY = b"<rss>the same bytes every time</rss>\n" * 20
RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
XML = "application/xml; charset=utf-8"
# What browsers send for a page (Chromium 131, Firefox 133, Safari 18).
CHROMIUM = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
MODIFIED = dt.datetime(2025, 1, 19, 10, 55, 23, tzinfo=dt.UTC)
MODIFIED_TEXT = "Sun, 19 Jan 2025 10:55:23 GMT"
STRONG = re.compile(r'"[^"\s]+"')


def representation(body: bytes = BODY, last_modified: dt.datetime | None = MODIFIED) -> Representation:
    return Representation.of(body, RSS, last_modified, 300)


def header_names(result: Answer) -> list[str]:
    return [name for name, _ in result.headers]


def headers_of(result: Answer) -> dict[str, str]:
    names = header_names(result)
    assert len(names) == len(set(names)), f"a header appears twice: {names}"
    return dict(result.headers)


# --- Representation.of ---------------------------------------------------------------------------


def test_etags_are_strong_and_quoted() -> None:
    rep = representation()
    for etag in (rep.identity.etag, rep.gzipped.etag):
        assert STRONG.fullmatch(etag), etag
        assert not etag.startswith("W/")


def test_gzip_variant_has_its_own_etag_and_coding() -> None:
    rep = representation()
    assert rep.gzipped.etag != rep.identity.etag
    assert rep.identity.encoding is None
    assert rep.gzipped.encoding == "gzip"
    assert rep.identity.body == BODY


def test_equal_bytes_give_equal_etags() -> None:
    first = representation(bytes(BODY))
    second = Representation.of(bytes(bytearray(BODY)), "text/plain", None, 5)
    assert first.identity.etag == second.identity.etag
    assert first.gzipped.etag == second.gzipped.etag


def test_different_bytes_give_different_etags() -> None:
    first = representation(b"one")
    second = representation(b"one ")
    assert first.identity.etag != second.identity.etag
    assert first.gzipped.etag != second.gzipped.etag
    assert {first.identity.etag, first.gzipped.etag}.isdisjoint({second.identity.etag, second.gzipped.etag})


def test_gzip_body_decompresses_to_identity_body() -> None:
    rep = representation()
    assert rep.gzipped.body[:2] == b"\x1f\x8b"
    assert gzip.decompress(rep.gzipped.body) == BODY
    assert len(rep.gzipped.body) < len(BODY)


def test_given_gzip_body_is_used_and_etag_still_follows_identity_bytes() -> None:
    other_gzip = gzip.compress(BODY, compresslevel=1, mtime=12345)
    assert other_gzip != compress(BODY)
    given = Representation.of(BODY, RSS, MODIFIED, 300, gzip_body=other_gzip)
    assert given.gzipped.body == other_gzip
    assert given.gzipped.etag == representation().gzipped.etag


def test_compress_is_deterministic() -> None:
    assert compress(BODY) == compress(BODY)
    assert compress(BODY)[4:8] == b"\x00\x00\x00\x00"  # gzip MTIME field is zero
    assert gzip.decompress(compress(BODY)) == BODY
    assert compress(b"") != compress(b"x")


def test_last_modified_drops_microseconds_and_cache_control() -> None:
    rep = Representation.of(BODY, RSS, MODIFIED.replace(microsecond=987654), 42)
    assert rep.last_modified == MODIFIED
    assert rep.cache_control == "public, max-age=42"
    assert rep.content_type == RSS


# --- answer: unconditional -----------------------------------------------------------------------


def test_plain_get_is_200_with_every_header() -> None:
    rep = representation()
    result = answer(rep)
    assert result.status == 200
    assert result.body == BODY
    assert headers_of(result) == {
        "ETag": rep.identity.etag,
        "Cache-Control": "public, max-age=300",
        "Vary": "Accept-Encoding",
        "Last-Modified": MODIFIED_TEXT,
        "Content-Type": RSS,
        "Content-Length": str(len(BODY)),
    }


def test_plain_get_with_gzip_adds_content_encoding() -> None:
    rep = representation()
    result = answer(rep, accept_encoding="gzip")
    assert result.status == 200
    assert result.body == rep.gzipped.body
    assert gzip.decompress(result.body) == BODY
    assert headers_of(result) == {
        "ETag": rep.gzipped.etag,
        "Cache-Control": "public, max-age=300",
        "Vary": "Accept-Encoding",
        "Last-Modified": MODIFIED_TEXT,
        "Content-Type": RSS,
        "Content-Length": str(len(rep.gzipped.body)),
        "Content-Encoding": "gzip",
    }


def test_without_last_modified_there_is_no_last_modified_header() -> None:
    result = answer(representation(last_modified=None))
    assert result.status == 200
    assert "Last-Modified" not in header_names(result)


# --- answer: If-None-Match -----------------------------------------------------------------------


def assert_not_modified(result: Answer, etag: str) -> None:
    assert result.status == 304
    assert result.body == b""
    assert headers_of(result) == {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "Vary": "Accept-Encoding",
        "Last-Modified": MODIFIED_TEXT,
    }


def test_if_none_match_exact_gives_304_without_content_headers() -> None:
    rep = representation()
    result = answer(rep, if_none_match=rep.identity.etag)
    assert_not_modified(result, rep.identity.etag)
    assert "Content-Type" not in header_names(result)
    assert "Content-Length" not in header_names(result)
    assert "Content-Encoding" not in header_names(result)


def test_if_none_match_mismatch_gives_200() -> None:
    rep = representation()
    result = answer(rep, if_none_match='"something-else"')
    assert result.status == 200
    assert result.body == BODY
    assert headers_of(result)["ETag"] == rep.identity.etag


def test_etag_of_other_bytes_gives_200() -> None:
    rep = representation()
    result = answer(rep, if_none_match=representation(b"older bytes").identity.etag)
    assert result.status == 200


@pytest.mark.parametrize("template", ['"a", "b", {etag}', '{etag}, "a"', '"a",{etag}', '  "a" ,  {etag}  '])
def test_if_none_match_list_containing_the_etag_gives_304(template: str) -> None:
    rep = representation()
    result = answer(rep, if_none_match=template.format(etag=rep.identity.etag))
    assert_not_modified(result, rep.identity.etag)


def test_if_none_match_list_without_the_etag_gives_200() -> None:
    result = answer(representation(), if_none_match='"a", "b", W/"c"')
    assert result.status == 200
    assert result.body == BODY


@pytest.mark.parametrize("value", ["*", " * "])
def test_if_none_match_star_gives_304(value: str) -> None:
    rep = representation()
    assert_not_modified(answer(rep, if_none_match=value), rep.identity.etag)


def test_if_none_match_weak_tag_matches_by_weak_comparison() -> None:
    rep = representation()
    assert_not_modified(answer(rep, if_none_match="W/" + rep.identity.etag), rep.identity.etag)
    gz = answer(rep, if_none_match='"x", W/' + rep.gzipped.etag, accept_encoding="gzip")
    assert_not_modified(gz, rep.gzipped.etag)


def test_identity_etag_does_not_match_gzip_variant() -> None:
    rep = representation()
    result = answer(rep, if_none_match=rep.identity.etag, accept_encoding="gzip")
    assert result.status == 200
    assert result.body == rep.gzipped.body
    assert headers_of(result)["ETag"] == rep.gzipped.etag
    assert headers_of(result)["Content-Encoding"] == "gzip"


def test_gzip_etag_does_not_match_identity_variant() -> None:
    rep = representation()
    result = answer(rep, if_none_match=rep.gzipped.etag)
    assert result.status == 200
    assert result.body == BODY


def test_gzip_etag_with_gzip_gives_304() -> None:
    rep = representation()
    result = answer(rep, if_none_match=rep.gzipped.etag, accept_encoding="gzip")
    assert_not_modified(result, rep.gzipped.etag)
    assert "Content-Encoding" not in header_names(result)


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    rep = representation()
    result = answer(rep, if_none_match='"other"', if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT")
    assert result.status == 200
    assert result.body == BODY


def test_matching_if_none_match_wins_over_old_if_modified_since() -> None:
    rep = representation()
    result = answer(rep, if_none_match=rep.identity.etag, if_modified_since="Mon, 01 Jan 1990 00:00:00 GMT")
    assert_not_modified(result, rep.identity.etag)


# --- answer: If-Modified-Since -------------------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    [MODIFIED_TEXT, "Sun, 19 Jan 2025 11:55:23 +0100"],  # the same moment in another zone
)
def test_if_modified_since_equal_to_last_modified_gives_304(since: str) -> None:
    rep = representation()
    assert_not_modified(answer(rep, if_modified_since=since), rep.identity.etag)


@pytest.mark.parametrize(
    "since",
    ["Sun, 19 Jan 2025 10:55:22 GMT", "Sat, 18 Jan 2025 10:55:23 GMT", "Sun, 19 Jan 2025 10:55:23 +0100"],
)
def test_if_modified_since_before_last_modified_gives_200(since: str) -> None:
    result = answer(representation(), if_modified_since=since)
    assert result.status == 200
    assert result.body == BODY
    assert headers_of(result)["Last-Modified"] == MODIFIED_TEXT


@pytest.mark.parametrize("since", ["Sun, 19 Jan 2025 10:55:24 GMT", "Mon, 20 Jan 2025 00:00:00 GMT"])
def test_if_modified_since_after_last_modified_gives_200_without_the_date(since: str) -> None:
    """A later date than ours came from another instance, which published at its own
    moments, maybe older bytes later than we published these: a 304 could be stale. And a
    200 dated no later than the date sent is thrown away by libcurl's time condition
    (newsboat), so it goes without Last-Modified."""
    result = answer(representation(), if_modified_since=since)
    assert result.status == 200
    assert result.body == BODY
    assert "Last-Modified" not in headers_of(result)


def test_new_bytes_dated_no_later_than_the_date_sent_go_without_last_modified() -> None:
    """If-None-Match decides (the bytes changed), but the client's date, from another
    instance, is not before ours: with Last-Modified, curl -z would drop the new body."""
    rep = representation()
    for since in (MODIFIED_TEXT, "Mon, 20 Jan 2025 00:00:00 GMT"):
        result = answer(rep, if_none_match='"old"', if_modified_since=since)
        assert result.status == 200 and result.body == BODY
        assert "Last-Modified" not in headers_of(result)
    result = answer(rep, if_none_match='"old"', if_modified_since="Sun, 19 Jan 2025 10:55:22 GMT")
    assert headers_of(result)["Last-Modified"] == MODIFIED_TEXT


def test_if_modified_since_ignores_microseconds_of_last_modified() -> None:
    rep = Representation.of(BODY, RSS, MODIFIED.replace(microsecond=500000), 300)
    assert answer(rep, if_modified_since=MODIFIED_TEXT).status == 304


@pytest.mark.parametrize("since", ["not a date", "", "Sun, 99 Foo 2025 10:55:23 GMT", "yesterday"])
def test_malformed_if_modified_since_gives_200(since: str) -> None:
    result = answer(representation(), if_modified_since=since)
    assert result.status == 200
    assert result.body == BODY


def test_if_modified_since_without_last_modified_gives_200() -> None:
    result = answer(representation(last_modified=None), if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT")
    assert result.status == 200
    assert result.body == BODY


# --- accepts_gzip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("*", True),
        ("*;q=0", False),
        ("identity", False),
        ("x-gzip", True),
        ("GZIP", True),
        ("br, gzip;q=0.0", False),
        ("br, deflate", False),
        ("gzip;q=0, *", False),
        ("gzip; q=1.0", True),
        ("gzip;q=0.000", False),
        ("gzip;q=nonsense", False),
        ("identity;q=0", False),  # gzip is not named either: identity stays the fallback
        ("identity;q=0, *", True),
        ("identity;q=0, gzip;q=0.1", True),
    ],
)
def test_accepts_gzip(accept_encoding: str | None, expected: bool) -> None:
    assert accepts_gzip(accept_encoding) is expected


# --- the browser view: Accept and its own validators ----------------------------------------------


def feed_with_browser_view(body: bytes = BODY) -> Representation:
    return Representation.of(body, RSS, MODIFIED, 300, browser_type=XML)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (CHROMIUM, True),
        (FIREFOX, True),
        ("text/html", True),
        ("TEXT/HTML;q=0.5", True),
        ("text/html, application/rss+xml", True),  # a tie goes to the page
        ("application/rss+xml;q=0.5, text/html;q=0.5", True),
        ("text/html;q=0, application/rss+xml", False),  # RFC 9110 §12.4.2: q=0 is "not acceptable"
        ("text/html;q=0.0, */*", False),
        ("text/html; q=0.000", False),
        ("application/rss+xml, application/atom+xml, */*;q=0.1", False),
        ("application/rss+xml, text/html;q=0.9", False),
        ("application/atom+xml,application/rss+xml,application/xml;q=0.9,text/html;q=0.8,*/*;q=0.7", False),
        ("application/rss+xml;q=0.5, text/html;q=0.4, */*;q=0.9", False),
        ("*/*", False),  # feed readers send */*; a wildcard alone is no page request
        ("text/*", False),
        ("", False),
        ("garbage;;;,,", False),
    ],
)
def test_wants_page(accept: str, expected: bool) -> None:
    assert wants_page(accept, RSS) is expected


def test_wants_page_compares_with_the_feeds_own_type() -> None:
    accept = "application/atom+xml, text/html;q=0.5"
    assert wants_page(accept, ATOM) is False
    assert wants_page(accept, RSS) is True


@pytest.mark.parametrize("accept", ["text/html;q=0, application/rss+xml", "text/html;q=0.0, */*"])
def test_html_with_q_zero_gets_the_feed_type(accept: str) -> None:
    result = answer(feed_with_browser_view(), accept=accept)
    assert headers_of(result)["Content-Type"] == RSS


def test_browser_variants_have_tags_of_their_own() -> None:
    rep = feed_with_browser_view()
    assert rep.browser is not None
    tags = [rep.identity.etag, rep.gzipped.etag, rep.browser.identity.etag, rep.browser.gzipped.etag]
    assert len(set(tags)) == 4
    assert all(STRONG.fullmatch(tag) for tag in tags), tags
    digest = rep.identity.etag.strip('"')
    assert rep.browser.identity.etag == f'"{digest}-xml"'
    assert rep.browser.gzipped.etag == f'"{digest}-xml-gzip"'
    assert rep.browser.identity.body == BODY and rep.browser.gzipped.body == rep.gzipped.body


@pytest.mark.parametrize("accept_encoding", [None, "gzip"])
def test_page_and_feed_answers_differ_in_etag_and_each_revalidates_with_its_own(
    accept_encoding: str | None,
) -> None:
    rep = feed_with_browser_view()
    feed = answer(rep, accept="application/rss+xml", accept_encoding=accept_encoding)
    page = answer(rep, accept=FIREFOX, accept_encoding=accept_encoding)
    feed_tag, page_tag = headers_of(feed)["ETag"], headers_of(page)["ETag"]
    assert (headers_of(feed)["Content-Type"], headers_of(page)["Content-Type"]) == (RSS, XML)
    assert feed.body == page.body
    assert feed_tag != page_tag
    for accept, own, other in (("application/rss+xml", feed_tag, page_tag), (FIREFOX, page_tag, feed_tag)):
        again = answer(rep, accept=accept, accept_encoding=accept_encoding, if_none_match=own)
        assert (again.status, headers_of(again)["ETag"]) == (304, own)
        assert headers_of(again)["Vary"] == "Accept, Accept-Encoding"
        crossed = answer(rep, accept=accept, accept_encoding=accept_encoding, if_none_match=other)
        assert (crossed.status, headers_of(crossed)["ETag"]) == (200, own)
        weak = answer(rep, accept=accept, accept_encoding=accept_encoding, if_none_match=f'"x", W/{own}')
        assert weak.status == 304
        assert answer(rep, accept=accept, accept_encoding=accept_encoding, if_none_match="*").status == 304


def test_a_page_request_still_revalidates_by_date_without_if_none_match() -> None:
    rep = feed_with_browser_view()
    result = answer(rep, accept=FIREFOX, if_modified_since=MODIFIED_TEXT)
    assert result.status == 304
    assert rep.browser is not None and headers_of(result)["ETag"] == rep.browser.identity.etag


# --- dates ----------------------------------------------------------------------------------------


def test_http_date_is_imf_fixdate() -> None:
    assert http_date(MODIFIED) == MODIFIED_TEXT


def test_http_date_converts_to_gmt() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert http_date(dt.datetime(2025, 1, 19, 11, 55, 23, tzinfo=paris)) == MODIFIED_TEXT


def test_parse_http_date() -> None:
    assert parse_http_date(MODIFIED_TEXT) == MODIFIED
    assert parse_http_date("  " + MODIFIED_TEXT + " ") == MODIFIED
    assert parse_http_date("Sun, 19 Jan 2025 10:55:23 -0000") == MODIFIED
    assert parse_http_date("garbage") is None


@pytest.mark.parametrize(
    "moment",
    [
        MODIFIED,
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2024, 2, 29, 0, 0, 0, tzinfo=dt.UTC),
    ],
)
def test_http_date_round_trip(moment: dt.datetime) -> None:
    text = http_date(moment)
    parsed = parse_http_date(text)
    assert parsed == moment
    assert parsed is not None and parsed.utcoffset() == dt.timedelta(0)
    assert http_date(parsed) == text


# --- answer: prepared once, picked per request ------------------------------------------------------

PAGE = Representation.of(b"<!doctype html><title>feed</title>\n", "text/html; charset=utf-8", MODIFIED, 60)
EARLIER_TEXT = "Sun, 19 Jan 2025 10:55:22 GMT"
LATER_TEXT = "Sun, 19 Jan 2025 10:55:24 GMT"


def served_representations() -> dict[str, Representation]:
    """Each shape the web layer serves: a bare document, one without a date, a feed with
    its browser view, and a feed with its browser view and its HTML page."""
    return {
        "bare": representation(),
        "undated": representation(last_modified=None),
        "browser": feed_with_browser_view(),
        "paged": Representation.of(BODY, RSS, MODIFIED, 300, browser_type=XML, page=PAGE),
    }


def request_matrix(rep: Representation) -> list[dict[str, str | None]]:
    """Requests crossing every header `answer` reads, with the tags of every variant the
    representation has (and of its page), other tags, lists and dates around its own."""
    tags = [rep.identity.etag, rep.gzipped.etag, PAGE.gzipped.etag, '"other"', "*"]
    if rep.browser is not None:
        tags += [rep.browser.identity.etag, rep.browser.gzipped.etag]
    tags += [f'"x", W/{tags[1]}', f"  {tags[0]}  "]
    requests = []
    for if_none_match in [None, *tags]:
        for if_modified_since in [None, MODIFIED_TEXT, EARLIER_TEXT, LATER_TEXT, "garbage"]:
            for accept_encoding in [None, "gzip", "gzip;q=0", "br, *"]:
                for accept in [None, FIREFOX, "application/rss+xml"]:
                    for mode, dest in [(None, None), ("navigate", "document"), ("cors", "empty")]:
                        requests.append(
                            {
                                "if_none_match": if_none_match,
                                "if_modified_since": if_modified_since,
                                "accept_encoding": accept_encoding,
                                "accept": accept,
                                "sec_fetch_mode": mode,
                                "sec_fetch_dest": dest,
                            }
                        )
    return requests


@pytest.mark.parametrize("shape", ["bare", "undated", "browser", "paged"])
def test_a_warm_representation_answers_as_a_fresh_one(shape: str) -> None:
    """The answers a representation keeps are the ones it would make afresh: after it has
    answered every other request of the matrix, in a shuffled order, each request gets
    the status, headers, body and type that a representation seeing it first gives."""
    warm = served_representations()[shape]
    requests = request_matrix(warm)
    shuffled = list(requests)
    random.Random(12).shuffle(shuffled)
    for request in shuffled:
        answer(warm, **request)
    statuses = set()
    for request in requests:
        fresh = served_representations()[shape]
        expected = answer(fresh, **request)
        assert answer(warm, **request) == expected, request
        statuses.add(expected.status)
    assert statuses == {200, 304}


def test_a_repeated_request_is_answered_without_formatting_or_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hot path: a poll repeated with the same headers gets the very same answer,
    and no date is formatted, nor any header parsed, again."""
    rep = Representation.of(BODY, RSS, MODIFIED, 300, browser_type=XML, page=PAGE)
    polls = [
        {"if_none_match": rep.gzipped.etag, "accept_encoding": "gzip"},
        {"if_none_match": '"old"', "if_modified_since": EARLIER_TEXT, "accept_encoding": "gzip, br"},
        {"accept_encoding": "gzip", "accept": FIREFOX},
        {"sec_fetch_mode": "navigate", "sec_fetch_dest": "document", "if_modified_since": MODIFIED_TEXT},
    ]
    first = [answer(rep, **poll) for poll in polls]

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("formatted or parsed again")

    for name in ("format_datetime", "parsedate_to_datetime", "parse_accept_header"):
        monkeypatch.setattr(f"feeds.caching.{name}", refused)
    again = [answer(rep, **poll) for poll in polls]
    assert [result.status for result in again] == [304, 200, 200, 304]
    assert all(late is early for late, early in zip(again, first, strict=True))
