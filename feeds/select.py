"""Which posts a feed shows: no drafts, nothing from the future, one post per id,
newest first. Pure: `now` is given, never read from the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

from feeds.errors import Problem
from feeds.posts import Post


@dataclass(frozen=True)
class Selection:
    posts: tuple[Post, ...]  # every publishable post, newest first
    duplicates: tuple[Problem, ...]
    held_back: int  # drafts and posts dated after `now`
    next_release: dt.datetime | None  # when the earliest future post becomes visible


def select(posts: Iterable[Post], now: dt.datetime) -> Selection:
    """Orders and filters `posts`; the first by source path wins a shared permalink or id."""
    visible: list[Post] = []
    held_back = 0
    future: list[dt.datetime] = []
    for post in sorted(posts, key=attrgetter("source")):
        if post.draft:
            held_back += 1
        elif post.date > now:
            held_back += 1
            future.append(post.date)
        else:
            visible.append(post)
    kept: list[Post] = []
    duplicates: list[Problem] = []
    permalink_owner: dict[str, str] = {}
    id_owner: dict[str, str] = {}
    for post in visible:
        first = permalink_owner.get(post.permalink)
        field = "permalink"
        if first is None:
            first, field = id_owner.get(post.id), "id"
        if first is not None:
            duplicates.append(Problem(post.source, field, f"same {field} as {first}, which is kept"))
            continue
        permalink_owner[post.permalink] = id_owner[post.id] = post.source
        kept.append(post)
    kept.sort(key=attrgetter("date"), reverse=True)  # stable: equal dates stay in path order
    return Selection(tuple(kept), tuple(duplicates), held_back, min(future, default=None))
