"""Hostile input: generated posts never break a build, the YAML fast path agrees with
PyYAML, generated HTML never reaches a reader unsanitised, hostile folder and author
names give valid section and author feeds that are served at the URLs the OPML list
gives, and the cost of the worst posts stays bounded.

The property tests are derandomized, so every run explores the same examples; each
builds in a fresh temporary directory. The bounded-cost tests build in a subprocess
with a wall-clock timeout and an address-space limit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds import yamlsubset
from feeds.build import Build, FeedDocuments
from feeds.config import Settings, load_settings
from feeds.errors import PostError
from feeds.markdown import render
from feeds.pipeline import Pipeline
from feeds.posts import MAX_TERM_LENGTH, MAX_TERMS, parse_post
from feeds.published import PublishedStore, default_state_dir
from feeds.taxonomy import RESERVED_SECTION_KEYS, term_key
from feeds.text import clean
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import post_text
from feedcheck import NS, check_documents, check_page, parsed, strict_xml, unsafe_html

BASE_URL = "https://example.com"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FAR_FUTURE = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
MAX_PROBLEM_LENGTH = 500
REPO = Path(__file__).resolve().parent.parent

HOSTILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# Every front-matter field the posts module reads, and those that change a post's id.
FIELDS = (
    "title",
    "date",
    "updated",
    "description",
    "author",
    "authors",
    "image",
    "tags",
    "categories",
    "draft",
    "published",
    "id",
    "guid",
    "slug",
    "permalink",
    "url",
)
IDENTITY_FIELDS = frozenset({"id", "guid", "slug", "permalink", "url"})
IDENTITY_TEXT = re.compile(rb"(?i)\b(?:id|guid|slug|permalink|url)\b")
EXTENSIONS = (".txt", ".md", ".markdown", ".MD")

# A generated file: its bytes, and whether it sets its own id (None: unknown, decided
# from its text).
File = tuple[bytes, bool | None]


# ---------------------------------------------------------------------------------------
# Building a generated content directory


class CrashLog(logging.Handler):
    """What the package logs with a traceback while building: a crash that a safety net
    caught (the pipeline turns one into a "file: unexpected ..." problem)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.crashes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self.crashes.append(f"{record.getMessage()}: {type(error).__name__}: {error}"[:300])


@dataclass(frozen=True)
class Built:
    files: dict[str, File]
    first: Build  # at NOW
    second: Build  # at FAR_FUTURE, by a fresh pipeline
    crashes: list[str]


def build_files(files: list[File], folders: Sequence[str] = ()) -> Built:
    """Builds `files` named p0, p1, ... with one of the extensions each, at the top or, with
    `folders`, the n-th in the n-th folder (names as `os.fsdecode` gives them)."""
    named = {
        f"{folders[n] + '/' if folders else ''}p{n}{EXTENSIONS[n % len(EXTENSIONS)]}": file
        for n, file in enumerate(files)
    }
    crash_log = CrashLog()
    logger = logging.getLogger("feeds")
    logger.addHandler(crash_log)
    try:
        first, second = _build_twice(named)
    finally:
        logger.removeHandler(crash_log)
    return Built(named, first, second, crash_log.crashes)


def _write_site(root: Path, named: dict[str, File], **overrides: object) -> Settings:
    content = root / "content"
    content.mkdir()
    empty = root / "empty.toml"
    empty.write_text("")
    for name, (data, _) in named.items():
        path = content / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    values = {"content_dir": str(content), "base_url": BASE_URL, **overrides}
    return load_settings(config_path=empty, environ={}, overrides=values)


def _build_twice(named: dict[str, File]) -> tuple[Build, Build]:
    with tempfile.TemporaryDirectory() as tmp:
        config = _write_site(Path(tmp), named)
        # With the pages the service shows browsers, as the watcher builds them.
        return Pipeline(config, pages=True).run(NOW), Pipeline(config, pages=True).run(FAR_FUTURE)


def check_feed_list(result: Build) -> None:
    """The OPML list is valid and names each subscribable feed once, by its own URL."""
    bodies = {output.path: output.body for output in result.outputs}
    root = strict_xml(bodies["feeds.opml"])
    assert root.tag == "opml" and root.get("version") == "2.0"
    listed = [outline.get("xmlUrl") for outline in root.iterfind(".//outline[@type='rss']")]
    own = []
    for path, body in bodies.items():
        if path.endswith("rss.xml") and not path.startswith("archive/"):
            link = strict_xml(body).find("channel/atom:link[@rel='self']", NS)
            assert link is not None, path
            own.append(link.get("href"))
            assert unquote(urlsplit(link.get("href") or "").path) == f"/{path}", path
    assert sorted(listed, key=str) == sorted(own, key=str)
    assert len(set(listed)) == len(listed)


def check_build(files: list[File], folders: Sequence[str] = ()) -> Built:
    """Builds twice and checks every property a build must keep, whatever the input."""
    built = build_files(files, folders)
    assert not built.crashes, built.crashes
    for result in (built.first, built.second):
        _, _, feed = check_documents(result.documents)
        assert [item["id"] for item in feed["items"]] == [item.post.id for item in result.items]
        assert "feed.html" in {output.path for output in result.outputs}
        for output in result.outputs:  # tag, category and archive documents too
            if output.path.endswith((".xml", ".xsl")):
                strict_xml(output.body)
            if output.path.endswith("feed.html"):
                links = check_page(output.body)
                if output.path == "feed.html":  # every value, as given, is text in the page
                    assert links == [(item.post.permalink, item.post.title) for item in result.items]
            if output.path.endswith(("rss.xml", "atom.xml")):
                assert parsed(output.body).version in ("rss20", "atom10"), output.path
            elif output.path.endswith(".json"):
                json.loads(output.body)
        check_feed_list(result)
        assert result.files_read == len(files)
        assert result.files_read == result.used + result.held_back + result.skipped, (
            f"files_read {result.files_read} != used {result.used} + held_back {result.held_back}"
            f" + skipped {result.skipped}; problems: {[str(p)[:120] for p in result.problems]}"
        )
        too_long = [str(p)[:200] for p in result.problems if len(str(p)) > MAX_PROBLEM_LENGTH]
        assert not too_long, f"problem messages over {MAX_PROBLEM_LENGTH} characters: {too_long}"
        for item in result.items:
            assert unsafe_html(item.html) == [], (item.post.source, item.html[:300])
            data, sets_identity = built.files[item.post.source]
            if sets_identity is None:
                sets_identity = bool(IDENTITY_TEXT.search(data))
            if not sets_identity:
                stem = item.post.source.rpartition("/")[2].rpartition(".")[0]
                assert item.post.id == f"{BASE_URL}/posts/{stem}/", item.post.source
                assert item.post.id_is_permalink
    ids_now = {item.post.source: item.post.id for item in built.first.items}
    ids_later = {item.post.source: item.post.id for item in built.second.items}
    for source in ids_now.keys() & ids_later.keys():
        assert ids_now[source] == ids_later[source], source
    return built


