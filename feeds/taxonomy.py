"""Tags, categories, authors and sections as feeds of their own: one key per term,
whatever its case, spacing or Unicode normal form, so that `C++`, `c++` and ` C++ ` are
one feed, `Web Dev` is `web-dev`, and `café` is one key whether its `é` is one code point
or two. A section is a top-level folder of the content directory, keyed the same way."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from urllib.parse import quote

from feeds.posts import Post
from feeds.routes import KINDS, term_key
from feeds.routes import MAX_KEY_BYTES as MAX_KEY_BYTES  # re-exported
from feeds.text import brief, clean, one_line

# Sections have no such folder: /<key>/rss.xml, like a site generator's section pages.
SECTIONS = "sections"
# How the index page and the OPML list head each kind, in the order they show them.
HEADINGS = {SECTIONS: "Sections", "tags": "Tags", "categories": "Categories", "authors": "Authors"}
# Keys a section may not take, because the site's own files and routes use them at the
# top level: a folder named `tags` would share /tags/ with the tag feeds, and one named
# `rss.xml`, `index.html.gz` or `build.json` would be a folder where the build or the
# published generation writes a file of that name. Keys are case-folded, so `Tags`,
# `RSS.xml` and `ARCHIVE` are refused too.
_TOP_LEVEL_FILES = (
    "rss.xml",
    "atom.xml",
    "feed.json",
    "feed.html",
    "feed.xsl",
    "feeds.opml",
    "index.html",
    "build.json",
)
RESERVED_SECTION_KEYS = frozenset(
    {*KINDS, "archive", "healthz", "metrics", *_TOP_LEVEL_FILES, *(f"{name}.gz" for name in _TOP_LEVEL_FILES)}
)


@dataclass(frozen=True)
class Term:
    kind: str  # one of KINDS, or SECTIONS
    key: str  # the folder name on disk and, percent-encoded, the URL segment
    name: str  # as the first post (by path) spells it; a section, as its first folder by name
    posts: tuple[Post, ...]  # newest first

    @property
    def path(self) -> str:
        """The term's URL path prefix, e.g. `/tags/c%2B%2B/`, or `/notes/` for a section."""
        segment = quote(self.key, safe="")
        return f"/{segment}/" if self.kind == SECTIONS else f"/{self.kind}/{segment}/"

    @property
    def folder(self) -> str:
        """Where its feeds go below the output folder, e.g. `tags/c++/` or `notes/`."""
        return f"{self.key}/" if self.kind == SECTIONS else f"{self.kind}/{self.key}/"


def _names(post: Post) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (
        ("tags", post.tags),
        ("categories", post.categories),
        ("authors", tuple(author.name for author in post.authors)),
    )


def group_terms(posts: Iterable[Post]) -> tuple[Term, ...]:
    """Every tag, category and author of `posts` (given newest first), sorted by kind
    and key. The site's author counts for the posts that name no author."""
    ordered = tuple(posts)
    names: dict[tuple[str, str], str] = {}
    members: dict[tuple[str, str], list[Post]] = {}
    for post in sorted(ordered, key=attrgetter("source")):
        for kind, terms in _names(post):
            for name in terms:
                key = term_key(name)
                if key is not None:
                    names.setdefault((kind, key), name)
    for post in ordered:
        for kind, terms in _names(post):
            for key in dict.fromkeys(k for k in map(term_key, terms) if k is not None):
                members.setdefault((kind, key), []).append(post)
    return tuple(
        Term(kind, key, names[(kind, key)], tuple(members[(kind, key)])) for kind, key in sorted(members)
    )


def section_key(folder: str) -> str:
    """The key of the section of a top-level `folder`; ValueError saying why it has
    none: characters that are no UTF-8 text or that XML cannot carry (its URL and title
    could not show the folder), nothing usable left, or a key the site itself uses."""
    if clean(folder) != folder:
        raise ValueError("its name has bytes that are not UTF-8 text, or control characters")
    key = term_key(folder)
    if key is None:
        raise ValueError("its name leaves no key for a URL")
    if key in RESERVED_SECTION_KEYS:
        raise ValueError(f"its key {key!r} is one of the site's own routes")
    return key


def group_sections(posts: Iterable[Post]) -> tuple[tuple[Term, ...], tuple[str, ...]]:
    """The sections of `posts` (given newest first), sorted by key, and one line for
    each top-level folder that gets no section feeds, saying why. Posts at the top
    level belong to no section; folders whose names share a key are one section, named
    as the folder that sorts first."""
    ordered = tuple(posts)
    folders = sorted({post.source.partition("/")[0] for post in ordered if "/" in post.source})
    keys: dict[str, str] = {}
    names: dict[str, str] = {}
    refused = []
    for folder in folders:
        try:
            key = section_key(folder)
        except ValueError as error:
            refused.append(f"{brief(folder)}: section: no section feeds, {error}; rename the folder")
            continue
        keys[folder] = key
        names.setdefault(key, one_line(unicodedata.normalize("NFC", folder)))
    members: dict[str, list[Post]] = {}
    for post in ordered:
        folder, slash, _ = post.source.partition("/")
        if slash and folder in keys:
            members.setdefault(keys[folder], []).append(post)
    sections = tuple(Term(SECTIONS, key, names[key], tuple(members[key])) for key in sorted(members))
    return sections, tuple(refused)
