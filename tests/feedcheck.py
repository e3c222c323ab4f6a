"""Checks every generated document must pass: strict XML, feedparser with no bozo flag."""

from __future__ import annotations

import json
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
    assert [e.id for e in atom.entries] == [e.id for e in rss.entries] or _non_uri_ids(rss)
    assert [item["id"] for item in feed["items"]] == ids
    return rss, atom, feed


def _non_uri_ids(rss: Any) -> bool:
    return any(not urlsplit(entry.id).scheme for entry in rss.entries)
