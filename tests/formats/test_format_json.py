"""JSON: one object, or an array of objects found by a streaming structure scan."""

from __future__ import annotations

import io
import json

import pytest

from indexing.formats import ParseError, split_document


def test_json_array_elements_are_records_and_non_objects_are_errors(read_document, fixture_bytes):
    result, records, errors = read_document(fixture_bytes("array.json"), "json")
    assert result.units == 7
    assert [r.key for r in records] == ["1", "b2", "2", "5", "7"]
    assert [(e.code, e.line, e.record) for e in errors] == [
        ("json_not_object", 5, 3),
        ("json_not_object", 7, 5),
    ]


def test_json_strings_with_brackets_and_escaped_quotes_do_not_confuse_the_scanner(
    read_document, fixture_bytes
):
    _, records, _ = read_document(fixture_bytes("array.json"), "json")
    assert records[0].title == "Brackets [in] {strings}"
    assert records[0].fields["text"] == 'a "quoted" ] and } and \\'
    assert records[1].fields["meta"] == {"deep": [1, 2, {"deeper": "]"}]}
    assert records[3].fields["text"] == 'tab\there, unicode é, slash / and a "[" '


def test_json_body_has_strings_and_string_lists_but_not_numbers_or_objects(read_document, fixture_bytes):
    _, records, _ = read_document(fixture_bytes("array.json"), "json")
    assert records[0].body == 'a "quoted" ] and } and \\\nx\ny'
    assert records[1].body == "after nested"
    assert records[2].body == "plain"


def test_json_single_object_is_one_record(read_document, fixture_bytes):
    result, records, errors = read_document(fixture_bytes("object.json"), "json")
    assert result.units == 1 and errors == []
    assert (records[0].key, records[0].title, records[0].fields["pages"]) == ("doc-1", "Only one", 12)


def test_json_array_spanning_many_chunks_and_blocks_keeps_every_element(read_document):
    items = [
        {"id": i, "title": f"t{i} ]}}", "text": 'x\\"[{' * (i % 5), "nested": {"a": [i, {"b": "}"}]}}
        for i in range(3000)
    ]
    data = json.dumps(items, indent=2).encode()
    for size in (1, 7, 1000):
        result, records, errors = read_document(data, "json", size)
        assert result.units == 3000 and errors == []
        assert [r.fields for r in records] == [{k: v for k, v in item.items() if k != "id"} for item in items]
    result = split_document(io.BytesIO(data), "json", 7)
    assert all(data[c.start : c.start + 1] == b"{" for c in result.chunks)
    assert data[result.chunks[-1].end - 1 : result.chunks[-1].end] == b"}"


def test_json_element_lines_are_file_lines(read_document):
    data = b'[\n  {"id": 1},\n\n  "two",\n  {"id": 3}, 4\n]\n'
    for size in (1, 2, 10):
        _, records, errors = read_document(data, "json", size)
        assert [(e.line, e.record) for e in errors] == [(4, 1), (5, 3)]
        assert [r.key for r in records] == ["1", "3"]


def test_json_invalid_element_is_a_record_error_and_the_rest_are_read(read_document):
    data = b'[{"id": 1}, {"id": 2 "x": 1}, {"id": 3},\n tru, {"id": 5}]'
    _, records, errors = read_document(data, "json")
    assert [r.key for r in records] == ["1", "3", "5"]
    assert [(e.code, e.line, e.record) for e in errors] == [("json_invalid", 1, 1), ("json_invalid", 2, 3)]


def test_json_empty_array_has_no_records():
    result = split_document(io.BytesIO(b"[ ]\n"), "json", 10)
    assert (result.units, result.chunks) == (0, [])


@pytest.mark.parametrize(
    ("data", "line", "byte"),
    [
        (b'[{"id": 1},\n {"id": 2}', 2, 13),  # array never closed
        (b'[{"id": 1},\n {"id": "2}]\n', 2, 13),  # string never closed: where the element starts
        (b'{"id": 1}\n{"id": 2}\n', 2, 10),  # garbage after the end (this is jsonl)
        (b"\n\n42\n", 3, 2),  # top level is not an object or array
        (b'[{"id": 1},,{"id": 2}]', 1, 11),  # empty element
        (b'[{"id": 1},\n]', 2, 12),  # trailing comma
        (b'[{"id": 1} {"id": 2}]', 1, 11),  # missing comma
        (b'[{"id": [1}]', 1, 10),  # mismatched bracket
        (b'{"id": 1', 1, 0),  # object never closed
    ],
    ids=[
        "unclosed-array",
        "unclosed-string",
        "garbage-after",
        "scalar-top",
        "empty-element",
        "trailing-comma",
        "missing-comma",
        "mismatch",
        "unclosed-object",
    ],
)
def test_json_broken_structure_fails_the_document_with_line_and_byte(data, line, byte):
    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO(data), "json", 10)
    assert (error.value.code, error.value.line, error.value.byte) == ("json_syntax", line, byte)


def test_json_id_forms_become_text_keys(read_document):
    _, records, _ = read_document(b'[{"id": 42}, {"id": "a"}, {"id": null}, {"id": ""}, {"id": 1.5}]', "json")
    assert [r.key for r in records] == ["42", "a", "2", "3", "1.5"]
