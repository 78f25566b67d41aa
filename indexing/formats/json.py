"""JSON: one object (one record) or a top-level array whose elements are the records."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from indexing.formats.encoding import Utf8Source, decode_chunk
from indexing.formats.jsonl import describe_json
from indexing.formats.outline import Outline
from indexing.formats.records import (
    ParsedRecord,
    ParseError,
    RecordError,
    record_from_object,
    too_deep_error,
)

_TOKEN = re.compile(rb"[^ \t\r\n]")
_STRING_STOP = re.compile(rb'["\\]')
_SCALAR = re.compile(rb'[^ \t\r\n,:\[\]{}"]+')
_SPACE_OR_COMMA = re.compile(r"[ \t\r\n]*(,?)[ \t\r\n]*")
_CLOSER = {ord("]"): ord("["), ord("}"): ord("{")}


class LineCounter:
    """Line numbers of byte offsets inside the block being scanned, counted incrementally."""

    def __init__(self, data: bytes = b"", offset: int = 0, line: int = 1) -> None:
        self.reset(data, offset, line)

    def reset(self, data: bytes, offset: int, line: int) -> None:
        self.data, self.offset, self.line = data, offset, line
        self.pos, self.pos_line = offset, line

    def at(self, byte: int) -> int:
        if byte < self.pos:
            self.pos, self.pos_line = self.offset, self.line
        byte = min(byte, self.offset + len(self.data))
        self.pos_line += self.data.count(b"\n", self.pos - self.offset, byte - self.offset)
        self.pos = byte
        return self.pos_line


class StructureScanner:
    """Finds the byte span of each element of a top-level array without decoding it.

    It tracks strings, escapes and bracket depth only; whether an element is valid JSON
    is for the parser to say, record by record. Fed in blocks, in order.
    """

    def __init__(self, lines: LineCounter, *, inside_array: bool = False) -> None:
        self.lines = lines
        self.inside_array = inside_array  # scanning a chunk: already inside the top-level array
        self.stack = bytearray(b"[" if inside_array else b"")
        self.top = ord("[") if inside_array else 0
        self.top_at = (0, 1)  # (byte, line) of the top-level bracket
        self.expect = inside_array  # depth 1 of the array: the next value starts an element
        self.after_comma = False
        self.done = False
        self.in_string = False
        self.escape = False
        self.unit_at = (-1, 0)  # (byte, line) of the element being scanned; byte -1 between elements
        self.last_end = 0  # end of the last token scanned
        self.spans: list[tuple[int, int]] = []  # (start, end) of each element, in order
        self.starts: list[tuple[int, int]] = []  # (byte, line) of elements found since last cleared

    def feed(self, data: bytes, offset: int) -> None:
        i = 0
        n = len(data)
        stack = self.stack
        while i < n:
            if self.in_string:
                if self.escape:
                    self.escape = False
                    i += 1
                    continue
                m = _STRING_STOP.search(data, i)
                if m is None:
                    return
                i = m.end()
                if data[m.start()] == 0x5C:  # backslash: the next byte is escaped
                    self.escape = True
                    continue
                self.in_string = False
                self.last_end = offset + i
                continue
            m = _TOKEN.search(data, i)
            if m is None:
                return
            i = m.start()
            at = offset + i
            c = data[i]
            if self.done:
                self._fail(
                    at,
                    "there is more after the end of the JSON value. Remove it; if the file holds "
                    "one JSON object per line, upload it as jsonl.",
                )
            if not stack:
                if c != 0x5B and c != 0x7B:  # [ {
                    self._fail(
                        at,
                        f"the file starts with {chr(c)!r}, not an object or array. A json file holds one "
                        "object or an array of objects.",
                    )
                self.top = c
                self.top_at = (at, self.lines.at(at))
                stack.append(c)
                if c == 0x7B:
                    self._start(at)
                else:
                    self.expect = True
                i += 1
                self.last_end = at + 1
                continue
            if c == 0x22:  # "
                self._value(at)
                self.in_string = True
                i += 1
            elif c == 0x5B or c == 0x7B:
                self._value(at)
                stack.append(c)
                i += 1
                self.last_end = at + 1
            elif c == 0x5D or c == 0x7D:  # ] }
                if stack[-1] != _CLOSER[c]:
                    self._fail(at, f"{chr(c)!r} closes a {chr(stack[-1])!r}. Check the brackets before it.")
                if len(stack) == 1 and self.top == 0x5B:
                    if self.after_comma:
                        self._fail(at, "a comma comes before ']'. Remove the comma after the last element.")
                    self._end()
                    self.done = True
                stack.pop()
                i += 1
                self.last_end = at + 1
                if not stack and self.top == 0x7B:
                    self._end()
                    self.done = True
            elif c == 0x2C:  # ,
                if len(stack) == 1 and self.top == 0x5B:
                    if self.expect:
                        self._fail(at, "an array element is missing before this comma. Remove one comma.")
                    self._end()
                    self.expect = True
                    self.after_comma = True
                i += 1
            elif c == 0x3A:  # :
                i += 1
                self.last_end = at + 1
            else:
                self._value(at)
                i = _SCALAR.match(data, i).end()
                self.last_end = offset + i

    def finish(self) -> None:
        """The input ended: close the last element, or report what is left open."""
        if self.inside_array and not self.in_string and len(self.stack) == 1:
            self._end()
            return
        if self.in_string or (self.stack and not self.done):
            at, line = self.unit_at if self.unit_at[0] >= 0 else self.top_at
            what = "a string is not closed" if self.in_string else "a bracket is not closed"
            raise ParseError(
                "json_syntax",
                f"Line {line:,} (byte {at:,}): the JSON ends before this part is complete ({what}). "
                "Check that the file was not cut short.",
                line=line,
                byte=at,
            )

    def _value(self, at: int) -> None:
        if len(self.stack) == 1 and self.top == 0x5B:
            if not self.expect:
                self._fail(at, "a comma is missing between two array elements.")
            self._start(at)

    def _start(self, at: int) -> None:
        self.unit_at = (at, self.lines.at(at))
        self.expect = False
        self.after_comma = False
        self.starts.append(self.unit_at)

    def _end(self) -> None:
        if self.unit_at[0] >= 0:
            self.spans.append((self.unit_at[0], self.last_end))
            self.unit_at = (-1, 0)

    def _fail(self, at: int, why: str) -> None:
        line = self.lines.at(at)
        raise ParseError("json_syntax", f"Line {line:,} (byte {at:,}): {why}", line=line, byte=at)


def split_units(source: Utf8Source, outline: Outline) -> Iterator[tuple[int, int]]:
    """Yield (byte, line) of each array element, or of the one top-level object."""
    lines = LineCounter()
    scanner = StructureScanner(lines)
    last_end = None
    for offset, line, block in source.blocks():
        lines.reset(block, offset, line)
        scanner.feed(block, offset)
        yield from scanner.starts
        scanner.starts.clear()
        if scanner.spans:
            last_end = scanner.spans[-1][1]
            scanner.spans.clear()
    scanner.finish()
    if scanner.spans:
        last_end = scanner.spans[-1][1]
    outline.end = last_end


def parse_elements(
    data: bytes, *, first_ordinal: int, first_line: int
) -> tuple[list[ParsedRecord], list[RecordError]]:
    """Parse one chunk: array elements separated by commas (or the one top-level object)."""
    text = decode_chunk(data, first_line)
    records: list[ParsedRecord] = []
    errors: list[RecordError] = []
    decode = json.JSONDecoder().raw_decode
    skip = _SPACE_OR_COMMA.match
    ordinal = first_ordinal
    line, counted = first_line, 0
    pos = skip(text, 0).end()
    n = len(text)
    while pos < n:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decode(text, pos)
        except (json.JSONDecodeError, RecursionError):  # the slow path names the element at fault
            end = -1
        if end >= 0:
            gap = skip(text, end)
            if not gap.group(1) and gap.end() < n:
                end = -1  # something follows the value inside the same element
        if end < 0:
            # An element that is not valid JSON: find where each remaining element ends
            # from the structure alone, and read them one by one.
            _parse_slowly(text, pos, line, ordinal, records, errors)
            return records, errors
        _add(value, ordinal, line, records, errors)
        ordinal += 1
        pos = skip(text, end).end()
    return records, errors


def _parse_slowly(
    text: str, pos: int, line: int, ordinal: int, records: list[ParsedRecord], errors: list[RecordError]
) -> None:
    rest = text[pos:].encode("utf-8")
    scanner = StructureScanner(LineCounter(rest, 0, line), inside_array=True)
    scanner.feed(rest, 0)
    scanner.finish()
    counted = 0
    for start, end in scanner.spans:
        line += rest.count(b"\n", counted, start)
        counted = start
        try:
            value = json.loads(rest[start:end])
        except RecursionError:
            errors.append(too_deep_error(f"Element {ordinal + 1:,} (line {line:,})", line, ordinal))
        except json.JSONDecodeError as exc:
            at = line + exc.lineno - 1
            errors.append(
                RecordError(
                    "json_invalid",
                    f"Element {ordinal + 1:,} (line {at:,}) is not valid JSON: {exc.msg} "
                    f"at column {exc.colno}.",
                    line=line,
                    record=ordinal,
                )
            )
        else:
            _add(value, ordinal, line, records, errors)
        ordinal += 1


def _add(
    value: object, ordinal: int, line: int, records: list[ParsedRecord], errors: list[RecordError]
) -> None:
    if isinstance(value, dict):
        records.append(record_from_object(ordinal, value))
    else:
        errors.append(
            RecordError(
                "json_not_object",
                f"Element {ordinal + 1:,} of the array (line {line:,}) is {describe_json(value)}, "
                'not an object. Each element must be a JSON object, e.g. {"id": 1, "text": "…"}.',
                line=line,
                record=ordinal,
            )
        )
