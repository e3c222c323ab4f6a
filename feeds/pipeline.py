"""The I/O edge of the build: scan the content directory, read what changed, build.

A `Pipeline` remembers each file's parsed post by (size, mtime_ns, inode) and each
rendered item by its post, so a later run reads and renders only what changed. What it
remembers is updated only when a build succeeds: after a failed build, the next
`read()` still reports the same files as changed, so the next poll tries again.

A body read again at build time must be the very bytes that were parsed (same file, same
digest); a post whose file changed in between is built from its previous version when
that one is rendered already, and otherwise left out of this build and read anew at the
next (a one-shot build reports it as a problem).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial
from itertools import filterfalse
from operator import attrgetter
from typing import TypeGuard, cast

from feeds.build import Build, BuildState, build, make_item, summary_item, summary_of, without_content
from feeds.config import Settings
from feeds.errors import PostError, Problem
from feeds.parallel import forked_pool
from feeds.parsecache import Entry, ParseCache, post_from_record, post_record
from feeds.posts import Post, file_digest, parse_post, post_body
from feeds.scan import FileChanging, SourceFile, read_source, scan
from feeds.text import brief
from feeds.xmlfeeds import Item

log = logging.getLogger("feeds.pipeline")

Progress = Callable[[int, int], None]
PARALLEL_MIN_FILES = 2000  # below this, starting processes costs more than it saves
# Files per task of a parsing process. Small tasks keep each worker's heap small: at
# 100,000 posts a worker peaked at 69 MB with 500, at 135-151 MB with 12,500.
CHUNK_FILES = 500
_relpath = attrgetter("relpath")
SAVE_SHARE = 0.02  # write the parse cache once this share of the files was parsed anew


def _is_post(result: object) -> TypeGuard[Post]:
    return isinstance(result, Post)


class Changing(Enum):
    """The result of reading a file that changed under the reader."""

    CHANGING = "changing"


CHANGING = Changing.CHANGING


def _changed_problem(file: SourceFile) -> Problem:
    return Problem(file.relpath, "file", "changed while it was read; build again")


@dataclass(frozen=True)
class Reading:
    """The content directory as one scan found it."""

    posts: tuple[Post, ...]
    problems: tuple[Problem, ...]
    files_read: int
    changed: int  # files added or modified since the last successful build
    removed: int  # files gone since the last successful build
    scan_problems: tuple[Problem, ...]
    files: dict[str, SourceFile]  # by relative path; a changed file compares unequal
    results: dict[str, Post | list[Problem]]
    settling: tuple[str, ...] = ()  # files left for a later poll: they are being written

    @property
    def unchanged(self) -> bool:
        return not (self.changed or self.removed)


class Pipeline:
    """`settle_ns` > 0 (the watcher) leaves files modified that recently, or changing
    while read, for a later poll; 0 (a one-shot build) reports the latter as problems.
    `pages` adds the HTML page of each feed's folder, which only the service serves."""

    def __init__(
        self, settings: Settings, settle_ns: int = 0, pages: bool = False, cache: ParseCache | None = None
    ) -> None:
        self.settings = settings
        self.settle_ns = settle_ns
        self.pages = pages  # make the browser page of each feed's folder too (the service)
        self.cache = cache
        self._cached: dict[str, Entry] | None = None  # the cache's entries, until the first read uses them
        self._saved: Reading | None = None  # the committed reading last written to the cache
        self._unsaved = 0  # files parsed since the cache was last loaded or written
        self._committed: Reading | None = None
        self._scanned: tuple[
            SourceFile, ...
        ] = ()  # the scan of the committed reading, when it has every file
        self._items: dict[Post, Item] = {}
        self._summaries: dict[Post, str] = {}  # of archived posts, which are not rendered
        self._documents: dict[str, tuple[Hashable, bytes]] = {}  # by path: inputs, bytes
        self._state = BuildState()  # every item's RSS and Atom entry, the term groups
        self._sources: dict[str, SourceFile] = {}  # the files of the reading being built
        self._unread: set[Post] = set()  # posts whose body no longer matches, this build

    def read(self, progress: Progress | None = None) -> Reading:
        self.save_cache()  # what the last build parsed, if worth it: off the path of a change
        found = scan(self.settings.content_dir, self.settings.extensions)
        last = self._committed
        known = last.files if last else {}
        if last and found.files == self._scanned and found.problems == last.scan_problems:
            # The very files of the last build's scan: one comparison of tuples in C, where
            # a lookup per file cost as much as a third of the scan.
            return replace(last, changed=0, removed=0, settling=())
        stale = [file for file in found.files if known.get(file.relpath) != file]
        kept = len(found.files) - sum(1 for file in stale if file.relpath not in known)
        removed = len(known) - kept
        if last and not stale and not removed and found.problems == last.scan_problems:
            return replace(last, changed=0, removed=0, settling=())  # most polls: nothing to do
        # A file written in the last moment may still be growing: leave it for a moment.
        quiet_since = time.time_ns() - self.settle_ns
        settling = {file.relpath for file in stale if self.settle_ns and file.mtime_ns > quiet_since}
        to_read = [file for file in stale if file.relpath not in settling]
        results = dict(last.results) if last else {}
        if self._cached is None and self.cache:
            self._cached = self.cache.load()  # at the first read: a restart parses only what changed
        if self._cached and last:
            self._cached = {}  # a build has used them: the pipeline remembers its posts itself
        if self._cached:
            # A cached post serves only the very file it was parsed from (SourceFile equal).
            unread = []
            for file in to_read:
                entry = self._cached.get(file.relpath)
                if entry and entry[0] == file:
                    results[file.relpath] = entry[1]
                else:
                    unread.append(file)
            to_read = unread
        self._unsaved += len(to_read)
        for file, result in zip(to_read, read_posts(to_read, self.settings, progress), strict=True):
            if result is CHANGING and self.settle_ns:
                settling.add(file.relpath)
            else:
                _warn_if_id_moved(file.relpath, results.get(file.relpath), result)
                results[file.relpath] = result if result is not CHANGING else [_changed_problem(file)]
        files: dict[str, SourceFile]
        if settling:
            files = {}
            for file in found.files:
                if file.relpath not in settling:
                    files[file.relpath] = file
                elif file.relpath in known:
                    files[file.relpath] = known[file.relpath]  # its last settled version stays
        else:
            files = dict(zip(map(_relpath, found.files), found.files, strict=True))
        # map, zip and dict in C: the loops in Python per file cost a few ms at 10,000.
        values = list(map(results.__getitem__, files))
        problems = list(found.problems)
        for result in filterfalse(_is_post, values):
            problems.extend(cast(list[Problem], result))  # what is no post is its problems
        return Reading(
            posts=tuple(filter(_is_post, values)),
            problems=tuple(problems),
            files_read=len(files),
            changed=len(stale) - len(settling),
            removed=removed,
            scan_problems=found.problems,
            files=files,
            results=dict(zip(files, values, strict=True)),
            settling=tuple(sorted(settling)),
        )

    def build(self, reading: Reading, now: dt.datetime, site_only: bool = False) -> Build:
        items: dict[Post, Item] = {}
        summaries: dict[Post, str] = {}
        documents: dict[str, tuple[Hashable, bytes]] = {}

        def item(post: Post) -> Item:
            if post not in items:
                items[post] = self._items.get(post) or self._item(post)
            return items[post]

        def summary(post: Post) -> str:
            # An archived post is never rendered: its summary comes from the head of its
            # body, or from its item when it is rendered anyway (the same function).
            if post not in summaries:
                known = items.get(post) or self._items.get(post)
                summaries[post] = known.summary if known else self._summaries.get(post) or self._summary(post)
            return summaries[post]

        def memo(key: tuple[str, Hashable], make: Callable[[], bytes]) -> bytes:
            # Looked up by path and compared by inputs, never hashed: unchanged inputs are
            # the very objects of the last build, which tuples compare by identity first.
            path, inputs = key
            known = self._documents.get(path)
            if known is not None and known[0] == inputs:
                body = known[1]
            else:
                body = make()
                if known is not None and known[1] == body:
                    body = known[1]  # new inputs, same bytes (an edit the document does not show)
            documents[path] = (inputs, body)
            return body

        def fresh(key: tuple[str, Hashable]) -> bool:
            known = self._documents.get(key[0])
            return known is None or known[0] != key[1]

        while True:
            self._sources, self._unread = reading.files, set()
            posts, problems, files_read = reading.posts, reading.problems, reading.files_read
            state = self._state.carried()
            built = build(
                posts,
                problems,
                files_read,
                now,
                self.settings,
                item,
                summary,
                memo,
                self.pages,
                site_only=site_only,
                state=state,
                fresh=fresh,
            )
            if not self._unread:
                break
            # A body changed after it was parsed: what was made from it is dropped, and
            # the build runs again without that version (rare: a file written meanwhile).
            for post in self._unread:
                items.pop(post, None)
                summaries.pop(post, None)
            documents.clear()
            reading = self._without(reading, {post.source for post in self._unread})
        # Only what this build used is kept, so the caches never outgrow the site.
        self._committed, self._items, self._documents = reading, items, documents
        # The files of a reading that left none out (none settling, none taken back),
        # in scan order: a scan equal to it finds nothing to read.
        self._scanned = tuple(reading.files.values()) if not reading.settling else ()
        self._summaries, self._state = summaries, state
        for cut in built.cuts:
            log.warning("cut %s", cut)
        return built

    def _item(self, post: Post) -> Item:
        """The post rendered; should that fail, its entry without content, and a problem.
        Like a parse, a render that fails for a reason nobody foresaw (a bug, or a
        library that cannot cope) costs one post its content, never the whole build."""
        try:
            if self.settings.content == "summary":
                return summary_item(post)
            return make_item(post, self._body(post), self.settings.max_render_bytes)
        except Exception as error:
            log.exception("unexpected error rendering %s", post.source)
            reason = f"unexpected {type(error).__name__}: {brief(error)}"
            return without_content(post, post.summary or post.title, reason)

    def _summary(self, post: Post) -> str:
        """The summary of an archived post, which is never rendered: the same as its item
        would carry, taken from what the parse kept, so no file is read again."""
        return summary_of(post)

    def run(self, now: dt.datetime, progress: Progress | None = None) -> Build:
        reading = self.read(progress)
        # A one-shot build writes the cache before building: its memory is free again
        # before the build's peak. A post is the parse of the very file it names, so the
        # entries hold whatever the build does; should the build find a body changed
        # under it (`_without`), the cache is written again after it.
        self.save_cache(reading)
        built = self.build(reading, now)
        self.save_cache()
        return built

    def save_cache(self, reading: Reading | None = None) -> None:
        """Writes the posts of `reading`, by default the last successful build's, to the
        parse cache, when the files parsed since it was last written are enough to pay
        for writing all of it (SAVE_SHARE of the site): the cache is written whole, and a
        restart re-parses at most that share. The watcher has it done at the start of
        each poll, after its change is published; a one-shot build, before building."""
        reading = reading or self._committed
        if not self.cache or reading is None or reading is self._saved:
            return
        if self._unsaved < max(1, len(reading.files) * SAVE_SHARE):
            return
        self.cache.save(
            {
                relpath: (reading.files[relpath], post)
                for relpath, post in reading.results.items()
                if isinstance(post, Post)
            }
        )
        self._saved, self._unsaved = reading, 0

    def _body(self, post: Post) -> str:
        """The post's body, read again from the file the scan saw, and only if its bytes
        are still those that were parsed. Otherwise the post is noted as changed and
        this returns "", which `build` never lets into a document."""
        file = self._sources.get(post.source)
        try:
            data = read_source(file, self.settings.max_post_bytes) if file else None
        except (OSError, ValueError, FileChanging):
            data = None
        if data is None or file_digest(data) != post.digest:
            self._unread.add(post)  # the same digest as `parse_post` gives `Post.digest`
            return ""
        return post_body(data)

    def _without(self, reading: Reading, changed: set[str]) -> Reading:
        """`reading` with each file of `changed` taken back to the version of the last
        build when its item is at hand, else left out, and in both cases read again at
        the next `read()` (its last known state no longer matches the file)."""
        last = self._committed
        files, results = dict(reading.files), dict(reading.results)
        problems = list(reading.problems)
        # A cached post may be the one whose file changed keeping its size and mtime: the
        # cache is written anew after this build, without it, or the next start would
        # take the same stale post again.
        self._unsaved = max(self._unsaved, len(files))
        settling = set(reading.settling)
        for relpath in sorted(changed):
            previous = last.results.get(relpath) if last else None
            if last and isinstance(previous, Post) and previous in self._items:
                files[relpath], results[relpath] = last.files[relpath], previous
            else:
                del files[relpath], results[relpath]
                if not self.settle_ns:
                    problems.append(_changed_problem(reading.files[relpath]))
            if self.settle_ns:
                settling.add(relpath)
        posts = tuple(
            result for result in (results[relpath] for relpath in files) if isinstance(result, Post)
        )
        return replace(
            reading,
            posts=posts,
            problems=tuple(problems),
            files=files,
            results=results,
            settling=tuple(sorted(settling)),
        )


