"""`make fuzz`: coverage-guided fuzzing (atheris, libFuzzer) of the parsers and the query parser.

    python -m tests.fuzz --seconds 120          # what CI runs
    python -m tests.fuzz --seconds 3600 -jobs=2 # longer, by hand; other libFuzzer flags pass through

Starts from the inputs kept in tests/fuzz/ (regressions/: each input that once broke a target,
named after what it found; corpus.zip: the minimized corpus of earlier runs, the inputs that
reach new code) and the test fixtures, grows its working corpus under var/fuzz/corpus/, and
stops at the first input that raises anything but the project's ParseError, takes longer than
--timeout seconds or more than --rss-mb of memory: libFuzzer writes it to var/fuzz/crash-*, and
the run exits non-zero. test_fuzz_regressions.py replays every kept input in every test run.

    python -m tests.fuzz --keep                 # minimize what the runs found into corpus.zip
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions"
KEPT = HERE / "corpus.zip"
FIXTURES = ROOT / "tests" / "fixtures"
WORK = ROOT / "var" / "fuzz"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("--seconds", type=int, default=120, help="time box of the whole run")
    parser.add_argument("--timeout", type=int, default=20, help="seconds one input may take")
    parser.add_argument("--rss-mb", type=int, default=1024, help="memory the run may use")
    parser.add_argument("--keep", action="store_true", help="minimize the working corpus into corpus.zip")
    args, libfuzzer = parser.parse_known_args()
    if args.keep:
        keep()
        return
    corpus = WORK / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    with atheris.instrument_imports(include=["indexing"]):
        from tests.fuzz import targets
    if any(flag.startswith("-merge") for flag in libfuzzer):
        # keep()'s merge, and libFuzzer's inner runs of it (it starts this program again by
        # argv[0], with its own flags): exactly the folders given.
        atheris.Setup([str(_runner()), *libfuzzer], targets.one_input)
        atheris.Fuzz()
        return
    flags = [
        f"-max_total_time={args.seconds}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_mb}",
        "-max_len=65536",
        f"-artifact_prefix={WORK}/",
        "-print_final_stats=1",
        *libfuzzer,
        str(corpus),
        str(REGRESSIONS),
        str(_seeds()),
        str(_unpacked(KEPT, WORK / "kept")),
    ]
    atheris.Setup([sys.argv[0], *flags], targets.one_input)
    atheris.Fuzz()


def _seeds() -> Path:
    """The test fixtures, each once per target (its first byte picks the target)."""
    from tests.fuzz.targets import TARGETS

    seeds = WORK / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for fixture in sorted(FIXTURES.iterdir()):
        data = fixture.read_bytes()[:65535]
        for number, target in enumerate(TARGETS):
            (seeds / f"{target}-{fixture.name}").write_bytes(bytes([number]) + data)
    for number, text in enumerate(["heron egret", '"grey heron" -egret', "hero* OR (egret", "avocets stilt"]):
        (seeds / f"query-{number}").write_bytes(bytes([TARGETS.index("query")]) + text.encode())
    return seeds


def _runner() -> Path:
    """An executable that starts this program: libFuzzer's merge runs itself again by argv[0]."""
    runner = WORK / "run"
    runner.parent.mkdir(parents=True, exist_ok=True)
    runner.write_text(f'#!/bin/sh\ncd "{ROOT}" && exec "{sys.executable}" -m tests.fuzz "$@"\n')
    runner.chmod(0o755)
    return runner


def _unpacked(archive: Path, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if archive.exists():
        with zipfile.ZipFile(archive) as kept:
            kept.extractall(folder)
    return folder


def keep() -> None:
    """libFuzzer's merge: the fewest inputs of the kept and the working corpus that reach all of
    their code, written to corpus.zip (named by content, so a rerun changes only what changed)."""
    merged = WORK / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    sources = [str(_unpacked(KEPT, WORK / "kept")), str(WORK / "corpus")]
    subprocess.run([str(_runner()), "-merge=1", str(merged), *sources], check=True)
    with zipfile.ZipFile(KEPT, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(merged.iterdir()):
            data = path.read_bytes()
            out.writestr(hashlib.sha1(data).hexdigest(), data)
    print(f"kept {len(list(merged.iterdir()))} inputs in {KEPT}")


if __name__ == "__main__":
    main()
