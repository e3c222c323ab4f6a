"""HTTP answers for cached feed bytes: validators, content coding and conditional GET.

Pure: takes the request's headers and a prepared `Representation`, returns an
`Answer`; the web layer only copies it onto the wire. References: RFC 9110 §8.8
(validators), §13.1 (preconditions), §13.2.2 (their order), §15.4.5 (304).
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import hashlib
import re
from dataclasses import dataclass, field
from email.utils import format_datetime, parsedate_to_datetime

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


@dataclass(frozen=True)
class Variant:
    body: bytes
    etag: str  # strong, quoted
    encoding: str | None


@dataclass(frozen=True)
class Relabelled:
    """The same bytes under another content type, in both codings. A different type makes
    a different representation, so its tags differ too (RFC 9110 §8.8.3: a strong
    validator changes whenever the representation does)."""

    content_type: str
    identity: Variant
    gzipped: Variant


@dataclass(frozen=True)
class Representation:
    """One resource in its identity and gzip codings, each with its own strong ETag."""

    identity: Variant
    gzipped: Variant
    content_type: str
    last_modified: dt.datetime | None
    cache_control: str
    # What a browser's page request gets (see `wants_page`): browsers show
    # application/rss+xml as plain text, but apply the feed's XSLT to application/xml.
    browser: Relabelled | None = None
    # The feed's HTML page, another document with its own bytes and validators, that a
    # browser's navigation gets (see `navigates`).
    page: Representation | None = None
    # The request headers that choose among these answers: every answer of the resource
    # names them all, whichever it is (RFC 9110 §12.5.5).
    vary: str = "Accept-Encoding"
    # The finished answers of each choice `answer` can make, filled on first use (see
    # `_Answers`): the hot path picks one instead of building headers per request.
    _answers: dict[tuple[bool, bool, bool], _Answers] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def of(
        cls,
        body: bytes,
        content_type: str,
        last_modified: dt.datetime | None,
        max_age: int,
        gzip_body: bytes | None = None,
        browser_type: str | None = None,
        page: Representation | None = None,
        stale_while_revalidate: int = 0,
        stale_if_error: int = 0,
        digest: str | None = None,
    ) -> Representation:
        """`digest` is `content_digest(body)` when the caller has it (the published
        state names every document by it), so serving never hashes a body."""
        # Every tag derives from the identity bytes, so every instance agrees on them
        # even where zlib versions would compress the same bytes differently.
        digest = digest or content_digest(body)
        gzipped = gzip_body if gzip_body is not None else compress(body)
        browser = None
        if browser_type is not None:
            label = browser_type.partition("/")[2].partition(";")[0].strip()  # "xml"
            browser = Relabelled(
                browser_type,
                Variant(body, f'"{digest}-{label}"', None),
                Variant(gzipped, f'"{digest}-{label}-gzip"', "gzip"),
            )
        return cls(
            identity=Variant(body, f'"{digest}"', None),
            gzipped=Variant(gzipped, f'"{digest}-gzip"', "gzip"),
            content_type=content_type,
            last_modified=last_modified.replace(microsecond=0) if last_modified else None,
            cache_control=cache_control(max_age, stale_while_revalidate, stale_if_error),
            browser=browser,
            page=page,
            vary=", ".join(
                (["Accept"] if browser else [])
                + ["Accept-Encoding"]
                + (["Sec-Fetch-Dest", "Sec-Fetch-Mode"] if page else [])
            ),
        )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]  # a tuple: one answer is shared by many requests
    body: bytes
    content_type: str  # of the representation chosen, on a 304 too (which carries none)


@dataclass(frozen=True)
class _Answers:
    """Every answer one selected variant can get, made once: the validators decide
    between them per request, and nothing else about them depends on the request."""

    etag: str
    last_modified: dt.datetime | None
    not_modified: Answer
    dated: Answer  # the 200, with Last-Modified when there is one
    undated: Answer  # the 200 without it (see `answer`)

    @classmethod
    def of(
        cls, target: Representation, chosen: Representation | Relabelled, gzipped: bool, vary: str
    ) -> _Answers:
        variant = chosen.gzipped if gzipped else chosen.identity
        validators = (("ETag", variant.etag), ("Cache-Control", target.cache_control), ("Vary", vary))
        last_modified = target.last_modified
        date = (("Last-Modified", http_date(last_modified)),) if last_modified else ()
        entity: tuple[tuple[str, str], ...] = (
            ("Content-Type", chosen.content_type),
            ("Content-Length", str(len(variant.body))),
        )
        entity += (("Content-Encoding", variant.encoding),) if variant.encoding else ()
        content_type = chosen.content_type
        return cls(
            variant.etag,
            last_modified,
            Answer(304, validators + date, b"", content_type),
            Answer(200, validators + date + entity, variant.body, content_type),
            Answer(200, validators + entity, variant.body, content_type),
        )


def cache_control(max_age: int, stale_while_revalidate: int = 0, stale_if_error: int = 0) -> str:
    """The Cache-Control of a feed: fresh for `max_age` seconds, then (RFC 5861) served
    stale for up to `stale_while_revalidate` seconds while a cache revalidates it in the
    background (§3), and for up to `stale_if_error` seconds while the origin answers an
    error or none (§4). A window of 0 leaves its directive out."""
    directives = [f"public, max-age={max_age}"]
    if stale_while_revalidate:
        directives.append(f"stale-while-revalidate={stale_while_revalidate}")
    if stale_if_error:
        directives.append(f"stale-if-error={stale_if_error}")
    return ", ".join(directives)


def content_digest(body: bytes) -> str:
    """The digest of a document's bytes: its ETag, and its name in the published state.
    BLAKE2b of 128 bits, as in 0.1.0, so that ETags survive an upgrade."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def compress(body: bytes) -> bytes:
    """gzip with no timestamp in the header, so the same bytes always compress the same.
    Level 1, nginx's default `gzip_comp_level`: on the 18 feeds (4.6 MB) that one edit
    at 10,000 posts changes, level 6 took about 7 times as long for 13 % fewer bytes,
    and it was most of the time a publish takes."""
    return gzip.compress(body, compresslevel=1, mtime=0)