def _warn_if_id_moved(relpath: str, before: object, after: object) -> None:
    """Logs an id that a post's permalink carried away: with `{year}`, `{month}` or
    `{day}` in the pattern, a moved date moves the permalink and so the id, and feed
    readers show the post again as new. The old id can be pinned in the front matter."""
    if (
        isinstance(before, Post)
        and isinstance(after, Post)
        and before.id_is_permalink
        and after.id_is_permalink
        and before.id != after.id
    ):
        log.warning(
            "%s: its id moved with its permalink from %s to %s, so feed readers show it as a new "
            "post; to keep the old id, add `id: %s` to its front matter",
            relpath,
            before.id,
            after.id,
            before.id,
        )


def read_post(file: SourceFile, settings: Settings) -> Post | list[Problem] | Changing:
    """One file read and parsed: its post, the problems that keep it out, or CHANGING."""
    try:
        data = read_source(file, settings.max_post_bytes)
    except FileChanging:
        return CHANGING
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        return [Problem(file.relpath, "file", reason)]
    try:
        return parse_post(file.relpath, data, settings)
    except PostError as error:
        return error.problems
    except Exception as error:  # a bug, or a library that cannot cope: lose one post, not the feed
        log.exception("unexpected error reading %s", file.relpath)
        return [Problem(file.relpath, "file", f"unexpected {type(error).__name__}: {brief(error)}")]


