"""Markdown: sections at ATX headings outside code fences, light markup stripped."""

from __future__ import annotations


def test_markdown_sections_start_at_headings_not_inside_code_fences(read_document, fixture_bytes):
    result, records, _ = read_document(fixture_bytes("notes.md"), "markdown")
    assert result.units == 4
    assert [(r.ordinal, r.title, r.fields["level"]) for r in records] == [
        (0, "", 0),
        (1, "Quern notes", 1),
        (2, "Install", 2),
        (3, "Usage", 3),
    ]
    assert "# not a heading, a shell comment" in records[2].body
    assert "## also not a heading" in records[2].body


def test_markdown_title_is_the_first_level_1_heading(read_document, fixture_bytes):
    result, _, _ = read_document(fixture_bytes("notes.md"), "markdown")
    assert result.title == "Quern notes"


def test_markdown_text_before_the_first_heading_is_its_own_section(read_document, fixture_bytes):
    _, records, _ = read_document(fixture_bytes("notes.md"), "markdown")
    assert records[0].body == "Some preface text\nwith two lines."
    assert records[0].key == "0"


def test_markdown_light_markup_is_stripped(read_document, fixture_bytes):
    _, records, _ = read_document(fixture_bytes("notes.md"), "markdown")
    assert records[1].body == "Intro with bold, emphasis, code and a link."
    assert records[3].body.startswith("diagram shows how it works.")


def test_markdown_hash_without_space_is_not_a_heading(read_document, fixture_bytes):
    _, records, _ = read_document(fixture_bytes("notes.md"), "markdown")
    assert records[3].body.endswith("#not-a-heading because no space")


def test_markdown_snake_case_words_keep_their_underscores(read_document):
    _, records, _ = read_document(b"# T\n\ncall my_func_name and __init__ *now*\n", "markdown")
    assert records[0].body == "call my_func_name and init now"


def test_markdown_chunks_start_at_heading_lines(read_document, fixture_bytes):
    data = fixture_bytes("notes.md")
    import io

    from indexing.formats import split_document

    result = split_document(io.BytesIO(data), "markdown", 1)
    assert [c.first_line for c in result.chunks] == [1, 4, 8, 19]
    assert [data[c.start : c.start + 3] for c in result.chunks[1:]] == [b"# Q", b"## ", b"###"]


def test_markdown_blank_preface_is_not_a_section(read_document):
    result, records, _ = read_document(b"\n\n## Only\nbody\n", "markdown")
    assert result.units == 1
    assert [(r.ordinal, r.title, r.body) for r in records] == [(0, "Only", "body")]


def test_markdown_empty_heading_section_is_skipped_but_counted(read_document):
    result, records, _ = read_document(b"#\n\n## Next\ntext\n", "markdown")
    assert result.units == 2
    assert [(r.ordinal, r.title) for r in records] == [(1, "Next")]
