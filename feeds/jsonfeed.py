"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1), written with the standard library:
no maintained package writes 1.1, and the format is a few keys."""

from __future__ import annotations

import json
from collections.abc import Sequence

from feeds.dates import rfc3339
from feeds.posts import Author
from feeds.xmlfeeds import Channel, Item, ItemTexts

VERSION = "https://jsonfeed.org/version/1.1"


# The items sit at depth 2 of the document (the list of the `items` key), so each item
# encoded on its own is indented four spaces more: JSON text never holds a raw newline
# inside a string, so every newline is an indentation break.
_ITEM_BREAK = "\n" + " " * 4
_EMPTY_ITEMS = '"items": []'


class Fragments(ItemTexts):
    """Each item encoded once, as JSON text indented for its place in a document, and
    reused by every document that lists the item (the site's feed, its section's, tags',
    categories' and authors')."""

    def make(self, item: Item) -> str:
        return json.dumps(_item(item), ensure_ascii=False, indent=2).replace("\n", _ITEM_BREAK)


def json_feed(channel: Channel, items: Sequence[Item], fragments: Fragments | None = None) -> bytes:
    """The JSON Feed 1.1 document of `channel` listing `items`. The same bytes as
    `json.dumps` of the whole document with an indent of 2: the items are that
    encoder's output for each item alone, put in place of the empty list."""
    fragments = fragments or Fragments()
    document: dict[str, object] = {
        "version": VERSION,
        "title": channel.title,
        "home_page_url": channel.home_url,
        "feed_url": channel.json_url,
        "description": channel.description,
        "language": channel.language,
        "authors": [_author(channel.author)],
        "items": [],
    }
    if channel.icon:
        # JSON Feed 1.1 wants both square: a large `icon` and a small `favicon`; the
        # site's one square image serves as both (a wide logo fits neither).
        document["icon"] = channel.icon
        document["favicon"] = channel.icon
    if channel.hub:
        document["hubs"] = [{"type": "WebSub", "url": channel.hub}]
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if items:
        # Every key before `items` is escaped JSON text, in which `"items": []` cannot
        # occur (its quotes would be escaped), so the first match is the list itself.
        listed = "[" + _ITEM_BREAK + ("," + _ITEM_BREAK).join(map(fragments.text, items)) + "\n  ]"
        text = text.replace(_EMPTY_ITEMS, '"items": ' + listed, 1)
    return (text + "\n").encode("utf-8")


def _item(item: Item) -> dict[str, object]:
    post = item.post
    fields: dict[str, object] = {
        "id": post.id,
        "url": post.permalink,
        "title": post.title,
        # JSON Feed 1.1 needs content_html or content_text in every item.
        **({"content_html": item.html} if item.html else {"content_text": item.summary}),
        "summary": item.summary,
        "date_published": rfc3339(post.date),
        "date_modified": rfc3339(post.updated),
        "authors": [_author(a) for a in post.authors],
    }
    if post.image:
        fields["image"] = post.image
    terms = list(dict.fromkeys(post.tags + post.categories))
    if terms:
        fields["tags"] = terms
    return fields


def _author(author: Author) -> dict[str, str]:
    # JSON Feed authors have a name and a URL but no email field: a mailto: URL carries it.
    url = author.uri or (f"mailto:{author.email}" if author.email else "")
    return {"name": author.name, "url": url} if url else {"name": author.name}
