"""Reading the many ways posts write dates, and writing the few ways feeds want them."""

from __future__ import annotations

import datetime as dt
import math
import re
from email.utils import parsedate_to_datetime

from feeds.text import brief

_NUMBER = re.compile(r"[+-]?\d+(\.\d*)?")
_BASIC_DATE = re.compile(r"\d{8}")
# The zone "-0000" of RFC 5322 §3.3, after the time and before an optional comment.
_UTC_NO_LOCAL = re.compile(r"\s-0000(?=\s|\(|$)")
# Unix seconds read as a date: from 100,000,000 (1973-03-03T09:46:40Z) to before
# 4,102,444,800 (2100-01-01T00:00:00Z).
PLAUSIBLE_TIMESTAMPS = (100_000_000, 4_102_444_800)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_date(value: object, tz: dt.tzinfo) -> dt.datetime:
    """A front-matter date as an aware datetime in UTC; raises ValueError saying why not.

    Accepts Unix timestamps (int, float or numeric string), ISO 8601 dates and
    datetimes, RFC 822 dates and YAML/TOML native values. A value with no offset is
    read in `tz`. Exactly eight digits, as an integer or as text, are an ISO 8601 basic
    date (YYYYMMDD), never a timestamp: as seconds they would all fall in 1970-1973.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a date, got {value!r}")
    if isinstance(value, str):
        value = _from_text(value.strip())
    elif isinstance(value, int) and 10_000_000 <= value <= 99_999_999:
        value = _basic_date(str(value))
    if isinstance(value, int | float):
        return _from_timestamp(value)
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        raise ValueError(f"expected a date, got {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"date out of range: {value!r}") from None


def _from_text(text: str) -> object:
    if not text:
        raise ValueError("empty date")
    if _BASIC_DATE.fullmatch(text):
        return _basic_date(text)
    if _NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)  # shown in a problem as written
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"not a date: {brief(text)} (use ISO 8601, RFC 822 or a Unix timestamp)") from None
    if moment.tzinfo is None and _UTC_NO_LOCAL.search(text):
        # RFC 5322 §3.3: "-0000" is UTC from a sender that tells nothing of its local
        # time. The email module returns a naive datetime for it, as for no zone at all.
        return moment.replace(tzinfo=dt.UTC)
    return moment


def _basic_date(digits: str) -> dt.date:
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise ValueError(
            f"not a date: {digits} (eight digits are read as an ISO 8601 date YYYYMMDD;"
            " as Unix seconds they would fall in 1970-1973)"
        ) from None


def _from_timestamp(seconds: float) -> dt.datetime:
    try:
        if not math.isfinite(seconds):
            raise ValueError(f"not a date: {brief(seconds)}")
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp out of range: {brief(seconds)}") from None
    # A year (2024), a date without dashes read as a number (20240315.0) or with the
    # time run on (202403151230) would otherwise date a post in 1970 or hold it back
    # for millennia, silently. Real timestamps of posts fall well within this window.
    if not PLAUSIBLE_TIMESTAMPS[0] <= seconds < PLAUSIBLE_TIMESTAMPS[1]:
        raise ValueError(
            f"{brief(seconds)} is not a plausible Unix timestamp ({rfc3339(moment)}: a timestamp must "
            "fall between 1973-03-03 and 2100-01-01); write dates as ISO 8601, e.g. 2024-03-15"
        )
    return moment


def rfc822(moment: dt.datetime) -> str:
    """RFC 822 (as RSS 2.0 uses it, four-digit year) in UTC, in English whatever the locale.

    Formatted by hand because strftime's %a/%b follow the process locale, and switching
    the locale (as feedgen does) is not thread-safe.
    """
    utc = moment.astimezone(dt.UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} +0000"
    )


def rfc3339(moment: dt.datetime) -> str:
    """RFC 3339 in UTC to the second, as Atom (RFC 4287 §3.3) and JSON Feed want it."""
    utc = moment.astimezone(dt.UTC)
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
