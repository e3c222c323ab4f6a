"""Where the published documents live and what they are: file names, URL keys and
media types, shared by the build (which writes them) and the web workers (which serve
them). Only the standard library here, so that a web worker never loads the build code
(feedgen, lxml, the post parser) to learn a name or a content type.
"""

from __future__ import annotations

import hashlib
import unicodedata

RSS_TYPE = "application/rss+xml"
ATOM_TYPE = "application/atom+xml"
JSON_TYPE = "application/feed+json"
OPML_PATH = "feeds.opml"
# Not registered with IANA, but what OPML tools send and expect (OPML 2.0 names no type).
OPML_TYPE = "text/x-opml"
PAGE_FILE = "feed.html"

# The kinds whose feeds live below a folder of that name: /tags/<key>/rss.xml.
KINDS = ("tags", "categories", "authors")

# A key is a folder name on disk, and file systems refuse names over 255 bytes (NAME_MAX
# on Linux's ext4, XFS, Btrfs and tmpfs; APFS counts 255 UTF-8 bytes too). Every key
# that fitted before is kept as it was, so existing feed URLs stay.
MAX_KEY_BYTES = 255
_DIGEST_BYTES = 8  # 16 hex digits: two long keys with the same head still differ


def page_path(feed_path: str) -> str:
    """Where the page of a feed is published: in its folder, `tags/c++/rss.xml` ->
    `tags/c++/feed.html`, `rss.xml` -> `feed.html`. The web layer serves it only to a
    browser's navigation to one of the folder's feeds, never at its own path."""
    folder, slash, _ = feed_path.rpartition("/")
    return folder + slash + PAGE_FILE


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
