"""Checks every generated document must pass: strict XML, feedparser with no bozo flag,
ids Atom accepts, and HTML content with nothing in it that could run in a reader."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import feedparser
from lxml import etree

from feeds.build import FeedDocuments

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "media": "http://search.yahoo.com/mrss/",
}


def strict_xml(data: bytes) -> etree._Element:
    """Parses with a parser that refuses to recover: any well-formedness error raises."""
    return etree.fromstring(data, etree.XMLParser(recover=False, resolve_entities=False))


def parsed(data: bytes) -> Any:
    result = feedparser.parse(data)
    assert result.bozo == 0, result.get("bozo_exception")
    return result


def check_documents(documents: FeedDocuments) -> tuple[Any, Any, dict[str, Any]]:
    """Validates all three documents and returns (rss, atom, json) as parsed."""
    strict_xml(documents.rss)
    strict_xml(documents.atom)
    rss, atom = parsed(documents.rss), parsed(documents.atom)
    assert rss.version == "rss20"
    assert atom.version == "atom10"
    feed = json.loads(documents.json)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    ids = [entry.id for entry in rss.entries]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert len(atom.entries) == len(ids)
    for given, atom_entry in zip(ids, atom.entries, strict=True):
        # Atom carries the id as written, or a UUID URN made from it when it is no IRI.
        assert atom_entry.id in (given, uuid.uuid5(uuid.NAMESPACE_URL, given).urn), (given, atom_entry.id)
        assert looks_like_iri(atom_entry.id), atom_entry.id
    assert [item["id"] for item in feed["items"]] == ids
    # The bytes as written, not feedparser's view: feedparser sanitises HTML itself.
    contents = [
        *(e.text or "" for e in strict_xml(documents.rss).iterfind("channel/item/content:encoded", NS)),
        *(e.text or "" for e in strict_xml(documents.atom).iterfind("atom:entry/atom:content", NS)),
        *(item.get("content_html", "") for item in feed["items"]),
    ]
    for html in contents:
        assert unsafe_html(html) == [], html[:300]
    return rss, atom, feed


# RFC 3987 excludes these from IRIs (besides controls, which XML already refuses).
_NOT_IN_IRI = re.compile(r'[\s<>"{}|\\^`\u200e\u200f\u202a-\u202e]')


def looks_like_iri(text: str) -> bool:
    """A check independent of feeds.xmlfeeds: a scheme, no character IRIs exclude, and
    brackets that the standard library's URL parser accepts."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return bool(parts.scheme) and _NOT_IN_IRI.search(text) is None


UNSAFE_ELEMENTS = frozenset(
    {"applet", "base", "embed", "form", "frame", "frameset", "iframe", "input", "link", "math", "meta"}
    | {"noscript", "object", "script", "style", "svg", "template", "textarea", "button", "select"}
)
URL_ATTRIBUTES = frozenset(
    {"action", "background", "cite", "data", "dynsrc", "formaction", "href", "lowsrc", "poster", "src"}
    | {"srcset", "xlink:href", "usemap", "codebase", "longdesc"}
)
SAFE_URL = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)


def unsafe_html(html: str) -> list[str]:
    """What in `html` could run script or load something a reader should not: unsafe
    elements, comments, event handler attributes, URLs other than http(s) and mailto,
    and CSS with functions in it. Empty for safe HTML."""
    if not html.strip():
        return []
    root = etree.fromstring("<html><body>" + html, etree.HTMLParser(recover=True, huge_tree=True))
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            found.append(f"node {element!r}")
            continue
        if element.tag in UNSAFE_ELEMENTS:
            found.append(f"<{element.tag}>")
        for name, value in element.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"<{element.tag} {name}>")
            elif name.lower() in URL_ATTRIBUTES and not SAFE_URL.match(value):
                found.append(f"<{element.tag} {name}={value!r}>")
            elif name.lower() == "style" and "(" in value:
                found.append(f"<{element.tag} style={value!r}>")
    return found


# What a feed's HTML page (feeds.feedpage) may hold: text, links and its own styles.
PAGE_ELEMENTS = frozenset(
    {"html", "head", "meta", "title", "link", "style", "body", "h1", "h2", "p", "div", "strong"}
    | {"ul", "li", "code", "a", "time"}
)


def check_page(data: bytes) -> list[tuple[str, str]]:
    """Checks a feed's page: UTF-8, only the elements the page writes (so no value from a
    post became markup), one style element and links only in the head, no event
    handlers, http(s) URLs only. Returns the (href, text) of each entry's link."""
    text = data.decode("utf-8")
    assert text.startswith("<!doctype html>\n")
    root = etree.fromstring(data, etree.HTMLParser(recover=False, encoding="utf-8", huge_tree=True))
    assert root is not None and root.tag == "html"
    elements = [element for element in root.iter() if isinstance(element.tag, str)]
    assert {element.tag for element in elements} <= PAGE_ELEMENTS, {e.tag for e in elements} - PAGE_ELEMENTS
    assert len(root.findall("head/style")) == 1 and len(root.findall(".//style")) == 1
    assert all(link.getparent().tag == "head" for link in root.iter("link"))
    assert all(link.get("rel") in ("icon", "alternate") for link in root.iter("link"))
    for element in elements:
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            if name in ("href", "src"):
                assert SAFE_URL.match(value) and not value.lower().startswith("mailto:"), value
    entries = root.findall("body/ul[@class='posts']/li")
    assert entries, "no list of entries"
    return [(a.get("href", ""), a.text or "") for entry in entries for a in entry.findall("a")]
