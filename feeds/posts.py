"""From a post file's bytes to a frozen `Post`: front matter read, checked and normalised.

Pure: takes bytes and settings, returns a value or raises `PostError` listing every
problem found in the post.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import re
import string
import tomllib
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit

import yaml
from frontmatter.default_handlers import BaseHandler, YAMLHandler

from feeds import yamlsubset
from feeds.config import Settings
from feeds.dates import parse_date
from feeds.errors import PostError, Problem
from feeds.markdown import first_paragraph
from feeds.text import brief, clean, one_line, shorten

T = TypeVar("T")
log = logging.getLogger("feeds.posts")

# A post without a summary of its own gets the first paragraph of this many characters
# of its body: enough for any real first paragraph, and a bounded cost for a huge body.
SUMMARY_SOURCE_CHARS = 8192

# Characters left as they are in a path; `%` keeps escapes the author already wrote.
_URL_SAFE = "/:@!$&'()*+,;=-._~%"
# Fast paths for the common cases, which need no quoting and no joining.
_PLAIN_SLUG = re.compile(r"[A-Za-z0-9._~-]+")
_DATE_PARTS = frozenset({"year", "month", "day"})
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?:[/?#][A-Za-z0-9._~!$&'()*+,;=:@%/?#-]*)?")
# One address, as a `mailto:` author URI carries it (RFC 6068), without a display name.
_MAIL_ADDRESS = re.compile(r"[^\s@,;:<>()\[\]\"]+@[^\s@,;:<>()\[\]\"]+")


class _TOMLHandler(BaseHandler):
    """TOML front matter between `+++` lines, read with the standard library's tomllib."""

    FM_BOUNDARY = re.compile(r"^\+{3,}\s*$", re.MULTILINE)

    def load(self, fm: str, **kwargs: object) -> Any:
        return tomllib.loads(fm)


# Bounds on what one post can put into a feed (documented in the README).
MAX_TERMS = 50  # tags, and categories, each
MAX_TERM_LENGTH = 100
MAX_AUTHORS = 20

_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})

_HANDLERS: tuple[BaseHandler, ...] = (YAMLHandler(), _TOMLHandler())


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    email: str = ""
    uri: str = ""


@dataclass(frozen=True, slots=True)
class Post:
    """One usable post's metadata, every value cleaned and every URL absolute.

    The Markdown body is not kept: only the newest posts are ever rendered, so their
    bodies are read again when needed (`post_body`), which keeps a parsed site of
    100,000 posts small in memory.
    """

    source: str  # path relative to the content directory, with `/`
    # A digest of the file's bytes: two reads of a post compare equal only when nothing
    # in the file changed, so an edit to the body alone still renders it anew.
    digest: str
    id: str
    id_is_permalink: bool
    permalink: str
    title: str
    date: dt.datetime  # aware, UTC
    updated: dt.datetime  # aware, UTC, never before `date`
    summary: str | None  # from the front matter; None means "derive it from the body"
    # The summary derived from the body, for a post without one of its own: the text of
    # its first paragraph, shortened ("" when there is none, or `summary` is set). It is
    # taken while the body is in memory, so that no archive page reads the file again.
    lead: str
    authors: tuple[Author, ...]
    image: str | None
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    draft: bool

    def __hash__(self) -> int:
        # Equal posts have the same source and file digest, so these two suffice; the
        # generated hash of every field was a measurable part of a rebuild's cache keys.
        return hash((self.source, self.digest))


