"""A fast reader for the plain subset of YAML that front matter nearly always uses.

Building Python objects is where PyYAML spends most of a cold build's time, even with
its C loader. Front matter is usually flat: `key: plain scalar`, folded or literal
blocks (`title: >`) and lists of plain scalars. This module reads exactly that subset
and returns None for anything else (quotes, flow collections, nested mappings, anchors,
tags, comments after values, values that YAML 1.1 would read as booleans, dates or
unusual numbers), so the caller hands those documents to PyYAML. Where it answers, it
answers what PyYAML's safe loader would, which the tests check on generated documents.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER_START = frozenset("-0123456789")
_ODD_SPACE = re.compile(r"[^\S \n]")  # whitespace other than the space and the line feed
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
_BLOCK = re.compile(r"([>|])([-+]?)")
# Characters that start something other than a plain string (YAML 1.1 §9.1.3), plus
# anything that could resolve to a number, a date or a special float.
_NOT_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@`+.0123456789~=<")
# YAML 1.1 booleans and nulls, as PyYAML's resolver matches them.
_KEYWORDS = frozenset(
    word
    for base in ("yes", "no", "true", "false", "on", "off", "null")
    for word in (base, base.capitalize(), base.upper())
)

Value = str | int | float | list[str | int | float]


def load(text: str) -> dict[str, Value] | None:
    """The mapping `text` holds, or None when it is outside the subset."""
    if not text.strip(" \n") or "\t" in text or (not text.isascii() and _ODD_SPACE.search(text)):
        return None  # empty, or tabs and Unicode spaces, whose YAML rules PyYAML knows best
    result: dict[str, Value] = {}
    lines = text.split("\n")
    index, count = 0, len(lines)
    while index < count:
        line = lines[index]
        index += 1
        if not line or line.isspace():
            continue
        if line[0] in " \t#":
            return None  # indentation without an owner, or a comment: PyYAML decides
        colon = line.find(":")
        key = line[:colon].rstrip(" \t")
        if colon < 1 or not _KEY.fullmatch(key) or key in _KEYWORDS:
            return None  # not `key:`, or a key YAML 1.1 reads as a boolean (`on:`, `yes:`)
        raw = line[colon + 1 :]
        if raw and raw[0] not in " \t":
            return None  # `key:value` is one plain scalar in YAML, not a mapping
        raw = raw.strip(" \t")
        block_start = index
        while index < count and (lines[index][:1] == " " or not lines[index] or lines[index].isspace()):
            index += 1
        block = lines[block_start:index]
        value: Value | None
        if not raw:
            value = _sequence(block)
        elif block_style := _BLOCK.fullmatch(raw):
            value = _block_scalar(block, block_style.group(1), block_style.group(2))
        elif any(not line.isspace() for line in block if line):
            return None  # a multi-line plain scalar: rare, and PyYAML folds it its own way
        else:
            value = _scalar(raw)
        if value is None:
            return None
        result[key] = value
    return result


def _scalar(raw: str) -> str | int | float | None:
    first = raw[0]
    if first in _NUMBER_START:
        if _INTEGER.fullmatch(raw):
            return int(raw)
        if _FLOAT.fullmatch(raw):
            return float(raw)
        return None
    if (
        first in _NOT_PLAIN_START
        or raw in _KEYWORDS
        or raw[-1] == ":"
        or ": " in raw
        or " #" in raw
        or "\t" in raw
    ):
        return None
    return raw


def _sequence(block: list[str]) -> list[str | int | float] | None:
    items: list[str | int | float] = []
    indent = None
    for line in block:
        stripped = line.strip()
        if not stripped:
            continue
        this_indent = len(line) - len(line.lstrip(" "))
        if not stripped.startswith("- ") or (indent is not None and this_indent != indent):
            return None
        indent = this_indent
        item = _scalar(stripped[2:].strip())
        if item is None:
            return None
        items.append(item)
    return items if items else None  # an empty value is null in YAML: PyYAML decides


def _block_scalar(block: list[str], style: str, chomping: str) -> str | None:
    """A `>` (folded) or `|` (literal) block scalar, YAML 1.1 §9.2."""
    if any(line and not line.strip() for line in block):
        return None  # a line of spaces alone: past the indentation they are content
    while block and not block[-1]:
        block.pop()
    if not block or not block[0]:
        return None  # empty, or leading empty lines, which YAML keeps as line breaks
    first = next(line for line in block if line.strip())
    indent = len(first) - len(first.lstrip(" "))
    if indent == 0:
        return None
    lines = []
    for line in block:
        if line.strip() and (len(line) - len(line.lstrip(" ")) < indent or "\t" in line[:indent]):
            return None
        lines.append(line[indent:] if line.strip() else "")
    if style == "|":
        text = "\n".join(lines)
    else:
        if any(line[:1] in (" ", "\t") for line in lines):
            return None  # more-indented lines keep their breaks: PyYAML's rules apply
        text = _fold(lines)
    if chomping == "-":
        return text
    return text + "\n" if chomping == "" else None  # "+" keeps trailing blank lines


def _fold(lines: list[str]) -> str:
    """Folding: a single line break between text lines becomes a space, each empty
    line becomes one line break."""
    parts: list[str] = []
    pending_breaks = 0
    for line in lines:
        if not line:
            pending_breaks += 1
            continue
        if parts:
            parts.append("\n" * pending_breaks if pending_breaks else " ")
        parts.append(line)
        pending_breaks = 0
    return "".join(parts)
