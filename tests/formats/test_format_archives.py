"""Archives read as their files: the zip directory read one entry at a time, tar streamed, limits."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.formats import ParseError
from indexing.formats.archives import Limits, members
from tests.archive_files import tar_gz_of

ROOMY = Limits(members=10_000_000, total_bytes=10**12, ratio=10**6)
FILES = {"a.txt": b"alpha\n", "notes/b.csv": b"id,text\n1,beta\n", "notes/empty.txt": b""}


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED, prefix: bytes = b"") -> bytes:
    out = io.BytesIO()
    out.write(prefix)
    with zipfile.ZipFile(out, "a" if prefix else "w", method) as archive:
        archive.writestr("notes/", b"")  # a directory entry
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def read_all(data: bytes, name: str = "files.zip", limits: Limits = ROOMY) -> dict[str, bytes]:
    return {path: member.read() for path, member in members(io.BytesIO(data), name, len(data), limits)}


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_a_zips_files_are_read_by_path_in_every_method_zipfile_writes(method):
    assert read_all(zip_of(FILES, method)) == {"a.txt": b"alpha\n", "notes/b.csv": b"id,text\n1,beta\n"}


def test_a_zip_behind_a_self_extracting_stub_is_read():
    assert read_all(zip_of(FILES, prefix=b"#!/bin/sh\nexit 0\n" * 100))["a.txt"] == b"alpha\n"


def test_a_zip_of_more_than_65535_files_is_read_through_its_zip64_end_record():
    files = {f"f/{n}.txt": b"x" for n in range(70_000)}
    data = zip_of(files, zipfile.ZIP_STORED)
    assert b"PK\x06\x06" in data[-200:]  # zipfile wrote a zip64 end record
    assert len(read_all(data)) == 70_000


def test_a_zips_directory_is_not_held_in_memory():
    # zipfile.ZipFile keeps about 550 bytes per entry; a million-file zip would take 550 MB.
    data = zip_of({f"dir/file-{n:06}.txt": b"y" for n in range(50_000)}, zipfile.ZIP_STORED)
    tracemalloc.start()
    try:
        count = sum(1 for _ in members(io.BytesIO(data), "big.zip", len(data), ROOMY))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    whole_directory = len(data) // 2  # far less than zipfile's ZipInfo objects would take
    assert count == 50_000 and peak < min(whole_directory, 1_000_000)


def test_a_zip_file_whose_bytes_do_not_match_its_checksum_fails_with_its_name():
    data = bytearray(zip_of({"a.txt": b"alpha beta gamma\n"}, zipfile.ZIP_STORED))
    data[data.index(b"alpha")] = ord("A")
    with pytest.raises(ParseError) as raised:
        read_all(bytes(data))
    assert raised.value.code == "bad_archive" and "files.zip" in raised.value.message


def test_an_encrypted_zip_file_is_refused_by_name():
    data = bytearray(zip_of({"secret.txt": b"x"}, zipfile.ZIP_STORED))
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # flag bit 0, every header
        at = -1
        while (at := data.find(header, at + 1)) >= 0:
            data[at + flags_at] |= 1
    with pytest.raises(ParseError, match="secret.txt is encrypted"):
        read_all(bytes(data))


def test_a_zip_bomb_stops_at_the_ratio_limit_before_its_bytes_are_unpacked():
    bomb = zip_of({"zeros.txt": b"0" * 5_000_000})
    with pytest.raises(ParseError) as raised:
        next(iter(members(io.BytesIO(bomb), "bomb.zip", len(bomb), Limits(10, 10**9, 100))))
    assert raised.value.code == "archive_too_large"


def test_a_zip_that_lies_about_its_sizes_is_stopped_by_the_bytes_actually_read():
    data = bytearray(zip_of({"zeros.txt": b"0" * 2_000_000}))
    for header, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size: 1 byte
        at = data.index(header) + size_at
        data[at : at + 4] = (1).to_bytes(4, "little")
    with pytest.raises(ParseError) as raised:
        read_all(bytes(data), limits=Limits(10, 10**9, 100))
    assert raised.value.code in ("archive_too_large", "bad_archive")


def test_too_many_files_are_refused_with_the_limit():
    data = zip_of({f"{n}.txt": b"z" for n in range(20)})
    with pytest.raises(ParseError) as raised:
        read_all(data, limits=Limits(5, 10**9, 10**6))
    assert raised.value.code == "archive_too_many_members" and "5" in raised.value.message


def test_a_tar_gz_streams_its_files_by_path():
    assert read_all(tar_gz_of(FILES), "files.tar.gz") == {
        "a.txt": b"alpha\n",
        "notes/b.csv": b"id,text\n1,beta\n",
    }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=400))
def test_any_damage_to_a_zip_is_a_parse_error_for_a_person_never_a_crash(noise, at):
    data = bytearray(zip_of(FILES))
    at = min(at, len(data))
    data[at : at + len(noise)] = noise
    try:
        read_all(bytes(data))
    except ParseError as raised:
        error = raised
    else:
        return
    assert error.code and error.message


def _error_code(data: bytes) -> str:
    try:
        read_all(data)
    except ParseError as error:
        return error.code
    return ""


def test_hostile_offsets_are_a_bad_archive_never_a_crash():
    end_record = b"PK\x05\x06" + b"\0" * 18
    assert _error_code(b"PK\x06\x07" + b"\0" * 16 + end_record) == "bad_archive"  # a locator at byte 0
    data = bytearray(zip_of({"a.txt": b"alpha"}, zipfile.ZIP_STORED))
    last = data.rindex(b"PK\x01\x02")  # the last entry's local header offset: far past the end
    data[last + 42 : last + 46] = (0x7FFFFFF0).to_bytes(4, "little")
    assert _error_code(bytes(data)) == "bad_archive"


def test_damaged_lzma_bytes_are_a_bad_archive():
    data = bytearray(zip_of({"a.txt": b"alpha " * 200}, zipfile.ZIP_LZMA))
    start = data.index(b"a.txt", data.index(b"PK\x03\x04")) + len("a.txt")
    data[start + 4 : start + 9] = b"\xff" * 5  # LZMA's properties: lzma.LZMAError as it starts
    assert _error_code(bytes(data)) == "bad_archive"


def test_the_directory_is_read_to_its_size_whatever_its_entry_count_says():
    data = bytearray(zip_of({"f0": b"0", "f1": b"1", "f2": b"2"}))
    end = data.rindex(b"PK\x05\x06")
    data[end + 8 : end + 12] = (1).to_bytes(2, "little") * 2  # as a writer without zip64 wraps 65,537
    assert sorted(read_all(bytes(data))) == ["f0", "f1", "f2"]
