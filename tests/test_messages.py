"""The submit message format: the schema layer's validator, and the JSON Schema generated from it."""

from __future__ import annotations

import base64
import json

import jsonschema
import pytest

from indexing.errors import QuernError
from indexing.formats import FORMATS
from indexing.schemas import message_schemas, parse_submit_message

LIMIT = 1000


def _parse(message: dict) -> object:
    return parse_submit_message(json.dumps(message).encode(), max_bytes=LIMIT)


def _code(body: bytes) -> str:
    with pytest.raises(QuernError) as error:
        parse_submit_message(body, max_bytes=LIMIT)
    return error.value.code


def test_text_content_is_stored_as_utf8_with_its_options():
    parsed = _parse(
        {
            "name": "a.csv",
            "content": "id,t\n1,ü\n",
            "format": "csv",
            "chunk_size": 5,
            "idempotency_key": "k-1",
            "metadata": {"from": "erp"},
        }
    )
    assert (parsed.name, parsed.raw, parsed.format, parsed.chunk_size) == (
        "a.csv",
        "id,t\n1,ü\n".encode(),
        "csv",
        5,
    )
    assert (parsed.idempotency_key, parsed.metadata) == ("k-1", {"from": "erp"})


def test_base64_content_is_decoded_to_bytes_and_null_content_counts_as_absent():
    parsed = _parse(
        {"name": "b.txt", "content": None, "content_base64": base64.b64encode(b"\xffraw").decode()}
    )
    assert parsed.raw == b"\xffraw"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json at all", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"content": "x"}', "missing_name"),
        (b'{"name": "  ", "content": "x"}', "missing_name"),
        (b'{"name": "a.txt", "content": "x", "content_base64": "eA=="}', "bad_content"),
        (b'{"name": "a.txt"}', "bad_content"),
        (b'{"name": "a.txt", "content": 5}', "bad_content"),
        (b'{"name": "a.txt", "content_base64": "not base64!"}', "bad_content"),
        (b'{"name": "a.txt", "content": "x", "format": "pdf"}', "unknown_format"),
        (b'{"name": "a.txt", "content": "x", "chunk_size": 0}', "bad_chunk_size"),
        (b'{"name": "a.txt", "content": "x", "chunk_size": true}', "bad_chunk_size"),
        (b'{"name": "a.txt", "content": "x", "chunk_size": "5"}', "bad_chunk_size"),
        (b'{"name": "a.txt", "content": "x", "format": ""}', "unknown_format"),
        (b'{"name": "a.txt", "content": "x", "encoding": ""}', "bad_encoding"),
        (b'{"name": "a.txt", "chunk_size": 0}', "bad_content"),
        (b'{"name": "a.txt", "content": "x", "chunk_size": 100001}', "bad_chunk_size"),
        (b'{"name": "a.txt", "content": "x", "encoding": 5}', "bad_encoding"),
        (b'{"name": "' + b"n" * 256 + b'", "content": "x"}', "bad_name"),
        (b'{"name": "a\\u0000.txt", "content": "x"}', "bad_name"),
        (b'{"name": "a.txt", "content": "x", "idempotency_key": ""}', "bad_idempotency_key"),
        (b'{"name": "a.txt", "content": "x", "idempotency_key": "k\\u0000"}', "bad_idempotency_key"),
        (b'{"name": "a.txt", "content": "x", "idempotency_key": "k\\udb00"}', "bad_idempotency_key"),
        (b'{"name": "a.txt", "content": "x", "metadata": [1]}', "bad_metadata"),
        # What PostgreSQL's jsonb cannot store, in a key or deep in a value (found by the fuzzer: a 500)
        (b'{"name": "a.txt", "content": "x", "metadata": {"a\\u0000": 1}}', "bad_metadata"),
        (b'{"name": "a.txt", "content": "x", "metadata": {"k": [{"v": "\\ud9f4x"}]}}', "bad_metadata"),
        (b'{"name": "a.txt", "contents": "x"}', "unknown_field"),
    ],
)
def test_a_message_breaking_a_rule_is_refused_with_its_code(body, code):
    assert _code(body) == code


def test_a_message_one_byte_over_the_limit_is_refused_before_it_is_parsed():
    at_limit = json.dumps({"name": "a.txt", "content": ""}).encode()
    at_limit = at_limit[:-2] + b"x" * (LIMIT - len(at_limit)) + b'"}'
    assert len(at_limit) == LIMIT
    assert parse_submit_message(at_limit, max_bytes=LIMIT).name == "a.txt"
    assert _code(at_limit[:-2] + b'x"}') == "too_large"


SCHEMA_CASES = [
    {"name": "a.csv", "content": "x"},
    {
        "name": "a.csv",
        "content_base64": "eA==",
        "content": None,
        "format": "csv",
        "chunk_size": 3,
        "metadata": {},
    },
    {"name": "a.csv", "content": "x", "idempotency_key": "k", "encoding": "cp1252", "format": None},
    {"content": "x"},
    {"name": "", "content": "x"},
    {"name": "a.csv"},
    {"name": "a.csv", "content": "x", "content_base64": "eA=="},
    {"name": "a.csv", "content": None, "content_base64": None},
    {"name": "a.csv", "content": 1},
    {"name": "a.csv", "content": "x", "format": "pdf"},
    {"name": "a.csv", "content": "x", "chunk_size": 0},
    {"name": "a.csv", "content": "x", "chunk_size": 100001},
    {"name": "a.csv", "content": "x", "idempotency_key": ""},
    {"name": "a.csv", "content": "x", "metadata": "no"},
    {"name": "a.csv", "content": "x", "extra": 1},
    {"name": None, "content": "x"},
    {"name": "a\u0000b.csv", "content": "x"},
    {"name": "n" * 256, "content": "x"},
    {"name": "a.csv", "content": "x", "encoding": "e" * 65},
    {"name": "a.csv", "content": "x", "format": "md"},
    {"name": "a.csv", "content": "x", "format": ""},
    {"name": "a.csv", "content": "x", "encoding": ""},
    {"name": "a.csv", "content": "x", "chunk_size": "5"},
    {"name": "a.csv", "content": "x", "chunk_size": 5.0},
    {"name": "a.csv", "content": "x", "chunk_size": 5.5},
    {"name": "a.csv", "content_base64": "not base64!"},
    {"name": "a.csv", "content": "x", "format": 3},
    {"name": "a.csv", "content": "x", "metadata": None, "chunk_size": None, "idempotency_key": None},
]


@pytest.mark.parametrize("message", SCHEMA_CASES, ids=lambda m: json.dumps(m)[:60])
def test_the_published_schema_accepts_exactly_what_the_parser_accepts(message):
    schema = message_schemas()["submit"]
    jsonschema.Draft202012Validator.check_schema(schema)
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(message)
    try:
        _parse(message)
        parser_ok = True
    except QuernError:
        parser_ok = False
    assert schema_ok == parser_ok


def test_the_schema_lists_the_formats_quern_reads():
    schema = message_schemas()["submit"]
    assert schema["$defs"]["Format"]["enum"] == list(FORMATS)
