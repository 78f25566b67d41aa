"""Text encodings: pick the codec, transcode to UTF-8, and read a UTF-8 file in checked blocks."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from indexing.formats.records import ParseError

UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

# What bytes.strip() strips; str.strip() would also strip Unicode spaces, and the parsers
# must call a line blank exactly when the splitter did.
ASCII_SPACE = " \t\n\r\x0b\x0c"

BLOCK_SIZE = 1 << 20
# A line longer than this cannot be a record of any format we read; refusing it keeps
# memory bounded when a file has no line breaks at all.
MAX_LINE = 64 << 20

# Leading bytes of the binary files people most often upload by mistake.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx, .docx or .zip file)"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file (.xls or .doc)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"SQLite format 3\x00", "an SQLite database"),
)

_ENCODING_HINT = (
    "If the file was saved in another encoding, declare the file's encoding, "
    "e.g. encoding=cp1252, or save it as UTF-8 and upload it again."
)


def sniff_encoding(head: bytes, declared: str | None) -> str:
    """The codec to read a file with: its byte-order mark, else the declared encoding, else UTF-8."""
    if head.startswith(UTF16_BOMS):
        return "utf-16"
    if head.startswith(UTF8_BOM):
        return "utf-8-sig"
    if declared is not None and declared.strip():
        name = declared.strip()
        try:
            info = codecs.lookup(name)
        except (LookupError, ValueError):  # ValueError: a name with a NUL in it
            raise ParseError(
                "unknown_encoding",
                f"Unknown encoding {name!r}. Declare a standard encoding name such as "
                "utf-8, cp1252, latin-1 or utf-16.",
            ) from None
        # bytes-to-bytes codecs (base64, zlib, rot13…) are registered but do not read text
        if not getattr(info, "_is_text_encoding", True):
            raise ParseError(
                "unknown_encoding",
                f"{name!r} is not a text encoding. Declare a text encoding such as utf-8 or cp1252.",
            )
        return info.name
    return "utf-8"


def transcode_to_utf8(src: BinaryIO, dst: BinaryIO, encoding: str, *, block_size: int = 1 << 20) -> int:
    """Stream `src` (in `encoding`) to `dst` as UTF-8 without BOM; returns the bytes written."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    consumed = 0  # bytes of src handed to the decoder so far
    lines = 1  # line number at the end of the text decoded so far
    written = 0
    first = True
    while True:
        block = src.read(block_size)
        final = not block
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(block, final)
        except UnicodeDecodeError as exc:
            # exc.start indexes the decoder's pending bytes followed by this block
            byte = consumed - pending + exc.start
            line = lines + _count_lines(exc.object[: exc.start], exc.encoding, encoding)
            bad = exc.object[exc.start : exc.start + 1].hex().upper()
            raise ParseError(
                "bad_encoding",
                f"Line {line} (byte {byte:,}) cannot be read as {encoding} (byte 0x{bad}). "
                "Declare the file's encoding, e.g. encoding=cp1252, or save it as UTF-8.",
                line=line,
                byte=byte,
            ) from None
        consumed += len(block)
        if first and text:
            first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        if text:
            lines += text.count("\n")
            out = text.encode("utf-8")
            dst.write(out)
            written += len(out)
        if final:
            return written


def _count_lines(prefix: bytes, *encodings: str) -> int:
    """Line breaks in the decodable bytes before an error (the error names the codec that failed)."""
    for name in encodings:
        try:
            return codecs.decode(prefix, name, "replace").count("\n")
        except LookupError:
            continue
    return prefix.count(b"\n")