class _Problems:
    """Collects every problem of one post, so that `feeds check` can list them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[Problem] = []

    def add(self, field: str, reason: str) -> None:
        self.found.append(Problem(self.source, field, reason))

    def check(self, field: str, convert: Callable[[], T]) -> T | None:
        try:
            return convert()
        except ValueError as error:
            self.add(field, str(error))
            return None


def parse_post(source: str, data: bytes, settings: Settings) -> Post:
    """Reads one post file; `source` is its path relative to the content directory."""
    problems = _Problems(source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PostError([Problem(source, "file", f"not valid UTF-8 (byte {error.start})")]) from None
    meta, body = _front_matter(source, _normalize_newlines(text))

    title = problems.check("title", lambda: _required_line(meta, "title"))
    date = problems.check("date", lambda: parse_date(_required(meta, "date"), settings.tz))
    updated_key = _first_key(meta, ("updated", "lastmod", "modified"))
    updated = None
    if updated_key:
        updated = problems.check(updated_key, lambda: parse_date(meta[updated_key], settings.tz))
    summary_key = _first_key(meta, ("description", "summary", "excerpt"))
    summary = None
    if summary_key:
        summary = problems.check(summary_key, lambda: _words(meta[summary_key]) or None)
    tags = problems.check("tags", lambda: _terms(meta.get("tags")))
    categories = problems.check("categories", lambda: _terms(meta.get("categories")))
    draft = problems.check("draft", lambda: _flag(meta.get("draft"), False))
    published = problems.check("published", lambda: _flag(meta.get("published"), True))
    explicit_id_key = _first_key(meta, ("id", "guid"))
    explicit_id = None
    if explicit_id_key:
        explicit_id = problems.check(explicit_id_key, lambda: _line(meta[explicit_id_key]) or None)
    slug = problems.check("slug", lambda: _slug(meta.get("slug"), source))
    permalink = None
    if slug is not None and date is not None:
        link_key = _first_key(meta, ("permalink", "url")) or "permalink"
        permalink = problems.check(link_key, lambda: _permalink(meta.get(link_key), slug, date, settings))
    authors_key = _first_key(meta, ("authors", "author"))
    authors: tuple[Author, ...] | None = ()
    if authors_key:
        # A post left out for another problem still has its authors checked, against the
        # site's root, so that `feeds check` lists every problem at once.
        base = permalink or settings.url("/")
        authors = problems.check(authors_key, lambda: _authors(meta[authors_key], base))
    image_key = _first_key(meta, ("image", "cover_image"))
    image = None
    if image_key and permalink is not None:
        image = problems.check(image_key, lambda: _url(meta[image_key], permalink) or None)

    if problems.found:
        raise PostError(problems.found)
    assert title and date and permalink and tags is not None and categories is not None
    assert authors is not None and slug is not None
    return Post(
        source=source,
        digest=file_digest(data),
        id=explicit_id or permalink,
        id_is_permalink=explicit_id is None,
        permalink=permalink,
        title=title,
        date=date,
        updated=max(date, updated or date),
        summary=summary,
        lead="" if summary else _lead(source, body),
        authors=authors or (Author(settings.author_name, settings.author_email),),
        image=image,
        tags=tags,
        categories=categories,
        draft=bool(draft) or published is False,
    )


def file_digest(data: bytes) -> str:
    """The digest a `Post` carries of its file's bytes: a body read again later must have it."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def post_body(data: bytes) -> str:
    """The Markdown body of a post file, its front matter cut off; not yet cleaned."""
    text = _normalize_newlines(data.decode("utf-8-sig", errors="replace"))
    for handler in _HANDLERS:
        if handler.detect(text):
            try:
                return str(handler.split(text)[1]).lstrip("\n")
            except ValueError:
                return ""
    return text


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _front_matter(source: str, text: str) -> tuple[dict[str, Any], str]:
    """The front matter as a mapping with lower-case keys ({} when there is none), and
    the body after it, as `post_body` gives it."""
    for handler in _HANDLERS:
        if not handler.detect(text):
            continue
        try:
            front, body = handler.split(text)
        except ValueError:
            raise PostError([Problem(source, "front matter", "no closing fence line")]) from None
        front = clean(front)
        try:
            fast = yamlsubset.load(front) if isinstance(handler, YAMLHandler) else None
            meta = fast if fast is not None else handler.load(front)
        except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError, RecursionError) as error:
            reason = " ".join(str(error).split())
            raise PostError([Problem(source, "front matter", f"cannot be parsed: {reason}")]) from None
        body = str(body).lstrip("\n")
        if meta is None:
            return {}, body
        if not isinstance(meta, dict):
            raise PostError(
                [Problem(source, "front matter", f"must be a mapping, got {type(meta).__name__}")]
            )
        return {str(key).lower(): value for key, value in meta.items()}, body
    return {}, text


def _lead(source: str, body: str) -> str:
    """`Post.lead`: the first paragraph of the body's first SUMMARY_SOURCE_CHARS
    characters, as plain text, shortened. Like a render, a failure nobody foresaw (a
    library that cannot cope) costs the post its summary (the title stands in), never
    the post."""
    try:
        return shorten(first_paragraph(body, SUMMARY_SOURCE_CHARS))
    except Exception:
        log.exception("unexpected error summarizing %s", source)
        return ""


def _first_key(meta: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if meta.get(key) not in (None, "")), None)


def _required(meta: dict[str, Any], key: str) -> object:
    value = meta.get(key)
    if value is None or value == "":
        raise ValueError("missing")
    return value


