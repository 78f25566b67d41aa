"""Archives read as many documents: the files of a .zip, .tar, .tar.gz or .tgz, each by its path.

Pure: streams in, (path, stream) pairs out. Limits are checked before a member is given out —
the member count, the total uncompressed size and its ratio to the archive's size — and again
on the bytes actually read (a zip's declared sizes may lie), so a bomb stops with a ParseError
that says which limit, and what to do.
"""

from __future__ import annotations

import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from indexing.formats.records import ParseError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
ARCHIVE_FORMAT = "archive"  # a stored archive's format: unpacked by a worker, its files each a document


@dataclass(frozen=True)
class Limits:
    members: int
    total_bytes: int
    ratio: int  # uncompressed bytes per archive byte, at most


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def members(stream: IO[bytes], name: str, size: int, limits: Limits) -> Iterator[tuple[str, IO[bytes]]]:
    """Each regular, non-empty file of the archive: (its path inside, a stream of its bytes)."""
    budget = _Budget(name, size, limits)
    if name.lower().endswith(".zip"):
        yield from _zip_members(stream, budget)
    else:
        yield from _tar_members(stream, budget)


class _Budget:
    """What the archive may still unpack; raises the limit's ParseError once it is spent."""

    def __init__(self, name: str, size: int, limits: Limits) -> None:
        self.name, self.limits = name, limits
        self.total = min(limits.total_bytes, max(size, 1) * limits.ratio)
        self.count = 0
        self.declared = 0  # what the archive says its files hold
        self.used = 0  # what was actually unpacked

    def member(self, declared: int) -> None:
        self.count += 1
        if self.count > self.limits.members:
            raise ParseError(
                "archive_too_many_members",
                f"{self.name} holds more than {self.limits.members:,} files (QUERN_ARCHIVE_MAX_MEMBERS): "
                "nothing of it was stored. Split it into smaller archives.",
            )
        self.declared += declared
        self._check(self.declared)

    def spend(self, n: int) -> None:
        self.used += n
        self._check(self.used)

    def _check(self, n: int) -> None:
        if n > self.total:
            raise ParseError(
                "archive_too_large",
                f"{self.name} unpacks to more than {self.total:,} bytes (QUERN_ARCHIVE_MAX_BYTES, or "
                f"{self.limits.ratio}x its own size, QUERN_ARCHIVE_MAX_RATIO): nothing of it was stored. "
                "A compressed file that grows this much is refused as a bomb; send smaller archives.",
            )


class _Counted:
    """A member's stream that charges the archive's budget for every byte read."""

    def __init__(self, raw: IO[bytes], budget: _Budget) -> None:
        self._raw, self._budget = raw, budget

    def read(self, size: int = -1) -> bytes:
        try:
            block = self._raw.read(size)
        except (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError) as error:
            raise ParseError(
                "bad_archive", f"{self._budget.name}: a file cannot be unpacked ({error})."
            ) from None
        self._budget.spend(len(block))
        return block


def _path(name: str) -> str:
    return name.replace("\\", "/").lstrip("/").removeprefix("./")


def _zip_members(stream: IO[bytes], budget: _Budget) -> Iterator[tuple[str, IO[bytes]]]:
    for entry in _zip_directory(stream, budget.name):
        budget.member(entry.file_size)  # every entry counts, directories and empty files too
        if entry.filename.endswith("/") or entry.file_size == 0:
            continue
        if entry.flag_bits & _ZIP_ENCRYPTED:
            raise ParseError(
                "bad_archive", f"{budget.name}: {entry.filename} is encrypted; send it unencrypted."
            )
        if entry.compress_type not in _ZIP_METHODS:
            raise ParseError(
                "bad_archive",
                f"{budget.name}: {entry.filename} is compressed with method {entry.compress_type}, which "
                "cannot be read here; store or deflate it.",
            )
        stream.seek(_zip_data_start(stream, entry, budget.name))
        yield _path(entry.filename), _Counted(zipfile.ZipExtFile(stream, "rb", entry), budget)  # type: ignore[arg-type]


# zipfile.ZipFile reads a zip's whole central directory into memory as ZipInfo objects, about 550
# bytes an entry: 550 MB for a million files. The directory is read here one entry at a time
# instead, and each file's bytes through zipfile's own ZipExtFile (its decompressors and CRC check).
_ZIP_END = struct.Struct("<4s4H2LH")  # end of central directory
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # a central directory entry
_ZIP_LOCAL = struct.Struct("<4s2B4HL2L2H")  # a file's local header
_ZIP_ENCRYPTED, _ZIP_UTF8 = 0x1, 0x800
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_ZIP_TAIL = _ZIP_END.size + 0xFFFF  # the end record, and a comment of at most 64 KB


