"""An incremental build equals a cold one: after any sequence of adds, edits, deletes,
renames, drafts, future dates and a clock that moves on, one long-lived `Pipeline`
gives, byte for byte, the documents a fresh `Pipeline` gives for the same content at
the same `now`, and keeps the very bytes objects of the documents that did not change.

Derandomized like tests/test_hostile.py, so every run explores the same sequences.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.build import Build
from feeds.config import Settings, load_settings
from feeds.index import index_html
from feeds.pipeline import Pipeline

from conftest import post_text

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=80,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STEMS = (
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
)  # the stem is the slug: one stem in two folders shares a permalink
FOLDERS = ("", "news/", "notes/")
TITLES = ("Harbour", "Market day", "Late train", "Rain again")
BODIES = (
    "The boats came in early.\n",
    "First paragraph here.\n\nA second one, [a link](other/).\n",
    "# Heading\n\nText with *emphasis* and `code`.\n",
)
TAGS = st.lists(st.sampled_from(("Alpha", "alpha", "Beta", "C++", "c++ ")), max_size=3)
CATEGORIES = st.lists(st.sampled_from(("News", "Tech")), max_size=2)
HOURS = st.integers(min_value=-60, max_value=8)  # from START; the clock moves up to 30 hours on
DESCRIPTIONS = st.sampled_from((None, "A short summary.", "Another summary."))


@dataclass
class Fields:
    title: str
    hours: int
    body: str
    tags: list[str]
    categories: list[str]
    draft: bool
    description: str | None

    def text(self) -> str:
        date = (START + dt.timedelta(hours=self.hours, seconds=len(self.title))).timestamp()
        extra = [f"tags: [{', '.join(self.tags)}]", f"categories: [{', '.join(self.categories)}]"]
        if self.draft:
            extra.append("draft: true")
        return post_text(self.title, str(date), self.description, self.body, "\n".join(extra))


FIELDS = st.builds(
    Fields,
    st.sampled_from(TITLES),
    HOURS,
    st.sampled_from(BODIES),
    TAGS,
    CATEGORIES,
    st.sampled_from((False, False, False, True)),  # drafts now and then
    DESCRIPTIONS,
)
ADD = st.tuples(st.just("add"), st.sampled_from(FOLDERS), st.sampled_from(STEMS), FIELDS)
EDIT = st.tuples(
    st.just("edit"),
    st.integers(0, 50),
    st.one_of(
        st.tuples(st.just("title"), st.sampled_from(TITLES)),
        st.tuples(st.just("hours"), HOURS),
        st.tuples(st.just("body"), st.sampled_from(BODIES)),
        st.tuples(st.just("tags"), TAGS),
        st.tuples(st.just("categories"), CATEGORIES),
        st.tuples(st.just("draft"), st.booleans()),
        st.tuples(st.just("description"), DESCRIPTIONS),
    ),
)
DELETE = st.tuples(st.just("delete"), st.integers(0, 50))
RENAME = st.tuples(st.just("rename"), st.integers(0, 50), st.sampled_from(FOLDERS), st.sampled_from(STEMS))
TICK = st.tuples(st.just("tick"), st.integers(1, 30))
STEP = st.one_of(ADD, ADD, EDIT, EDIT, DELETE, RENAME, TICK)


@dataclass
class Site:
    """The content directory as the test last wrote it, and the clock."""

    root: Path
    files: dict[str, Fields] = field(default_factory=dict)
    now: dt.datetime = START
    writes: int = 0

    def write(self, relpath: str, fields: Fields) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fields.text(), encoding="utf-8")
        self.files[relpath] = fields
        self._touch(path)

    def _touch(self, path: Path) -> None:
        # Every write gets its own modification time, as it would a moment later: an
        # edit of the same size within the file system's clock tick is another matter.
        self.writes += 1
        moment = 1_700_000_000_000_000_000 + self.writes * 1_000_000
        os.utime(path, ns=(moment, moment))

    def pick(self, index: int) -> str | None:
        return sorted(self.files)[index % len(self.files)] if self.files else None

    def apply(self, step: tuple[object, ...]) -> None:
        kind = step[0]
        if kind == "add":
            _, folder, stem, fields = step
            assert isinstance(fields, Fields)
            self.write(f"{folder}{stem}.md", fields)
        elif kind == "tick":
            hours = step[1]
            assert isinstance(hours, int)
            self.now += dt.timedelta(hours=hours)
        else:
            relpath = self.pick(step[1])  # type: ignore[arg-type]
            if relpath is None:
                return
            if kind == "edit":
                name, value = step[2]  # type: ignore[misc]
                changed = Fields(**{**vars(self.files[relpath]), name: value})
                self.write(relpath, changed)
            elif kind == "delete":
                (self.root / relpath).unlink()
                del self.files[relpath]
            else:
                _, _, folder, stem = step
                target = f"{folder}{stem}.md"
                if target != relpath:
                    (self.root / target).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(self.root / relpath, self.root / target)
                    self.files[target] = self.files.pop(relpath)


def documents(settings: Settings, built: Build) -> dict[str, bytes]:
    files = {output.path: output.body for output in built.outputs}
    files["index.html"] = index_html(settings, built.items, built.terms)
    return files


def summary(built: Build) -> tuple[object, ...]:
    return (built.used, built.held_back, built.next_release, built.problems, built.cuts, built.degraded)


@PROPERTY
@given(first=st.lists(ADD, max_size=8), steps=st.lists(STEP, min_size=1, max_size=10))
def test_incremental_build_equals_a_cold_build(
    first: list[tuple[object, ...]], steps: list[tuple[object, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "content"
        root.mkdir()
        empty = Path(folder) / "empty.toml"
        empty.write_text("")
        config = load_settings(
            config_path=empty,
            environ={},
            overrides={"content_dir": str(root), "base_url": "https://example.com", "item_limit": 2},
        )
        site = Site(root)
        for step in first:
            site.apply(step)
        incremental = Pipeline(config, pages=True)
        before = incremental.run(site.now).outputs
        for step in steps:
            site.apply(step)
            built = incremental.run(site.now)
            cold = Pipeline(config, pages=True).run(site.now)
            assert documents(config, built) == documents(config, cold), step
            assert summary(built) == summary(cold), step
            # What did not change is the very same bytes object: the publisher skips it.
            previous = {output.path: output.body for output in before}
            for output in built.outputs:
                if previous.get(output.path) == output.body:
                    assert previous[output.path] is output.body, output.path
            before = built.outputs
