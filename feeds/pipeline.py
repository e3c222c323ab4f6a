"""The I/O edge of the build: scan the content directory, read what changed, build.

A `Pipeline` remembers each file's parsed post by (size, mtime_ns) and each rendered
item by its post, so a later run reads and renders only what changed. What it
remembers is updated only when a build succeeds: after a failed build, the next
`read()` still reports the same files as changed, so the next poll tries again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from feeds.build import Build, build, make_item
from feeds.config import Settings
from feeds.errors import PostError, Problem
from feeds.posts import Post, parse_post
from feeds.scan import SourceFile, read_source, scan
from feeds.xmlfeeds import Item

Progress = Callable[[int, int], None]
_Parsed = dict[str, tuple[tuple[int, int], Post | list[Problem]]]


@dataclass(frozen=True)
class Reading:
    """The content directory as one scan found it."""

    posts: tuple[Post, ...]
    problems: tuple[Problem, ...]
    files_read: int
    changed: int  # files added or modified since the last successful build
    removed: int  # files gone since the last successful build
    parsed: _Parsed

    @property
    def unchanged(self) -> bool:
        return not (self.changed or self.removed)


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._parsed: _Parsed = {}
        self._items: dict[Post, Item] = {}

    def read(self, progress: Progress | None = None) -> Reading:
        found = scan(self.settings.content_dir, self.settings.extensions)
        posts: list[Post] = []
        problems: list[Problem] = list(found.problems)
        parsed: _Parsed = {}
        changed = 0
        for done, file in enumerate(found.files, 1):
            cached = self._parsed.get(file.relpath)
            if cached is None or cached[0] != file.signature:
                cached = (file.signature, self._read(file))
                changed += 1
            parsed[file.relpath] = cached
            result = cached[1]
            if isinstance(result, Post):
                posts.append(result)
            else:
                problems.extend(result)
            if progress:
                progress(done, len(found.files))
        removed = len(self._parsed.keys() - parsed.keys())
        return Reading(tuple(posts), tuple(problems), len(found.files), changed, removed, parsed)

    def build(self, reading: Reading, now: dt.datetime) -> Build:
        built = build(reading.posts, reading.problems, reading.files_read, now, self.settings, self._item)
        self._parsed = reading.parsed
        self._items = {item.post: item for item in built.items}
        return built

    def run(self, now: dt.datetime, progress: Progress | None = None) -> Build:
        return self.build(self.read(progress), now)

    def _read(self, file: SourceFile) -> Post | list[Problem]:
        try:
            data = read_source(file, self.settings.max_post_bytes)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            return [Problem(file.relpath, "file", reason)]
        try:
            return parse_post(file.relpath, data, self.settings)
        except PostError as error:
            return error.problems

    def _item(self, post: Post) -> Item:
        return self._items.get(post) or make_item(post)