# ---------------------------------------------------------------------------------------
# Strategies: values

XML_UNFIT = "\x00\x01\x08\x0b\x0c\x0e\x1f\x7f\x80\x85\x9f\ufffe\uffff\ud800\udbff\udc00\udfff"
TRICKY = "<>&\"']]>\u2028\u2029\ufeff\xa0\u3000\t\n\r#:-{}[]*&!|%@`"

unfit_text = st.text(alphabet=st.sampled_from(XML_UNFIT + TRICKY + "ab "), max_size=24)
short_text = st.one_of(st.text(max_size=30), unfit_text)


@st.composite
def huge_strings(draw: st.DrawFn) -> str:
    """10-100 KB of a repeated short chunk (hypothesis cannot draw that much directly)."""
    chunk = draw(st.text(min_size=1, max_size=8))
    size = draw(st.integers(10_000, 100_000))
    return (chunk * (size // len(chunk) + 1))[:size]


huge_integers = st.one_of(
    st.sampled_from([2**1024, 10**309, -(10**309), 10**4000]),
    st.integers(min_value=10**300, max_value=10**4000),
)
numbers = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from([0, -1, 1602734330, 2**63, 1e308, -1e308, 1e-320]),
    huge_integers,
)
scalars = st.one_of(st.none(), st.booleans(), numbers, short_text)
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
# A value of each kind equally often, so that every field meets every kind.
wrong_values = st.one_of(
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
    st.booleans(),
    st.none(),
    numbers,
    huge_integers,
    short_text,
    nested,
)
huge_values = st.one_of(huge_strings(), st.lists(huge_strings(), min_size=1, max_size=2))
keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(FIELDS).map(str.upper), st.text(max_size=8))

DATES = (
    "1602734330",
    "1602734330.453859",
    "2021-03-04",
    "2021-03-04T05:06:07+01:00",
    "'Thu, 04 Mar 2021 05:06:07 +0000'",
    "2099-01-01T00:00:00Z",  # held back until FAR_FUTURE
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01",
    "1e300",
    "-62135596800",
    "2024-02-30",
    ".inf",
    "'-0'",
    "0",
)


def identity_set(meta: dict[Any, Any]) -> bool:
    """Whether the front matter gives the post an id or permalink of its own (as
    `posts._first_key` sees it: a null or empty value does not count)."""
    return any(str(key).lower() in IDENTITY_FIELDS and value not in (None, "") for key, value in meta.items())


def crlf_bom(text: str, bom: bool, crlf: bool) -> bytes:
    if crlf:
        text = text.replace("\n", "\r\n")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------
# Strategies: whole files

BODY_SNIPPETS = (
    "Plain words.",
    "# Heading\n\nA [link](../map/) and ![img](gulls.png).",
    "<script>alert(1)</script>",
    "<!-- ]]> --> <?php echo 1 ?> <![CDATA[x]]>",
    "]]> and ]]&gt; and &amp; &#0; &#xD800; &#x110000; &nosuch;",
    "<div><p>unclosed <b>bold",
    "```\ncode ]]>\n```",
    "Footnote[^1].\n\n[^1]: The note.",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "<a href='javascript:alert(1)'>x</a> <img src=x onerror=alert(1)>",
    "[x](<> 'title') [y]: z\n\n[y]",
    "---\nnot front matter\n---",
    "\x00\x0b\x1f\x7f\x85\ufffe text",
    "<html>",
    "<!DOCTYPE html>",
    "Text</body><body>",
)
bodies = st.one_of(
    st.lists(st.sampled_from(BODY_SNIPPETS), max_size=4).map("\n\n".join),
    st.text(max_size=200),
    huge_strings(),
)
titles = st.one_of(
    st.text(alphabet="abcdefghij KLM", min_size=1, max_size=30),
    short_text,
    huge_strings(),
)


@st.composite
def good_posts(draw: st.DrawFn) -> File:
    """Posts in the users' style, mostly valid, with ids that may collide."""
    extra = []
    sets_identity = False
    if draw(st.booleans()):
        extra.append(f"tags: {draw(st.sampled_from(['Boats, Sea', '[a, b, A]', 'x', '']))}")
    if draw(st.integers(0, 4)) == 0:
        extra.append(f"draft: {draw(st.sampled_from(['true', 'false', 'yes', 'off']))}")
    if draw(st.integers(0, 3)) == 0:
        field = draw(st.sampled_from(["id", "guid", "slug", "permalink", "url"]))
        value = draw(st.sampled_from(["shared", f"{BASE_URL}/posts/p0/", "p1", "/posts/p2/", "urn:x:1"]))
        extra.append(f"{field}: {value}")
        sets_identity = True
    text = post_text(
        title=draw(titles),
        date=draw(st.sampled_from(DATES)),
        description=draw(st.one_of(st.none(), short_text)),
        body=draw(bodies),
        extra="\n".join(extra),
    )
    return crlf_bom(text, draw(st.booleans()), draw(st.booleans())), sets_identity


@st.composite
def wrong_type_posts(draw: st.DrawFn) -> File:
    """Any field as any type: lists, mappings, booleans, nulls, numbers, huge strings."""
    meta: dict[Any, Any] = {}
    if draw(st.booleans()):
        meta["title"] = "Valid title"
        meta["date"] = 1602734330
    for field in FIELDS:  # every field, a third of the time, of any type
        if draw(st.integers(0, 2)) == 0:
            meta[field] = draw(wrong_values)
    for key in draw(st.lists(keys, max_size=2)):
        meta[key] = draw(nested)
    huge = draw(st.integers(0, 2)) == 0
    if huge:  # one field 10-100 KB long, on one line
        meta[draw(keys)] = draw(huge_values)
    style = draw(st.sampled_from(["block", "flow", "json"]))
    if style == "json" or huge:  # JSON is YAML too, and PyYAML's emitter is slow on huge values
        front = json.dumps(meta, ensure_ascii=draw(st.booleans()))
    else:
        front = yaml.safe_dump(meta, default_flow_style=style == "flow", allow_unicode=False, width=60)
    text = f"---\n{front}\n---\n{draw(bodies)}"
    return crlf_bom(text, draw(st.booleans()), draw(st.booleans())), identity_set(meta)


def _nested_lists(depth: int) -> str:
    return "[" * depth + "x" + "]" * depth


def _nested_mappings(depth: int) -> str:
    return "\n" + "".join(" " * level + f"k{level}:\n" for level in range(1, depth)) + " " * depth + "v"


def _flow_mappings(depth: int) -> str:
    return "{a: " * depth + "b" + "}" * depth


def _small_laughs(depth: int) -> str:
    lines = ["\nl0: &l0 [lol, lol, lol]"]
    for level in range(1, min(depth, 6)):
        lines.append(f"l{level}: &l{level} [*l{level - 1}, *l{level - 1}, *l{level - 1}]")
    return "\n".join(lines) + f"\nref: *l{min(depth, 6) - 1}"