def describe_binary(head: bytes) -> str | None:
    """What kind of binary file `head` starts, if it is one we recognise."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


class Utf8Source:
    """A UTF-8 file read once in line-aligned blocks, each checked for valid UTF-8 and NUL bytes.

    A leading UTF-8 BOM is skipped: the first block starts at byte 3.
    """

    def __init__(self, stream: BinaryIO, fmt: str, *, block_size: int | None = None) -> None:
        self.stream = stream
        self.fmt = fmt
        self.block_size = block_size or BLOCK_SIZE
        self.start = 0  # offset of the first byte of text (3 after a BOM)
        self.end = 0  # offset just past the last byte read

    def blocks(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield (byte offset, line number, data); every block but the last ends with a newline."""
        read = self.stream.read
        raw = read(self.block_size)
        self._check_head(raw)
        offset = 3 if raw.startswith(UTF8_BOM) else 0
        self.start = offset
        carry = raw[offset:]
        line = 1
        while True:
            raw = read(self.block_size) if raw else b""
            if raw:
                data = carry + raw if carry else raw
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    nul = data.find(b"\x00")
                    if nul >= 0:  # a binary file without line breaks: say so now, not at MAX_LINE
                        self._check(data[: nul + 1], offset, line)
                    if len(data) > MAX_LINE:
                        raise ParseError(
                            "line_too_long",
                            f"Line {line:,} is longer than {MAX_LINE >> 20} MiB. "
                            f"Check that this is really a {self.fmt} file with line breaks.",
                            line=line,
                            byte=offset,
                        )
                    carry = data
                    continue
                block, carry = data[:cut], data[cut:]
            else:
                block, carry = carry, b""
                if not block:
                    self.end = offset
                    return
            self._check(block, offset, line)
            yield offset, line, block
            offset += len(block)
            line += block.count(b"\n")

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Yield (byte offset, line) for every line, without its b"\\n" (a b"\\r" stays)."""
        for offset, _, block in self.blocks():
            parts = block.split(b"\n")
            if block.endswith(b"\n"):
                parts.pop()
            pos = offset
            for part in parts:
                yield pos, part
                pos += len(part) + 1

    def _check_head(self, head: bytes) -> None:
        kind = describe_binary(head)
        if kind is not None:
            raise ParseError(
                "binary_content",
                f"This looks like a binary file ({kind}), not {self.fmt} text: "
                f"byte 0 is 0x{head[0]:02X}. Upload the {self.fmt} file itself, "
                f"or export the data as {self.fmt} first.",
                line=1,
                byte=0,
            )
        if head.startswith(UTF16_BOMS):
            raise ParseError(
                "bad_encoding",
                "This file is UTF-16 text, not UTF-8: it must be converted before it is read. "
                "Declare encoding=utf-16, or save the file as UTF-8.",
                line=1,
                byte=0,
            )

    def _check(self, block: bytes, offset: int, line: int) -> None:
        if block.isascii() and b"\x00" not in block:
            return
        nul = block.find(b"\x00")
        bad = -1
        reason = ""
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad, reason = exc.start, exc.reason
        if nul >= 0 and (bad < 0 or nul <= bad or offset == self.start):
            # A NUL byte never occurs in text; in the first block it wins even over an
            # earlier undecodable byte because it is the clearer sign of a binary file.
            at = offset + nul
            at_line = line + block.count(b"\n", 0, nul)
            raise ParseError(
                "binary_content",
                f"This looks like a binary file, not {self.fmt} text: byte {at:,} (line {at_line:,}) "
                f"is a NUL (zero) byte, which text files do not contain. Upload the {self.fmt} "
                "file itself; if it is UTF-16 text, declare encoding=utf-16.",
                line=at_line,
                byte=at,
            )
        if bad >= 0:
            at = offset + bad
            at_line = line + block.count(b"\n", 0, bad)
            raise ParseError(
                "bad_encoding",
                f"Line {at_line:,} (byte {at:,}) is not valid UTF-8 (byte 0x{block[bad]:02X}: {reason}). "
                + _ENCODING_HINT,
                line=at_line,
                byte=at,
            )


def decode_chunk(data: bytes, first_line: int) -> str:
    """The text of a chunk that the splitter already checked (a leading BOM is dropped)."""
    if data.startswith(UTF8_BOM):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Only reachable when the stored file changed after it was split.
        line = first_line + data.count(b"\n", 0, exc.start)
        raise ParseError(
            "bad_encoding",
            f"Line {line:,} is not valid UTF-8 (byte 0x{data[exc.start]:02X}). " + _ENCODING_HINT,
            line=line,
        ) from None
