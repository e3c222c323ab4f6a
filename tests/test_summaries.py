"""Summaries of posts without a `description`: the first paragraph of the body, taken at
parse time from as few characters as markdown-it needs, and never by reading the file
again for an archive page."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import feeds.build
import feeds.markdown
import feeds.pipeline
import feeds.posts
from feeds.config import Settings
from feeds.markdown import first_paragraph
from feeds.pipeline import Pipeline
from feeds.posts import SUMMARY_SOURCE_CHARS, parse_post
from feeds.text import clean

from conftest import Calls, MakeSettings, WritePost, post_text

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def whole_head_paragraph(body: str, limit: int) -> str:
    """The first paragraph as it was found before: markdown-it over the whole head."""
    head = body[:limit]
    blank = head.rfind("\n\n")
    tokens = feeds.markdown._MARKDOWN.parse(clean(head[:blank] if blank > 0 else head))
    return feeds.markdown._first_paragraph(tokens) or ""


# Blocks that start, end, interrupt or swallow paragraphs, or change how their text reads.
BLOCKS = [
    "Plain words, a sentence.",
    "Two lines\nof one paragraph",
    "A *strong* and _em_ word, `code` and &amp; &copy; entities",
    "[a link](http://x.example/a) and ![an *image*](i.png) here",
    "[a reference][r] and [r] and [^1] and ^[inline note]",
    "<b>raw</b> inline <span>html</span>",
    "<http://auto.example/> and \\*escaped\\*",
    "~~struck~~ text",
    "line with a hard break  \nafter it",
    "# A heading",
    "Setext heading\n===",
    "Another setext\n---",
    "***",
    "> a quote\n> continued",
    "> a quote\nlazy line",
    "- item one\n- item two",
    "1. first\n2. second",
    "- item\n\n  its second paragraph",
    "    indented code",
    "```\nfenced\n\nwith a blank line\n```",
    "```\nfence left open",
    "~~~ python\ncode\n~~~",
    "<div>\nan html block\n</div>",
    "<pre>\nkept\n\nacross a blank\n</pre>",
    "<!-- a comment\n\nstill the comment -->",
    "<?php echo 1;\n\n?>",
    "[r]: http://ref.example/",
    "[^1]: the footnote's text",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "a | b\n--|--",
    "   ",
    "\t",
    "text]: not a definition",
    "x\x00y control \x0b characters",
]


@settings(max_examples=400, deadline=None)
@given(
    blocks=st.lists(st.sampled_from(BLOCKS), max_size=8),
    separators=st.lists(st.sampled_from(["\n", "\n\n", "\n\n\n", "\n  \n"]), min_size=8, max_size=8),
    limit=st.sampled_from([SUMMARY_SOURCE_CHARS, 40, 80, 200]),
)
def test_the_first_paragraph_is_the_one_the_whole_head_gives(
    blocks: list[str], separators: list[str], limit: int
) -> None:
    body = "".join(block + separator for block, separator in zip(blocks, separators, strict=False))
    assert first_paragraph(body, limit) == whole_head_paragraph(body, limit)


def test_an_inline_footnote_in_a_prefix_does_not_stand_for_the_first_paragraph() -> None:
    """markdown-it puts an inline footnote's text after the body: read from a prefix that
    ends before the body's first paragraph, it came first (found by the test above)."""
    body = (
        "| a | b |\n|---|---|\n| 1 | 2 |\nPlain words, a sentence.\nPlain words, a sentence.\n"
        "[a reference][r] and [r] and [^1] and ^[inline note]\n\nPlain words, a sentence.\n\n"
    )
    assert first_paragraph(body, SUMMARY_SOURCE_CHARS) == whole_head_paragraph(body, SUMMARY_SOURCE_CHARS)
    assert first_paragraph(body, SUMMARY_SOURCE_CHARS) == "Plain words, a sentence."