YAML_TORTURE: tuple[Callable[[int], str], ...] = (
    lambda n: f"title: {_nested_lists(n)}",
    lambda n: f"tags: {_nested_lists(n)}",
    lambda n: f"title: {_nested_lists(n)[:-1]}",  # unbalanced
    lambda n: f"authors:{_nested_mappings(n)}",
    lambda n: f"image: {_flow_mappings(n)}",
    lambda n: f"date: {_flow_mappings(n)}",
    lambda n: "meta: &m {title: Anchored, date: 2021-01-01}\nbase: &b {x: *m}\n<<: *m",
    lambda n: f"{_small_laughs(n)}\ntitle: *l0\ntags: *l1",
    lambda n: "title: *undefined",
    lambda n: "a: &dup 1\nb: &dup 2",
    lambda n: 'title: "\\ud800\\udfff \\x00 \\x85 \\uFFFE \\N \\L \\P \\e \\_"',
    lambda n: 'title: "\\U0010FFFF \\U00110000"',
    lambda n: 'tags: ["\\ud800", "\\x7f", "\\0"]',
    lambda n: "author: {name: '\\ud800', email: '\\x00@example.com'}",
    lambda n: "title: !!binary aGVsbG8=",
    lambda n: "title: !!python/object:os.system x",
    lambda n: "date: !!timestamp 2021-13-45",
    lambda n: "tags: !!set {a, b}",
    lambda n: "authors: !!omap [a: 1, b: 2]",
    lambda n: "title: !custom x\ndate: !!float x",
    lambda n: "%YAML 1.1\n%TAG !e! tag:example.com,2000:\n---",
    lambda n: "? [complex, key]\n: value",
    lambda n: "? {a: b}\n: value",
    lambda n: "title:\tTabbed\ndate:\t1",
    lambda n: "title: >\n  folded\n   more\n\n  text",
    lambda n: "title: |+\n  kept\n\n\n",
    lambda n: "title: >-\n\t tab indented",
    lambda n: f"title: {'x' * (n * 200)}",
    lambda n: f'description: "{"é" * (n * 200)}"',
    lambda n: "title: 1_000\ndate: 0x1F\nslug: 0o17\nid: 1e3",
    lambda n: "date: 2021-01-01 25:61:61",
    lambda n: "draft: 2\npublished: ~\nupdated: []",
    lambda n: "...",
    lambda n: "- a\n- b",
    lambda n: "just a scalar",
    lambda n: f"title: !{'t' * n * 2} x",  # the tag is quoted in PyYAML's error
    lambda n: f"title: !<tag:{'t' * n * 2}> x\ndate: 1600000000",
    lambda n: f"permalink: http://example.com:{'p' * n * 2}/x",  # the port is quoted by urlsplit
    lambda n: f"image: https://example.com:{'p' * n * 2}/x.png",
    lambda n: f"author: {'(' * n * 2}",  # nested comments in an address: email.utils recurses
    lambda n: "authors: ['" + "<" * n + "', '" + "\\" * n + "', '" + "[" * n + "']",
)


@st.composite
def torture_posts(draw: st.DrawFn) -> File:
    """Deep nesting, anchors and aliases, escapes of illegal characters, tags, long lines."""
    depth = draw(st.sampled_from([1, 2, 3, 10, 100, 500, 600]))
    parts = [draw(st.sampled_from(YAML_TORTURE))(depth) for _ in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), "title: Fine\ndate: 2021-01-01")
    text = "---\n" + "\n".join(parts) + "\n---\n" + draw(bodies)
    return crlf_bom(text, draw(st.booleans()), draw(st.booleans())), None


@st.composite
def toml_values(draw: st.DrawFn) -> str:
    return draw(
        st.one_of(
            st.text(max_size=20).map(json.dumps),
            unfit_text.map(lambda text: json.dumps(text)),
            st.integers(-(2**70), 2**70).map(str),
            st.floats().map(lambda number: str(number).lower()),
            st.sampled_from(
                [
                    "true",
                    "1979-05-27T07:32:00Z",
                    "1979-05-27T07:32:00",
                    "1979-05-27",
                    "07:32:00",
                    "0000-01-01T00:00:00+23:59",
                    "9999-12-31T23:59:59-23:59",
                    '["a", 1, [2]]',
                    '{name = "x", email = "y@z"}',
                    "'''multi\nline'''",
                    '"\\ud800"',
                    "nan",
                    "-inf",
                    "0x_1",
                ]
            ),
        )
    )


@st.composite
def toml_posts(draw: st.DrawFn) -> File:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.one_of(st.sampled_from(FIELDS), st.text(alphabet="abcxyz_-.", min_size=1, max_size=6)))
        lines.append(f"{key} = {draw(toml_values())}")
    if draw(st.booleans()):
        lines.append(draw(st.text(max_size=30)))  # junk
    text = "+++\n" + "\n".join(lines) + "\n+++\n" + draw(bodies)
    return crlf_bom(text, draw(st.booleans()), draw(st.booleans())), None


random_bytes = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda data: b"---\ntitle: x\ndate: 1600000000\n---\n" + data),
    st.binary(max_size=300).map(lambda data: b"---\n" + data + b"\n---\n"),
    st.sampled_from(
        [
            b"\xed\xa0\x80",
            b"---\ntitle: \xed\xa0\x80\ndate: 1600000000\n---\n",
            b"---\ntitle: ok\ndate: 1600000000\n---\n\xed\xb0\x80 body",
            b"\xef\xbb\xbf",
            b"\xef\xbb\xbf\xef\xbb\xbf---\ntitle: t\ndate: 1600000000\n---\n",
            b"\xff\xfe-\x00-\x00-\x00",
            b"---\r\ntitle: t\r\ndate: 1600000000\r\n---\r\n",
            b"---\rtitle: t\rdate: 1600000000\r---\rbody",
            b"",
            b"---",
            b"---\n",
            b"+++\n",
            b"---\ntitle: t\ndate: 1600000000\n",
        ]
    ),
).map(lambda data: (data, None))

# Any code point, lone surrogates included (written with "surrogatepass": invalid UTF-8).
any_char = st.one_of(st.characters(), st.sampled_from(XML_UNFIT), st.sampled_from(TRICKY))
random_text_posts = st.builds(
    lambda front, body, bom, crlf: (crlf_bom(f"---\n{front}\n---\n{body}", bom, crlf), None),
    st.text(alphabet=any_char, max_size=120),
    st.text(alphabet=any_char, max_size=120),
    st.booleans(),
    st.booleans(),
)

any_file = st.one_of(
    good_posts(), wrong_type_posts(), torture_posts(), toml_posts(), random_bytes, random_text_posts
)


# ---------------------------------------------------------------------------------------
# 1. Generated posts never break a build


# Markup in every value a feed's page shows: the title, the summary and the tags.
MARKUP_POST = post_text(
    title="<script>alert(1)</script> \"quoted\" & <b onclick='x'>bold",
    description="</p><img src=x onerror=alert(1)> &amp; <a href='javascript:x'>more",
    extra="tags: '<i>x</i>, a&b, \"</title><style>'",
).encode()


