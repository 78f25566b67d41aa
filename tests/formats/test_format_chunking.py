"""Every format: chunking never changes what is parsed."""

from __future__ import annotations

import io
import json

import pytest

from indexing.formats import encoding, split_document

DOCUMENTS = [
    ("records.csv", "csv"),
    ("ragged.csv", "csv"),
    ("semicolon.csv", "csv"),
    ("bom.csv", "csv"),
    ("one_bad_line.jsonl", "jsonl"),
    ("array.json", "json"),
    ("object.json", "json"),
    ("page.html", "html"),
    ("notes.md", "markdown"),
    ("paragraphs.txt", "text"),
]


@pytest.mark.parametrize(("name", "fmt"), DOCUMENTS)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_any_chunk_size_parses_the_same_records_as_one_chunk(read_document, fixture_bytes, name, fmt, size):
    data = fixture_bytes(name)
    whole, records, errors = read_document(data, fmt, 10**9)
    split, chunked_records, chunked_errors = read_document(data, fmt, size)
    assert chunked_records == records
    assert chunked_errors == errors
    assert split.units == whole.units
    assert (split.header, split.title, split.dialect) == (whole.header, whole.title, whole.dialect)


@pytest.mark.parametrize(("name", "fmt"), DOCUMENTS)
@pytest.mark.parametrize("size", [1, 3])
def test_chunks_tile_the_units_without_gaps(fixture_bytes, name, fmt, size):
    result = split_document(io.BytesIO(fixture_bytes(name)), fmt, size)
    assert [c.number for c in result.chunks] == list(range(len(result.chunks)))
    assert sum(c.units for c in result.chunks) == result.units
    assert all(c.units == size for c in result.chunks[:-1])
    assert [c.first_ordinal for c in result.chunks] == [n * size for n in range(len(result.chunks))]
    assert all(a.end == b.start for a, b in zip(result.chunks, result.chunks[1:], strict=False))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "html", "markdown", "text"])
@pytest.mark.parametrize("max_bytes", [1, 500, 4096])
def test_a_byte_limit_cuts_chunks_early_without_changing_the_records(read_document, fmt, max_bytes):
    data = _generated(fmt)
    _, records, errors = read_document(data, fmt, 10**9)
    split, limited_records, limited_errors = read_document(data, fmt, 1000, max_bytes)
    assert (limited_records, limited_errors) == (records, errors)
    assert sum(c.units for c in split.chunks) == split.units
    assert [c.first_ordinal for c in split.chunks] == [
        sum(c.units for c in split.chunks[:n]) for n in range(len(split.chunks))
    ]
    assert all(c.units <= 1000 for c in split.chunks)
    # Every chunk of several units stays within the limit (a unit is never cut, so one unit may not).
    assert all(c.end - c.start <= max_bytes + 200 for c in split.chunks if c.units > 1)
    assert len(split.chunks) > len(data) // (max_bytes + 200)


def _generated(fmt: str) -> bytes:
    """A few thousand units with every awkward case, so blocks and chunks fall everywhere."""
    if fmt == "csv":
        rows = [f'{i},"t{i}","multi\nline ""{i}""",x' if i % 3 else f"{i},t{i},plain,x" for i in range(2500)]
        rows[100] = "100,too,many,fields,here"
        return ("id,title,text,tag\n" + "\n".join(rows) + "\n").encode()
    if fmt == "jsonl":
        return "".join(
            json.dumps({"id": i, "text": "é[" * (i % 4)}) + ("\n\n" if i % 7 else "\nnot json\n")
            for i in range(2500)
        ).encode()
    if fmt == "json":
        items = [{"id": i, "t": '}"]' * (i % 3), "e": "é"} if i % 11 else [i] for i in range(2500)]
        return json.dumps(items, indent=1, ensure_ascii=False).encode()
    if fmt == "html":
        sections = (
            f"<h{i % 6 + 1} id=h{i}>H{i}</h{i % 6 + 1}><p>é{i}\n</p><script>'<h1>'\n</script>"
            for i in range(2500)
        )
        return ("<html>\n<body><p>pré</p>\n" + "\n".join(sections) + "\n</body></html>").encode()
    if fmt == "markdown":
        return "".join(
            f"## H{i}\ntext *{i}*\n" + ("```\n# code\n```\n" if i % 5 == 0 else "") for i in range(2500)
        ).encode()
    return "".join(f"para {i}\nline é\n\n" + ("\n\n" if i % 4 == 0 else "") for i in range(2500)).encode()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "html", "markdown", "text"])
def test_generated_documents_parse_the_same_at_every_chunk_size(read_document, fmt):
    data = _generated(fmt)
    whole, records, errors = read_document(data, fmt)
    assert whole.units >= 2500
    for size in (1, 7, 1000):
        _, chunked_records, chunked_errors = read_document(data, fmt, size)
        assert chunked_records == records
        assert chunked_errors == errors


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "html", "markdown", "text"])
def test_tiny_read_blocks_find_the_same_chunks_and_records(read_document, monkeypatch, fmt):
    data = _generated(fmt)
    whole, records, errors = read_document(data, fmt, 7)
    monkeypatch.setattr(encoding, "BLOCK_SIZE", 37)  # every unit straddles some block boundary
    small, small_records, small_errors = read_document(data, fmt, 7)
    assert small.chunks == whole.chunks
    assert (small_records, small_errors) == (records, errors)


def test_unknown_format_is_refused_by_the_splitter():
    from indexing.formats import ParseError

    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO(b"x"), "xlsx", 10)
    assert error.value.code == "unknown_format"