def test_markdown_it_reads_the_first_paragraph_not_the_whole_head(parses: list[int]) -> None:
    lead = "The [first](https://example.com/) paragraph, *with* marks."
    rest = "".join(f"\n\nParagraph {n} with [a link](x{n}.html) and more words after it." for n in range(200))
    assert len(lead + rest) > SUMMARY_SOURCE_CHARS
    assert first_paragraph("## A heading\n\n" + lead + rest, SUMMARY_SOURCE_CHARS) == (
        "The first paragraph, with marks."
    )
    # The heading alone first, then a prefix about twice as long that holds the paragraph.
    assert parses == [len("## A heading"), len("## A heading\n\n" + lead)]


def test_a_reference_definition_anywhere_in_the_head_is_honoured(parses: list[int]) -> None:
    body = "See [the guide] first.\n\n[the guide]: https://example.com/guide\n\nThe last block.\n"
    assert first_paragraph(body, SUMMARY_SOURCE_CHARS) == "See the guide first."
    # Parsed whole (but for its last block, which a cut at the limit could have broken).
    assert parses == [body.rindex("\n\n")]


def test_the_lead_is_taken_at_parse_time(settings: Settings) -> None:
    text = post_text(description=None, body="# Title\n\nThe *first* paragraph.\n\nThe second.\n")
    post = parse_post("p.md", text.encode(), settings)
    assert (post.summary, post.lead) == (None, "The first paragraph.")
    described = parse_post("d.md", post_text(description="Given.").encode(), settings)
    assert (described.summary, described.lead) == ("Given.", "")


def test_a_long_lead_is_plain_text_shortened(settings: Settings) -> None:
    body = "Text <script>alert(1)</script> " + "word " * 200 + "<b>bold</b>\n"
    post = parse_post("p.md", post_text(description=None, body=body).encode(), settings)
    assert "<" not in post.lead and post.lead.startswith("Text alert(1) word word")
    assert len(post.lead) <= 301 and post.lead.endswith("…")


@pytest.mark.parametrize("content", ["full", "summary"])
def test_archive_summaries_read_no_file_again(
    write_post: WritePost, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    for n in range(30):
        body = f"## Part {n}\n\nPost {n} opens with *this* [paragraph](p{n}.html).\n\nThen more.\n"
        write_post(
            f"p{n:02d}.md", post_text(title=f"T{n}", date=str(1_601_000_000 + n), description=None, body=body)
        )
    reads = Calls(monkeypatch, feeds.pipeline, "post_body")
    heads = Calls(monkeypatch, feeds.posts, "first_paragraph")
    built = Pipeline(make_settings(item_limit=5, content=content)).run(NOW)
    archived = [path for path in (o.path for o in built.outputs) if path.startswith("archive/")]
    assert len(archived) == 2 * 6  # six complete pages of five, RSS and Atom
    # Every summary comes from the parse (one first paragraph a post); only the five
    # posts of the main feeds are read again, for their text, and none in summary mode.
    assert (len(reads.arguments), len(heads.arguments)) == (5 if content == "full" else 0, 30)
    summaries = {item.post.source: item.summary for item in built.items}
    assert summaries["p29.md"] == "Post 29 opens with this paragraph."
    page = next(o.body for o in built.outputs if o.path == "archive/1/rss.xml")
    assert b"<description>Post 0 opens with this paragraph.</description>" in page


def test_summaries_are_the_same_wherever_a_post_appears(
    write_post: WritePost, make_settings: MakeSettings
) -> None:
    for n in range(12):
        body = f"Post {n} says *hello* to [you](https://example.com/{n}).\n\nMore.\n"
        write_post(
            f"p{n:02d}.md", post_text(title=f"T{n}", date=str(1_601_000_000 + n), description=None, body=body)
        )
    small = Pipeline(make_settings(item_limit=4)).run(NOW)  # eight posts archived
    whole = Pipeline(make_settings(item_limit=50)).run(NOW)  # every post rendered
    rendered = {item.post.source: item.summary for item in whole.items}
    pages = b"".join(
        o.body for o in small.outputs if o.path.startswith("archive/") and o.path.endswith("rss.xml")
    )
    for n in range(8):
        assert f"<description>{rendered[f'p{n:02d}.md']}</description>".encode() in pages
