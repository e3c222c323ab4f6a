"""Reading front-matter dates, and writing RFC 822 / RFC 3339 in English and in UTC."""

from __future__ import annotations

import datetime as dt
import locale
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feeds.dates import parse_date, rfc822, rfc3339

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")
HARBOUR = dt.datetime(2020, 10, 15, 3, 58, 50, 453859, tzinfo=UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- parse_date -----------------------------------------------------------------------


def test_unix_float_timestamp() -> None:
    moment = parse_date(1602734330.453859, UTC)
    assert moment == HARBOUR
    assert moment.microsecond == 453859
    assert rfc822(moment) == "Thu, 15 Oct 2020 03:58:50 +0000"


def test_unix_timestamp_ignores_the_time_zone() -> None:
    assert parse_date(1602734330.453859, PARIS) == HARBOUR


def test_unix_int_timestamp() -> None:
    assert parse_date(1602734330, PARIS) == utc(2020, 10, 15, 3, 58, 50)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1602734330.453859", HARBOUR),
        ("1602734330", utc(2020, 10, 15, 3, 58, 50)),
        ("  1602734330  ", utc(2020, 10, 15, 3, 58, 50)),
        ("1602734330.", utc(2020, 10, 15, 3, 58, 50)),
    ],
)
def test_numeric_string_timestamp(text: str, expected: dt.datetime) -> None:
    assert parse_date(text, PARIS) == expected


def test_iso_date_is_midnight_in_the_given_zone() -> None:
    assert parse_date("2024-02-29", PARIS) == utc(2024, 2, 28, 23, 0)
    assert parse_date("2024-02-29", UTC) == utc(2024, 2, 29)
    # Summer time in Paris is two hours ahead.
    assert parse_date("2024-07-01", PARIS) == utc(2024, 6, 30, 22, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-02-29T10:30:00+02:00", utc(2024, 2, 29, 8, 30)),
        ("2024-02-29T10:30:00-05:30", utc(2024, 2, 29, 16, 0)),
        ("2024-02-29T10:30:00Z", utc(2024, 2, 29, 10, 30)),
        ("2024-02-29T10:30:00.250Z", dt.datetime(2024, 2, 29, 10, 30, 0, 250000, tzinfo=UTC)),
        ("2024-02-29 10:30:00+00:00", utc(2024, 2, 29, 10, 30)),
    ],
)
def test_iso_datetime_with_offset(text: str, expected: dt.datetime) -> None:
    # The given zone must not matter when the text carries its own offset.
    assert parse_date(text, PARIS) == expected


def test_naive_iso_datetime_takes_the_zone() -> None:
    assert parse_date("2024-02-29T10:30:00", PARIS) == utc(2024, 2, 29, 9, 30)
    assert parse_date("2024-02-29T10:30", ZoneInfo("America/New_York")) == utc(2024, 2, 29, 15, 30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 10 Jun 2003 04:00:00 GMT", utc(2003, 6, 10, 4, 0)),
        ("Tue, 10 Jun 2003 04:00:00 +0200", utc(2003, 6, 10, 2, 0)),
        ("Tue, 10 Jun 2003 04:00:00 -0700", utc(2003, 6, 10, 11, 0)),
        ("10 Jun 2003 04:00:00 UT", utc(2003, 6, 10, 4, 0)),
    ],
)
def test_rfc822_text(text: str, expected: dt.datetime) -> None:
    assert parse_date(text, PARIS) == expected


def test_yaml_native_date() -> None:
    assert parse_date(dt.date(2024, 2, 29), PARIS) == utc(2024, 2, 28, 23, 0)


def test_yaml_native_naive_datetime_takes_the_zone() -> None:
    assert parse_date(dt.datetime(2024, 2, 29, 10, 30), PARIS) == utc(2024, 2, 29, 9, 30)


def test_yaml_native_aware_datetime_keeps_its_offset() -> None:
    plus5 = dt.timezone(dt.timedelta(hours=5))
    assert parse_date(dt.datetime(2024, 2, 29, 10, 30, tzinfo=plus5), PARIS) == utc(2024, 2, 29, 5, 30)