@HOSTILE
@given(st.lists(good_posts(), min_size=1, max_size=8))
@example([(MARKUP_POST, False)])
def test_good_posts_build_valid_feeds(files: list[File]) -> None:
    check_build(files)


# Each property keeps, as an explicit example, a failure it found: see the plain tests below.
HUGE_INTEGER_DATE = b"---\ntitle: t\ndate: 1" + b"0" * 4000 + b"\n---\n"
NESTED_COMMENT_AUTHOR = b"---\ntitle: t\ndate: 1600000000\nauthor: " + b"(" * 1000 + b"\n---\n"
UNKNOWN_TAG_TITLE = b"---\ntitle: !" + b"t" * 600 + b" x\ndate: 1600000000\n---\n"


@HOSTILE
@given(st.lists(st.one_of(wrong_type_posts(), good_posts()), min_size=1, max_size=8))
@example([(HUGE_INTEGER_DATE, False)])
@example([(NESTED_COMMENT_AUTHOR, False)])
def test_fields_of_every_wrong_type(files: list[File]) -> None:
    check_build(files)


@HOSTILE
@given(st.lists(st.one_of(torture_posts(), good_posts()), min_size=1, max_size=6))
@example([(UNKNOWN_TAG_TITLE, None)])
def test_yaml_torture(files: list[File]) -> None:
    check_build(files)


@HOSTILE
@given(st.lists(st.one_of(random_bytes, random_text_posts, toml_posts()), min_size=1, max_size=8))
def test_random_bytes_text_and_toml(files: list[File]) -> None:
    check_build(files)


@HOSTILE
@given(st.lists(any_file, min_size=1, max_size=8))
def test_mixtures(files: list[File]) -> None:
    check_build(files)


# Known failures, each a minimal input the properties above found or lead to.


def _parse(text: bytes, config: Settings) -> list[str]:
    try:
        parse_post("p.txt", text, config)
    except PostError as error:
        return [str(problem) for problem in error.problems]
    return []


def test_huge_integer_date_is_a_problem_not_a_crash(settings: Settings) -> None:
    # An integer from 2**1024 (about 1.8e308) on does not fit a float: `math.isfinite()`
    # raises OverflowError out of parse_post (the pipeline's catch-all then reports it as
    # "file: unexpected OverflowError"), where it should be a problem of the date. The date
    # has 4001 digits (under Python's 4300-digit limit), so its problem must stay short too.
    problems = _parse(HUGE_INTEGER_DATE, settings)
    assert len(problems) == 1 and problems[0].startswith("p.txt: date: "), problems
    assert len(problems[0]) <= MAX_PROBLEM_LENGTH, len(problems[0])


def test_nested_comments_in_an_author_are_a_problem_not_a_crash(settings: Settings) -> None:
    # `email.utils.parseaddr` recurses once per `(`: about 500 of them raised RecursionError
    # out of parse_post, and so out of the whole build. Kept or refused, but never a crash.
    problems = _parse(NESTED_COMMENT_AUTHOR, settings)
    assert problems == [] or all(problem.startswith("p.txt: author: ") for problem in problems), problems


@pytest.mark.parametrize(
    "front",
    [
        pytest.param("title: !" + "x" * 600 + " t\ndate: 1600000000", id="unknown-yaml-tag"),
        pytest.param("title: !<" + "x" * 600 + "> t\ndate: 1600000000", id="unknown-verbatim-yaml-tag"),
        pytest.param(
            "title: t\ndate: 1600000000\npermalink: http://a:" + "x" * 600 + "/", id="permalink-port"
        ),
        pytest.param("title: t\ndate: 1600000000\nimage: http://a:" + "x" * 600 + "/", id="image-port"),
    ],
)
def test_problem_messages_stay_short(settings: Settings, front: str) -> None:
    problems = _parse(f"---\n{front}\n---\n".encode(), settings)
    assert problems
    assert all(len(problem) <= MAX_PROBLEM_LENGTH for problem in problems), [len(p) for p in problems]


# ---------------------------------------------------------------------------------------
# 1b. Rendering: no body, id or URL breaks a build, and no HTML reaches a reader unsafe

# Pieces that libxml2's HTML parser, the allow-list and markdown-it each find hard:
# document structure in a fragment, raw-text and foreign elements, event handlers,
# obfuscated schemes, malformed URLs, entities of characters XML refuses, Markdown.
HTML_PIECES = (
    "<html>", "</html>", "<!DOCTYPE html>", "<body>", "</body>", "<body onload=x>", "<head>", "</head>",
    "<p>", "</p>", "<div>", "</div>", "<table>", "<tr>", "<td>", "</td>", "</table>", "<li>",
    "<script>", "</script>", "<style>", "</style>", "<title>", "<textarea>", "<xmp>", "<plaintext>",
    "<noscript>", "</noscript>", "<template>", "<svg>", "</svg>", "<math>", "<frameset>", "<form>",
    '<iframe src="data:text/html,x">', "<object data=x>", "<embed src=x>", "<input>", "<select>",
    '<a href="javascript:alert(1)">', "<a href=' jav&#x61;\tscript&colon;x'>", '<a href="../rel/">',
    '<a href="http://[">', "</a>", "<img src=x onerror=alert(1)>", '<img src="data:image/png;base64,AA">',
    '<base href="javascript:/">', '<meta http-equiv=refresh content="0;url=javascript:x">',
    '<p style="text-align:right;background:url(javascript:x)">', "<details open>", "<x-y onclick=1>",
    "</x-y>", "<!--", "-->", "<![CDATA[", "]]>", '<?xml version="1.0" encoding="utf-8"?>', "<?", "?>",
    "&#1;", "&#0;", "&#xD800;", "&colon;", "&amp;", "&", "<", ">", '"', "'", "=", " ", "\n", "\n\n",
    "    ", "![", "[", "]", "(", ")", "*", "_", "`", "```", "[^1]", "\n[^1]: n", "|", "---", "> ", "- ",
    "x", "text ", "\x00", "\u2028", "é", "\ud800",
)  # fmt: skip
html_bodies = st.one_of(
    st.lists(st.sampled_from(HTML_PIECES), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(HTML_PIECES), st.text(max_size=4)), max_size=30).map("".join),
    st.text(max_size=200),
)
URL_PIECES = (
    "http://", "https://", "a://", "urn:", "mailto:", "javascript:", "//", "[", "]", "::1", "v1.x", "%",
    "%41", "%zz", "@", ":", "/", "?", "#", " ", "\t", "é", "\ue000", "\u200e", "\uff03", "\u2100", "x",
    "example.com", "..", "\\", "'", "<", ">", "{", "|", "`", "1", "\x00",
)  # fmt: skip
url_like = st.one_of(
    st.lists(st.sampled_from(URL_PIECES), min_size=1, max_size=12).map("".join),
    st.text(max_size=30),
)

