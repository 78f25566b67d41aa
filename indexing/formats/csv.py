"""CSV: a header row, then one record per row; quoted fields may hold line breaks."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from indexing.formats.encoding import MAX_LINE, Utf8Source, decode_chunk
from indexing.formats.outline import Outline
from indexing.formats.records import TITLE_FIELDS, ParsedRecord, ParseError, RecordError

DELIMITERS = ",;\t|"  # in order of preference when a header has as many of one as of another
_QUOTED = re.compile(r'"[^"]*"')


def split_units(source: Utf8Source, outline: Outline) -> Iterator[tuple[int, int]]:
    """Yield (byte, line) of each record after the header.

    A record ends at a line break only when it holds an even number of quotes so far, so
    a quoted field with line breaks stays in one record and no chunk boundary cuts it.
    """
    lines = source.lines()
    number = 0
    head: list[bytes] = []
    head_line = 0
    quotes = 0
    for _, part in lines:
        number += 1
        if not head:
            if not part.strip():
                continue  # blank lines before the header
            head_line = number
        head.append(part)
        quotes += part.count(b'"')
        if not quotes & 1:
            break
    if not head:
        return  # an empty document: no header, no records
    if quotes & 1:
        raise ParseError(
            "csv_unterminated_quote",
            f"The header row (line {head_line}) opens a quoted name that is never closed. "
            'Close the quote (") or remove it.',
            line=head_line,
        )
    outline.header, outline.dialect = _read_header(b"\n".join(head).decode("utf-8"), head_line)

    open_since = 0  # line where a record with an open quoted field started; 0 when none
    for pos, part in lines:
        number += 1
        if open_since:
            if part.count(b'"') & 1:
                open_since = 0
        elif part and part != b"\r":
            yield pos, number
            if part.count(b'"') & 1:
                open_since = number
    if open_since:
        raise ParseError(
            "csv_unterminated_quote",
            f"The record starting on line {open_since:,} opens a quoted field that is never closed "
            'before the end of the file. Close the quote (") or double the quotes inside the field ("").',
            line=open_since,
        )


def sniff_delimiter(header_text: str) -> str:
    """The delimiter a header row uses most often outside quotes (',' when it has none)."""
    unquoted = _QUOTED.sub("", header_text)
    best = max(DELIMITERS, key=unquoted.count)
    return best if unquoted.count(best) else ","


def _read_header(text: str, line: int) -> tuple[list[str], dict[str, Any]]:
    dialect = {"delimiter": sniff_delimiter(text), "quotechar": '"'}
    try:
        names = [name.strip() for name in next(csv.reader([text], **dialect))]
    except csv.Error as exc:  # e.g. a lone carriage return inside an unquoted name
        raise ParseError(
            "csv_header",
            f"The header row (line {line}) cannot be read as CSV: {exc}. The first line must name "
            "every column, e.g. id,title,text.",
            line=line,
        ) from None
    seen: dict[str, int] = {}
    for column, name in enumerate(names, 1):
        if not name:
            raise ParseError(
                "csv_header",
                f"Column {column} of the header row (line {line}) has no name. The first line must "
                "name every column, e.g. id,title,text.",
                line=line,
            )
        if name in seen:
            raise ParseError(
                "csv_header",
                f"The header row (line {line}) names the column {name!r} twice (columns {seen[name]} "
                f"and {column}). Column names must be unique.",
                line=line,
            )
        seen[name] = column
    return names, dialect


def parse_rows(
    data: bytes,
    *,
    first_ordinal: int,
    first_line: int,
    header: list[str],
    dialect: dict[str, Any] | None,
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """Parse the records of one chunk; ragged or unreadable rows become errors."""
    # Long text fields are normal in documents; the stdlib default (128 KiB) is not.
    if csv.field_size_limit() < MAX_LINE:
        csv.field_size_limit(MAX_LINE)
    text = decode_chunk(data, first_line)
    units, unit_lines = _units(text, first_line)
    options = dict(dialect or {"delimiter": ","})
    rows: list[tuple[int, list[str]]] = []  # (unit index, fields)
    errors: list[RecordError] = []

    def one_by_one(done: int, end: int) -> int:
        return _read_one_by_one(units, done, end, options, rows, errors, unit_lines, first_ordinal)

    reader = csv.reader(units, **options)
    done = 0  # units read so far
    while True:
        try:
            for row in reader:
                if reader.line_num == done + 1:
                    rows.append((done, row))
                    done += 1
                else:
                    done = one_by_one(done, reader.line_num)
            break
        except csv.Error:
            done = one_by_one(done, reader.line_num)
    records = _RowMapper(header).map(rows, first_ordinal, unit_lines, errors)
    if errors:
        errors.sort(key=lambda error: error.record)
    return records, errors


def _read_one_by_one(
    units: list[str],
    done: int,
    end: int,
    options: dict[str, Any],
    rows: list[tuple[int, list[str]]],
    errors: list[RecordError],
    unit_lines: list[int],
    first_ordinal: int,
) -> int:
    """Read units [done, end) each on its own; returns `end`.

    Needed when the reader disagreed with the quote count about where a record ends (a
    stray quote inside an unquoted field) or could not read a record at all.
    """
    end = max(end, done + 1)
    for index in range(done, end):
        try:
            rows.append((index, next(csv.reader((units[index],), **options))))
        except csv.Error as exc:
            line = unit_lines[index]
            errors.append(
                RecordError(
                    "csv_malformed",
                    f"Line {line:,} cannot be read as CSV: {exc}.",
                    line=line,
                    record=first_ordinal + index,
                )
            )
    return end


def _units(text: str, first_line: int) -> tuple[list[str], list[int]]:
    """The text and first line of each record, cut exactly as split_units cuts them."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    units: list[str] = []
    starts: list[int] = []
    pending: list[str] | None = None
    number = first_line
    for line in lines:
        if pending is not None:
            pending.append(line)
            if line.count('"') & 1:
                units.append("\n".join(pending))
                pending = None
        elif line and line != "\r":
            starts.append(number)
            if line.count('"') & 1:
                pending = [line]
            else:
                units.append(line)
        number += 1
    if pending is not None:
        units.append("\n".join(pending))
    return units, starts