def answer(
    representation: Representation,
    *,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    accept_encoding: str | None = None,
    accept: str | None = None,
    sec_fetch_mode: str | None = None,
    sec_fetch_dest: str | None = None,
) -> Answer:
    """The answer to a GET of `representation` given the request's headers (for HEAD,
    the server sends the same status and headers and drops the body)."""
    target, navigated = representation, False
    if representation.page is not None and navigates(sec_fetch_mode, sec_fetch_dest):
        target, navigated = representation.page, True
    relabelled = bool(target.browser is not None and accept and wants_page(accept, target.content_type))
    key = (navigated, relabelled, accepts_gzip(accept_encoding))
    answers = representation._answers.get(key)
    if answers is None:
        # Every answer of the resource names the outer representation's Vary, the page's
        # too. The validators are those of the variant selected: one variant's tag never
        # revalidates another's bytes.
        chosen = target.browser if relabelled and target.browser is not None else target
        answers = _Answers.of(target, chosen, key[2], representation.vary)
        representation._answers[key] = answers  # a race only makes the same answers twice
    if not_modified(answers.etag, answers.last_modified, if_none_match, if_modified_since):
        return answers.not_modified
    last_modified = answers.last_modified
    if last_modified is None or not if_modified_since:
        return answers.dated
    # New bytes whose date is not after the one the client sent (a date another instance
    # published): libcurl's time condition (newsboat) would throw the body away, so the
    # date is left out rather than let the client keep its old bytes.
    since = parse_http_date(if_modified_since)
    return answers.dated if since is None or last_modified > since else answers.undated


def not_modified(
    etag: str,
    last_modified: dt.datetime | None,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> bool:
    """RFC 9110 §13.1.2 and §13.1.3: If-None-Match, when sent, decides alone.

    If-Modified-Since matches only the very date served (as nginx's default `exact`),
    not every later one: instances publish at their own moments, so a later date may
    come from another instance that published older bytes later (§13.1.3 says SHOULD
    answer 304; a 200 is always correct, a stale 304 never is)."""
    if if_none_match is not None:
        if if_none_match == etag:
            return True  # the usual poll: the one tag the reader was given, sent back as is
        if if_none_match.strip() == "*":
            return True
        opaque = etag.strip('"')
        return any(match.group(1) == opaque for match in _ENTITY_TAG.finditer(if_none_match))
    if if_modified_since is None or last_modified is None:
        return False
    return parse_http_date(if_modified_since) == last_modified


# Feed readers send a handful of distinct Accept values, and a 304 is the hot path: each
# value is parsed once. Bounded, so a client sending endless variants costs little.
@functools.lru_cache(maxsize=256)
def wants_page(accept: str, feed_type: str) -> bool:
    """Whether a request with this `Accept` asks for a page rather than the feed of
    `feed_type`: `text/html` named (not only matched by `*/*`, which feed readers send)
    with q > 0 (q=0 means "not acceptable", RFC 9110 §12.4.2), and weighted at least as
    high as the feed's own type, through the most specific range that matches each
    (§12.5.1). A tie goes to the page: the bytes are the same, and every feed reader
    parses application/xml, while a browser would show the feed's type as text."""
    ranges = parse_accept_header(accept, MIMEAccept)
    named = any(value.partition(";")[0].strip().lower() == "text/html" for value, _ in ranges)
    html = ranges.quality("text/html")
    return named and html > 0 and html >= ranges.quality(feed_type.partition(";")[0].strip())


def navigates(sec_fetch_mode: str | None, sec_fetch_dest: str | None) -> bool:
    """Whether the request is a browser's top-level navigation (Fetch Metadata:
    `Sec-Fetch-Mode: navigate` and `Sec-Fetch-Dest: document`), which every current
    browser sends when a person opens a URL, and no feed reader, `fetch()` call
    (`cors`/`empty`) or frame (`iframe`) sends. The values are lowercase tokens."""
    return (sec_fetch_mode or "").strip() == "navigate" and (sec_fetch_dest or "").strip() == "document"


# Cached for the same reason as `wants_page`: clients send few distinct values.
@functools.lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether gzip is acceptable (RFC 9110 §12.5.3): named or matched by `*`, with q > 0."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name.strip().lower()] = weight
    for name in ("gzip", "x-gzip", "*"):
        if name in weights:
            return weights[name] > 0
    return False


def http_date(moment: dt.datetime) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7), in English whatever the locale."""
    return format_datetime(moment.astimezone(dt.UTC), usegmt=True)


@functools.lru_cache(maxsize=256)  # readers send back the date they got: few distinct values
def parse_http_date(text: str) -> dt.datetime | None:
    try:
        moment = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
