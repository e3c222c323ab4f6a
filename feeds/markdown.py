"""Markdown bodies to HTML fit for a feed: CommonMark plus tables, strikethrough and
footnotes, every link absolute, nothing that could run or load in a reader's page but
plain markup, images and media, and a plain-text summary from the first paragraph."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import lxml.html
from lxml import etree
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from feeds.text import clean

# One parser for the process: building it compiles its rules, and rendering with it
# keeps no state between documents.
_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"]).use(footnote_plugin)

# libxml2's HTML parser recovers from any input without raising once it has a body to
# put things in (the fragment is always given one below). Comments and processing
# instructions are dropped while parsing: old browsers run conditional comments.
_HTML_PARSER = lxml.html.HTMLParser(
    recover=True, no_network=True, huge_tree=True, remove_comments=True, remove_pis=True
)
# libxml2 drops everything after `</html>` and starts a second body at `</body>`; in a
# fragment they mean nothing (HTML5 parsers ignore them there), so they are removed.
_DOCUMENT_END_TAGS = re.compile(r"</(?:html|body)(?:[\s/][^>]*)?>", re.IGNORECASE)

# The allow-list. Elements in _KEPT stay, with the attributes below; elements in
# _DROPPED go with everything inside them (scripts, styles, frames, plugins, forms, and
# the raw-text and foreign elements that HTML5 parsers read differently from libxml2);
# any other element is unwrapped: its text and children stay.
# fmt: off
_KEPT = frozenset({
    "a", "abbr", "acronym", "address", "article", "aside", "audio", "b", "bdi", "bdo", "big",
    "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
    "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "footer", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li", "main",
    "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "section", "small",
    "source", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "video", "wbr",
})
_DROPPED = frozenset({
    "applet", "base", "basefont", "button", "canvas", "datalist", "dialog", "embed", "form",
    "frame", "frameset", "head", "iframe", "input", "link", "math", "meta", "noembed",
    "noframes", "noscript", "object", "optgroup", "option", "param", "plaintext", "script",
    "select", "style", "svg", "template", "textarea", "title", "xmp",
})
# fmt: on
_GLOBAL_ATTRIBUTES = frozenset({"class", "dir", "id", "lang", "style", "title"})
_ATTRIBUTES = {
    "a": frozenset({"href", "hreflang", "name", "type"}),
    "audio": frozenset({"controls", "loop", "muted", "preload", "src"}),
    "blockquote": frozenset({"cite"}),
    "col": frozenset({"span"}),
    "colgroup": frozenset({"span"}),
    "del": frozenset({"cite", "datetime"}),
    "details": frozenset({"open"}),
    "img": frozenset({"alt", "height", "src", "width"}),
    "ins": frozenset({"cite", "datetime"}),
    "li": frozenset({"value"}),
    "ol": frozenset({"reversed", "start", "type"}),
    "q": frozenset({"cite"}),
    "source": frozenset({"src", "type"}),
    "td": frozenset({"colspan", "headers", "rowspan"}),
    "th": frozenset({"abbr", "colspan", "headers", "rowspan", "scope"}),
    "time": frozenset({"datetime"}),
    "video": frozenset({"controls", "height", "loop", "muted", "poster", "preload", "src", "width"}),
}
_URL_ATTRIBUTES = frozenset({"cite", "href", "poster", "src"})
# Checked on the URL exactly as it is written out, so no parser can see another scheme.
_SAFE_URL = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
# The one style Markdown writes itself (aligned table columns); no other CSS is kept.
_SAFE_STYLE = re.compile(r"\s*text-align\s*:\s*(?:left|right|center|justify)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Rendered:
    html: str


def render(body: str, base_url: str) -> Rendered:
    """`body` as safe HTML whose relative `href`/`src` resolve against `base_url`.

    Feed readers and RSS-to-email tools mostly ignore `xml:base`, so relative links
    would break there: they are made absolute here, raw HTML blocks included. Raw HTML
    is also cut down to an allow-list, because many readers show content as it is.
    """
    tokens = _MARKDOWN.parse(clean(body))
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    return Rendered(html=safe_html(html, base_url))


def first_paragraph(body: str, limit: int) -> str:
    """The plain text of the first paragraph of `body`, reading only its first `limit`
    characters (cut at a blank line): for bodies too large to render whole.

    markdown-it reads only as far as it must: prefixes of the head, each cut at a blank
    line and each about twice the last, until one holds a paragraph, which is then the
    body's first. A blank line ends any paragraph, and what comes after one never turns
    the blocks before it into others (a fence or an HTML block left open swallows the
    rest of the prefix, so no paragraph is found in it early). Only a reference or
    footnote definition, which may come anywhere, changes how a paragraph's brackets
    read: a head with `]:` in it is parsed whole, as before."""
    head = body[:limit]
    blank = head.rfind("\n\n")
    head = clean(head[:blank] if blank > 0 else head)
    if "]:" not in head:
        end = head.find("\n\n")
        while end > 0:
            found = _first_paragraph(_MARKDOWN.parse(head[:end]), body_only=True)
            if found is not None:
                return found
            end = head.find("\n\n", 2 * end)
    return _first_paragraph(_MARKDOWN.parse(head)) or ""


def safe_html(html: str, base_url: str) -> str:
    """`html` parsed, reduced to the allow-list and written again, in one pass: links
    made absolute against `base_url`, and only http(s) and mailto URLs kept."""
    if not html.strip():
        return ""
    source = etree.fromstring("<html><body>" + _DOCUMENT_END_TAGS.sub("", html), _HTML_PARSER)
    copy = _Copy()
    walker = etree.iterwalk(source, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _DROPPED:
                walker.skip_subtree()  # its "end" still comes, for the tail
                continue
            if tag in _KEPT:
                copy.open(tag, _attributes(tag, element, base_url))
            copy.text(element.text)
        else:
            if tag in _KEPT:
                copy.close()
            copy.text(element.tail)
    return copy.serialize()


class _Copy:
    """The output tree, built element by element. Text is gathered and set once per
    position, and each open element's last child is remembered (lxml counts children
    by walking them), so that the copy stays linear in the size of the HTML."""

    def __init__(self) -> None:
        self.root = etree.Element("div")
        self.open_elements = [self.root]
        self.last_children: list[etree._Element | None] = [None]
        self.pending: list[str] = []

    def open(self, tag: str, attributes: dict[str, str]) -> None:
        self._flush()
        element = etree.SubElement(self.open_elements[-1], tag, attributes)
        self.last_children[-1] = element
        self.open_elements.append(element)
        self.last_children.append(None)

    def close(self) -> None:
        self._flush()
        self.open_elements.pop()
        self.last_children.pop()

    def text(self, text: str | None) -> None:
        if text:
            self.pending.append(text)

    def serialize(self) -> str:
        self._flush()
        inner = etree.tostring(self.root, encoding="unicode", method="html")[len("<div>") : -len("</div>")]
        return inner if inner.strip() else ""  # nothing left to show: no content at all

    def _flush(self) -> None:
        if not self.pending:
            return
        text = clean("".join(self.pending))  # libxml2 turns `&#1;` into a control character
        self.pending.clear()
        last = self.last_children[-1]
        if last is None:
            self.open_elements[-1].text = text
        else:
            last.tail = text


def _attributes(tag: str, element: etree._Element, base_url: str) -> dict[str, str]:
    allowed = _ATTRIBUTES.get(tag, frozenset())
    kept = {}
    for name, value in element.attrib.items():
        if name in _GLOBAL_ATTRIBUTES or name in allowed:
            text = _attribute_value(name, clean(str(value)), base_url)  # lxml gives str on Python 3
            if text is not None:
                kept[name] = text
    return kept


def _attribute_value(name: str, value: str, base_url: str) -> str | None:
    if name in _URL_ATTRIBUTES:
        return _url(value, base_url)
    if name == "style":
        return ";".join(part for part in value.split(";") if _SAFE_STYLE.fullmatch(part)) or None
    return value


def _url(value: str, base_url: str) -> str | None:
    """`value` made absolute, or None when it is malformed or not http(s) or mailto
    (javascript:, data:, vbscript: and the like)."""
    try:
        url = urljoin(base_url, value.strip())
    except ValueError:  # a malformed IPv6 host, or a host that NFKC turns into a delimiter
        return None
    return url if _SAFE_URL.match(url) else None


def _first_paragraph(tokens: list[Token], body_only: bool = False) -> str | None:
    """The plain text of the first paragraph in `tokens`; None when there is none. With
    `body_only`, the footnotes that markdown-it appends after the body are left out: in
    a prefix, an inline footnote's text would come before a paragraph of the body that
    the prefix does not reach yet."""
    for previous, token in itertools.pairwise(tokens):
        if body_only and previous.type == "footnote_block_open":
            return None
        if previous.type == "paragraph_open" and token.type == "inline":
            return "".join(_plain(child) for child in token.children or [])
    return None


def _plain(token: Token) -> str:
    if token.type in ("text", "code_inline"):
        return token.content
    if token.type in ("softbreak", "hardbreak"):
        return " "
    if token.type == "image":
        return "".join(_plain(child) for child in token.children or [])
    return ""
