"""Helpers for the format tests: fixture files and a whole-document split + parse."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from indexing.formats import ParsedRecord, RecordError, SplitResult, parse_chunk, split_document

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

Read = Callable[..., tuple[SplitResult, list[ParsedRecord], list[RecordError]]]


def read(
    data: bytes,
    fmt: str,
    chunk_size: int = 10**9,
    max_chunk_bytes: int | None = None,
    *,
    max_units: int | None = None,
    max_fields: int | None = None,
) -> tuple[SplitResult, list[ParsedRecord], list[RecordError]]:
    """Split `data`, parse every chunk, and return the split with all records and errors in order."""
    result = split_document(
        io.BytesIO(data), fmt, chunk_size, max_chunk_bytes, max_units=max_units, max_fields=max_fields
    )
    records: list[ParsedRecord] = []
    errors: list[RecordError] = []
    for chunk in result.chunks:
        more, bad = parse_chunk(
            data[chunk.start : chunk.end],
            fmt,
            first_ordinal=chunk.first_ordinal,
            first_line=chunk.first_line,
            header=result.header,
            dialect=result.dialect,
            max_fields=max_fields,
        )
        records += more
        errors += bad
    return result, records, errors


@pytest.fixture
def read_document() -> Read:
    return read


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    return lambda name: (FIXTURES / name).read_bytes()
