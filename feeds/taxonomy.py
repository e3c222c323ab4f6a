"""Tags and categories as feeds of their own: one key per term, whatever its case or
spacing, so that `C++`, `c++` and ` C++ ` are one feed, and `Web Dev` is `web-dev`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from urllib.parse import quote

from feeds.posts import Post

KINDS = ("tags", "categories")


@dataclass(frozen=True)
class Term:
    kind: str  # "tags" or "categories"
    key: str  # the folder name on disk and, percent-encoded, the URL segment
    name: str  # as the first post (by path) spells it
    posts: tuple[Post, ...]  # newest first

    @property
    def path(self) -> str:
        """The term's URL path prefix, e.g. `/tags/c%2B%2B/`."""
        return f"/{self.kind}/{quote(self.key, safe='')}/"


def term_key(name: str) -> str | None:
    """The key of a term: case-folded, whitespace runs and path separators turned into
    `-`; None when nothing usable is left (a term of dots alone could climb folders)."""
    key = "-".join(name.replace("/", " ").replace("\\", " ").casefold().split())
    key = key.strip(".-")
    return key or None


def group_terms(posts: Iterable[Post]) -> tuple[Term, ...]:
    """Every tag and category of `posts` (given newest first), sorted by kind and key."""
    ordered = tuple(posts)
    names: dict[tuple[str, str], str] = {}
    members: dict[tuple[str, str], list[Post]] = {}
    for post in sorted(ordered, key=attrgetter("source")):
        for kind, terms in (("tags", post.tags), ("categories", post.categories)):
            for name in terms:
                key = term_key(name)
                if key is not None:
                    names.setdefault((kind, key), name)
    for post in ordered:
        for kind, terms in (("tags", post.tags), ("categories", post.categories)):
            for key in dict.fromkeys(k for k in map(term_key, terms) if k is not None):
                members.setdefault((kind, key), []).append(post)
    return tuple(
        Term(kind, key, names[(kind, key)], tuple(members[(kind, key)])) for kind, key in sorted(members)
    )
