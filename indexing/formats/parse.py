"""Parsing: the records of one chunk, whatever its format."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from indexing.formats import csv as csv_format
from indexing.formats import html as html_format
from indexing.formats import json as json_format
from indexing.formats import jsonl as jsonl_format
from indexing.formats import markdown as markdown_format
from indexing.formats import text as text_format
from indexing.formats.records import ParsedRecord, ParseError, RecordError, too_many_fields_error

_PARSERS = {
    "jsonl": jsonl_format.parse_lines,
    "json": json_format.parse_elements,
    "html": html_format.parse_sections,
    "markdown": markdown_format.parse_sections,
    "text": text_format.parse_paragraphs,
}


def parse_chunk(
    data: bytes,
    fmt: str,
    *,
    first_ordinal: int,
    first_line: int,
    header: list[str] | None = None,
    dialect: dict | None = None,
    max_fields: int | None = None,
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """Parse the bytes [chunk.start, chunk.end) of a UTF-8 file into records and per-record errors.

    With `max_fields`, a record of more fields is an error of its own (too_many_fields).
    """
    if fmt == "csv":
        if not header:
            raise ValueError("parse_chunk needs the CSV header that split_document returned")
        with collector_paused():
            records, errors = csv_format.parse_rows(
                data, first_ordinal=first_ordinal, first_line=first_line, header=header, dialect=dialect
            )
    else:
        parser = _PARSERS.get(fmt)
        if parser is None:
            raise ParseError(
                "unknown_format",
                f"Unknown format {fmt!r}. Quern reads csv, jsonl, json, html, markdown and text.",
            )
        with collector_paused():
            records, errors = parser(data, first_ordinal=first_ordinal, first_line=first_line)
    return within_fields(records, errors, max_fields)


def within_fields(
    records: list[ParsedRecord], errors: list[RecordError], max_fields: int | None
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """With `max_fields`, a record of more fields is an error of its own (too_many_fields)."""
    if max_fields is not None and any(len(r.fields) > max_fields for r in records):
        wide = [r for r in records if len(r.fields) > max_fields]
        records = [r for r in records if len(r.fields) <= max_fields]
        errors = sorted(
            [*errors, *(too_many_fields_error(r, max_fields) for r in wide)],
            key=lambda e: -1 if e.record is None else e.record,
        )
    return records, errors


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a chunk is parsed.

    A chunk makes hundreds of thousands of small acyclic objects (rows, dicts, records);
    the collections they trigger walk every live object and measured 25-60% of parse time.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