def _zip_directory(stream: IO[bytes], name: str) -> Iterator[zipfile.ZipInfo]:
    """Each entry of the central directory, read one at a time (none is kept). Every offset the
    archive gives is checked against the file before it is used: the bytes are a stranger's."""

    def bad(why: str) -> ParseError:
        return ParseError("bad_archive", f"{name} is not a readable zip archive ({why}).")

    try:
        end_at, cd_size, cd_offset = _zip_end(stream, bad)
    except (ValueError, OverflowError, struct.error) as error:
        raise bad(str(error)) from None
    concat = end_at - cd_size - cd_offset  # bytes before the zip (a self-extracting stub), or 0
    if concat < 0 or cd_size < 0:
        raise bad("its central directory lies outside the file")
    # The directory's size, not its entry count, says where it ends: a writer without zip64
    # counts 65,536 files as 0.
    position, end = cd_offset + concat, end_at
    while position < end:
        stream.seek(position)
        header = stream.read(_ZIP_ENTRY.size)
        if len(header) != _ZIP_ENTRY.size or header[:4] != b"PK\x01\x02":
            raise bad("a truncated or damaged central directory")
        fields = _ZIP_ENTRY.unpack(header)
        flags, method, _, _, crc, compressed, file_size = fields[5:12]
        name_length, extra_length, comment_length, offset = *fields[12:15], fields[18]
        raw_name = stream.read(name_length)
        extra = stream.read(extra_length)
        position += _ZIP_ENTRY.size + name_length + extra_length + comment_length
        entry = zipfile.ZipInfo(raw_name.decode("utf-8" if flags & _ZIP_UTF8 else "cp437", "replace"))
        entry.flag_bits, entry.compress_type, entry.CRC = flags, method, crc
        entry.file_size, entry.compress_size, entry.header_offset = _zip64_sizes(
            extra, file_size, compressed, offset
        )
        entry.header_offset += concat
        if entry.header_offset + _ZIP_LOCAL.size > end_at:
            raise bad(f"the header of {entry.filename} lies outside the file")
        yield entry


def _zip_end(stream: IO[bytes], bad) -> tuple[int, int, int]:
    """Where the end record starts, and the central directory's size and offset (zip64's too)."""
    size = stream.seek(0, 2)
    tail_start = max(0, size - _ZIP_TAIL)
    stream.seek(tail_start)
    tail = stream.read()
    # At the very end when there is no comment (as zipfile looks first); else the last one.
    at = len(tail) - _ZIP_END.size
    if at < 0 or tail[at : at + 4] != b"PK\x05\x06":
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _ZIP_END.size:
        raise bad("no end of central directory record")
    _, _, _, _, _, cd_size, cd_offset, _ = _ZIP_END.unpack_from(tail, at)
    end_at = tail_start + at
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == b"PK\x06\x07":
        record_at = end_at - _ZIP64_LOCATOR.size - _ZIP64_END.size
        if record_at < 0:
            raise bad("a zip64 locator with no zip64 end record before it")
        stream.seek(record_at)
        record = stream.read(_ZIP64_END.size)
        if len(record) != _ZIP64_END.size or record[:4] != b"PK\x06\x06":
            raise bad("a damaged zip64 end record")
        _, _, _, _, _, _, _, _, cd_size, cd_offset = _ZIP64_END.unpack(record)
        end_at = record_at
    return end_at, cd_size, cd_offset


def _zip64_sizes(extra: bytes, file_size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The real sizes and offset where the entry says 0xFFFFFFFF: its zip64 extra field holds them."""
    values = [file_size, compressed, offset]
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, at)
        if tag == 0x0001:
            field, taken = extra[at + 4 : at + 4 + length], 0
            for i, value in enumerate(values):
                if value == 0xFFFFFFFF and taken + 8 <= len(field):
                    values[i] = struct.unpack_from("<Q", field, taken)[0]
                    taken += 8
            break
        at += 4 + length
    return values[0], values[1], values[2]


def _zip_data_start(stream: IO[bytes], entry: zipfile.ZipInfo, name: str) -> int:
    stream.seek(entry.header_offset)
    local = stream.read(_ZIP_LOCAL.size)
    if len(local) != _ZIP_LOCAL.size or local[:4] != b"PK\x03\x04":
        raise ParseError(
            "bad_archive", f"{name}: {entry.filename} cannot be unpacked (its local header is damaged)."
        )
    name_length, extra_length = _ZIP_LOCAL.unpack(local)[-2:]
    return entry.header_offset + _ZIP_LOCAL.size + name_length + extra_length


def _tar_members(stream: IO[bytes], budget: _Budget) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        # Closed by the with below; "r|*" reads the stream once, compressed or not.
        archive = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ParseError("bad_archive", f"{budget.name} is not a readable tar archive ({error}).") from None
    with archive:
        try:
            while (info := archive.next()) is not None:
                archive.members = []  # a stream's entries are not kept: a million of them add up
                budget.member(info.size)  # every entry counts, directories and empty files too
                if not info.isfile() or info.size == 0:
                    continue
                member = archive.extractfile(info)
                if member is not None:
                    yield _path(info.name), _Counted(member, budget)  # type: ignore[misc]
        except (tarfile.TarError, OSError, EOFError) as error:
            raise ParseError("bad_archive", f"{budget.name} cannot be read to its end ({error}).") from None