def _line(value: object) -> str:
    """A scalar as one clean line of text; a list, mapping or boolean is a wrong type."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {_type_name(value)}")
    return one_line(clean(str(value)))


def _words(value: object) -> str:
    """Text that people read (a title, a summary, a name, a tag) in Unicode NFC, so that
    spellings that differ only in normal form, such as `é` as one code point or as `e`
    and an accent, are one text. Identifiers (ids, slugs, URLs) keep their code points:
    normalising them would change the ids of existing posts."""
    text = _line(value)
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _required_line(meta: dict[str, Any], key: str) -> str:
    text = _words(_required(meta, key))
    if not text:
        raise ValueError("missing")
    return text


def _flag(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"expected true or false, got {brief(value)}")


def _terms(value: object) -> tuple[str, ...]:
    """Tags or categories: a list of scalars, or one comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: Sequence[object] = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError(f"expected a list or a comma-separated string, got {_type_name(value)}")
    terms: dict[str, str] = {}
    for item in items:
        term = _words(item)
        if term:
            terms.setdefault(term.casefold(), term[:MAX_TERM_LENGTH])
            if len(terms) == MAX_TERMS:
                break  # a post with 10,000 tags would bloat every feed it is in
    return tuple(terms.values())


def _authors(value: object, base: str) -> tuple[Author, ...]:
    """Authors as a name, `Name <email>`, a mapping or a list of those; a `uri`/`url` is
    checked and made absolute against `base` like every other URL of a post."""
    items = value[:MAX_AUTHORS] if isinstance(value, list) else [value]
    authors = []
    for item in items:
        if isinstance(item, dict):
            fields = {str(k).lower(): v for k, v in item.items()}
            name = _words(fields.get("name", ""))
            email = _line(fields.get("email", ""))
            uri_key = "uri" if fields.get("uri") else "url"
            uri = _line(fields.get(uri_key) or "")
            try:
                if uri[:7].lower() == "mailto:":
                    email, uri = email or _mailto_address(uri), ""
                elif uri:
                    uri = _url(uri, base)
            except ValueError as error:
                raise ValueError(f"{uri_key}: {error}") from None
        else:
            text = _line(item)
            try:
                name, email = parseaddr(text)
            except RecursionError:  # parseaddr recurses into nested (comments)
                name, email = text, ""
            if not name and "@" not in email:
                name, email = text, ""
            name = _words(name)
            uri = ""
        if not name and not email:
            raise ValueError("an author needs a name or an email address")
        authors.append(Author(name or email, email, uri))
    return tuple(authors)


def _mailto_address(uri: str) -> str:
    """The address of a `mailto:` author URI, which becomes the author's email: Atom and
    RSS have a field for it, and JSON Feed writes it back as a `mailto:` URL."""
    address = unquote(uri[7:].partition("?")[0])
    if not _MAIL_ADDRESS.fullmatch(address):
        raise ValueError(f"expected one email address after mailto:, got {brief(uri)}")
    return address


def _slug(value: object, source: str) -> str:
    slug = _line(value) if value not in (None, "") else _stem(source)
    slug = slug.strip("/ ")
    if not slug:
        raise ValueError("is empty")
    return slug


def _stem(source: str) -> str:
    """The file name without its extension, as `PurePosixPath.stem` has it (faster)."""
    name = source.rpartition("/")[2]
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def _permalink(value: object, slug: str, date: dt.datetime, settings: Settings) -> str:
    if value is None:
        # The date parts name the day as the site's readers see it, as site generators
        # do: 21:00 on 31 December in New York is in 2024, though 2025 already in UTC.
        local = _local_date(date, settings) if _has_date_parts(settings.permalink) else date
        path = settings.permalink.format(
            slug=slug if _PLAIN_SLUG.fullmatch(slug) else quote(slug, safe=_URL_SAFE.replace("/", "")),
            year=f"{local.year:04d}",
            month=f"{local.month:02d}",
            day=f"{local.day:02d}",
        )
        return settings.url(path)
    text = _line(value)
    if urlsplit(text).scheme:
        return _absolute(text)
    return settings.url(quote(text, safe=_URL_SAFE))


@functools.cache
def _has_date_parts(pattern: str) -> bool:
    return any(name in _DATE_PARTS for _, name, _, _ in string.Formatter().parse(pattern))


def _local_date(date: dt.datetime, settings: Settings) -> dt.datetime:
    try:
        return date.astimezone(settings.tz)
    except OverflowError:  # within hours of year 1 or 9999
        raise ValueError(f"the date is out of range in {settings.timezone}") from None


def _url(value: object, base: str) -> str:
    text = _line(value)
    if _PLAIN_URL.fullmatch(text):
        return text  # already absolute and made of URL characters only: nothing to do
    return _absolute(urljoin(base, quote(text, safe=_URL_SAFE + "?#"))) if text else ""


def _absolute(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        raise ValueError(f"malformed URL {brief(url)}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL or a path, got {brief(url)}")
    return quote(url, safe=_URL_SAFE + "?#[]")


def _type_name(value: object) -> str:
    return {list: "a list", dict: "a mapping", bool: "a boolean"}.get(type(value), type(value).__name__)
