"""Shared fixtures: a temporary content directory, settings over it, and posts written in
the style of the posts our users have (folded titles, Unix float dates, `.txt` files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import feeds.markdown
from feeds.config import Settings, load_settings
from feeds.published import PublishedStore, default_state_dir

REPO = Path(__file__).resolve().parent.parent
# The user's own example post, kept unchanged byte for byte as test data.
USERS_EXAMPLE = REPO / "tests" / "data" / "000_e19a8b596fc750c0.txt"

WritePost = Callable[..., Path]
MakeSettings = Callable[..., Settings]


def no_wait(seconds: float) -> None:
    """The watcher's sleep for a frozen clock: waiting would not move it, so do not wait."""


def post_text(
    title: str = "A quiet morning at the harbour",
    date: str = "1602734330.453859",
    description: str | None = "Fishing boats, gulls and a cup of tea.",
    body: str = "The boats came in early today.\n\nEveryone went home for lunch.\n",
    extra: str = "",
) -> str:
    """A post in the users' style; `extra` is more front-matter lines, verbatim."""
    lines = [
        "--- ",
        "extends: _layouts.post ",
        "section: content ",
        "image: https://images.example.com/harbour.jpg ",
        "title: > ",
        f"  {title} ",
    ]
    if description is not None:
        lines += ["description: > ", f"  {description} "]
    lines.append(f"date: {date} ")
    lines += [line for line in extra.splitlines() if line]
    lines.append("--- ")
    return "\n".join(lines) + "\n" + body


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Default state directories (no `state_dir`) go below the test run's own folder, and
    so do those of the servers the tests start, never into the home of whoever runs them."""
    state_home = tmp_path_factory.mktemp("xdg-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(state_home))
        yield state_home


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    path = tmp_path / "content"
    path.mkdir()
    return path


@pytest.fixture
def write_post(content_dir: Path) -> WritePost:
    """Writes a file below the content directory: text (str) or raw bytes."""

    def write(relpath: str, text: str | bytes | None = None, **fields: str) -> Path:
        path = content_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text if text is not None else post_text(**fields)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return path

    return write


@pytest.fixture
def make_settings(tmp_path: Path, content_dir: Path) -> MakeSettings:
    """Settings over the temporary content directory, ignoring config/feeds.toml."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"content_dir": str(content_dir), "base_url": "https://example.com"}
        values.update(overrides)
        return load_settings(config_path=empty, environ={}, overrides=values)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
def service_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """Settings whose state directory (published feeds, health) is private to the test."""
    return make_settings(state_dir=str(tmp_path / "state"))


@pytest.fixture
def store(service_settings: Settings) -> PublishedStore:
    return PublishedStore(default_state_dir(service_settings))


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of the text of every call to markdown-it's parser."""
    sizes: list[int] = []
    real_parse = feeds.markdown._MARKDOWN.parse

    def parse(text: str, env: Any = None) -> Any:
        sizes.append(len(text))
        return real_parse(text, env)

    monkeypatch.setattr(feeds.markdown._MARKDOWN, "parse", parse)
    return sizes


class Calls:
    """Counts calls of a module function while a test runs, and the arguments given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.arguments: list[tuple[Any, ...]] = []
        original: Callable[..., Any] = getattr(module, name)

        def counted(*args: Any) -> Any:
            self.arguments.append(args)
            return original(*args)

        monkeypatch.setattr(module, name, counted)
