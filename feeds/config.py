"""Settings in layers: defaults < a TOML file < `FEEDS_*` environment variables.

Everything is validated once, at start, into a frozen `Settings`; a wrong value raises
`ConfigError` naming the setting, which the entry points turn into one line and exit 2.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import string
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feeds.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/feeds.toml")
ENV_PREFIX = "FEEDS_"
# Variables with the prefix that are not settings but are read all the same.
ENV_OTHERS = frozenset({"FEEDS_CONFIG"})
PERMALINK_FIELDS = frozenset({"slug", "year", "month", "day"})
CONTENT_MODES = ("full", "summary")
# A host, with its port, as CSP host-source allows it (no userinfo, ASCII only), or an
# IP literal in brackets.
_CSP_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")


@dataclass(frozen=True)
class Settings:
    """The validated configuration; see the README's configuration reference."""

    title: str = "My site"
    description: str = "Latest posts"
    base_url: str = "http://127.0.0.1:8000"
    language: str = "en"
    author_name: str = "Site author"
    author_email: str = ""
    content_dir: Path = Path("examples/content")
    extensions: tuple[str, ...] = (".md", ".markdown", ".txt")
    permalink: str = "/posts/{slug}/"
    item_limit: int = 20
    timezone: str = "UTC"
    max_post_bytes: int = 5_000_000
    # Budgets for the tag and category feeds, which one post could otherwise multiply
    # a hundredfold (README, "Limits on what one post can do").
    max_term_entry_bytes: int = 200_000
    max_term_feeds: int = 1000
    max_term_bytes: int = 200_000_000
    max_render_bytes: int = 500_000
    content: str = "full"  # or "summary": entries carry their summaries, never their text
    # The site's square icon and wide logo: absolute http(s) URLs once loaded (a path
    # given in the settings is made absolute against base_url), or empty for none.
    icon: str = ""
    logo: str = ""
    poll_interval: float = 30.0
    max_age: int = 300
    # RFC 5861 windows a cache may serve a feed past max_age: while it revalidates in the
    # background, and while the origin fails (0 leaves the directive out).
    stale_while_revalidate: int = 60
    stale_if_error: int = 86400
    empty_guard: bool = True
    state_dir: str = ""
    log_format: str = "text"
    websub_hub: str = ""
    metrics: bool = False
    health_details: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def url(self, path: str) -> str:
        """An absolute URL for a site path such as `/rss.xml`."""
        return self.base_url + "/" + path.lstrip("/")


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _integer(key: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(key, f"expected a whole number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected a whole number, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ConfigError(key, f"must be at least {minimum}, got {value}")
    return value


def _extensions(key: str, value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise ConfigError(key, f"expected a list of strings, got {type(value).__name__}")
    result = []
    for item in items:
        if not isinstance(item, str) or not item.strip(". "):
            raise ConfigError(key, f"expected file extensions such as '.md', got {item!r}")
        result.append("." + item.strip().lstrip(".").lower())
    if not result:
        raise ConfigError(key, "needs at least one file extension")
    return tuple(dict.fromkeys(result))


def _number(key: str, value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(key, f"expected a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number of seconds, got {type(value).__name__} {value!r}")
    if not 0.05 <= value <= 86400:
        raise ConfigError(key, f"must be between 0.05 and 86400 seconds, got {value}")
    return float(value)


def _boolean(key: str, value: object) -> bool:
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "1",
        "yes",
        "on",
        "false",
        "0",
        "no",
        "off",
    ):
        return value.strip().lower() in ("true", "1", "yes", "on")
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def _log_format(key: str, value: object) -> str:
    text = _text(key, value).strip().lower()
    if text not in ("text", "json"):
        raise ConfigError(key, f"expected 'text' or 'json', got {text!r}")
    return text


def _content(key: str, value: object) -> str:
    text = _text(key, value).strip().lower()
    if text not in CONTENT_MODES:
        raise ConfigError(key, f"expected 'full' or 'summary', got {text!r}")
    return text


def _http_url(key: str, text: str) -> SplitResult:
    """The parts of an absolute http(s) URL; ConfigError naming `key` otherwise."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        raise ConfigError(key, f"malformed URL {text!r}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, f"must be an absolute http(s) URL such as https://example.com, got {text!r}")
    if any(c.isspace() for c in text):
        raise ConfigError(key, f"must not contain spaces, got {text!r}")
    return parts


def _base_url(key: str, value: object) -> str:
    text = _text(key, value).strip()
    parts = _http_url(key, text)
    if parts.query or parts.fragment:
        raise ConfigError(key, f"must not contain a query or a fragment, got {text!r}")
    return text.rstrip("/")


def _optional_url(key: str, value: object) -> str:
    """An absolute http(s) URL kept exactly as written, or empty for none."""
    text = _text(key, value).strip()
    if text:
        _http_url(key, text)
    return text


def _image(key: str, value: object) -> str:
    """An absolute http(s) URL, or a path below base_url (made absolute by
    `load_settings`, which knows base_url), or empty for none."""
    text = _text(key, value).strip()
    if not text:
        return ""
    if text.startswith("/") and not text.startswith("//"):
        if any(c.isspace() or not c.isprintable() for c in text) or "\\" in text:
            raise ConfigError(key, f"must not contain spaces, control characters or '\\', got {text!r}")
        # Browsers read %2e as a dot in a path (WHATWG URL), so those steps count too.
        if any(unquote(part) in (".", "..") for part in urlsplit(text).path.split("/")):
            raise ConfigError(key, f"must be a path below base_url, without '.' or '..' steps, got {text!r}")
        return text
    if "://" not in text:
        raise ConfigError(key, f"must be an absolute http(s) URL or a path starting with '/', got {text!r}")
    _check_image_url(key, text)
    return text


def _check_image_url(key: str, text: str) -> None:
    """`text` is an absolute http(s) URL whose host a Content-Security-Policy can name:
    the pages that show the icon allow images from its origin alone (`image_origin`)."""
    parts = _http_url(key, text)
    if "@" in parts.netloc:
        raise ConfigError(key, f"must not contain a user name or password, got {text!r}")
    if not _CSP_HOST.fullmatch(parts.netloc):
        raise ConfigError(key, f"needs an ASCII host name (an IDN in its xn-- form), got {text!r}")


def image_origin(url: str) -> str:
    """The origin of an icon or logo URL checked by the settings, as a CSP source."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _permalink(key: str, value: object) -> str:
    pattern = _text(key, value).strip()
    if not pattern.startswith("/"):
        raise ConfigError(key, f"must start with '/', got {pattern!r}")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as error:
        raise ConfigError(key, f"malformed pattern {pattern!r}: {error}") from None
    unknown = names - PERMALINK_FIELDS
    if unknown:
        allowed = ", ".join(f"{{{name}}}" for name in sorted(PERMALINK_FIELDS))
        raise ConfigError(key, f"unknown placeholder {{{sorted(unknown)[0]}}}; allowed: {allowed}")
    if "slug" not in names:
        raise ConfigError(key, "must contain {slug}, or two posts could share a permalink")
    return pattern


def _timezone(key: str, value: object) -> str:
    name = _text(key, value).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            key, f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')"
        ) from None
    return name


def _email(key: str, value: object) -> str:
    text = _text(key, value).strip()
    if text and ("@" not in text or any(c.isspace() for c in text)):
        raise ConfigError(key, f"not an email address: {text!r}")
    return text


def _content_dir(key: str, value: object) -> Path:
    return Path(_text(key, value)).expanduser()


_PARSERS: dict[str, Callable[[str, object], Any]] = {
    "title": _text,
    "description": _text,
    "base_url": _base_url,
    "language": _text,
    "author_name": _text,
    "author_email": _email,
    "content_dir": _content_dir,
    "extensions": _extensions,
    "permalink": _permalink,
    "item_limit": _integer,
    "timezone": _timezone,
    "max_post_bytes": _integer,
    "max_term_entry_bytes": _integer,
    "max_term_feeds": _integer,
    "max_term_bytes": _integer,
    "max_render_bytes": _integer,
    "content": _content,
    "icon": _image,
    "logo": _image,
    "poll_interval": _number,
    "max_age": _integer,
    "stale_while_revalidate": functools.partial(_integer, minimum=0),
    "stale_if_error": functools.partial(_integer, minimum=0),
    "empty_guard": _boolean,
    "state_dir": _text,
    "log_format": _log_format,
    "websub_hub": _optional_url,
    "metrics": _boolean,
    "health_details": _boolean,
}
assert set(_PARSERS) == {f.name for f in fields(Settings)}
_DEFAULTS = Settings()
# What a TOML value must be for a setting whose default has this type; the parsers of
# other settings (text, paths) take strings.
_TOML_KINDS: dict[type, str] = {
    int: "a whole number (no quotes)",
    float: "a number (no quotes)",
    bool: "true or false (no quotes)",
    tuple: "a list such as ['.md']",
}


def _nearest(name: str, known: Iterable[str]) -> str:
    """A hint naming the known key closest to a misspelt `name`, or nothing."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _check_toml_type(key: str, value: object, path: Path) -> None:
    """TOML has types, so a value must have the setting's own: `item_limit = "5"` is a
    mistake to show, not a string to read as a number. (Environment variables are all
    text, and the parsers read them.)"""
    kind = _TOML_KINDS.get(type(getattr(_DEFAULTS, key)))
    if isinstance(value, str) and kind is not None:
        raise ConfigError(key, f"expected {kind} in {str(path)!r}, got the string {value!r}")


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError("config", f"{str(path)!r} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError("config", f"{str(path)!r}: {error}") from None


def load_settings(
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Reads the layers and validates them; raises `ConfigError` on the first bad setting.

    `config_path` None means `$FEEDS_CONFIG`, else `config/feeds.toml` when it exists.
    `overrides` come from command-line flags and win over everything else.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    explicit = config_path or (Path(environ["FEEDS_CONFIG"]) if environ.get("FEEDS_CONFIG") else None)
    if explicit is not None or DEFAULT_CONFIG_PATH.is_file():
        path = explicit or DEFAULT_CONFIG_PATH
        for key, value in _read_toml(path).items():
            if key not in _PARSERS:
                raise ConfigError(key, f"unknown setting in {str(path)!r}{_nearest(key, _PARSERS)}")
            _check_toml_type(key, value, path)
            raw[key] = value
    env_names = {ENV_PREFIX + key.upper(): key for key in _PARSERS}
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in env_names and name not in ENV_OTHERS:
            # A misspelt variable would otherwise be ignored, and its setting lost.
            hint = _nearest(name, [*env_names, *ENV_OTHERS])
            raise ConfigError(name, f"unknown environment variable{hint}")
    for env_name, key in env_names.items():
        if env_name in environ:
            raw[key] = environ[env_name]
    raw.update(overrides or {})
    values = {key: _PARSERS[key](key, value) for key, value in raw.items()}
    settings = Settings(**values)
    content_dir = settings.content_dir.absolute()
    if not content_dir.is_dir():
        raise ConfigError("content_dir", f"{str(content_dir)!r} is not an existing directory")
    images = {key: _absolute(settings, key) for key in ("icon", "logo")}
    return Settings(**{**values, "content_dir": content_dir, **images})


def _absolute(settings: Settings, key: str) -> str:
    """The `icon` or `logo` setting as an absolute URL: a path is taken below base_url."""
    value: str = getattr(settings, key)
    if value.startswith("/"):
        value = settings.url(value)
        _check_image_url(key, value)
    return value
