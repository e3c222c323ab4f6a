"""Markdown bodies to HTML fit for a feed: CommonMark plus tables, strikethrough and
footnotes, every link absolute, and a plain-text summary from the first paragraph."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import lxml.html
from lxml import etree
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from feeds.text import clean, shorten

# One parser for the process: building it compiles its rules, and rendering with it
# keeps no state between documents.
_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"]).use(footnote_plugin)


@dataclass(frozen=True)
class Rendered:
    html: str
    first_paragraph: str


def render(body: str, base_url: str) -> Rendered:
    """`body` as HTML whose relative `href`/`src` resolve against `base_url`.

    Feed readers and RSS-to-email tools mostly ignore `xml:base`, so relative links
    would break there: they are made absolute here, raw HTML blocks included.
    """
    tokens = _MARKDOWN.parse(clean(body))
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    return Rendered(html=clean(_absolute_links(html, base_url)), first_paragraph=_first_paragraph(tokens))


def summarize(rendered: Rendered, fallback: str) -> str:
    return shorten(rendered.first_paragraph) or fallback


def _absolute_links(html: str, base_url: str) -> str:
    if not html.strip():
        return ""
    wrapper = lxml.html.fragment_fromstring(html, create_parent="div")
    wrapper.make_links_absolute(base_url, resolve_base_href=False, handle_failures="discard")
    inner = etree.tostring(wrapper, encoding="unicode", method="html")
    return inner[len("<div>") : -len("</div>")]


def _first_paragraph(tokens: list[Token]) -> str:
    for previous, token in itertools.pairwise(tokens):
        if previous.type == "paragraph_open" and token.type == "inline":
            return "".join(_plain(child) for child in token.children or [])
    return ""


def _plain(token: Token) -> str:
    if token.type in ("text", "code_inline"):
        return token.content
    if token.type in ("softbreak", "hardbreak"):
        return " "
    if token.type == "image":
        return "".join(_plain(child) for child in token.children or [])
    return ""
