"""Tags and categories as feeds of their own: one key per term, whatever its case,
spacing or Unicode normal form, so that `C++`, `c++` and ` C++ ` are one feed, `Web Dev`
is `web-dev`, and `café` is one key whether its `é` is one code point or two."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from urllib.parse import quote

from feeds.posts import Post

KINDS = ("tags", "categories")

# A key is a folder name on disk, and file systems refuse names over 255 bytes (NAME_MAX
# on Linux's ext4, XFS, Btrfs and tmpfs; APFS counts 255 UTF-8 bytes too). Every key
# that fitted before is kept as it was, so existing feed URLs stay.
MAX_KEY_BYTES = 255
_DIGEST_BYTES = 8  # 16 hex digits: two long keys with the same head still differ


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
    """The key of a term: case-folded, in Unicode NFC, whitespace runs and path
    separators turned into `-`, at most `MAX_KEY_BYTES` bytes of UTF-8; None when
    nothing usable is left (a term of dots alone could climb folders).

    A longer key keeps its head, cut at a character boundary, and ends with `-` and a
    digest of the whole key, so it stays unique and stable; a key is its own key, so a
    request for the short form finds the same feed as one for the whole name."""
    if name.isascii():
        folded = name.casefold()
    else:
        # Canonical caseless matching (Unicode §3.13): NFD before case folding, since
        # folding a precomposed letter can give another text than folding its parts.
        folded = unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())
    key = "-".join(folded.replace("/", " ").replace("\\", " ").split()).strip(".-")
    if not key:
        return None
    encoded = key.encode()
    if len(encoded) <= MAX_KEY_BYTES:
        return key
    digest = hashlib.blake2b(encoded, digest_size=_DIGEST_BYTES).hexdigest()
    head = encoded[: MAX_KEY_BYTES - len(digest) - 1].decode(errors="ignore")  # drops a cut character
    return f"{head}-{digest}"


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
