"""The small HTML page at `/`: the site, its three feeds (with autodiscovery links)
and the latest posts. Every value from settings or posts is HTML-escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from feeds.config import Settings
from feeds.dates import rfc3339
from feeds.xmlfeeds import ATOM_TYPE, JSON_TYPE, RSS_TYPE, Item

FEEDS = (
    ("RSS", "/rss.xml", RSS_TYPE),
    ("Atom", "/atom.xml", ATOM_TYPE),
    ("JSON Feed", "/feed.json", JSON_TYPE),
)


def index_html(settings: Settings, items: Sequence[Item]) -> bytes:
    title = escape(settings.title)
    discovery = "\n".join(
        f'<link rel="alternate" type="{kind}" title="{title} ({name})" href="{escape(settings.url(path))}">'
        for name, path, kind in FEEDS
    )
    feed_links = " · ".join(f'<a href="{escape(settings.url(path))}">{name}</a>' for name, path, _ in FEEDS)
    posts = "\n".join(
        f'<li><a href="{escape(item.post.permalink)}">{escape(item.post.title)}</a> '
        f'<time datetime="{rfc3339(item.post.date)}">{rfc3339(item.post.date)[:10]}</time></li>'
        for item in items
    )
    page = f"""<!doctype html>
<html lang="{escape(settings.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{discovery}
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}}
time{{color:#666;margin-left:.5rem}}</style>
</head>
<body>
<h1>{title}</h1>
<p>{escape(settings.description)}</p>
<p>Subscribe: {feed_links}</p>
<h2>Latest posts</h2>
<ul>
{posts or "<li>No posts yet.</li>"}
</ul>
</body>
</html>
"""
    return page.encode("utf-8")
