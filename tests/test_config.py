"""Settings in layers (defaults < TOML < FEEDS_* env < overrides) and their validation."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path

import pytest

from feeds.cli import main
from feeds.config import ENV_OTHERS, Settings, load_settings
from feeds.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

Load = Callable[..., Settings]


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Writes a TOML file in the temporary directory and returns its path."""

    def write(text: str, name: str = "feeds.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write_config: Callable[..., Path], content_dir: Path) -> Load:
    """Loads settings from TOML `text`, with content_dir pointing at the fixture folder."""

    def run(
        text: str = "",
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, object] | None = None,
        with_content_dir: bool = True,
    ) -> Settings:
        prefix = f"content_dir = '{content_dir}'\n" if with_content_dir else ""
        path = write_config(prefix + text)
        return load_settings(config_path=path, environ=environ or {}, overrides=overrides)

    return run


def assert_one_line_error(error: ConfigError, setting: str) -> None:
    assert error.setting == setting
    message = str(error)
    assert message.startswith(f"{setting}: ")
    assert "\n" not in message and "\r" not in message
    assert error.reason and "\n" not in error.reason


# --- layers ---------------------------------------------------------------------------


def test_defaults_when_toml_is_empty(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "examples" / "content").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config_path=write_config(""), environ={})
    assert settings.title == "My site"
    assert settings.description == "Latest posts"
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.language == "en"
    assert settings.author_name == "Site author"
    assert settings.author_email == ""
    assert settings.content_dir == tmp_path / "examples" / "content"
    assert settings.content_dir.is_absolute()
    assert settings.extensions == (".md", ".markdown", ".txt")
    assert settings.permalink == "/posts/{slug}/"
    assert settings.item_limit == 20
    assert settings.timezone == "UTC"
    assert settings.max_post_bytes == 5_000_000


def test_toml_values_are_applied(load: Load, content_dir: Path) -> None:
    settings = load(
        """
title = "Garden news"
description = "Seeds and soil"
base_url = "https://garden.example.org"
language = "fr"
author_name = "Ada"
author_email = "ada@example.org"
extensions = [".MD", "txt"]
permalink = "/{year}/{month}/{day}/{slug}.html"
item_limit = 7
timezone = "Europe/Paris"
max_post_bytes = 1234
"""
    )
    assert settings.title == "Garden news"
    assert settings.description == "Seeds and soil"
    assert settings.base_url == "https://garden.example.org"
    assert settings.language == "fr"
    assert settings.author_name == "Ada"
    assert settings.author_email == "ada@example.org"
    assert settings.content_dir == content_dir
    assert settings.extensions == (".md", ".txt")
    assert settings.permalink == "/{year}/{month}/{day}/{slug}.html"
    assert settings.item_limit == 7
    assert settings.timezone == "Europe/Paris"
    assert settings.tz.key == "Europe/Paris"
    assert settings.max_post_bytes == 1234


def test_environment_overrides_toml(load: Load) -> None:
    settings = load(
        'base_url = "https://toml.example.com"\nitem_limit = 10\nextensions = [".markdown"]\ntitle = "T"\n',
        environ={
            "FEEDS_BASE_URL": "https://env.example.org/",
            "FEEDS_ITEM_LIMIT": "5",
            "FEEDS_EXTENSIONS": ".md, txt",
            "UNRELATED": "x",
        },
    )
    assert settings.base_url == "https://env.example.org"
    assert settings.item_limit == 5
    assert type(settings.item_limit) is int
    assert settings.extensions == (".md", ".txt")
    assert settings.title == "T"  # not in the environment: the TOML value stays