class _RowMapper:
    """Turns rows into records; the column roles are worked out once per chunk."""

    def __init__(self, header: list[str]) -> None:
        self.width = len(header)
        self.id_index = header.index("id") if "id" in header else None
        self.title_indexes = [header.index(name) for name in TITLE_FIELDS if name in header]
        others = [i for i in range(self.width) if i != self.id_index]
        self.field_names = header if self.id_index is None else [header[i] for i in others]
        self.values = None if self.id_index is None else _getter(others)
        # the body's columns for each possible title column (-1: no title)
        self.body = {t: _getter([i for i in others if i != t]) for t in [-1, *self.title_indexes]}

    def map(
        self,
        rows: list[tuple[int, list[str]]],
        first_ordinal: int,
        lines: list[int],
        errors: list[RecordError],
    ) -> list[ParsedRecord]:
        width, id_index, title_indexes = self.width, self.id_index, self.title_indexes
        names, values, body_of, no_title = self.field_names, self.values, self.body, self.body[-1]
        strip, join = str.strip, "\n".join
        records = []
        for index, row in rows:
            ordinal = first_ordinal + index
            if len(row) != width:
                line = lines[index]
                errors.append(
                    RecordError(
                        "csv_ragged_row",
                        f"Line {line} has {len(row)} field{'s' if len(row) != 1 else ''}; "
                        f"the header has {width}.",
                        line=line,
                        record=ordinal,
                    )
                )
                continue
            key = row[id_index].strip() if id_index is not None else ""
            title = ""
            body = no_title
            for i in title_indexes:
                title = row[i].strip()
                if title:
                    body = body_of[i]
                    break
            records.append(
                ParsedRecord(
                    ordinal,
                    key or str(ordinal),
                    title,
                    join(filter(None, map(strip, body(row)))),
                    dict(zip(names, row if values is None else values(row), strict=True)),
                )
            )
        return records


def _getter(indexes: list[int]):
    """Like itemgetter(*indexes), but always returning a tuple."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    if not indexes:
        return lambda row: ()
    return itemgetter(*indexes)
