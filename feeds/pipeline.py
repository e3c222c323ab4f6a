"""The I/O edge of the build: scan the content directory, read what changed, build.

A `Pipeline` remembers each file's parsed post by (size, mtime_ns) and each rendered
item by its post, so a second run only reads and renders what changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from feeds.build import Build, build, make_item
from feeds.config import Settings
from feeds.errors import PostError, Problem
from feeds.posts import Post, parse_post
from feeds.scan import SourceFile, read_source, scan
from feeds.xmlfeeds import Item

Progress = Callable[[int, int], None]


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._parsed: dict[str, tuple[tuple[int, int], Post | list[Problem]]] = {}
        self._items: dict[Post, Item] = {}
        self.changed_files = 0  # files (re)read by the last run

    def run(self, now: dt.datetime, progress: Progress | None = None) -> Build:
        found = scan(self.settings.content_dir, self.settings.extensions)
        posts: list[Post] = []
        problems: list[Problem] = list(found.problems)
        parsed: dict[str, tuple[tuple[int, int], Post | list[Problem]]] = {}
        self.changed_files = 0
        for done, file in enumerate(found.files, 1):
            cached = self._parsed.get(file.relpath)
            if cached is None or cached[0] != file.signature:
                cached = (file.signature, self._read(file))
                self.changed_files += 1
            parsed[file.relpath] = cached
            result = cached[1]
            if isinstance(result, Post):
                posts.append(result)
            else:
                problems.extend(result)
            if progress:
                progress(done, len(found.files))
        self._parsed = parsed
        built = build(posts, problems, len(found.files), now, self.settings, self._item)
        self._items = {item.post: item for item in built.items}
        return built

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
