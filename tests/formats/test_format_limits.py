"""The limits on records per document and fields per record: a clear error, seen early."""

from __future__ import annotations

import io
import json

import pytest

from indexing.formats import ParseError, parse_chunk, split_document


def _csv(rows: int, columns: int = 2) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    return (header + "\n" + "".join(",".join(["x"] * columns) + "\n" for _ in range(rows))).encode()


def test_a_document_past_the_record_limit_is_refused_at_the_first_record_too_many():
    with pytest.raises(ParseError) as refused:
        split_document(io.BytesIO(_csv(5)), "csv", 2, max_units=3)
    error = refused.value
    assert error.code == "too_many_records" and error.line == 5 and error.record == 3
    assert "more than 3 records" in error.message and "QUERN_MAX_RECORDS_PER_DOCUMENT" in error.message


def test_a_document_of_exactly_the_record_limit_is_split_whole():
    result = split_document(io.BytesIO(_csv(3)), "csv", 2, max_units=3)
    assert result.units == 3 and [c.units for c in result.chunks] == [2, 1]


@pytest.mark.parametrize("rows", [0, 2])
def test_a_csv_header_wider_than_the_field_limit_fails_the_document_on_line_1(rows):
    with pytest.raises(ParseError) as refused:
        split_document(io.BytesIO(_csv(rows, columns=6)), "csv", 10, max_fields=5)
    assert refused.value.code == "too_many_fields" and refused.value.line == 1
    assert "6 columns" in refused.value.message and "at most 5" in refused.value.message


def test_a_csv_of_100000_columns_is_refused_by_the_default_field_limit():
    data = _csv(1, columns=100_000)
    with pytest.raises(ParseError, match="100,000 columns"):
        split_document(io.BytesIO(data), "csv", 10, max_fields=1000)


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_a_record_wider_than_the_field_limit_is_a_bad_record_of_its_own_and_the_rest_are_taken(fmt):
    objects = [
        {"id": 1, "text": "narrow"},
        {"id": 2, **{f"f{i}": i for i in range(9)}},
        {"id": 3, "text": "ok"},
    ]
    if fmt == "jsonl":
        data = "".join(json.dumps(o) + "\n" for o in objects).encode()
    else:
        data = json.dumps(objects).encode()
    [chunk] = split_document(io.BytesIO(data), fmt, 10).chunks
    records, errors = parse_chunk(
        data[chunk.start : chunk.end], fmt, first_ordinal=0, first_line=1, max_fields=5
    )
    assert [r.key for r in records] == ["1", "3"]
    assert [(e.code, e.record) for e in errors] == [("too_many_fields", 1)]
    assert "Record 2 has 9 fields; at most 5" in errors[0].message
