"""The OPML 2.0 subscription list of a site's feeds (http://opml.org/spec2.opml), which a
feed reader imports to subscribe to all of them at once.

Pure: the same channels give the same bytes. No date is written (`dateCreated` is
optional), so the list changes only when the feeds do. lxml escapes every value, and
characters XML cannot carry are removed first, so no title can break the document.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from feeds.routes import OPML_PATH as OPML_PATH  # re-exported
from feeds.routes import OPML_TYPE as OPML_TYPE  # re-exported
from feeds.text import clean
from feeds.xmlfeeds import Channel

SPEC_URL = "http://opml.org/spec2.opml"


def opml(title: str, site: Channel, groups: Sequence[tuple[str, Sequence[Channel]]]) -> bytes:
    """The list: the site's feed first, then one folder outline per non-empty group
    (readers that keep folders, such as FreshRSS and NewsBlur, file the feeds under it),
    each feed one `type="rss"` outline with its absolute `xmlUrl`."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = clean(title)
    etree.SubElement(head, "docs").text = SPEC_URL
    body = etree.SubElement(root, "body")
    _outline(body, site)
    for heading, channels in groups:
        if channels:
            folder = etree.SubElement(body, "outline", text=clean(heading))
            for channel in channels:
                _outline(folder, channel)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _outline(parent: etree._Element, channel: Channel) -> None:
    # `text` is required on every outline (OPML 2.0, "Attributes of <outline>"), `title`
    # is what some readers read instead, and a subscription list marks each feed
    # `type="rss"` (OPML 2.0, "Subscription lists"), whatever its format.
    attributes = {
        "type": "rss",
        "text": channel.title,
        "title": channel.title,
        "description": channel.description,
        "xmlUrl": channel.rss_url,
        "htmlUrl": channel.home_url,
    }
    etree.SubElement(parent, "outline", {name: clean(value) for name, value in attributes.items()})