def read_posts(
    files: Sequence[SourceFile], settings: Settings, progress: Progress | None = None
) -> list[Post | list[Problem] | Changing]:
    """`read_post` for each file, in order; large batches are parsed on every core.

    Parsing is pure CPU work in Python, so only processes help. They are forked, which
    is safe only while this process has a single thread (the CLI, or the builder before
    its first build); otherwise the files are parsed here, one by one. What comes
    back is a tuple of plain values per post (`post_record`), not the `Post`: for 10,000
    posts, pickling and unpickling the objects took 218 ms, the records 121 ms.
    """
    workers = os.cpu_count() or 1
    if len(files) < PARALLEL_MIN_FILES or workers < 2 or threading.active_count() > 1:
        results = []
        for done, file in enumerate(files, 1):
            results.append(read_post(file, settings))
            if progress:
                progress(done, len(files))
        return results
    chunks = [files[start : start + CHUNK_FILES] for start in range(0, len(files), CHUNK_FILES)]
    results = []
    with forked_pool(workers) as pool:
        for chunk_results in pool.imap(partial(_read_chunk, settings), chunks):
            results.extend(post_from_record(r) if isinstance(r, tuple) else r for r in chunk_results)
            if progress:
                progress(len(results), len(files))
    return results


def _read_chunk(
    settings: Settings, files: Sequence[SourceFile]
) -> list[tuple[object, ...] | list[Problem] | Changing]:
    """`read_post` for each file, in a parsing process: a post goes back to the parent as
    a tuple of plain values, which pickles far smaller and faster than the object."""
    results = (read_post(file, settings) for file in files)
    return [post_record(result) if isinstance(result, Post) else result for result in results]
