"""From posts to feed bytes: select, render the newest, write RSS, Atom and JSON Feed.

Pure: the same posts, settings and `now` always give byte-identical documents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from feeds.config import Settings
from feeds.errors import Problem
from feeds.jsonfeed import json_feed
from feeds.markdown import render, summarize
from feeds.posts import Author, Post
from feeds.select import select
from feeds.xmlfeeds import Channel, Item, atom, rss

FEED_PATHS = {"rss": "/rss.xml", "atom": "/atom.xml", "json": "/feed.json"}


@dataclass(frozen=True)
class FeedDocuments:
    rss: bytes
    atom: bytes
    json: bytes
    updated: dt.datetime | None  # the newest entry's update time; None for an empty feed


@dataclass(frozen=True)
class Build:
    """One complete result of the pipeline: the documents and how they came to be."""

    documents: FeedDocuments
    items: tuple[Item, ...]
    files_read: int
    used: int
    held_back: int
    problems: tuple[Problem, ...]
    next_release: dt.datetime | None

    @property
    def skipped(self) -> int:
        return len({problem.path for problem in self.problems})


def make_item(post: Post, body: str) -> Item:
    """`post` with its Markdown `body` rendered and its summary decided."""
    rendered = render(body, post.permalink)
    return Item(post, rendered.html, post.summary or summarize(rendered, post.title))


def site_channel(settings: Settings) -> Channel:
    return Channel(
        id=settings.url("/"),
        title=settings.title,
        description=settings.description,
        home_url=settings.url("/"),
        language=settings.language,
        author=Author(settings.author_name, settings.author_email),
        rss_url=settings.url(FEED_PATHS["rss"]),
        atom_url=settings.url(FEED_PATHS["atom"]),
        json_url=settings.url(FEED_PATHS["json"]),
    )


def documents(channel: Channel, items: Sequence[Item]) -> FeedDocuments:
    return FeedDocuments(
        rss=rss(channel, items),
        atom=atom(channel, items),
        json=json_feed(channel, items),
        updated=max((item.post.updated for item in items), default=None),
    )


def build(
    posts: Iterable[Post],
    problems: Iterable[Problem],
    files_read: int,
    now: dt.datetime,
    settings: Settings,
    itemize: Callable[[Post], Item],
) -> Build:
    """Builds the site feeds; `itemize` makes the item of a post that reaches a feed
    (reading its body, or reusing an item rendered before)."""
    selection = select(posts, now)
    items = tuple(itemize(post) for post in selection.posts[: settings.item_limit])
    return Build(
        documents=documents(site_channel(settings), items),
        items=items,
        files_read=files_read,
        used=len(selection.posts),
        held_back=selection.held_back,
        problems=tuple(sorted([*problems, *selection.duplicates])),
        next_release=selection.next_release,
    )
