"""`SectionGroups` regroups only the sections of the posts that changed, and always gives
what `group_sections` gives for the same posts: folders that share a key, folders that
get no section (a reserved key), posts at the top level, folders that appear and empty."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.config import load_settings
from feeds.posts import Post, parse_post
from feeds.taxonomy import SectionGroups, group_sections

from conftest import post_text

SOURCES = ("News/a.md", "news/b.md", "News/c.md", "tags/d.md", "top.md", "Notes/e.md", "notes/f.md")
STEPS = st.lists(
    st.tuples(st.sampled_from(("add", "edit", "remove")), st.sampled_from(SOURCES), st.integers(0, 5)),
    min_size=1,
    max_size=25,
)


def base_post(tmp: Path) -> Post:
    empty = tmp / "empty.toml"
    empty.write_text("")
    config = load_settings(
        config_path=empty, environ={}, overrides={"content_dir": str(tmp), "base_url": "https://example.com"}
    )
    post = parse_post("x.md", post_text().encode(), config)
    assert isinstance(post, Post)
    return post


@settings(deadline=None, derandomize=True, database=None, max_examples=150)
@given(steps=STEPS)
def test_section_groups_equal_grouping_anew(steps: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = base_post(Path(folder))
    groups = SectionGroups()
    current: dict[str, Post] = {}
    for action, source, hours in steps:
        if action == "remove":
            current.pop(source, None)
        elif action == "add" and source in current:
            continue
        else:  # a new post, or a new version of one: a new object, as a new parse gives
            moment = base.date + dt.timedelta(hours=hours)
            current[source] = dataclasses.replace(base, source=source, date=moment, title=f"{source} {hours}")
        ordered = tuple(sorted(current.values(), key=lambda post: (post.date, post.source), reverse=True))
        assert groups.group(ordered) == group_sections(ordered), (action, source)
        state = groups.carried()
        assert state.group(ordered) == group_sections(ordered)  # the same posts again
        groups = state
