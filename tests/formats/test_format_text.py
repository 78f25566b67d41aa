"""Plain text: paragraphs separated by blank lines."""

from __future__ import annotations


def test_text_paragraphs_are_records(read_document, fixture_bytes):
    result, records, errors = read_document(fixture_bytes("paragraphs.txt"), "text")
    assert result.units == 3 and errors == []
    assert [(r.ordinal, r.key, r.title, r.body) for r in records] == [
        (0, "0", "", "First paragraph,\nsecond line."),
        (1, "1", "", "Second paragraph."),
        (2, "2", "", "Third paragraph\nhas three\nlines."),
    ]


def test_text_chunks_start_at_paragraph_first_lines(read_document, fixture_bytes):
    import io

    from indexing.formats import split_document

    result = split_document(io.BytesIO(fixture_bytes("paragraphs.txt")), "text", 1)
    assert [c.first_line for c in result.chunks] == [1, 5, 8]


def test_text_without_trailing_newline_keeps_its_last_paragraph(read_document):
    _, records, _ = read_document(b"one\n\ntwo", "text")
    assert [r.body for r in records] == ["one", "two"]