# The reported reproducers: each one failed the whole build.
HTML_ONLY = b"---\ntitle: t\ndate: 2021-01-01\n---\n<html>\n"
DOCTYPE_ONLY = b"---\ntitle: t\ndate: 2021-01-01\n---\n<!DOCTYPE html>\n"
SECOND_BODY = b"---\ntitle: t\ndate: 2021-01-01\n---\nText</body><body>\n"
BRACKET_ID = b'---\ntitle: t\ndate: 2021-01-01\nid: "http://["\n---\nBody.\n'
BRACKET_GUID = b"---\ntitle: t\ndate: 2021-01-01\nguid: 'a://b]['\n---\nBody.\n"


@settings(HOSTILE, max_examples=300)
@given(html_bodies)
@example("<html>")
@example("<!DOCTYPE html>")
@example("Text</body><body>")
def test_any_body_renders_to_safe_html(body: str) -> None:
    html = render(body, "https://example.com/posts/p/").html
    assert unsafe_html(html) == [], html
    assert clean(html) == html
    element = etree.Element("content")
    element.text = html  # lxml refuses text XML cannot carry
    strict_xml(etree.tostring(element))


@st.composite
def html_and_url_posts(draw: st.DrawFn) -> File:
    """Posts whose body is hostile HTML and whose ids and URLs are hostile text."""
    lines = ["title: t", f"date: {draw(st.sampled_from(['2021-01-01', '1602734330', '2099-01-01']))}"]
    for field in ("id", "guid", "permalink", "url", "image", "slug"):
        if draw(st.integers(0, 2)) == 0:
            lines.append(f"{field}: {json.dumps(draw(url_like))}")
    if draw(st.booleans()):
        lines.append("description: Given.")
    text = "---\n" + "\n".join(lines) + "\n---\n" + draw(html_bodies)
    return crlf_bom(text, False, draw(st.booleans())), None


@HOSTILE
@given(st.lists(st.one_of(html_and_url_posts(), good_posts()), min_size=1, max_size=6))
@example([(HTML_ONLY, None), (DOCTYPE_ONLY, None), (SECOND_BODY, None)])
@example([(BRACKET_ID, None), (BRACKET_GUID, None)])
def test_hostile_html_ids_and_urls(files: list[File]) -> None:
    built = check_build(files)
    for result in (built.first, built.second):
        assert all(not item.problems for item in result.items), [item.problems for item in result.items]


# ---------------------------------------------------------------------------------------
# 1c. Folder and author names: section and author feeds, served where the OPML says

# Names a section's folder or an author may have: the site's own routes in any case,
# a gzip twin's or the generation's metadata file's name, nothing left for a key, the
# same name in NFC and NFD, a name whose key outgrows 255 bytes once case-folded, URL
# syntax, path syntax, markup, controls, bidirectional marks and line separators.
SPECIAL_NAMES = (
    "Tags", "categories", "AUTHORS", "archive", "healthz", "metrics", "RSS.xml", "feed.json",
    "index.html.gz", "build.json", "feeds.opml", "feed.xsl", "-", "~", "a b", "Web  Dev", "web-dev",
    "Caf\u00e9", "Cafe\u0301", "\u0130" * 127, "\u00df" * 127, "%2e%2e", "a%2Fb", "100%", "?#",
    "\\..\\", "..x", "x..", "CON", " lead", "trail ", "\u2028", "\u200fRTL", "x\x7fy", "tab\there",
    "<script>alert(1)</script>", "&amp;\"'", "Site author", "site   AUTHOR", "\U0001f389",
)  # fmt: skip
# Anything a Linux folder name can be, invalid UTF-8 included (as os.fsdecode reads it).
folder_names = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.text(alphabet=st.characters(exclude_characters="/\x00"), min_size=1, max_size=40),
    st.binary(min_size=1, max_size=30).map(
        lambda raw: os.fsdecode(raw.replace(b"/", b"~").replace(b"\0", b"~"))
    ),
).filter(lambda name: not name.startswith((".", "_")) and len(os.fsencode(name)) <= 255)
author_names = st.one_of(st.sampled_from(SPECIAL_NAMES), short_text, st.text(max_size=40))


@st.composite
def authored_posts(draw: st.DrawFn) -> File:
    """Valid posts with hostile author names, as a string, a mapping or a list."""
    names = [json.dumps(name) for name in draw(st.lists(author_names, max_size=3))]
    style = draw(st.sampled_from(["none", "name", "mapping", "list"]))
    extra = {
        "none": "",
        "name": f"author: {names[0]}" if names else "",
        "mapping": f"author: {{name: {names[0]}}}" if names else "",
        "list": f"authors: [{', '.join(f'{{name: {name}}}' for name in names)}]",
    }[style]
    if draw(st.booleans()):
        extra += "\ntags: [Shared, Tags]"
    text = post_text(title=draw(titles), date=draw(st.sampled_from(DATES[:5])), extra=extra)
    return text.encode("utf-8", "surrogatepass"), False


