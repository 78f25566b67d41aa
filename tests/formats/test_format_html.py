"""HTML: sections at headings, visible text only, <title> captured."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.formats import ParseError, split_document
from tests.formats.conftest import read


def test_html_title_is_captured_and_entities_decoded(read_document, fixture_bytes):
    result, _, _ = read_document(fixture_bytes("page.html"), "html")
    assert result.title == "Quern & friends"


def test_html_headings_start_sections_and_script_style_are_ignored(read_document, fixture_bytes):
    result, records, errors = read_document(fixture_bytes("page.html"), "html")
    assert result.units == 5  # preface, h1, h2, h3, and an empty h2 (skipped when parsed)
    assert errors == []
    assert [(r.ordinal, r.key, r.title, r.fields["level"]) for r in records] == [
        (0, "0", "", 0),
        (1, "top", "Welcome to Quern", 1),
        (2, "2", "Second section", 2),
        (3, "deep", "Déjà vu", 3),
    ]
    text = " ".join(r.title + " " + r.body for r in records)
    assert "not a heading" not in text and "hidden" not in text and "JavaScript" not in text


def test_html_body_is_visible_text_with_whitespace_collapsed(read_document, fixture_bytes):
    _, records, _ = read_document(fixture_bytes("page.html"), "html")
    assert records[0].body == "Intro text before any heading."
    assert records[1].body == "First paragraph — café."
    assert records[2].body == "one two"


def test_html_first_chunk_starts_after_the_body_tag(fixture_bytes):
    data = fixture_bytes("page.html")
    result = split_document(io.BytesIO(data), "html", 1)
    assert result.chunks[0].start == data.index(b"<body>") + len(b"<body>")
    assert [data[c.start : c.start + 3] for c in result.chunks[1:]] == [b"<h1", b"<h2", b"<h3", b"<h2"]
    assert [c.first_line for c in result.chunks] == [8, 10, 14, 16, 18]


def test_html_without_visible_text_before_the_first_heading_has_no_preface(read_document):
    result, records, _ = read_document(
        b"<html><body>\n  <script>x</script>\n<h2>A</h2>b</body></html>", "html"
    )
    assert result.units == 1
    assert [(r.ordinal, r.title, r.body) for r in records] == [(0, "A", "b")]


def test_html_without_headings_is_one_section(read_document):
    result, records, _ = read_document(b"<p>Only <b>text</b> here</p>", "html")
    assert result.units == 1
    assert [(r.title, r.body) for r in records] == [("", "Only text here")]


def test_html_heading_offsets_are_bytes_after_multibyte_text(fixture_bytes):
    data = "<p>ééé</p><h2>Ä</h2>\n<p>ü</p> <h3>B</h3>".encode()
    result = split_document(io.BytesIO(data), "html", 1)
    assert [data[c.start : c.start + 4] for c in result.chunks] == [b"<p>\xc3", b"<h2>", b"<h3>"]


def test_html_head_content_is_not_a_preface(read_document):
    result, records, _ = read_document(
        b"<html><head><title>T</title><meta charset=utf-8></head><h1>H</h1>x", "html"
    )
    assert result.title == "T"
    assert [(r.title, r.body) for r in records] == [("H", "x")]


def test_an_unknown_marked_section_is_read_as_a_comment_not_a_crash(read_document):
    # Python 3.11's html.parser raises AssertionError on <![diagram[ (found by the fuzzer).
    data = b"<html><body><h1>Herons</h1><![diagram[ a sketch ]]><p>grey heron</p><h2>Egrets</h2>x</body>"
    _, records, errors = read_document(data, "html")
    assert [r.title for r in records] == ["Herons", "Egrets"] and not errors
    assert "grey heron" in records[0].body and "diagram" not in records[0].body


def test_sections_after_an_unknown_marked_section_start_at_their_own_byte(read_document):
    data = b"<body><![ odd ]><h1>One</h1>x<h2>Two</h2>y</body>"
    result, records, _ = read_document(data, "html", chunk_size=1)
    assert [r.title for r in records] == ["One", "Two"]
    assert [data[c.start : c.start + 4] for c in result.chunks] == [b"<h1>", b"<h2>"]


def _two_passes(data: bytes):
    return read(data, "html")[1]


def _one_pass(data: bytes):
    result = split_document(io.BytesIO(data), "html", 10**9, read_records=True)
    return result.records


_PIECES = st.sampled_from(
    [
        "<html>",
        "<head>",
        "</head>",
        "<title>",
        "</title>",
        "<body>",
        "</body>",
        "<h1>",
        "</h1>",
        '<h2 id="x">',
        "</h2>",
        "<p>",
        "</p>",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<noscript>",
        "</noscript>",
        "<template>",
        "</template>",
        "<b>",
        "</b>",
        "<br/>",
        "<!-- c -->",
        "<![CDATA[x]]>",
        "&amp;",
        "&#233;",
        "é",
        "word",
        "more words",
        " ",
        "\n",
        "<",
        ">",
        "<h3",
        "<![x[",
        "<?pi?>",
        "<!doctype html>",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=40))
def test_one_pass_reads_the_same_records_as_split_then_parse_or_says_it_cannot(pieces):
    data = "".join(pieces).encode()
    try:
        expected = _two_passes(data)
    except ParseError:
        return
    records = _one_pass(data)
    assert records is None or records == expected


def test_one_pass_reads_a_real_page_the_same_as_two(fixture_bytes):
    data = fixture_bytes("page.html")
    assert _one_pass(data) == _two_passes(data) and _one_pass(data)


@pytest.mark.parametrize(
    "data",
    [
        b"<noscript><body></noscript>visible<h1>A</h1>text",
        b"<body>\xef\xbb\xbfHello<h1>A</h1>x",  # a BOM where the chunk starts: its parse drops it
    ],
)
def test_where_the_chunk_parse_would_read_otherwise_the_one_pass_steps_aside(data):
    assert _one_pass(data) is None and _two_passes(data)
