"""Chunk boundaries: stream a UTF-8 document once and cut it into chunks of whole record units."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import BinaryIO

from indexing.formats import csv as csv_format
from indexing.formats import html as html_format
from indexing.formats import json as json_format
from indexing.formats import jsonl as jsonl_format
from indexing.formats import markdown as markdown_format
from indexing.formats import text as text_format
from indexing.formats.encoding import Utf8Source
from indexing.formats.outline import Outline
from indexing.formats.parse import collector_paused
from indexing.formats.records import ParsedRecord, ParseError

FORMATS: tuple[str, ...] = ("csv", "jsonl", "json", "html", "markdown", "text")


@dataclass(frozen=True)
class Chunk:
    """Bytes [start, end) of the UTF-8 file, holding `units` whole record units."""

    number: int  # 0-based
    start: int  # byte offset (inclusive)
    end: int  # byte offset (exclusive)
    first_ordinal: int  # ordinal of the first unit in this chunk, counted across the document
    first_line: int  # 1-based line number of byte `start`
    units: int


@dataclass
class SplitResult:
    chunks: list[Chunk]
    units: int
    header: list[str] | None = None  # CSV: the header row; chunk 0 starts after it
    title: str | None = None  # HTML <title>, Markdown first level-1 heading
    dialect: dict | None = None  # CSV: {"delimiter": ",", "quotechar": '"'} for parse_chunk
    # With read_records, a one-chunk document's records when the split read them too (HTML).
    records: list[ParsedRecord] | None = None


UnitSplitter = Callable[[Utf8Source, Outline], Iterator[tuple[int, int]]]

_ONE_PASS: dict[str, UnitSplitter] = {"html": html_format.split_and_parse_units}

_SPLITTERS: dict[str, UnitSplitter] = {
    "csv": csv_format.split_units,
    "jsonl": jsonl_format.split_units,
    "json": json_format.split_units,
    "html": html_format.split_units,
    "markdown": markdown_format.split_units,
    "text": text_format.split_units,
}


def split_document(
    stream: BinaryIO,
    fmt: str,
    chunk_size: int,
    max_chunk_bytes: int | None = None,
    *,
    max_units: int | None = None,
    max_fields: int | None = None,
    read_records: bool = False,
) -> SplitResult:
    """Read `stream` (UTF-8) once, check its structure, and cut it into chunks of `chunk_size` units.

    With `max_chunk_bytes`, a chunk also closes before the unit that starts that many bytes after
    its first one, so a worker's memory is bounded by bytes, not only by a count of records of
    any size (a unit bigger than the limit still makes one chunk: records are never cut).
    A document of more than `max_units` records, or a CSV header of more than `max_fields`
    columns, is refused with a ParseError as soon as it is seen.

    With `read_records`, for a small document read whole: a format that can read its records
    in the same pass (HTML) leaves a one-chunk document's records in `records`, to be checked
    by `within_fields` as parse_chunk does; otherwise `records` is None and parse_chunk reads them.
    """
    one_pass = read_records and fmt in _ONE_PASS
    splitter = _ONE_PASS[fmt] if one_pass else _SPLITTERS.get(fmt)
    if splitter is None:
        raise ParseError(
            "unknown_format",
            f"Unknown format {fmt!r}. Quern reads csv, jsonl, json, html, markdown and text.",
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    source = Utf8Source(stream, fmt)
    outline = Outline()
    # Reading records makes many small acyclic objects, as parse_chunk does (6 % of a page's time).
    with collector_paused() if one_pass else nullcontext():
        starts, units = _unit_starts(
            splitter, source, outline, chunk_size, max_chunk_bytes, max_units, max_fields
        )
    end = source.end if outline.end is None else outline.end
    chunks = []
    for number, (start, line, ordinal) in enumerate(starts):
        following = starts[number + 1] if number + 1 < len(starts) else None
        stop, next_ordinal = (following[0], following[2]) if following else (end, units)
        chunks.append(Chunk(number, start, stop, ordinal, line, next_ordinal - ordinal))
    records = outline.records if len(chunks) == 1 else None
    return SplitResult(chunks, units, outline.header, outline.title, outline.dialect, records)


def _unit_starts(
    splitter: UnitSplitter,
    source: Utf8Source,
    outline: Outline,
    chunk_size: int,
    max_chunk_bytes: int | None,
    max_units: int | None,
    max_fields: int | None,
) -> tuple[list[tuple[int, int, int]], int]:
    """(byte, line, ordinal) of each chunk's first unit, and the count of units."""
    starts: list[tuple[int, int, int]] = []  # (byte, line, ordinal) of each chunk's first unit
    units = 0
    in_chunk = 0
    chunk_start = 0
    for start, line in splitter(source, outline):
        if not units and max_fields is not None:
            _check_header(outline.header, max_fields)
        if max_units is not None and units >= max_units:
            raise ParseError(
                "too_many_records",
                f"The document holds more than {max_units:,} records (line {line:,} starts record "
                f"{units + 1:,}); the limit per document is QUERN_MAX_RECORDS_PER_DOCUMENT. Send it "
                "as several documents.",
                line=line,
                record=units,
            )
        if (
            not in_chunk
            or in_chunk >= chunk_size
            or (max_chunk_bytes and start - chunk_start >= max_chunk_bytes)
        ):
            starts.append((start, line, units))
            chunk_start, in_chunk = start, 0
        in_chunk += 1
        units += 1
    if max_fields is not None:
        _check_header(outline.header, max_fields)
    return starts, units


def _check_header(header: list[str] | None, max_fields: int) -> None:
    if header and len(header) > max_fields:
        raise ParseError(
            "too_many_fields",
            f"The CSV header (line 1) names {len(header):,} columns; a record may have at most "
            f"{max_fields:,} fields (QUERN_MAX_FIELDS_PER_RECORD). Keep the columns that are "
            "searched, or raise the limit.",
            line=1,
        )
