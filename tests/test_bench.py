"""The benchmark's arithmetic: targets judged from a results file, and two runs compared."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.__main__ import ROOT, verdicts


def _results(mode: str, quern_s: float, floor_s: float, tts_p50: float) -> dict:
    return {
        "mode": mode,
        "started": "2026-11-23T00:00:00+00:00",
        "ingest": {
            "sentences.csv": {
                "records": 1_000_000,
                "floor_records": 1_000_000,
                "quern": {"median": quern_s, "min": quern_s, "max": quern_s, "runs": [quern_s]},
                "floor": {"median": floor_s, "min": floor_s, "max": floor_s, "runs": [floor_s]},
            }
        },
        "naive": {
            "records": 20_000,
            "seconds": {"median": 200.0, "min": 200.0, "max": 200.0, "runs": [200.0]},
        },
        "time_to_searchable": {
            "p50_s": tts_p50,
            "p95_s": tts_p50,
            "min_s": tts_p50,
            "max_s": tts_p50,
            "tries": 1,
        },
        "search": {
            f"{n}_clients": {
                "api": {"p50_ms": 4.0, "p95_ms": 50.0, "requests": 1, "requests_per_s": 1},
                "raw_sql": {"p50_ms": 2.0, "p95_ms": 45.0, "requests": 1, "requests_per_s": 1},
            }
            for n in (1, 8)
        },
    }


def test_targets_are_judged_against_the_floor_the_naive_way_and_latency():
    judged = {
        target: met for target, _, met in verdicts(_results("pg", quern_s=20.0, floor_s=10.0, tts_p50=0.2))
    }
    assert judged["sentences.csv >= 0.6 of the floor"] is False  # 0.5 of the floor
    assert judged[">= 30x the naive way"] is True  # 50,000/s against 100/s
    assert judged["search p50 overhead <= 3 ms (1 clients)"] is True
    assert judged["search p95 <= 1.25x raw SQL (1 clients)"] is True
    assert judged["time to searchable p50 <= 300 ms"] is True
    sqlite = {target: met for target, _, met in verdicts(_results("sqlite", 20.0, 10.0, 2.0))}
    assert sqlite["sentences.csv >= 0.5 of the floor"] is True
    assert sqlite["time to searchable p50 <= 1500 ms"] is False


def test_compare_prints_the_ratio_of_two_runs(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_results("pg", 40.0, 10.0, 0.1)))
    b.write_text(json.dumps(_results("pg", 20.0, 10.0, 0.1)))
    out = subprocess.run(
        [sys.executable, "-m", "bench", "compare", str(a), str(b)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if "ingest sentences.csv (quern)" in line)
    assert line.split()[-1] == "0.50"


def test_relevance_reads_smart_entries_and_graded_judgements():
    from bench.relevance import read_qrels, read_smart

    entries = read_smart(
        ".I 1\n.T\nwing\nflow .\n.A\nsmith\n.W\nlift of a\nwing .\n.I 002\n.W\nwhat lift .\n"
    )
    assert entries == [
        ("1", {"T": "wing flow .", "A": "smith", "W": "lift of a wing ."}),
        ("002", {"W": "what lift ."}),
    ]
    assert read_qrels("1 184 2\n1 29 1\n2 7 -1\n2 8 4\n") == {1: {"184": 3, "29": 4}, 2: {"8": 1}}


def test_ndcg_is_one_for_the_ideal_order_and_recall_counts_the_relevant_found():
    from bench.relevance import ndcg_at, recall_at

    gains = {"a": 3, "b": 1}
    assert ndcg_at(["a", "b", "x"], gains) == 1.0
    assert 0 < ndcg_at(["x", "b", "a"], gains) < 1.0
    assert ndcg_at([], gains) == 0.0
    assert recall_at(["b", "x"], gains) == 0.5
