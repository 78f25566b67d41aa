"""Hostile input, for every format: whatever the bytes, splitting and parsing either read them or
raise the project's own ParseError (a message for a person), in bounded time — never another
exception (a RecursionError reads like a crash and fails the job as internal_error)."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexing.formats import FORMATS, ParseError
from tests.formats.conftest import read

ALL = sorted(FORMATS)
# Bytes that matter to one parser or another: structure, quotes, escapes, tags, NUL, high bytes.
ALPHABET = b'{}[]":,\n\r\t \\<>/=!-#*`|0123456789aZ\x00\xc3\xa9\xff\xfe\xe2\x80\xa8'


def read_all(data: bytes, fmt: str) -> int:
    """Split (small chunks, a byte bound) and parse like the workers do; how many records came out."""
    _, records, _ = read(data, fmt, chunk_size=7, max_chunk_bytes=4096)
    return len(records)


def only_our_error(data: bytes, fmt: str) -> None:
    try:
        read_all(data, fmt)
    except ParseError as error:
        refused = error
    else:
        return
    assert refused.message and refused.code  # a person's message, a stable code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(ALL), data=st.binary(max_size=600))
def test_any_bytes_are_read_or_refused_with_a_parse_error(fmt, data):
    only_our_error(data, fmt)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(ALL),
    data=st.lists(st.sampled_from([bytes([b]) for b in ALPHABET]), max_size=400).map(b"".join),
)
def test_structured_noise_is_read_or_refused_with_a_parse_error(fmt, data):
    only_our_error(data, fmt)


@settings(max_examples=150, deadline=None)
@given(
    header=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6),
    rows=st.lists(st.lists(st.text(max_size=10), max_size=9), max_size=12),
)
def test_ragged_csv_rows_are_read_or_refused_with_a_parse_error(header, rows):
    def line(cells):
        return ",".join('"' + c.replace('"', '""') + '"' for c in cells)

    data = "\n".join([line(header), *map(line, rows)]).encode("utf-8", "surrogatepass")
    only_our_error(data, "csv")


NAMED = {
    "invalid UTF-8": lambda: b"id,text\n1,caf\xe9 \xff\xfe\n",
    "a NUL byte": lambda: b"id,text\n1,a\x00b\n",
    "JSON nested 100,000 deep": lambda: b"[" * 100_000 + b"]" * 100_000,
    "JSON Lines nested 100,000 deep": lambda: b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n",
    "a CSV with 100,000 columns": lambda: (
        ",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("x" * 100_000) + "\n"
    ).encode(),
    "a ragged CSV row": lambda: b"a,b,c\n1,2\n1,2,3,4,5\n\n1,2,3\n",
    "HTML with 1,000,000 nested tags": lambda: b"<div>" * 1_000_000 + b"deep" + b"</div>" * 1_000_000,
    "a 50 MB line": lambda: b"id,text\n1," + b"a" * 50_000_000 + b"\n",
}


@pytest.mark.parametrize("fmt", ALL)
@pytest.mark.parametrize("make", NAMED.values(), ids=NAMED.keys())
def test_named_hostile_inputs_are_read_or_refused_in_bounded_time(make, fmt):
    data = make()
    started = time.perf_counter()
    only_our_error(data, fmt)
    took = time.perf_counter() - started
    assert took < 60, f"{took:.0f} s"
