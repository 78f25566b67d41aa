"""detect_format: the declared type, then the file name, then the first bytes."""

from __future__ import annotations

import pytest

from indexing.formats import FORMATS, ParseError, detect_format


def test_formats_lists_every_format_in_order():
    assert FORMATS == ("csv", "jsonl", "json", "html", "markdown", "text")


@pytest.mark.parametrize(
    ("declared", "fmt"),
    [
        ("csv", "csv"),
        ("JSONL", "jsonl"),
        ("ndjson", "jsonl"),
        ("jsonlines", "jsonl"),
        ("json", "json"),
        ("html", "html"),
        ("md", "markdown"),
        ("markdown", "markdown"),
        ("txt", "text"),
        ("plain", "text"),
        ("text/csv", "csv"),
        ("application/json", "json"),
        ("application/x-ndjson", "jsonl"),
        ("text/html; charset=utf-8", "html"),
        ("text/markdown", "markdown"),
        ("text/plain", "text"),
    ],
)
def test_declared_format_wins_over_name_and_content(declared, fmt):
    assert detect_format(declared, "data.csv", b"{}") == fmt


def test_unknown_declared_format_is_refused():
    with pytest.raises(ParseError) as error:
        detect_format("xlsx", "data.csv", b"id\n")
    assert error.value.code == "unknown_format"


def test_empty_declared_format_is_as_good_as_none():
    assert detect_format("", "notes.md", b"") == "markdown"


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "json"),
        ("a.html", "html"),
        ("A.HTM", "html"),
        ("dir/a.md", "markdown"),
        ("a.markdown", "markdown"),
        ("a.txt", "text"),
        ("a.text", "text"),
    ],
)
def test_file_extension_decides_when_nothing_is_declared(filename, fmt):
    assert detect_format(None, filename, b"<html><h1>x</h1>") == fmt


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b'[{"id": 1}]', "json"),
        (b'{\n  "id": 1\n}\n', "json"),
        (b'{"id": 1}\n\n{"id": 2}\n', "jsonl"),
        (b'{"id": 1}\n[1, 2]\n', "json"),
        (b"<!DOCTYPE html>\n<html><body><h1>Hi</h1></body></html>", "html"),
        (b"  <div><p>Fragment</p></div>", "html"),
        (b"Intro\n\n# Heading\n\nText\n", "markdown"),
        (b"id,title,text\n1,a,b\n2,c,d\n", "csv"),
        (b"id;title\n1;a\n", "csv"),
        (b'id,text\n1,"a, b"\n', "csv"),
        (b"Just some prose, with a comma.\n\nAnd more.\n", "text"),
        (b"<not-html>\n", "text"),
        (b"", "text"),
        (b"\xef\xbb\xbfid,title\n1,a\n", "csv"),
    ],
)
def test_content_is_sniffed_when_there_is_no_name(head, fmt):
    assert detect_format(None, None, head) == fmt


def test_unknown_extension_falls_back_to_sniffing():
    assert detect_format(None, "export.dat", b"id,title\n1,a\n2,b\n") == "csv"
