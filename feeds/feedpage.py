"""The HTML page of a feed: what a person sees who opens a feed's URL in a browser.

Browsers no longer show feeds as pages (Chromium is removing the XSLT that the feeds'
stylesheet needs), so the service answers a browser's navigation to any feed with
this page instead (see `feeds.caching`): the feed's title, what a feed is and the
addresses to copy into a reader, and the latest entries with their summaries. One
page serves every format of a folder (`rss.xml`, `atom.xml`, `feed.json`), so it lists
all their addresses. Pure: every value from settings or posts is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from feeds.dates import rfc3339
from feeds.index import icon_link
from feeds.routes import ATOM_TYPE, JSON_TYPE, RSS_TYPE
from feeds.routes import PAGE_FILE as PAGE_FILE  # re-exported
from feeds.routes import page_path as page_path  # re-exported
from feeds.text import shorten
from feeds.xmlfeeds import Channel, Item, ItemTexts


class Snippets(ItemTexts):
    """Each item's line of a page, written once and reused by every page that lists it."""

    def make(self, item: Item) -> str:
        return _entry(item)


def feed_page(
    channel: Channel, items: Sequence[Item], current: Channel | None = None, snippets: Snippets | None = None
) -> bytes:
    """The page of the feed `channel` lists `items` in. For an archive page (RFC 5005),
    `current` is the feed it belongs to: its addresses are the ones to subscribe to."""
    write = snippets.text if snippets else _entry
    follow = current or channel
    title = escape(channel.title)
    addresses = _addresses(follow)
    discovery = "\n".join(
        f'<link rel="alternate" type="{kind}" title="{escape(follow.title)} ({name})" href="{escape(url)}">'
        for name, url, kind in addresses
    )
    if current is None:
        intro = (
            "<strong>This address is a web feed.</strong> A feed reader, an app or a website, "
            "checks it for you and shows each new post as it comes out. To follow it, copy one "
            "of these addresses into your reader:"
        )
    else:
        intro = (
            f"<strong>This is a page of the archive of {escape(current.title)}.</strong> To "
            "follow new posts in a feed reader, an app or a website that checks feeds for you, "
            "copy one of these addresses into your reader:"
        )
    rows = "\n".join(f"<li>{name}: <code>{escape(url)}</code></li>" for name, url, _ in addresses)
    entries = "\n".join(map(write, items)) or "<li>No posts yet.</li>"
    page = f"""<!doctype html>
<html lang="{escape(channel.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} (web feed)</title>
{icon_link(channel.icon)}{discovery}
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}}
.follow{{background:#eef5ff;border:1px solid #b9d3f5;border-radius:6px;padding:.25rem 1rem}}
code{{background:#fff;padding:0 .25rem;word-break:break-all;user-select:all}}
.posts li{{margin:1rem 0}}.posts p{{margin:.25rem 0 0;color:#444}}
time{{color:#666;font-size:.9em;margin-left:.5rem}}</style>
</head>
<body>
<h1>{title}</h1>
<p>{escape(channel.description)}</p>
<div class="follow">
<p>{intro}</p>
<ul>
{rows}
</ul>
</div>
<p><a href="{escape(channel.home_url)}">Visit the site</a></p>
<h2>{"Latest posts" if current is None else "Posts on this page"}</h2>
<ul class="posts">
{entries}
</ul>
</body>
</html>
"""
    return page.encode("utf-8")


def _addresses(channel: Channel) -> list[tuple[str, str, str]]:
    return [
        ("RSS", channel.rss_url, RSS_TYPE),
        ("Atom", channel.atom_url, ATOM_TYPE),
        ("JSON Feed", channel.json_url, JSON_TYPE),
    ]


def _entry(item: Item) -> str:
    post = item.post
    when = rfc3339(post.date)
    return (
        f'<li><a href="{escape(post.permalink)}">{escape(post.title)}</a> '
        f'<time datetime="{when}">{when[:10]}</time>\n<p>{escape(shorten(item.summary))}</p></li>'
    )
