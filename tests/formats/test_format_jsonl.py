"""JSON Lines: one object per line; bad lines are record errors."""

from __future__ import annotations

import pytest


def test_jsonl_one_malformed_line_among_100_gives_99_records_and_one_error(read_document, fixture_bytes):
    result, records, errors = read_document(fixture_bytes("one_bad_line.jsonl"), "jsonl")
    assert result.units == 100
    assert len(records) == 99
    # line 43: one blank line comes before it, after line 11
    assert [(e.code, e.line, e.record) for e in errors] == [("jsonl_invalid", 43, 41)]
    assert "column" in errors[0].message


@pytest.mark.parametrize("size", [1, 7, 33])
def test_jsonl_error_line_is_the_same_in_small_chunks(read_document, fixture_bytes, size):
    _, records, errors = read_document(fixture_bytes("one_bad_line.jsonl"), "jsonl", size)
    assert len(records) == 99
    assert [(e.line, e.record) for e in errors] == [(43, 41)]


def test_jsonl_blank_lines_are_skipped_and_not_counted(read_document):
    result, records, _ = read_document(b'\n{"id": 1}\n   \n{"id": 2}\n\n', "jsonl")
    assert result.units == 2
    assert [(r.key, r.ordinal) for r in records] == [("1", 0), ("2", 1)]
    assert result.chunks[0].first_line == 2


def test_jsonl_line_that_is_not_an_object_is_an_error(read_document):
    _, records, errors = read_document(b'{"id": 1}\n[1, 2]\n"text"\n', "jsonl")
    assert [r.key for r in records] == ["1"]
    assert [(e.code, e.line, e.record) for e in errors] == [
        ("jsonl_not_object", 2, 1),
        ("jsonl_not_object", 3, 2),
    ]


def test_jsonl_maps_fields_like_json(read_document):
    line = b'{"id": 42, "headword": "Quern", "text": "A hand mill.", "senses": ["one", 2, "two"], "n": 3}\n'
    _, records, _ = read_document(line, "jsonl")
    record = records[0]
    assert (record.key, record.title) == ("42", "Quern")
    assert record.body == "A hand mill.\none\ntwo"
    assert record.fields == {"headword": "Quern", "text": "A hand mill.", "senses": ["one", 2, "two"], "n": 3}


def test_jsonl_last_line_without_newline_is_a_record(read_document):
    _, records, _ = read_document(b'{"id": 1}\n{"id": 2}', "jsonl")
    assert [r.key for r in records] == ["1", "2"]


def test_jsonl_line_of_unicode_spaces_is_a_unit_not_a_blank(read_document):
    result, records, errors = read_document('{"id": 1}\n\u00a0\n{"id": 3}\n'.encode(), "jsonl")
    assert result.units == 3
    assert [r.ordinal for r in records] == [0, 2]
    assert [(e.code, e.record) for e in errors] == [("jsonl_invalid", 1)]