@pytest.mark.parametrize(
    "value",
    [
        1602734330.453859,
        1602734330,
        "1602734330",
        "2024-02-29",
        "2024-02-29T10:30:00+02:00",
        "2024-02-29T10:30:00",
        "Tue, 10 Jun 2003 04:00:00 +0200",
        dt.date(2024, 2, 29),
        dt.datetime(2024, 2, 29, 10, 30),
        dt.datetime(2024, 2, 29, 10, 30, tzinfo=PARIS),
    ],
)
def test_result_is_always_in_utc(value: object) -> None:
    moment = parse_date(value, PARIS)
    assert moment.tzinfo is UTC
    assert moment.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (True, "True"),
        (False, "False"),
        (None, "NoneType"),
        (["2024-02-29"], "list"),
        ({"date": "2024-02-29"}, "dict"),
        ("", "empty"),
        ("   ", "empty"),
        ("yesterday", "yesterday"),
        ("2024-13-45", "2024-13-45"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "inf"),
        (1e20, "out of range"),
        ("1e20", "1e20"),
    ],
)
def test_invalid_dates_raise_a_readable_value_error(value: object, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_date(value, UTC)
    message = str(caught.value)
    assert words in message
    assert "\n" not in message
    assert len(message) < 200


def test_date_out_of_range_after_conversion() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_date(dt.date(1, 1, 1), PARIS)


# --- rfc822 / rfc3339 -----------------------------------------------------------------


def test_rfc3339() -> None:
    assert rfc3339(HARBOUR) == "2020-10-15T03:58:50Z"


def test_rfc822_and_rfc3339_convert_to_utc() -> None:
    paris_summer = dt.datetime(2024, 7, 1, 1, 30, 15, tzinfo=PARIS)  # 2024-06-30 23:30:15 UTC
    assert rfc822(paris_summer) == "Sun, 30 Jun 2024 23:30:15 +0000"
    assert rfc3339(paris_summer) == "2024-06-30T23:30:15Z"
    minus8 = dt.datetime(2023, 12, 31, 20, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    assert rfc822(minus8) == "Mon, 01 Jan 2024 04:00:00 +0000"
    assert rfc3339(minus8) == "2024-01-01T04:00:00Z"


def test_year_999_is_four_digits() -> None:
    moment = utc(999, 3, 4, 5, 6, 7)
    assert rfc822(moment) == "Mon, 04 Mar 0999 05:06:07 +0000"  # proleptic Gregorian calendar
    assert rfc3339(moment) == "0999-03-04T05:06:07Z"


# Monday 2024-01-01 .. Sunday 2024-01-07, and the 1st of each month of 2024.
WEEKDAYS = [
    (utc(2024, 1, 1), "Mon, 01 Jan 2024 00:00:00 +0000"),
    (utc(2024, 1, 2), "Tue, 02 Jan 2024 00:00:00 +0000"),
    (utc(2024, 1, 3), "Wed, 03 Jan 2024 00:00:00 +0000"),
    (utc(2024, 1, 4), "Thu, 04 Jan 2024 00:00:00 +0000"),
    (utc(2024, 1, 5), "Fri, 05 Jan 2024 00:00:00 +0000"),
    (utc(2024, 1, 6), "Sat, 06 Jan 2024 00:00:00 +0000"),
    (utc(2024, 1, 7), "Sun, 07 Jan 2024 00:00:00 +0000"),
]
MONTHS = [
    (utc(2024, 2, 1), "Thu, 01 Feb 2024 00:00:00 +0000"),
    (utc(2024, 3, 1), "Fri, 01 Mar 2024 00:00:00 +0000"),
    (utc(2024, 4, 1), "Mon, 01 Apr 2024 00:00:00 +0000"),
    (utc(2024, 5, 1), "Wed, 01 May 2024 00:00:00 +0000"),
    (utc(2024, 6, 1), "Sat, 01 Jun 2024 00:00:00 +0000"),
    (utc(2024, 7, 1), "Mon, 01 Jul 2024 00:00:00 +0000"),
    (utc(2024, 8, 1), "Thu, 01 Aug 2024 00:00:00 +0000"),
    (utc(2024, 9, 1), "Sun, 01 Sep 2024 00:00:00 +0000"),
    (utc(2024, 10, 1), "Tue, 01 Oct 2024 00:00:00 +0000"),
    (utc(2024, 11, 1), "Fri, 01 Nov 2024 00:00:00 +0000"),
    (utc(2024, 12, 1), "Sun, 01 Dec 2024 00:00:00 +0000"),
]
ENGLISH_TABLE = WEEKDAYS + MONTHS


@pytest.mark.parametrize(("moment", "expected"), ENGLISH_TABLE)
def test_rfc822_english_weekday_and_month_names(moment: dt.datetime, expected: str) -> None:
    assert rfc822(moment) == expected


def _compile_locale(directory: Path, name: str) -> bool:
    """Compiles a glibc locale into `directory` (for use with LOCPATH) when the sources exist."""
    localedef = shutil.which("localedef")
    language = name.split(".")[0]
    if localedef is None or not Path("/usr/share/i18n/locales", language).is_file():
        return False
    result = subprocess.run(
        [localedef, "-i", language, "-f", "UTF-8", str(directory / name)],
        capture_output=True,
        check=False,
    )
    return (directory / name / "LC_TIME").exists() or result.returncode == 0


@pytest.fixture
def foreign_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Switches the process to a non-English locale, installed or compiled for this test."""
    candidates = ("de_DE.UTF-8", "fr_FR.UTF-8")
    saved = locale.setlocale(locale.LC_ALL)
    chosen = None
    for name in candidates:
        try:
            locale.setlocale(locale.LC_ALL, name)
        except locale.Error:
            continue
        chosen = name
        break
    if chosen is None:
        # None installed: try compiling one into a private folder (glibc reads LOCPATH).
        locales = tmp_path / "locales"
        locales.mkdir()
        for name in candidates:
            if not _compile_locale(locales, name):
                continue
            monkeypatch.setenv("LOCPATH", str(locales))
            try:
                locale.setlocale(locale.LC_ALL, name)
            except locale.Error:
                continue
            chosen = name
            break
    if chosen is None:
        pytest.skip(
            f"no non-English locale ({', '.join(candidates)}) is installed or can be compiled; "
            "test_rfc822_english_weekday_and_month_names covers the names"
        )
    try:
        yield chosen
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def test_rfc822_is_english_whatever_the_locale(foreign_locale: str) -> None:
    # Proof the locale is really switched: strftime now speaks another language.
    thursday = utc(2020, 10, 15, 3, 58, 50)
    assert thursday.strftime("%a %b") != "Thu Oct", f"{foreign_locale} did not take effect"
    assert rfc822(HARBOUR) == "Thu, 15 Oct 2020 03:58:50 +0000"
    for moment, expected in ENGLISH_TABLE:
        assert rfc822(moment) == expected
    assert rfc3339(HARBOUR) == "2020-10-15T03:58:50Z"


# --- RFC 5322 "-0000" and ISO 8601 basic dates -------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    "text",
    [
        "Tue, 01 Oct 2024 10:00:00 -0000",
        "01 Oct 2024 10:00:00 -0000",
        "Tue, 01 Oct 2024 10:00:00 -0000 (no local time known)",
    ],
)
def test_rfc822_minus_zero_is_utc(text: str) -> None:
    # RFC 5322 §3.3: "-0000" is UTC, with no word on the sender's local time; it must not
    # be read as a date without a zone.
    assert parse_date(text, NEW_YORK) == utc(2024, 10, 1, 10, 0)


def test_rfc822_without_a_zone_still_takes_the_given_zone() -> None:
    assert parse_date("Tue, 01 Oct 2024 10:00:00", NEW_YORK) == utc(2024, 10, 1, 14, 0)


@pytest.mark.parametrize("value", ["20240315", " 20240315 ", 20240315])
def test_eight_digits_are_a_basic_iso_date(value: object) -> None:
    assert parse_date(value, UTC) == utc(2024, 3, 15)
    assert parse_date(value, NEW_YORK) == utc(2024, 3, 15, 4, 0)  # midnight in New York (EDT)


@pytest.mark.parametrize("value", ["20241301", 20241301, "20240230", 99999999, "00000000", 12345678])
def test_eight_digits_that_are_no_date_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"not a date: \d{8} \(eight digits are read as .*YYYYMMDD"):
        parse_date(value, UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1602734330.453859, HARBOUR),
        ("1602734330.453859", HARBOUR),
        (1602734330, utc(2020, 10, 15, 3, 58, 50)),
        (100_000_000, utc(1973, 3, 3, 9, 46, 40)),  # nine digits: a timestamp
        (4_102_444_799, utc(2099, 12, 31, 23, 59, 59)),  # the last plausible second
    ],
)
def test_other_numbers_stay_timestamps(value: object, expected: dt.datetime) -> None:
    assert parse_date(value, NEW_YORK) == expected


@pytest.mark.parametrize(
    ("value", "shown", "moment"),
    [
        (2024, "2024", "1970-01-01T00:33:44Z"),  # a year
        ("2024", "2024", "1970-01-01T00:33:44Z"),
        (20240315.0, "20240315.0", "1970-08-23T06:18:35Z"),  # a basic date as a float
        ("20240315.0", "20240315.0", "1970-08-23T06:18:35Z"),
        (202403151230, "202403151230", "8383-11-26T01:33:50Z"),  # the time run on
        (0, "0", "1970-01-01T00:00:00Z"),
        ("-86400", "-86400", "1969-12-31T00:00:00Z"),
        (99_999_999.5, "99999999.5", "1973-03-03T09:46:39Z"),
        (4_102_444_800, "4102444800", "2100-01-01T00:00:00Z"),
    ],
)
def test_an_implausible_timestamp_is_refused_with_the_reason(value: object, shown: str, moment: str) -> None:
    """A number that is no plausible post date would put the post in 1970 or hold it
    back for centuries without a word: it is a problem that says what to write."""
    with pytest.raises(ValueError) as caught:
        parse_date(value, NEW_YORK)
    assert str(caught.value) == (
        f"{shown} is not a plausible Unix timestamp ({moment}: a timestamp must fall between "
        "1973-03-03 and 2100-01-01); write dates as ISO 8601, e.g. 2024-03-15"
    )
