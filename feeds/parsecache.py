"""The parse cache: each post file's parsed post, kept in the state directory, so that a
restarted watcher, or the next `feeds build` with the same state directory, parses only
the files that changed since.

An entry serves only the very file it was made from: the same relative path, the same
path read, size, mtime_ns, device and inode (what the scan records), under the same
settings (those a parse depends on) and the same code (the package version, this format's
number and the source of the parsing modules). Anything else, a missing, truncated,
corrupt, foreign or older file, is ignored whole, with one line in the log, and the cache
is written anew: it is never trusted in part. Only posts are kept: a file with problems
is read again at each start (they are few, and a read can fail for a passing reason).

A limit of every cache keyed by what `stat` tells: a file rewritten in place with the
same size and the same mtime_ns (possible only by setting the time back on purpose, as
`touch -d` or `os.utime` do) keeps its cached parse until it changes again. Its title,
dates and summary stay the old ones; its text in the feeds does not, since a rendered
body is read again and must have the digest that was parsed.

The file is a pickle of plain tuples (str, int, bool, None), the fastest to load that was
measured. It is read only from the state directory, which is checked to be this user's
alone before it is used (`PublishedStore`), without following a symlink, and only when it
is a regular file of this user that nobody else may write; and it is unpickled with an
unpickler that refuses every global, so that not even a file crafted by someone else
could make it run code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import gc
import hashlib
import io
import logging
import os
import pickle
import stat
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import feeds
from feeds.config import Settings
from feeds.errors import ConfigError
from feeds.files import write_atomically
from feeds.posts import Author, Post
from feeds.published import PublishedStore, _state_home, default_state_dir
from feeds.scan import SourceFile

log = logging.getLogger("feeds.parsecache")

CACHE_FILE = "parse-cache"
FORMAT = 2  # raise it whenever what a record holds, or how, changes
CHECKSUM_BYTES = 16  # a BLAKE2b digest of the pickle, in front of it
# The modules whose code decides what a parse gives, and the libraries they parse with.
_PARSING_MODULES = ("posts", "dates", "yamlsubset", "text", "markdown", "config", "parsecache")
_PARSING_LIBRARIES = ("PyYAML", "python-frontmatter", "markdown-it-py", "mdit-py-plugins")
# Settings that no parse reads: changing them keeps the cache. Any other setting, one
# added later included, is part of the key, so a new setting can only cost a re-parse.
_NOT_PARSING = frozenset(
    {
        "title",
        "description",
        "language",
        "extensions",
        "item_limit",
        "max_term_entry_bytes",
        "max_term_feeds",
        "max_term_bytes",
        "max_render_bytes",
        "content",
        "icon",
        "logo",
        "poll_interval",
        "max_age",
        "stale_while_revalidate",
        "stale_if_error",
        "empty_guard",
        "state_dir",
        "log_format",
        "websub_hub",
        "metrics",
        "health_details",
    }
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)

# A post as plain values: what the cache holds and what crosses from a parsing process.
PostRecord = tuple[Any, ...]
Entry = tuple[SourceFile, Post]


def post_record(post: Post) -> PostRecord:
    return (
        post.source,
        post.digest,
        post.id,
        post.id_is_permalink,
        post.permalink,
        post.title,
        (post.date - _EPOCH) // _MICROSECOND,
        (post.updated - _EPOCH) // _MICROSECOND,
        post.summary,
        post.lead,
        tuple((author.name, author.email, author.uri) for author in post.authors),
        post.image,
        post.tags,
        post.categories,
        post.draft,
    )


def post_from_record(record: PostRecord) -> Post:
    """The `Post` a record was made from; raises TypeError or ValueError on a record of
    another shape."""
    (source, digest, id_, id_is_permalink, permalink, title, date, updated, summary, lead) = record[:10]
    authors, image, tags, categories, draft = record[10:]
    return Post(
        source,
        digest,
        id_,
        id_is_permalink,
        permalink,
        title,
        _EPOCH + date * _MICROSECOND,
        _EPOCH + updated * _MICROSECOND,
        summary,
        lead,
        _authors(authors),
        image,
        tags,
        categories,
        draft,
    )


@functools.lru_cache(maxsize=1024)
def _authors(authors: tuple[tuple[str, str, str], ...]) -> tuple[Author, ...]:
    # Most posts have the same few authors: one shared tuple each (they are frozen).
    return tuple(Author(*author) for author in authors)


@functools.cache
def code_version() -> str:
    """A digest of everything in the code that decides what a parse gives."""
    digest = hashlib.blake2b(f"{feeds.__version__} {FORMAT} {sys.version}".encode(), digest_size=16)
    for name in _PARSING_MODULES:
        digest.update(Path(__file__).with_name(f"{name}.py").read_bytes())
    for library in _PARSING_LIBRARIES:
        try:
            digest.update(f"{library} {metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} missing".encode())
    return digest.hexdigest()


def settings_key(settings: Settings) -> str:
    """A digest of the settings that a parse depends on."""
    fields = {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(settings)
        if field.name not in _NOT_PARSING
    }
    return hashlib.blake2b(repr(sorted(fields.items())).encode(), digest_size=16).hexdigest()


def for_build(settings: Settings) -> ParseCache | None:
    """The cache of a one-shot `feeds build`: in the state directory the service would
    use with these settings, once it is checked to be this user's alone. None, with one
    line in the log, when it is not; None too when there is no lasting one (no setting
    and no usable home), rather than a temporary folder nothing would ever read again."""
    if not settings.state_dir and _state_home() is None:
        return None
    try:
        store = PublishedStore(default_state_dir(settings))
    except ConfigError as error:
        log.warning("building without the parse cache: %s", error)
        return None
    return ParseCache(store.root, settings)


def seal(payload: bytes) -> bytes:
    """`payload` with its checksum in front: a cache changed by a byte (a bad disk, a
    hand edit) is then refused whole, not trusted with one wrong title."""
    return hashlib.blake2b(payload, digest_size=CHECKSUM_BYTES).digest() + payload


def unseal(data: bytes) -> bytes:
    """The payload of `seal(payload)`; ValueError when the checksum does not match."""
    checksum, payload = data[:CHECKSUM_BYTES], data[CHECKSUM_BYTES:]
    if hashlib.blake2b(payload, digest_size=CHECKSUM_BYTES).digest() != checksum:
        raise ValueError("its checksum does not match its contents")
    return payload


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain values only: no class, function or other global is ever looked up."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the parse cache holds plain values only, not {module}.{name}")


class ParseCache:
    """The parse cache of one state directory, which the caller has checked to be this
    user's alone (by opening it as a `PublishedStore`)."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        self.path = folder / CACHE_FILE
        self.header = (FORMAT, code_version(), settings_key(settings))

    def load(self) -> dict[str, Entry]:
        """Every entry of the cache by relative path; {} when there is no usable cache.
        Never raises: whatever is wrong with the file, the answer is to parse anew."""
        try:
            data = self._read()
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("parse cache %s not used, it will be written anew: %s", self.path, error)
            return {}
        # Millions of new objects, none of them in a cycle: the collector's passes over a
        # growing heap made loading 100,000 posts take 2.2 s instead of 0.9.
        collecting = gc.isenabled()
        gc.disable()
        try:
            header, records = _PlainUnpickler(io.BytesIO(unseal(data))).load()
            if header != self.header:
                log.info("parse cache %s is for other settings or code; it will be written anew", self.path)
                return {}
            return {
                relpath: (SourceFile(relpath, path, size, mtime_ns, dev, inode), post_from_record(record))
                for relpath, path, size, mtime_ns, dev, inode, record in records
            }
        except Exception as error:  # a damaged cache costs a parse, never a build
            log.warning(
                "parse cache %s is damaged (%s), it will be written anew", self.path, type(error).__name__
            )
            return {}
        finally:
            if collecting:
                gc.enable()

    def save(self, entries: Mapping[str, Entry]) -> None:
        """Replaces the cache with `entries`, atomically; a failure to write is logged."""
        records = [(*file, post_record(post)) for file, post in entries.values()]
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        # No memo: the records share nothing and hold no cycle, and for 10,000 posts the
        # memo of every object pickled doubled the memory a write took (19 MB, not 10).
        pickler.fast = True
        pickler.dump((self.header, records))
        try:
            write_atomically(self.path, seal(buffer.getvalue()))
        except OSError as error:
            log.warning("parse cache %s not written: %s", self.path, error.strerror or error)

    def _read(self) -> bytes:
        """The file's bytes, when it is a regular file of this user's that nobody else may
        write; raises OSError, or ValueError saying what is wrong with it."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as file:
            about = os.fstat(fd)
            if not stat.S_ISREG(about.st_mode):
                raise ValueError("not a regular file")
            if about.st_uid != os.geteuid() or about.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise ValueError("another user owns it or may write to it")
            return file.read()
