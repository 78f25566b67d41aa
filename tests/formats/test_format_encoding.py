"""Encodings: picking the codec, transcoding to UTF-8, refusing undecodable and binary files."""

from __future__ import annotations

import io

import pytest

from indexing.formats import ParseError, sniff_encoding, split_document, transcode_to_utf8


def transcode(data: bytes, encoding: str, block_size: int = 1 << 20) -> bytes:
    out = io.BytesIO()
    written = transcode_to_utf8(io.BytesIO(data), out, encoding, block_size=block_size)
    assert written == len(out.getvalue())
    return out.getvalue()


@pytest.mark.parametrize("name", ["utf16le.csv", "utf16be.csv"])
def test_utf16_bom_is_sniffed_whatever_is_declared(fixture_bytes, name):
    assert sniff_encoding(fixture_bytes(name)[:64], None) == "utf-16"
    assert sniff_encoding(fixture_bytes(name)[:64], "cp1252") == "utf-16"


def test_utf8_bom_is_sniffed_as_utf8_sig(fixture_bytes):
    assert sniff_encoding(fixture_bytes("bom.csv"), None) == "utf-8-sig"


def test_declared_encoding_wins_without_a_bom():
    assert sniff_encoding(b"id,title\n", "cp1252") == "cp1252"
    assert sniff_encoding(b"id,title\n", "Latin-1") == "iso8859-1"


def test_no_bom_and_nothing_declared_means_utf8():
    assert sniff_encoding(b"\xe9t\xe9", None) == "utf-8"


@pytest.mark.parametrize("declared", ["klingon-8", "rot13", "base64", "\x00", "utf\x008"])
def test_unknown_or_non_text_encoding_is_refused(declared):
    with pytest.raises(ParseError) as error:
        sniff_encoding(b"id\n", declared)
    assert error.value.code == "unknown_encoding"


@pytest.mark.parametrize("name", ["utf16le.csv", "utf16be.csv"])
def test_utf16_with_bom_is_transcoded_to_utf8_without_bom(read_document, fixture_bytes, name):
    data = fixture_bytes(name)
    utf8 = transcode(data, sniff_encoding(data, None), block_size=3)
    assert utf8 == "id,title\n1,Café\n2,Naïve\n".encode()
    _, records, _ = read_document(utf8, "csv")
    assert [r.title for r in records] == ["Café", "Naïve"]


def test_declared_cp1252_is_transcoded(read_document, fixture_bytes):
    data = fixture_bytes("cp1252.csv")
    utf8 = transcode(data, sniff_encoding(data, "cp1252"))
    _, records, _ = read_document(utf8, "csv")
    assert [r.title for r in records] == ["Café – “quoted”", "Smørrebrød"]


def test_transcode_error_names_line_and_byte_in_the_original_file():
    data = "a\nbb\n".encode("utf-16-le") + b"\x00\xd8" + "x\n".encode("utf-16-le")  # lone surrogate
    with pytest.raises(ParseError) as error:
        transcode(b"\xff\xfe" + data, "utf-16", block_size=4)
    assert (error.value.code, error.value.line, error.value.byte) == ("bad_encoding", 3, 12)


def test_transcode_error_in_a_later_block_counts_lines_before_it():
    data = b"ok\n" * 10 + b"caf\x81\n"  # 0x81 is undefined in cp1252
    with pytest.raises(ParseError) as error:
        transcode(data, "cp1252", block_size=7)
    assert (error.value.code, error.value.line, error.value.byte) == ("bad_encoding", 11, 33)


def test_split_skips_a_utf8_bom_so_the_first_chunk_starts_at_byte_3():
    result = split_document(io.BytesIO(b"\xef\xbb\xbfhello\n\nworld\n"), "text", 10)
    assert result.chunks[0].start == 3
    assert result.chunks[0].first_line == 1


def test_csv_header_after_a_bom_has_a_clean_first_name(read_document, fixture_bytes):
    result, records, _ = read_document(fixture_bytes("bom.csv"), "csv")
    assert result.header == ["id", "title"]
    assert records[0].key == "1"


def test_invalid_utf8_reports_its_line_and_byte(fixture_bytes):
    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO(fixture_bytes("invalid_utf8.csv")), "csv", 10)
    assert (error.value.code, error.value.line, error.value.byte) == ("bad_encoding", 3, 21)
    assert "encoding=cp1252" in error.value.message


def test_invalid_utf8_far_into_a_file_is_found_in_its_block():
    data = b"line\n" * 300_000 + b"bad \xff here\n"
    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO(data), "text", 10)
    assert (error.value.line, error.value.byte) == (300_001, 1_500_004)


def test_a_png_sent_as_csv_is_reported_as_binary(fixture_bytes):
    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO(fixture_bytes("png_as.csv")), "csv", 10)
    assert (error.value.code, error.value.byte) == ("binary_content", 0)
    assert "PNG" in error.value.message


def test_a_nul_byte_is_reported_as_binary_at_its_offset():
    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO(b"id,title\n1,a\x00b\n"), "csv", 10)
    assert (error.value.code, error.value.line, error.value.byte) == ("binary_content", 2, 12)


def test_utf16_without_bom_is_reported_as_binary_not_garbage():
    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO("id,title\n1,a\n".encode("utf-16-le")), "csv", 10)
    assert (error.value.code, error.value.byte) == ("binary_content", 1)


def test_utf16_with_bom_handed_to_split_asks_for_transcoding(fixture_bytes):
    with pytest.raises(ParseError) as error:
        split_document(io.BytesIO(fixture_bytes("utf16le.csv")), "csv", 10)
    assert error.value.code == "bad_encoding"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "html", "markdown", "text"])
def test_an_empty_file_has_no_chunks(fixture_bytes, fmt):
    result = split_document(io.BytesIO(fixture_bytes("empty.txt")), fmt, 10)
    assert (result.chunks, result.units) == ([], 0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "html", "markdown", "text"])
def test_a_whitespace_only_file_has_no_chunks(fmt):
    result = split_document(io.BytesIO(b"\n  \n\t\n"), fmt, 10)
    assert (result.chunks, result.units) == ([], 0)