def test_environment_content_dir_and_timezone(load: Load, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    settings = load(
        environ={
            "FEEDS_CONTENT_DIR": str(other),
            "FEEDS_TIMEZONE": "Asia/Tokyo",
            "FEEDS_MAX_POST_BYTES": " 99 ",
        }
    )
    assert settings.content_dir == other
    assert settings.timezone == "Asia/Tokyo"
    assert settings.max_post_bytes == 99


def test_overrides_win_over_environment(load: Load) -> None:
    settings = load(
        'base_url = "https://toml.example.com"\nitem_limit = 10\n',
        environ={"FEEDS_BASE_URL": "https://env.example.org", "FEEDS_ITEM_LIMIT": "5"},
        overrides={"base_url": "https://flag.example.net/", "item_limit": 3},
    )
    assert settings.base_url == "https://flag.example.net"
    assert settings.item_limit == 3


def test_feeds_config_environment_points_at_another_file(
    tmp_path: Path, content_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A default config/feeds.toml in the working directory, which FEEDS_CONFIG must beat.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "feeds.toml").write_text(f"title = \"Default\"\ncontent_dir = '{content_dir}'\n")
    other = tmp_path / "elsewhere.toml"
    other.write_text(f"title = \"Elsewhere\"\ncontent_dir = '{content_dir}'\n")
    monkeypatch.chdir(tmp_path)

    assert load_settings(environ={}).title == "Default"
    assert load_settings(environ={"FEEDS_CONFIG": str(other)}).title == "Elsewhere"


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=missing, environ={})
    assert_one_line_error(caught.value, "config")
    assert str(missing) in str(caught.value)


def test_missing_file_named_by_feeds_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"FEEDS_CONFIG": str(tmp_path / "nope.toml")})
    assert_one_line_error(caught.value, "config")


def test_malformed_toml_is_a_config_error(load: Load) -> None:
    with pytest.raises(ConfigError) as caught:
        load('title = "unclosed\n')
    assert_one_line_error(caught.value, "config")


# --- errors name the setting ----------------------------------------------------------


def test_unknown_key_in_toml(load: Load) -> None:
    with pytest.raises(ConfigError) as caught:
        load('colour = "blue"\n')
    assert_one_line_error(caught.value, "colour")
    assert "unknown setting" in caught.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "not a url",
        "https://",
        "https://example.com/?q=1",
        "http://host:99999",
        "https://exa mple.com",
    ],
)
def test_malformed_base_url(load: Load, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(overrides={"base_url": url})
    assert_one_line_error(caught.value, "base_url")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://example.com/", "https://example.com"),
        ("https://example.com/blog/", "https://example.com/blog"),
        ("  http://example.com:8080/  ", "http://example.com:8080"),
    ],
)
def test_trailing_slash_on_base_url_is_removed(load: Load, given: str, expected: str) -> None:
    assert load(environ={"FEEDS_BASE_URL": given}).base_url == expected


