"""Compressed input read as its content: a gzip stream (`data.csv.gz`) unpacked as it is read."""

from __future__ import annotations

import gzip
import zlib
from typing import IO

from indexing.formats.records import ParseError

GZIP_MAGIC = b"\x1f\x8b"


class _Prepended:
    """A stream whose first bytes were already read (to look at them): they come first again."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self._first, self._rest = first, rest

    def read(self, size: int = -1) -> bytes:
        if not self._first:
            return self._rest.read(size)
        if 0 <= size < len(self._first):
            head, self._first = self._first[:size], self._first[size:]
            return head
        head, self._first = self._first, b""
        return head + self._rest.read(-1 if size < 0 else size - len(head))


class _Gunzipped:
    """Reads the uncompressed bytes; a damaged stream raises the project's ParseError."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[arg-type]
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        try:
            block = self._raw.read(size)
        except (OSError, EOFError, zlib.error) as error:
            raise ParseError(
                "bad_gzip",
                f"The document looks gzip-compressed but cannot be unpacked after {self._done:,} bytes "
                f"({error}). Send it whole, or uncompressed.",
                byte=self._done,
            ) from None
        self._done += len(block)
        return block


def uncompressed(stream: IO[bytes]) -> IO[bytes]:
    """The stream as its content: unpacked as it is read when gzip-compressed (its magic bytes)."""
    first = stream.read(2)
    whole = _Prepended(first, stream)
    return _Gunzipped(whole) if first == GZIP_MAGIC else whole  # type: ignore[return-value]


def without_gz(name: str) -> str:
    """`data.csv.gz` -> `data.csv`: the content's own name, for its format."""
    return name[:-3] if name.lower().endswith(".gz") and len(name) > 3 else name
