"""What the fuzzer feeds: one input, through the code that reads what strangers send.

The first byte picks the target: a format's split and parse (as a worker runs them, small chunks
and a byte bound), format detection with encoding sniffing and transcoding, or the query parser
and planner. Only the project's own ParseError (a message for a person) may escape; anything
else is a crash the fuzzer keeps. Imported by `python -m tests.fuzz` (atheris, coverage-guided)
and by test_fuzz_regressions.py, which replays every input kept in regressions/.
"""

from __future__ import annotations

import io

from indexing.formats import FORMATS, ParseError, detect_format, sniff_encoding
from indexing.formats.encoding import transcode_to_utf8
from indexing.query import (
    Lookup,
    corrected_text,
    narrow,
    parse_query,
    plan_search,
    plan_to_fts5,
    words_to_check,
)
from tests.formats.conftest import read as read_document

TARGETS = (*sorted(FORMATS), "detect", "query")


def target_of(data: bytes) -> str:
    return TARGETS[data[0] % len(TARGETS)] if data else "query"


def one_input(data: bytes) -> None:
    target, body = target_of(data), data[1:]
    try:
        if target == "detect":
            detect(body)
        elif target == "query":
            query(body)
        else:
            read(body, target)
    except ParseError as error:
        if not (error.code and error.message):
            raise AssertionError("a ParseError without a code or a message for a person") from error


def read(data: bytes, fmt: str) -> None:
    """As a worker reads a document: small chunks, a byte bound, the record and field limits."""
    read_document(data, fmt, 7, 4096, max_units=10_000, max_fields=1000)


def detect(data: bytes) -> None:
    detect_format("", "upload", data[:65536])
    codec = sniff_encoding(data[:65536], None)
    transcode_to_utf8(io.BytesIO(data), io.BytesIO(), codec)


def query(data: bytes) -> None:
    """Parse and plan as a search does, with a vocabulary made up from the query itself: every
    other word matches nothing (so it is corrected to a neighbour), the last one is completed."""
    text = data.decode("utf-8", "replace")
    parsed = parse_query(text)
    checked = words_to_check(parsed)
    lookup = Lookup(
        matches={w: (0 if n % 2 else n + 1) for n, w in enumerate(checked)},
        close={w: [(w[:-1] + "e", 5), (w + "s", 50)] for w in checked},
        completions=[(w + "ing", 9) for w in checked[-1:]],
    )
    for match_all in (False, True):
        plan = plan_search(parsed, match_all=match_all, lookup=lookup)
        words = {w for a in plan.alternatives() for w in a.words}
        narrowed = narrow(plan, {w: 10 * len(w) for w in words}, records=1000, bound=20)
        plan_to_fts5(narrowed)
        corrected_text(parsed, narrowed)