def test_missing_content_dir(load: Load, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(f"content_dir = '{tmp_path / 'no-such-folder'}'\n", with_content_dir=False)
    assert_one_line_error(caught.value, "content_dir")
    assert "no-such-folder" in caught.value.reason


def test_content_dir_that_is_a_file(load: Load, tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ConfigError) as caught:
        load(overrides={"content_dir": str(a_file)})
    assert_one_line_error(caught.value, "content_dir")


@pytest.mark.parametrize(
    ("toml", "environ", "setting"),
    [
        ("", {"FEEDS_ITEM_LIMIT": "abc"}, "item_limit"),
        ("item_limit = true\n", {}, "item_limit"),
        ("item_limit = 0\n", {}, "item_limit"),
        ("item_limit = -3\n", {}, "item_limit"),
        ("item_limit = 2.5\n", {}, "item_limit"),
        ("", {"FEEDS_MAX_POST_BYTES": "1e6"}, "max_post_bytes"),
        ("title = 5\n", {}, "title"),
        ("extensions = 3\n", {}, "extensions"),
        ("extensions = []\n", {}, "extensions"),
        ("extensions = [3]\n", {}, "extensions"),
        ("", {"FEEDS_EXTENSIONS": " , "}, "extensions"),
    ],
)
def test_wrong_types(load: Load, toml: str, environ: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(toml, environ=environ)
    assert_one_line_error(caught.value, setting)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_unknown_timezone(load: Load, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(environ={"FEEDS_TIMEZONE": name})
    assert_one_line_error(caught.value, "timezone")


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("posts/{slug}/", "start with '/'"),
        ("/posts/{foo}/{slug}/", "{foo}"),
        ("/posts/{year}/{month}/", "{slug}"),
        ("/posts/{slug/", "malformed"),
    ],
)
def test_bad_permalink(load: Load, pattern: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(overrides={"permalink": pattern})
    assert_one_line_error(caught.value, "permalink")
    assert words in caught.value.reason


@pytest.mark.parametrize("email", ["nobody", "no body@example.com"])
def test_author_email_without_at(load: Load, email: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(environ={"FEEDS_AUTHOR_EMAIL": email})
    assert_one_line_error(caught.value, "author_email")


def test_relative_content_dir_resolves_against_working_directory(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site" / "posts").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "site")
    settings = load_settings(config_path=write_config('content_dir = "posts"\n'), environ={})
    assert settings.content_dir.is_absolute()
    assert settings.content_dir == tmp_path / "site" / "posts"


# --- Settings.url ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "path", "expected"),
    [
        ("https://example.com", "/rss.xml", "https://example.com/rss.xml"),
        ("https://example.com/", "rss.xml", "https://example.com/rss.xml"),
        ("https://example.com/blog", "/rss.xml", "https://example.com/blog/rss.xml"),
        ("https://example.com/blog/", "/posts/a/", "https://example.com/blog/posts/a/"),
    ],
)
def test_settings_url(load: Load, base_url: str, path: str, expected: str) -> None:
    assert load(overrides={"base_url": base_url}).url(path) == expected


# --- the committed configuration ------------------------------------------------------


def test_committed_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    settings = load_settings(config_path=REPO / "config" / "feeds.toml", environ={})
    assert settings.title == "Hollow Ridge Notes"
    assert settings.content_dir == REPO / "examples" / "content"
    assert settings.extensions == (".md", ".markdown", ".txt")
    # And it is the default when no path is given.
    assert load_settings(environ={}) == settings


# --- the CLI --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "setting"),
    [('colour = "blue"\n', "colour"), ('base_url = "ftp://x"\n', "base_url")],
)
def test_cli_config_error_exits_2_with_one_line(
    tmp_path: Path,
    content_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    setting: str,
) -> None:
    for name in [name for name in os.environ if name.startswith("FEEDS_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text(f"content_dir = '{content_dir}'\n" + toml)

    status = main(["--config", str(path), "check"])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n")
    assert lines[0].startswith(f"feeds: configuration error: {setting}: ")


# --- TOML types are exact; the environment is text -----------------------------------

TOML_STRINGS = [
    ('item_limit = "5"\n', "item_limit", "a whole number"),
    ('max_age = "60"\n', "max_age", "a whole number"),
    ('poll_interval = "2"\n', "poll_interval", "a number"),
    ('metrics = "yes"\n', "metrics", "true or false"),
    ('empty_guard = "off"\n', "empty_guard", "true or false"),
    ('extensions = ".md"\n', "extensions", "a list"),
    ('max_post_bytes = "1000"\n', "max_post_bytes", "a whole number"),
]


@pytest.mark.parametrize(("toml", "setting", "expected"), TOML_STRINGS)
def test_a_toml_string_for_a_typed_setting_is_an_error(
    write_config: Callable[..., Path], content_dir: Path, toml: str, setting: str, expected: str
) -> None:
    path = write_config(f"content_dir = '{content_dir}'\n{toml}")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    assert_one_line_error(caught.value, setting)
    assert caught.value.reason.startswith(f"expected {expected}")
    assert str(path) in caught.value.reason and "got the string" in caught.value.reason


@pytest.mark.parametrize(
    ("name", "value", "setting", "parsed"),
    [
        ("FEEDS_ITEM_LIMIT", "5", "item_limit", 5),
        ("FEEDS_MAX_AGE", "60", "max_age", 60),
        ("FEEDS_POLL_INTERVAL", "2", "poll_interval", 2.0),
        ("FEEDS_METRICS", "yes", "metrics", True),
        ("FEEDS_EMPTY_GUARD", "off", "empty_guard", False),
        ("FEEDS_EXTENSIONS", ".md", "extensions", (".md",)),
    ],
)
def test_the_same_values_as_environment_text_are_read(
    load: Load, name: str, value: str, setting: str, parsed: object
) -> None:
    assert getattr(load(environ={name: value}), setting) == parsed


def test_toml_values_of_the_right_type_still_load(load: Load) -> None:
    settings = load("poll_interval = 2\nmetrics = true\nempty_guard = false\nmax_age = 60\nstate_dir = 'x'\n")
    assert (settings.poll_interval, settings.metrics, settings.empty_guard, settings.max_age) == (
        2.0,
        True,
        False,
        60,
    )


# --- unknown names, with the nearest known one ---------------------------------------


@pytest.mark.parametrize(
    ("name", "nearest"),
    [
        ("FEEDS_ITEM_LIMTI", "FEEDS_ITEM_LIMIT"),
        ("FEEDS_BASEURL", "FEEDS_BASE_URL"),
        ("FEEDS_CONFG", "FEEDS_CONFIG"),
        ("FEEDS_NOTHING_LIKE_IT_AT_ALL", None),
    ],
)
def test_an_unknown_feeds_variable_is_an_error(load: Load, name: str, nearest: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        load(environ={name: "5", "FEEDS_TITLE": "fine", "OTHER_ITEM_LIMTI": "ignored"})
    assert_one_line_error(caught.value, name)
    assert caught.value.reason.startswith("unknown environment variable")
    if nearest:
        assert caught.value.reason.endswith(f"; did you mean {nearest}?")
    else:
        assert "did you mean" not in caught.value.reason


def test_the_variables_the_project_reads_are_allowed(load: Load, write_config: Callable[..., Path]) -> None:
    other = write_config("title = 'From FEEDS_CONFIG'\n", name="other.toml")
    settings = load_settings(environ={"FEEDS_CONFIG": str(other), "FEEDS_CONTENT_DIR": str(REPO)})
    assert settings.title == "From FEEDS_CONFIG"
    every = {f"FEEDS_{key.upper()}": "" for key in ("state_dir", "websub_hub", "author_email")}
    assert load(environ=every).state_dir == ""


def test_unknown_toml_key_names_the_nearest_setting(load: Load) -> None:
    with pytest.raises(ConfigError) as caught:
        load("item_limt = 5\n")
    assert_one_line_error(caught.value, "item_limt")
    assert caught.value.reason.endswith("; did you mean item_limit?")


# Every FEEDS_ name the project's code, tests, benchmarks and scripts set or read, so a
# server started by them is never refused for a variable of their own.
FEEDS_NAME = re.compile(r"\bFEEDS_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
NOT_VARIABLES = {"FEEDS_SETTINGS"}  # the key of the settings in Flask's app.config


def test_every_feeds_variable_the_project_uses_is_known() -> None:
    known = {f"FEEDS_{field.name.upper()}" for field in fields(Settings)} | ENV_OTHERS | NOT_VARIABLES
    files = [*REPO.glob("feeds/**/*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("bench/**/*.py")]
    files += [REPO / "run.sh", REPO / "Procfile", REPO / "README.md", REPO / "config" / "feeds.toml"]
    found = {
        (name, path.name)
        for path in files
        for name in FEEDS_NAME.findall(path.read_text(encoding="utf-8"))
        if path.name != "test_config.py"  # this file spells wrong names on purpose
    }
    assert found, "the pattern finds nothing: the test would be empty"
    assert sorted(pair for pair in found if pair[0] not in known) == []


CLI_CASES = [
    (toml, {}, f"{setting}: expected {expected}", "got the string '" + toml.split('"')[1] + "'")
    for toml, setting, expected in TOML_STRINGS
] + [
    ("", {"FEEDS_ITEM_LIMTI": "5"}, "FEEDS_ITEM_LIMTI: unknown environment variable", "FEEDS_ITEM_LIMIT?"),
    ("", {"FEEDS_BASEURL": "https://x.example"}, "FEEDS_BASEURL: unknown environment", "FEEDS_BASE_URL?"),
    ("titel = 'x'\n", {}, "titel: unknown setting in ", "; did you mean title?"),
]


@pytest.mark.parametrize(("toml", "environ", "line", "end"), CLI_CASES)
def test_cli_refuses_typed_strings_and_unknown_names_with_exit_2(
    tmp_path: Path,
    content_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    environ: dict[str, str],
    line: str,
    end: str,
) -> None:
    for name in [name for name in os.environ if name.startswith("FEEDS_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "bad.toml"
    path.write_text(f"content_dir = '{content_dir}'\n" + toml)
    status = main(["--config", str(path), "build", "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"feeds: configuration error: {line}"), err
    assert err.endswith(f"{end}\n"), err
    assert not (tmp_path / "out").exists()