def check_served(built: Built) -> None:
    """Publishes the site as the service does and requests, through the app, every feed
    of every outline of the OPML list, and every section at its folder's own name."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = _write_site(root, built.files, state_dir=str(root / "state"))
        store = PublishedStore(default_state_dir(config))
        assert Watcher(config, store, clock=lambda: NOW, settle_ns=0).poll() is True
        generation = store.load_current()
        assert generation is not None
        client = create_app(config).test_client()
        listing = client.get("/feeds.opml")
        assert listing.status_code == 200 and listing.data == generation.files["feeds.opml"]
        assert client.get("/").status_code == 200
        for outline in strict_xml(listing.data).iterfind(".//outline[@type='rss']"):
            path = urlsplit(outline.get("xmlUrl") or "").path
            for name in ("rss.xml", "atom.xml", "feed.json"):
                url = path.removesuffix("rss.xml") + name
                response = client.get(url)
                assert response.status_code == 200, url
                assert response.data == generation.files[unquote(url)[1:]], url
        # A folder of used posts is a section unless its name is no text, leaves no key
        # or is a route of the site's; then it is served at its name as it is on disk.
        used = {item.post.source.partition("/")[0] for item in built.first.items if "/" in item.post.source}
        for folder in used:
            key = term_key(folder) if clean(folder) == folder else None
            expected = key is not None and key not in RESERVED_SECTION_KEYS
            assert (f"{key}/rss.xml" in generation.files) is expected, folder
            if expected:
                response = client.get(f"/{quote(folder)}/rss.xml")
                assert response.status_code == 200, folder
                assert response.data == generation.files[f"{key}/rss.xml"]


@HOSTILE
@given(st.lists(st.tuples(folder_names, authored_posts()), min_size=1, max_size=6))
@example(
    [
        ("Tags", (b"---\ntitle: t\ndate: 1\n---\n", False)),
        ("build.json", (b"---\ntitle: u\ndate: 2\n---\n", False)),
    ]
)
@example(
    [
        ("\udcff\udcfe", (b"---\ntitle: t\ndate: 1\n---\n", False)),
        ("\u0130" * 127, (b"---\ntitle: u\ndate: 2\n---\n", False)),
    ]
)
def test_hostile_folder_and_author_names(entries: list[tuple[str, File]]) -> None:
    files = [file for _, file in entries]
    check_served(check_build(files, [folder for folder, _ in entries]))


# ---------------------------------------------------------------------------------------
# 2. The YAML fast path answers what PyYAML answers, or nothing


def typed(value: object) -> object:
    """`value` with every type spelled out, so that 1, 1.0 and True differ."""
    if isinstance(value, dict):
        return {typed(key): typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return ("list", tuple(typed(item) for item in value))
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def agree(doc: str) -> None:
    fast = yamlsubset.load(doc)
    try:
        expected = yaml.load(doc, Loader=yaml.SafeLoader)
    except Exception as error:  # any failure of PyYAML's: the fast path must decline too
        assert fast is None, f"PyYAML raises {type(error).__name__} but yamlsubset read {fast!r}"
        return
    if fast is not None:
        assert typed(fast) == typed(expected), f"yamlsubset {fast!r} != PyYAML {expected!r}"


YAML_KEYWORDS = ["on", "yes", "null", "No", "TRUE", "off", "Off", "y", "n", "Null", "NULL", "true", "~"]
NUMBER_SPELLINGS = [
    "1",
    "-1",
    "+1",
    "0",
    "-0",
    "00",
    "01",
    "010",
    "09",
    "1_000",
    "0x1F",
    "0o17",
    "0b101",
    "1e3",
    "1.0e3",
    "1.5e+3",
    "1E-3",
    ".5",
    "1.",
    "1.0",
    "-0.0",
    "0.5",
    "00.5",
    "1_0.5",
    "12:30",
    "1:20:30",
    "190:20:30",
    "2024-01-02",
    "2024-1-2",
    "2024-01-02 10:00:00",
    "2024-01-02T10:00:00Z",
    "2024-02-30",
    ".inf",
    "-.Inf",
    ".NaN",
    "1__0",
    "12345678901234567890",
    "1.7976931348623157e309",
]
SCALAR_WORDS = ["yes", "No", "~", "null", "Null", "true", "y", "n", "NaN", "inf", "=", "<<", "-", "--", "- x"]
SPECIAL_STARTS = [*"-?:,[]{}#&*!|>'\"%@`+.~=<", "\\", "$", "/", "(", ";"]
INFIXES = [": ", " #", ":", "#", " - ", "  ", "\t", ", ", " :", ":x", " ? ", "'", '"', "\\"]

# Any printable character, Unicode spaces and tabs included. Each document is then passed
# through `clean`, as posts.py does before the fast path: it only ever sees front matter
# without C0/C1 controls, surrogates or U+FFFE/U+FFFF, and with `\n` line breaks only.
yaml_chars = st.one_of(
    st.sampled_from("abcxyzABC019 _-.é中😀"),
    st.characters(exclude_categories=("Cc", "Cs")),
    st.sampled_from("\xa0\u3000\u2009\ufeff\u200b\u2028\t"),
)
words = st.one_of(
    st.text(alphabet="abcxyzABC", min_size=1, max_size=6),
    st.text(alphabet=yaml_chars, min_size=1, max_size=8),
)
plain_scalars = st.one_of(
    words,
    st.lists(words, min_size=2, max_size=4).map(" ".join),
    st.sampled_from(NUMBER_SPELLINGS),
    st.sampled_from(YAML_KEYWORDS + SCALAR_WORDS),
    st.builds(lambda a, infix, b: a + infix + b, words, st.sampled_from(INFIXES), words),
    st.builds(lambda start, rest: start + rest, st.sampled_from(SPECIAL_STARTS), words),
    st.builds(lambda a: a + ":", words),
)
yaml_keys = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,7}", fullmatch=True),
    st.sampled_from(["title", "date", "tags", "a", "a-b", "_x", "x1"]),
    st.sampled_from(YAML_KEYWORDS),
    st.sampled_from(["1", "1a", "-a", "a b", "<<", "? a", "'a'", "é", "a#"]),
)
separators = st.sampled_from([": ", ": ", ":  ", ":\t", " : ", "\t: ", ":", ": \t", ":\xa0"])
trailers = st.sampled_from(["", "", " ", "  ", "\t", " # comment", "#x", "\xa0"])


@st.composite
def scalar_entries(draw: st.DrawFn) -> str:
    return draw(yaml_keys) + draw(separators) + draw(plain_scalars) + draw(trailers)


@st.composite
def block_entries(draw: st.DrawFn) -> str:
    header = draw(st.sampled_from([">", "|", ">-", "|-", ">+", "|+", "> ", "|2", ">1-", "| # c", ">\t"]))
    indent = draw(st.integers(1, 4))
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind <= 4:
            lines.append(" " * indent + draw(plain_scalars))
        elif kind <= 6:
            lines.append(" " * draw(st.integers(0, 8)))  # blank, possibly with spaces
        elif kind == 7:
            lines.append(" " * (indent + draw(st.integers(1, 3))) + draw(words))  # more indented
        elif kind == 8:
            lines.append(" " * draw(st.integers(0, indent - 1)) + draw(words))  # less indented
        else:
            lines.append(" " * indent + draw(st.sampled_from(["\t", "\xa0", "\u3000"])) + draw(words))
    return draw(yaml_keys) + ":" + " " + header + "\n" + "\n".join(lines)


@st.composite
def list_entries(draw: st.DrawFn) -> str:
    indent = draw(st.integers(0, 4))
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 9))
        if kind <= 6 or kind == 9:  # an item; kind 9 is indented one more or one less
            this = indent + (draw(st.sampled_from([-1, 1])) if kind == 9 else 0)
            lines.append(" " * max(this, 0) + "- " + draw(plain_scalars) + draw(trailers))
        elif kind == 7:
            lines.append(" " * draw(st.integers(0, 6)))
        else:
            odd = draw(st.sampled_from(["-", "-x", "- - a", "- a: b", "-\tx", "- \xa0x"]))
            lines.append(" " * indent + odd)
    return draw(yaml_keys) + draw(st.sampled_from([":", ": ", ":\t"])) + "\n" + "\n".join(lines)


stray_lines = st.sampled_from(["", "   ", "# comment", "...", "\xa0", "\u3000", " indented: x", "\t"])
yaml_documents = st.lists(
    st.one_of(scalar_entries(), scalar_entries(), block_entries(), list_entries(), stray_lines),
    min_size=1,
    max_size=6,
).map(lambda entries: clean("\n".join(entries) + "\n"))


# Minimal disagreements found by the properties below (all within the fast path's real
# input: cleaned text with `\n` line breaks), kept so they fail until fixed.
YAML_DISAGREEMENTS = [
    # An empty document is null to PyYAML (harmless: posts.py reads both as no fields).
    pytest.param("", id="empty-document"),
    pytest.param("\n", id="blank-document"),
    # PyYAML refuses a tab wherever YAML wants a separating space.
    pytest.param("a:\tb\n", id="tab-after-colon"),
    pytest.param("a: b\t\n", id="tab-after-value"),
    pytest.param("a\t: b\n", id="tab-before-colon"),
    pytest.param("a: >\t\n x\n", id="tab-after-block-indicator"),
    pytest.param("a:\n - b\t\n", id="tab-after-list-item"),
    # Unicode spaces (`str.isspace`, `str.strip`) are not YAML white space.
    pytest.param("a: b\n\xa0\n", id="nbsp-line-is-not-blank"),
    pytest.param("\xa0\n", id="nbsp-document-is-a-scalar"),
    pytest.param("a:\n - b\xa0\n", id="list-item-loses-trailing-nbsp"),
    pytest.param("a: |\n x\n \xa0\n", id="literal-loses-nbsp-line"),
    # Spaces past the indentation on a blank line are content in a block scalar.
    pytest.param("a: |\n x\n  \n", id="literal-loses-spaces-of-a-deeper-blank-line"),
    pytest.param("a: >\n x\n  \n y\n", id="folded-loses-spaces-of-a-deeper-blank-line"),
    pytest.param("a: |\n  \n x\n", id="leading-blank-line-deeper-than-content"),
    # Folding keeps the line breaks of leading empty lines.
    pytest.param("a: >\n\n x\n", id="folded-loses-leading-empty-line"),
]


@pytest.mark.parametrize("doc", YAML_DISAGREEMENTS)
def test_yamlsubset_known_disagreements(doc: str) -> None:
    agree(doc)


@settings(HOSTILE, max_examples=150)
@given(yaml_documents)
@example("a:\tb\n")
def test_yamlsubset_agrees_with_pyyaml(doc: str) -> None:
    agree(doc)


# The subset the module documents, with nothing hostile in it: there the fast path must
# answer (a fast path that always declined would pass every agreement test), except that
# it may decline a block scalar with empty lines, whose rules are subtle.
NOT_PLAIN_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n"}
subset_keys = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda key: key not in NOT_PLAIN_WORDS
)
subset_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ", min_size=1, max_size=7).filter(
    lambda word: word.lower() not in NOT_PLAIN_WORDS
)
subset_scalars = st.one_of(
    st.lists(subset_words, min_size=1, max_size=4).map(" ".join),
    st.integers(-(10**20), 10**20).map(str),
    st.builds(lambda whole, part: f"{whole}.{part}", st.integers(-99, 99), st.integers(0, 999)),
)


@st.composite
def subset_entries(draw: st.DrawFn) -> tuple[str, bool]:
    """One `key: value` entry, and whether the fast path must answer it."""
    key = draw(subset_keys)
    kind = draw(st.integers(0, 2))
    indent = " " * draw(st.integers(1, 4))
    if kind == 0:
        return f"{key}: {draw(subset_scalars)}", True
    if kind == 1:
        items = draw(st.lists(subset_scalars, min_size=1, max_size=4))
        return f"{key}:\n" + "\n".join(f"{indent}- {item}" for item in items), True
    header = draw(st.sampled_from([">", "|", ">-", "|-"]))
    lines = draw(st.lists(st.one_of(subset_scalars, subset_scalars, st.just("")), min_size=1, max_size=5))
    if not any(lines):
        lines.append("text")
    text = f"{key}: {header}\n" + "\n".join(indent + line if line else "" for line in lines)
    return text, all(lines)


@settings(HOSTILE, max_examples=150)
@given(st.lists(subset_entries(), min_size=1, max_size=6))
@example([("a: >\n\n x", False)])
def test_yamlsubset_answers_on_its_own_subset(entries: list[tuple[str, bool]]) -> None:
    doc = "\n".join(text for text, _ in entries) + "\n"
    agree(doc)
    if all(must_answer for _, must_answer in entries):
        assert yamlsubset.load(doc) is not None, doc


@settings(HOSTILE, max_examples=100)
@given(st.text(alphabet=any_char, max_size=80))
@example("")
def test_yamlsubset_agrees_on_arbitrary_cleaned_text(text: str) -> None:
    agree(clean(text.replace("\r\n", "\n").replace("\r", "\n")))


# ---------------------------------------------------------------------------------------
# 3. Bounded cost: the worst posts build in a subprocess within time and memory limits

WALL_CLOCK_SECONDS = 60
ADDRESS_SPACE_BYTES = 1 << 30

CHILD = textwrap.dedent(
    """
    import datetime as dt, json, logging, resource, sys, time
    from pathlib import Path
    from feeds.config import load_settings
    from feeds.pipeline import Pipeline

    crashes = []
    class CrashLog(logging.Handler):
        def emit(self, record):
            if record.exc_info:
                crashes.append(f"{record.getMessage()}: {record.exc_info[1]!r}"[:300])
    logging.getLogger("feeds").addHandler(CrashLog(logging.ERROR))
    content, empty, out = map(Path, sys.argv[1:4])
    config = load_settings(
        config_path=empty, environ={},
        overrides={"content_dir": str(content), "base_url": "https://example.com", **json.loads(sys.argv[4])},
    )
    start = time.monotonic()
    result = Pipeline(config).run(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    seconds = time.monotonic() - start
    for name in ("rss", "atom", "json"):
        (out / name).write_bytes(getattr(result.documents, name))
    json.dump({
        "seconds": seconds,
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "files_read": result.files_read, "used": result.used,
        "held_back": result.held_back, "skipped": result.skipped,
        "problems": [str(problem) for problem in result.problems],
        "sources": [item.post.source for item in result.items],
        "crashes": crashes,
    }, sys.stdout)
    """
)


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


@dataclass(frozen=True)
class Bounded:
    report: dict[str, Any]
    documents: FeedDocuments
    cost: str  # wall-clock seconds and peak memory, for assertion messages


def build_bounded(tmp_path: Path, files: dict[str, bytes], **overrides: object) -> Bounded:
    """Builds `files` (with settings `overrides`) in a subprocess limited to 1 GiB of
    address space, and asserts it exits 0 within the wall-clock limit."""
    content, out = tmp_path / "content", tmp_path / "out"
    content.mkdir()
    out.mkdir()
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    for name, data in files.items():
        (content / name).write_bytes(data)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    try:
        process = subprocess.run(
            [sys.executable, "-c", CHILD, str(content), str(empty), str(out), json.dumps(overrides)],
            cwd=REPO,
            capture_output=True,
            timeout=WALL_CLOCK_SECONDS,
            preexec_fn=_limit_address_space,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the build was still running after {WALL_CLOCK_SECONDS} s")
    seconds = time.monotonic() - start
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert process.returncode == 0, (
        f"exit {process.returncode} after {seconds:.1f} s: {process.stderr.decode(errors='replace')[-3000:]}"
    )
    report = json.loads(process.stdout)
    assert report["crashes"] == [], report["crashes"]
    cost = (
        f"{seconds:.2f} s wall clock (build {report['seconds']:.2f} s), peak RSS "
        f"{report['peak_kib'] / 1024:.0f} MiB (RUSAGE_CHILDREN high-water mark "
        f"{children_before / 1024:.0f} -> {children_after / 1024:.0f} MiB)"
    )
    documents = FeedDocuments(
        rss=(out / "rss").read_bytes(),
        atom=(out / "atom").read_bytes(),
        json=(out / "json").read_bytes(),
    )
    return Bounded(report, documents, cost)


def _good(title: str, date: str) -> bytes:
    return post_text(title=title, date=date).encode()


GOOD_POSTS = {
    "good-a.txt": _good("Good A", "1602734330"),
    "good-b.md": _good("Good B", "1602734331"),
}


def test_bounded_billion_laughs(tmp_path: Path) -> None:
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    bomb = "---\n" + "\n".join(lines) + "\ntitle: *i\ndate: 2025-01-01\ntags: *i\n---\nBody.\n"
    built = build_bounded(tmp_path, {**GOOD_POSTS, "bomb.txt": bomb.encode()})
    report = built.report
    check_documents(built.documents)
    assert sorted(report["sources"]) == sorted(GOOD_POSTS), built.cost
    problems = report["problems"]
    assert problems and all(problem.startswith("bomb.txt: ") for problem in problems), problems
    assert all(len(problem) <= MAX_PROBLEM_LENGTH for problem in problems), (problems, built.cost)
    assert (report["files_read"], report["used"], report["skipped"]) == (3, 2, 1), built.cost


def test_bounded_longest_line_under_the_size_limit(tmp_path: Path) -> None:
    unit = "Lorem ipsum dolor sit amet, consectetur adipiscing elit; sed (do) eiusmod tempor? "
    head = "---\ntitle: Newest\ndate: 2025-06-01\n---\n"
    line = (unit * (4_900_000 // len(unit) + 1))[: 4_900_000 - len(head) - 1]
    data = (head + line + "\n").encode()
    assert 4_800_000 < len(data) < 5_000_000
    # Rendered whole when the settings allow it (by default, max_render_bytes stops it).
    built = build_bounded(tmp_path, {**GOOD_POSTS, "long.txt": data}, max_render_bytes=5_000_000)
    assert built.report["sources"][0] == "long.txt", built.cost  # newest: rendered
    assert built.report["problems"] == [], built.cost
    check_documents(built.documents)
    html = strict_xml(built.documents.rss).findtext("channel/item/content:encoded", namespaces=NS)
    assert html is not None and len(html) > 4_800_000, built.cost


def test_bounded_escaped_html_stays_parseable(tmp_path: Path) -> None:
    # Each `&` becomes `&amp;` in the HTML: 1,999,995 of them in a code block (a 2 MB
    # post, well under max_post_bytes) make an HTML text node of 10,000,001 characters,
    # and libxml2 (lxml, and the readers built on it) refuses a text node over
    # 10,000,000 without XML_PARSE_HUGE: "Resource limit exceeded: Text node too long".
    # (One `&` fewer, 9,999,996 characters, parses.)
    data = b"---\ntitle: Ampersands\ndate: 2025-06-01\n---\n```\n" + b"&" * 1_999_995 + b"\n```\n"
    built = build_bounded(tmp_path, {**GOOD_POSTS, "amp.txt": data}, max_render_bytes=5_000_000)
    assert built.report["sources"][0] == "amp.txt", built.cost
    assert built.report["problems"] == [
        "amp.txt: content: left out of the feeds, the entry keeps its summary: "
        "the HTML is over 9000000 bytes once escaped into XML"
    ]
    check_documents(built.documents)


def test_bounded_pathological_markdown_over_max_render_bytes(tmp_path: Path) -> None:
    # "![" costs markdown-it about 17 µs a character: rendered, this 4.9 MB post took
    # about 80 s of every build that included it. Over max_render_bytes (500,000 by
    # default) it is not rendered: the entry keeps its summary and link.
    head = b"---\ntitle: Brackets\ndate: 2025-06-01\ndescription: Square ones.\n---\n"
    data = head + b"![" * 2_450_000
    built = build_bounded(tmp_path, {**GOOD_POSTS, "brackets.txt": data})
    report = built.report
    assert report["sources"][0] == "brackets.txt", built.cost
    assert report["problems"] == [
        "brackets.txt: content: left out of the feeds, the entry keeps its summary: "
        "4900000 bytes, over max_render_bytes (500000)"
    ], built.cost
    assert (report["used"], report["skipped"]) == (3, 0), built.cost
    rss, _, _ = check_documents(built.documents)
    assert rss.entries[0].summary == "Square ones."
    newest = strict_xml(built.documents.rss).find("channel/item")
    assert newest is not None and newest.find("content:encoded", NS) is None


def test_bounded_many_elements_under_max_render_bytes(tmp_path: Path) -> None:
    # 160,000 paragraphs, just under the default limit: the allow-list pass must stay
    # linear in the number of elements (lxml's len() walks the children; asking it for
    # every new element made this take minutes).
    data = b"---\ntitle: Paragraphs\ndate: 2025-06-01\n---\n" + b"a\n\n" * 160_000
    built = build_bounded(tmp_path, {**GOOD_POSTS, "paragraphs.txt": data})
    assert built.report["sources"][0] == "paragraphs.txt", built.cost
    assert built.report["problems"] == [], built.cost
    html = strict_xml(built.documents.rss).findtext("channel/item/content:encoded", namespaces=NS)
    assert html is not None and html.count("<p>a</p>") == 160_000, built.cost


def test_bounded_ten_thousand_tags(tmp_path: Path) -> None:
    tags = "".join(f"  - tag-{n}-{'x' * 150}\n" for n in range(10_000))
    data = f"---\ntitle: Tagged\ndate: 2025-06-01\ntags:\n{tags}---\nBody.\n".encode()
    built = build_bounded(tmp_path, {**GOOD_POSTS, "tags.txt": data})
    assert built.report["sources"][0] == "tags.txt", built.cost
    assert built.report["problems"] == [], built.cost
    _rss, atom, feed = check_documents(built.documents)
    item = strict_xml(built.documents.rss).find("channel/item")
    assert item is not None
    categories = [category.text or "" for category in item.findall("category")]
    assert 1 <= len(categories) <= MAX_TERMS, (len(categories), built.cost)
    assert all(len(category) <= MAX_TERM_LENGTH for category in categories)
    assert len(atom.entries[0].tags) <= MAX_TERMS
    assert len(feed["items"][0]["tags"]) <= MAX_TERMS


def test_bounded_post_over_max_post_bytes(tmp_path: Path) -> None:
    head = b"---\ntitle: Too big\ndate: 2025-06-01\n---\n"
    data = head + b"x" * (5_000_001 - len(head))
    assert len(data) == 5_000_001
    built = build_bounded(tmp_path, {**GOOD_POSTS, "big.txt": data})
    assert built.report["problems"] == ["big.txt: file: larger than max_post_bytes (5000000 bytes)"], (
        built.cost
    )
    assert sorted(built.report["sources"]) == sorted(GOOD_POSTS)
    check_documents(built.documents)
