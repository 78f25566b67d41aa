"""Markdown: one record per section; a section starts at each ATX heading outside code fences."""

from __future__ import annotations

import re
from collections.abc import Iterator

from indexing.formats.encoding import Utf8Source, decode_chunk
from indexing.formats.outline import Outline
from indexing.formats.records import ParsedRecord, RecordError

_HEADING_START = re.compile(rb"^ {0,3}#{1,6}(?:[ \t]|\r?$)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t\r]*$")
_FENCE = re.compile(rb"^ {0,3}(`{3,}|~{3,})")

_MARKUP = [
    # A link's text holds no bracket: "[[[…]]]" would otherwise rescan to the first "]" from
    # every "[" (quadratic: 200 KB of brackets took 50 s).
    (re.compile(r"!\[([^\[\]]*)\]\([^)]*\)"), r"\1"),  # images -> alt text
    (re.compile(r"!?\[([^\[\]]*)\]\[[^\[\]]*\]"), r"\1"),  # reference links
    (re.compile(r"\[([^\[\]]*)\]\([^)]*\)"), r"\1"),  # links -> text
    (re.compile(r"<((?:https?|mailto|ftp):[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"</?[A-Za-z][^>]*>|<!--.*?-->"), ""),  # html tags and comments
    (re.compile(r"(`+)(.+?)\1"), r"\2"),  # inline code
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),  # strikethrough
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # *emphasis*
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),  # _emphasis_
]


def strip_markup(line: str) -> str:
    """A line of Markdown as plain text: emphasis, links, images, code ticks and tags removed."""
    for pattern, replacement in _MARKUP:
        line = pattern.sub(replacement, line)
    return line


def heading_text(line: str) -> tuple[int, str]:
    """The level and plain text of an ATX heading line."""
    m = _HEADING.match(line)
    if m is None:  # cannot happen for a line _HEADING_START matched; stay readable anyway
        return 1, strip_markup(line.strip(" #\t\r")).strip()
    return len(m.group(1)), strip_markup(m.group(2) or "").strip()


def split_units(source: Utf8Source, outline: Outline) -> Iterator[tuple[int, int]]:
    """Yield (byte, line) of each section: each heading line, and non-blank text before the first."""
    number = 0
    fence: tuple[int, int] | None = None  # (fence byte, length) while inside a code block
    started = False  # a unit has started: later non-heading lines belong to it
    for pos, part in source.lines():
        number += 1
        if fence is not None:
            if _closes(part, fence):
                fence = None
            continue
        m = _FENCE.match(part)
        if m is not None:
            fence = (m.group(1)[0], len(m.group(1)))
            if not started:
                started = True
                yield pos, number
            continue
        if _HEADING_START.match(part):
            started = True
            if outline.title is None:
                level, title = heading_text(part.decode("utf-8"))
                if level == 1 and title:
                    outline.title = title
            yield pos, number
        elif not started and part.strip():
            started = True
            yield pos, number


def _closes(line: bytes, fence: tuple[int, int]) -> bool:
    char, length = fence
    text = line.rstrip()
    stripped = text.lstrip(b" ")
    if len(text) - len(stripped) > 3 or len(stripped) < length:
        return False
    return stripped == bytes([char]) * len(stripped)


def parse_sections(
    data: bytes, *, first_ordinal: int, first_line: int
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """Parse one chunk: a record per section (title = heading text, body = plain text, level)."""
    decode_chunk(data, first_line)  # checks the chunk is UTF-8; lines are decoded one by one
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    records: list[ParsedRecord] = []
    ordinal = first_ordinal
    section: tuple[int, str, list[str]] | None = None  # (level, title, body lines)
    fence: tuple[int, int] | None = None

    def close() -> None:
        nonlocal ordinal
        if section is None:
            return
        level, title, lines = section
        body = "\n".join(lines).strip()
        if title or body:
            records.append(ParsedRecord(ordinal, str(ordinal), title, body, {"level": level}))
        ordinal += 1

    for part in data.split(b"\n"):
        if fence is not None:
            if _closes(part, fence):
                fence = None
            else:
                section[2].append(part.decode("utf-8").rstrip("\r"))  # code: kept as written
            continue
        m = _FENCE.match(part)
        if m is not None:
            fence = (m.group(1)[0], len(m.group(1)))
            if section is None:
                section = (0, "", [])
            continue
        if _HEADING_START.match(part):
            close()
            level, title = heading_text(part.decode("utf-8"))
            section = (level, title, [])
        elif section is not None:
            section[2].append(strip_markup(part.decode("utf-8").rstrip()))
        elif part.strip():
            section = (0, "", [strip_markup(part.decode("utf-8").rstrip())])
    close()
    return records, []
