"""Plain text: one record per paragraph; paragraphs are separated by blank lines."""

from __future__ import annotations

from collections.abc import Iterator

from indexing.formats.encoding import ASCII_SPACE, Utf8Source, decode_chunk
from indexing.formats.outline import Outline
from indexing.formats.records import ParsedRecord, RecordError


def split_units(source: Utf8Source, outline: Outline) -> Iterator[tuple[int, int]]:
    """Yield (byte, line) of the first line of each paragraph."""
    blank = True
    for number, (pos, part) in enumerate(source.lines(), 1):
        if not part.strip():
            blank = True
        elif blank:
            blank = False
            yield pos, number


def parse_paragraphs(
    data: bytes, *, first_ordinal: int, first_line: int
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """Parse one chunk: a record per paragraph (title "", body = its lines)."""
    text = decode_chunk(data, first_line)
    records: list[ParsedRecord] = []
    ordinal = first_ordinal
    paragraph: list[str] = []
    for line in [*text.split("\n"), ""]:
        if line.strip(ASCII_SPACE):
            paragraph.append(line.rstrip())
        elif paragraph:
            body = "\n".join(paragraph).strip()
            if body:
                records.append(ParsedRecord(ordinal, str(ordinal), "", body, {}))
            ordinal += 1
            paragraph = []
    return records, []
