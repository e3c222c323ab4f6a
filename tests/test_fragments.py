"""Each item's RSS, Atom and JSON Feed text is serialized once and put into every
document that lists it. The documents must be the very bytes that writing each one
whole gives (lxml for RSS and Atom, `json.dumps` for JSON Feed), and a kept text serves
only the same version of its item: an edited post is written anew."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json

from lxml import etree

from feeds import xmlfeeds
from feeds.build import site_channel
from feeds.config import Settings
from feeds.feedpage import Snippets, feed_page
from feeds.jsonfeed import VERSION, Fragments, _author, _item, json_feed
from feeds.pipeline import Pipeline
from feeds.routes import ATOM_TYPE, RSS_TYPE
from feeds.xmlfeeds import Channel, Entries, Item, Paging, atom, rss

from conftest import WritePost

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BODIES = (
    "Café au lait, naïve façade.\n\n```\n<item>not a tag</item>\n```\n",
    "Plain words.\n\nA [link](other/) and ![an image](pic.png).\n",
    "]]> and <![CDATA[ in text, & ampersands.\n",
)


def items_of(write_post: WritePost, settings: Settings) -> list[Item]:
    for number, body in enumerate(BODIES):
        write_post(
            f"notes/post-{number}.md",
            title=f"Post {number} “quoted” <b>",
            date=str(1_700_000_000 + number),
            body=body,
            description=None if number else 'A summary with "items": [] inside',
        )
    pipeline = Pipeline(settings)
    reading = pipeline.read()
    pipeline.build(reading, NOW)
    return sorted(pipeline._items.values(), key=lambda item: item.post.source)


def whole_json(channel: Channel, items: list[Item]) -> bytes:
    """JSON Feed as the whole document encoded at once."""
    document: dict[str, object] = {
        "version": VERSION,
        "title": channel.title,
        "home_page_url": channel.home_url,
        "feed_url": channel.json_url,
        "description": channel.description,
        "language": channel.language,
        "authors": [_author(channel.author)],
        "items": [_item(item) for item in items],
    }
    if channel.icon:
        document["icon"] = document["favicon"] = channel.icon
    if channel.hub:
        document["hubs"] = [{"type": "WebSub", "url": channel.hub}]
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()


def whole_xml(kind: str, channel: Channel, items: list[Item], paging: Paging) -> bytes:
    """RSS or Atom as lxml writes the whole tree, the entries' elements appended."""
    elements = xmlfeeds._entry_elements(items)
    if kind == "rss":
        root = xmlfeeds._rss_tree(xmlfeeds._generator(channel, items, channel.rss_url, RSS_TYPE))
        parent = root.find("channel")
        assert parent is not None
        self_link = parent.find(f"{{{xmlfeeds.ATOM_NS}}}link")
        assert self_link is not None
        position = list(parent).index(self_link) + 1
        for element in reversed(xmlfeeds._link_elements(channel, paging)):
            parent.insert(position, element)
    else:
        generator = xmlfeeds._generator(channel, items, channel.atom_url, ATOM_TYPE)
        root = parent = etree.fromstring(generator.atom_str(), xmlfeeds._PARSER)
        root.extend(xmlfeeds._link_elements(channel, paging))
    parent.extend(copy.deepcopy(elements[item][0 if kind == "rss" else 1]) for item in items)
    return xmlfeeds._serialize(root)


def test_documents_from_kept_texts_equal_documents_written_whole(
    write_post: WritePost, settings: Settings
) -> None:
    items = items_of(write_post, settings)
    plain = site_channel(settings)
    busy = dataclasses.replace(plain, hub="https://hub.example.com/", icon="https://example.com/i.png")
    paging = Paging(links=(("prev-archive", "https://example.com/archive/1/rss.xml"),), archive=True)
    entries, fragments, snippets = Entries(), Fragments(), Snippets()
    for channel in (plain, busy):
        for chosen in ([], items[:1], items, items[::-1]):
            assert json_feed(channel, chosen, fragments) == whole_json(channel, chosen)
            assert feed_page(channel, chosen, None, snippets) == feed_page(channel, chosen)
            for kind, write in (("rss", rss), ("atom", atom)):
                for links in (xmlfeeds.NO_PAGING, paging):
                    assert write(channel, chosen, links, entries) == whole_xml(kind, channel, chosen, links)


def test_a_kept_text_serves_the_same_version_of_its_item_only(
    write_post: WritePost, settings: Settings
) -> None:
    item = items_of(write_post, settings)[1]
    entries, fragments, snippets = Entries(), Fragments(), Snippets()
    texts = (
        entries.fragments("rss", [item])[0],
        entries.fragments("atom", [item])[0],
        fragments.text(item),
        snippets.text(item),
    )
    # The next build's caches hand back the very same texts for the same item.
    later, later_json, later_page = entries.carried(), fragments.carried(), snippets.carried()
    assert later.fragments("rss", [item])[0] is texts[0]
    assert later.fragments("atom", [item])[0] is texts[1]
    assert later_json.text(item) is texts[2]
    assert later_page.text(item) is texts[3]
    # An edited post is a new item: its texts are written anew, with the edit in them.
    edited = Item(dataclasses.replace(item.post, title="Edited title"), item.html, "Edited summary")
    new_texts = (
        later.fragments("rss", [edited])[0],
        later.fragments("atom", [edited])[0],
        later_json.text(edited),
        later_page.text(edited),
    )
    for old, new in zip(texts, new_texts, strict=True):
        assert old != new
        assert "Edited title" in (new.decode() if isinstance(new, bytes) else new)
        assert "Edited summary" in (new.decode() if isinstance(new, bytes) else new)
    # What a build no longer uses is let go by the next one (then written again, equal).
    only_edited = entries.carried()
    only_edited.fragments("rss", [edited])
    again = only_edited.carried().fragments("rss", [item])[0]
    assert again is not texts[0] and again == texts[0]
