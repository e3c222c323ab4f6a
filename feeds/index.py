"""The small HTML page at `/`: the site, its three feeds (with autodiscovery links),
the latest posts, the feeds of every section, tag, category and author, and the OPML
list of them all. Every value from settings, folder names or posts is HTML-escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from feeds.config import Settings
from feeds.dates import rfc3339
from feeds.routes import ATOM_TYPE, JSON_TYPE, OPML_PATH, OPML_TYPE, RSS_TYPE
from feeds.taxonomy import HEADINGS, Term
from feeds.xmlfeeds import Item

INDEX_FILE = "index.html"
FEEDS = (
    ("RSS", "rss.xml", RSS_TYPE),
    ("Atom", "atom.xml", ATOM_TYPE),
    ("JSON Feed", "feed.json", JSON_TYPE),
)


def index_html(settings: Settings, items: Sequence[Item], terms: Sequence[Term] = ()) -> bytes:
    title = escape(settings.title)
    discovery = [
        f'<link rel="alternate" type="{kind}" title="{title} ({name})" href="{escape(settings.url(file))}">'
        for name, file, kind in FEEDS
    ]
    discovery += [
        f'<link rel="alternate" type="{RSS_TYPE}" title="{title}: {escape(term.name)}" '
        f'href="{escape(settings.url(term.path + "rss.xml"))}">'
        for term in terms
    ]
    posts = "\n".join(
        f'<li><a href="{escape(item.post.permalink)}">{escape(item.post.title)}</a> '
        f'<time datetime="{rfc3339(item.post.date)}">{rfc3339(item.post.date)[:10]}</time></li>'
        for item in items
    )
    sections = []
    for kind, heading in HEADINGS.items():
        rows = [
            f"<li>{escape(term.name)} ({len(term.posts)}): {_feed_links(settings, term.path)}</li>"
            for term in terms
            if term.kind == kind
        ]
        if rows:
            sections.append(f"<h2>{heading}</h2>\n<ul>\n" + "\n".join(rows) + "\n</ul>")
    newline = "\n"
    page = f"""<!doctype html>
<html lang="{escape(settings.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{icon_link(settings.icon)}{newline.join(discovery)}
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}}
time{{color:#666;margin-left:.5rem}}</style>
</head>
<body>
<h1>{title}</h1>
<p>{escape(settings.description)}</p>
<p>Subscribe: {_feed_links(settings, "/")}</p>
<p>Every feed of this site in one file, for your reader to import:
<a href="{escape(settings.url(OPML_PATH))}" type="{OPML_TYPE}">{OPML_PATH}</a> (OPML)</p>
<h2>Latest posts</h2>
<ul>
{posts or "<li>No posts yet.</li>"}
</ul>
{newline.join(sections)}
</body>
</html>
"""
    return page.encode("utf-8")


def icon_link(icon: str) -> str:
    """The `<link rel="icon">` line of a page, or nothing without an icon."""
    return f'<link rel="icon" href="{escape(icon)}">\n' if icon else ""


def _feed_links(settings: Settings, prefix: str) -> str:
    return " · ".join(
        f'<a href="{escape(settings.url(prefix + file))}">{name}</a>' for name, file, _ in FEEDS
    )
