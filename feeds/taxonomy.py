"""Tags, categories, authors and sections as feeds of their own: one key per term,
whatever its case, spacing or Unicode normal form, so that `C++`, `c++` and ` C++ ` are
one feed, `Web Dev` is `web-dev`, and `café` is one key whether its `é` is one code point
or two. A section is a top-level folder of the content directory, keyed the same way."""

from __future__ import annotations

import unicodedata
from bisect import insort
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


class TermGroups:
    """`group_terms` that remembers its last answer, so that a build after a few changed
    posts regroups only the terms those posts name, not the whole site. It always gives
    what `group_terms` gives for the same posts: unchanged posts keep their order among
    themselves (by date, then path), so a term none of the changed posts names keeps its
    posts and its name. Posts are told apart by identity, as the pipeline keeps the very
    object of each unchanged post; this object holds the last posts, so their ids stay
    theirs."""

    MAX_CHANGES = 256  # beyond this many changed posts, grouping anew is as quick

    def __init__(
        self, posts: tuple[Post, ...] = (), terms: dict[tuple[str, str], Term] | None = None
    ) -> None:
        self._posts = posts
        self._terms = terms or {}

    def carried(self) -> TermGroups:
        """A copy to build with: a build that fails leaves this one as it was."""
        return TermGroups(self._posts, self._terms)

    def group(self, posts: Iterable[Post]) -> tuple[Term, ...]:
        ordered = tuple(posts)
        old_ids, new_ids = set(map(id, self._posts)), set(map(id, ordered))
        gone_ids, new_only = old_ids - new_ids, new_ids - old_ids
        if not self._posts or len(gone_ids) + len(new_only) > self.MAX_CHANGES:
            terms = {(term.kind, term.key): term for term in group_terms(ordered)}
        else:
            terms = self._regroup(ordered, gone_ids, new_only)
        self._posts, self._terms = ordered, terms
        return tuple(terms[key] for key in sorted(terms))

    def _regroup(
        self, ordered: tuple[Post, ...], gone_ids: set[int], new_ids: set[int]
    ) -> dict[tuple[str, str], Term]:
        gone = [post for post in self._posts if id(post) in gone_ids] if gone_ids else []
        added = [post for post in ordered if id(post) in new_ids] if new_ids else []
        affected = {(kind, key) for post in (*gone, *added) for kind, key, _ in _keyed(post)}
        position = dict(zip(map(id, ordered), range(len(ordered)), strict=True))
        terms = dict(self._terms)
        for kind, key in affected:
            before = terms.pop((kind, key), None)
            # The members that stay are in order already: the new ones are put in place.
            members = [post for post in (before.posts if before else ()) if id(post) not in gone_ids]
            for post in added:
                if (kind, key) in {(k, c) for k, c, _ in _keyed(post)}:
                    insort(members, post, key=lambda member: position[id(member)])
            if members:
                first = min(members, key=attrgetter("source"))
                name = next(n for k, c, n in _keyed(first) if (k, c) == (kind, key))
                terms[(kind, key)] = Term(kind, key, name, tuple(members))
        return terms


def _keyed(post: Post) -> list[tuple[str, str, str]]:
    """(kind, key, name) of each term `post` names, in the order it names them; a key
    named twice keeps its first spelling."""
    seen: dict[tuple[str, str], str] = {}
    for kind, names in _names(post):
        for name in names:
            key = term_key(name)
            if key is not None:
                seen.setdefault((kind, key), name)
    return [(kind, key, name) for (kind, key), name in seen.items()]


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


class SectionGroups:
    """`group_sections` that remembers its last answer, as `TermGroups` does for terms: a
    build after a few changed posts moves only those posts in their sections' lists.
    While every folder keeps at least one post and no new folder appears, the sections'
    keys, names and the refused folders stay as they were; otherwise (and beyond
    MAX_CHANGES changed posts) it groups anew. Always what `group_sections` gives."""

    MAX_CHANGES = 256

    def __init__(
        self,
        posts: tuple[Post, ...] = (),
        grouped: tuple[tuple[Term, ...], tuple[str, ...]] | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        self._posts = posts
        self._grouped = grouped
        self._counts = counts or {}  # posts per top-level folder

    def carried(self) -> SectionGroups:
        """A copy to build with: a build that fails leaves this one as it was."""
        return SectionGroups(self._posts, self._grouped, self._counts)

    def group(self, posts: Iterable[Post]) -> tuple[tuple[Term, ...], tuple[str, ...]]:
        ordered = tuple(posts)
        grouped = self._grouped
        if grouped is not None and ordered == self._posts:
            return grouped  # the very posts, in the same order (compared by identity first)
        old_ids, new_ids = set(map(id, self._posts)), set(map(id, ordered))
        gone_ids, new_only = old_ids - new_ids, new_ids - old_ids
        regrouped = None
        if grouped is not None and len(gone_ids) + len(new_only) <= self.MAX_CHANGES:
            regrouped = self._regroup(grouped, ordered, gone_ids, new_only)
        if regrouped is None:
            regrouped = group_sections(ordered)
            self._counts = _folder_counts(ordered)
        self._posts, self._grouped = ordered, regrouped
        return regrouped

    def _regroup(
        self,
        grouped: tuple[tuple[Term, ...], tuple[str, ...]],
        ordered: tuple[Post, ...],
        gone_ids: set[int],
        new_ids: set[int],
    ) -> tuple[tuple[Term, ...], tuple[str, ...]] | None:
        gone = [post for post in self._posts if id(post) in gone_ids] if gone_ids else []
        added = [post for post in ordered if id(post) in new_ids] if new_ids else []
        counts = dict(self._counts)
        for post in gone:
            folder = _folder(post)
            if folder is not None:
                counts[folder] -= 1
        for post in added:
            folder = _folder(post)
            if folder is not None:
                if folder not in counts:
                    return None  # a new folder: a new section, or a new name or refusal
                counts[folder] += 1
        if 0 in counts.values():
            return None  # a folder lost its last post
        sections, refused = grouped
        by_key = {term.key: term for term in sections}
        changed = {folder for folder in map(_folder, (*gone, *added)) if folder is not None}
        key_of = {folder: key for folder in changed if (key := _key_or_none(folder)) in by_key}
        position = dict(zip(map(id, ordered), range(len(ordered)), strict=True))
        for key in set(key_of.values()):
            term = by_key[key]
            members = [post for post in term.posts if id(post) not in gone_ids]
            for post in added:
                if key_of.get(_folder(post) or "") == key:
                    insort(members, post, key=lambda member: position[id(member)])
            by_key[key] = Term(SECTIONS, key, term.name, tuple(members))
        self._counts = counts
        return tuple(by_key[term.key] for term in sections), refused


def _folder(post: Post) -> str | None:
    """The top-level folder of `post`, None for a post at the top level."""
    folder, slash, _ = post.source.partition("/")
    return folder if slash else None


def _folder_counts(posts: Iterable[Post]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for post in posts:
        folder = _folder(post)
        if folder is not None:
            counts[folder] = counts.get(folder, 0) + 1
    return counts


def _key_or_none(folder: str) -> str | None:
    try:
        return section_key(folder)
    except ValueError:
        return None
