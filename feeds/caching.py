"""HTTP answers for cached feed bytes: validators, content coding and conditional GET.

Pure: takes the request's headers and a prepared `Representation`, returns an
`Answer`; the web layer only copies it onto the wire. References: RFC 9110 §8.8
(validators), §13.1 (preconditions), §13.2.2 (their order), §15.4.5 (304).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime

_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


@dataclass(frozen=True)
class Variant:
    body: bytes
    etag: str  # strong, quoted
    encoding: str | None


@dataclass(frozen=True)
class Representation:
    """One resource in its identity and gzip codings, each with its own strong ETag."""

    identity: Variant
    gzipped: Variant
    content_type: str
    last_modified: dt.datetime | None
    cache_control: str
    # The type for a browser's page request (Accept names text/html): browsers show
    # application/rss+xml as plain text, but apply the feed's XSLT to application/xml.
    browser_type: str | None = None

    @classmethod
    def of(
        cls,
        body: bytes,
        content_type: str,
        last_modified: dt.datetime | None,
        max_age: int,
        gzip_body: bytes | None = None,
        browser_type: str | None = None,
    ) -> Representation:
        # Both tags derive from the identity bytes, so every instance agrees on them
        # even where zlib versions would compress the same bytes differently.
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        return cls(
            identity=Variant(body, f'"{digest}"', None),
            gzipped=Variant(
                gzip_body if gzip_body is not None else compress(body), f'"{digest}-gzip"', "gzip"
            ),
            content_type=content_type,
            last_modified=last_modified.replace(microsecond=0) if last_modified else None,
            cache_control=f"public, max-age={max_age}",
            browser_type=browser_type,
        )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def compress(body: bytes) -> bytes:
    """gzip with no timestamp in the header, so the same bytes always compress the same."""
    return gzip.compress(body, compresslevel=6, mtime=0)


def answer(
    representation: Representation,
    *,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    accept_encoding: str | None = None,
    accept: str | None = None,
) -> Answer:
    """The answer to a GET of `representation` given the request's headers (for HEAD,
    the server sends the same status and headers and drops the body)."""
    variant = representation.gzipped if accepts_gzip(accept_encoding) else representation.identity
    headers = [
        ("ETag", variant.etag),
        ("Cache-Control", representation.cache_control),
        ("Vary", "Accept, Accept-Encoding" if representation.browser_type else "Accept-Encoding"),
    ]
    last_modified = representation.last_modified
    if not_modified(variant.etag, last_modified, if_none_match, if_modified_since):
        if last_modified:
            headers.append(("Last-Modified", http_date(last_modified)))
        return Answer(304, headers, b"")
    since = parse_http_date(if_modified_since) if if_modified_since else None
    # New bytes whose date is not after the one the client sent (a date another instance
    # published): libcurl's time condition (newsboat) would throw the body away, so the
    # date is left out rather than let the client keep its old bytes.
    if last_modified and (since is None or last_modified > since):
        headers.append(("Last-Modified", http_date(last_modified)))
    content_type = representation.content_type
    if representation.browser_type and accept and "text/html" in accept:
        content_type = representation.browser_type
    headers.append(("Content-Type", content_type))
    headers.append(("Content-Length", str(len(variant.body))))
    if variant.encoding:
        headers.append(("Content-Encoding", variant.encoding))
    return Answer(200, headers, variant.body)


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
        if if_none_match.strip() == "*":
            return True
        opaque = etag.strip('"')
        return any(match.group(1) == opaque for match in _ENTITY_TAG.finditer(if_none_match))
    if if_modified_since is None or last_modified is None:
        return False
    return parse_http_date(if_modified_since) == last_modified


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


def parse_http_date(text: str) -> dt.datetime | None:
    try:
        moment = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
