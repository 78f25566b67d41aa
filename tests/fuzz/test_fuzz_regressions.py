"""Every input the fuzzer kept replayed through its target: only the project's ParseError may come
out, each within the fuzz run's own time bound. regressions/: the inputs that once broke a
target (one test each); corpus.zip: the minimized corpus of earlier runs (`python -m tests.fuzz
--keep`), the inputs that reach new code."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS, one_input, target_of

HERE = Path(__file__).resolve().parent
REGRESSIONS = sorted((HERE / "regressions").iterdir())
SECONDS_PER_INPUT = 20  # as `make fuzz` allows one input (its --timeout)


def kept_corpus() -> dict[str, bytes]:
    with zipfile.ZipFile(HERE / "corpus.zip") as kept:
        return {name: kept.read(name) for name in kept.namelist()}


def replay(data: bytes) -> None:
    started = time.monotonic()
    one_input(data)
    assert time.monotonic() - started < SECONDS_PER_INPUT


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_an_input_that_once_broke_a_target_is_now_read_or_refused_with_a_parse_error(path):
    replay(path.read_bytes())


def test_every_input_of_the_kept_corpus_is_read_or_refused_with_a_parse_error():
    corpus = kept_corpus()
    assert {target_of(data) for data in corpus.values()} == set(TARGETS)  # every target is kept
    for name, data in corpus.items():
        try:
            replay(data)
        except Exception as error:
            raise AssertionError(f"corpus.zip's {name} ({target_of(data)}) broke: {error!r}") from error
