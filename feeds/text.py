"""Plain-text helpers: characters XML cannot carry, whitespace, and summaries."""

from __future__ import annotations

import re
import reprlib

# XML 1.0 §2.2 forbids C0 controls other than tab, LF and CR, lone surrogates and
# U+FFFE/U+FFFF, and discourages DEL and the C1 controls: drop them all, so that one
# stray character is cleaned instead of failing the whole feed (lxml raises on them).
_XML_UNFIT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_WHITESPACE = re.compile(r"\s+")

SUMMARY_LENGTH = 300

# Problem messages quote the offending value; a hostile one (a 5 MB line, a YAML alias
# bomb) must not make the message, the log or /healthz huge or slow.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict = 2, 4, 4
_BRIEF.maxstring = _BRIEF.maxother = 60


def clean(text: str) -> str:
    """`text` without the characters that XML 1.0 forbids or discourages."""
    return _XML_UNFIT.sub("", text)


def one_line(text: str) -> str:
    """Whitespace runs (newlines of folded YAML scalars included) collapsed to one space."""
    stripped = text.strip()
    if stripped.isascii() and not any(run in stripped for run in ("  ", "\n", "\t", "\r", "\x0b", "\x0c")):
        return stripped  # the common case, without a regex pass
    return _WHITESPACE.sub(" ", stripped)


def shorten(text: str, limit: int = SUMMARY_LENGTH) -> str:
    """`text` on one line, cut at a word boundary to at most about `limit` characters."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.-") + "…"


def brief(value: object) -> str:
    """A short `repr` of `value`, bounded in length and depth, for error messages."""
    return _BRIEF.repr(value)
