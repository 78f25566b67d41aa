"""JSON Lines: one JSON object per non-blank line."""

from __future__ import annotations

import json
from collections.abc import Iterator

from indexing.formats.encoding import ASCII_SPACE, Utf8Source, decode_chunk
from indexing.formats.outline import Outline
from indexing.formats.records import ParsedRecord, RecordError, record_from_object, too_deep_error


def split_units(source: Utf8Source, outline: Outline) -> Iterator[tuple[int, int]]:
    """Yield (byte, line) of each non-blank line."""
    for number, (pos, part) in enumerate(source.lines(), 1):
        if part.strip():
            yield pos, number


def parse_lines(
    data: bytes, *, first_ordinal: int, first_line: int
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """Parse one chunk: a record per line; a line that is not a JSON object becomes an error."""
    text = decode_chunk(data, first_line)
    records: list[ParsedRecord] = []
    errors: list[RecordError] = []
    loads = json.loads
    ordinal = first_ordinal
    for number, line in enumerate(text.split("\n"), first_line):
        if not line.strip(ASCII_SPACE):
            continue
        try:
            obj = loads(line)
        except RecursionError:
            errors.append(too_deep_error(f"Line {number:,}", number, ordinal))
            ordinal += 1
            continue
        except json.JSONDecodeError as exc:
            errors.append(
                RecordError(
                    "jsonl_invalid",
                    f"Line {number:,} is not valid JSON: {exc.msg} at column {exc.colno}.",
                    line=number,
                    record=ordinal,
                )
            )
        else:
            if isinstance(obj, dict):
                records.append(record_from_object(ordinal, obj))
            else:
                errors.append(
                    RecordError(
                        "jsonl_not_object",
                        f"Line {number:,} is {describe_json(obj)}, not an object. Each line must be one "
                        'JSON object, e.g. {"id": 1, "title": "…", "text": "…"}.',
                        line=number,
                        record=ordinal,
                    )
                )
        ordinal += 1
    return records, errors


def describe_json(value: object) -> str:
    """A JSON value's kind, for messages: 'a JSON array', 'a number'…"""
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool):
        return "a JSON boolean"
    if value is None:
        return "JSON null"
    return "a JSON number"
