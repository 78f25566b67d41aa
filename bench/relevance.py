"""`python -m bench relevance`: search quality on a judged collection, beside a plain BM25.

The collection (SMART format: `.I n` opens an entry, `.T` title, `.W` text, others ignored; a
qrels file of `question document code` lines) is submitted to a real stack as one JSON Lines
document through the API, each question is typed into `/api/search` as written, and the top 10
are scored against the judgements: nDCG@10 (graded gain 5 - code for codes 1-4), recall@10 and
the questions with no hit. The reference is a plain BM25 over the same texts in the same run
(bm25s, Snowball English stemmer and stop words, k1 1.2, b 0.75, query words ORed), the one the
collection's README quotes. Defaults point at Cranfield in ../shared/relevance; any SMART
collection can be pointed at with --docs, --queries and --qrels.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.stack import ROOT, Stack, mode_env, recreate_database

CRANFIELD = ROOT.parent / "shared" / "relevance" / "cranfield"
K = 10


@dataclass(frozen=True)
class Collection:
    documents: list[tuple[str, str, str]]  # (id, title, text)
    questions: list[str]  # in file order; question n of the qrels is questions[n - 1]
    gains: dict[int, dict[str, int]]  # question number -> document id -> graded gain (> 0)


def read_smart(text: str) -> list[tuple[str, dict[str, str]]]:
    """Entries of a SMART file: (the `.I` value, {field letter: its text})."""
    entries: list[tuple[str, dict[str, str]]] = []
    field = None
    for line in text.splitlines():
        if line.startswith(".I"):
            entries.append((line[2:].strip(), {}))
            field = None
        elif len(line) == 2 and line.startswith(".") and line[1].isalpha():
            field = line[1]
            if entries:
                entries[-1][1].setdefault(field, "")
        elif entries and field:
            fields = entries[-1][1]
            fields[field] = f"{fields[field]} {line.strip()}".strip()
    return entries


def read_qrels(text: str) -> dict[int, dict[str, int]]:
    """`question document code` lines; codes 1 (a complete answer) to 4 (least) gain 5 - code."""
    gains: dict[int, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        question, document, code = int(parts[0]), parts[1], int(parts[2])
        if 1 <= code <= 4:
            gains.setdefault(question, {})[str(int(document))] = 5 - code
    return gains


def load(docs: Path, queries: Path, qrels: Path) -> Collection:
    documents = [
        (str(int(number)), fields.get("T", ""), fields.get("W", ""))
        for number, fields in read_smart(docs.read_text(errors="replace"))
    ]
    questions = [fields.get("W", "") for _, fields in read_smart(queries.read_text(errors="replace"))]
    return Collection(documents, questions, read_qrels(qrels.read_text()))


def ndcg_at(ranked: list[str], gains: dict[str, int], k: int = K) -> float:
    dcg = sum(gains.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    best = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / best if best else 0.0


def recall_at(ranked: list[str], gains: dict[str, int], k: int = K) -> float:
    relevant = {doc for doc, gain in gains.items() if gain > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def score(rankings: dict[int, list[str]], collection: Collection) -> dict:
    judged = sorted(q for q in collection.gains if q <= len(collection.questions))
    return {
        "questions": len(judged),
        "ndcg@10": statistics.fmean(ndcg_at(rankings.get(q, []), collection.gains[q]) for q in judged),
        "recall@10": statistics.fmean(recall_at(rankings.get(q, []), collection.gains[q]) for q in judged),
        "no_hit": sum(1 for q in judged if not rankings.get(q)),
    }


def bm25_reference(collection: Collection) -> dict[int, list[str]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = [doc_id for doc_id, _, _ in collection.documents]
    corpus = [f"{title} {text}" for _, title, text in collection.documents]
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(
        bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize(collection.questions, stopwords="en", stemmer=stemmer, show_progress=False)
    results, scores = retriever.retrieve(tokens, k=K, show_progress=False)
    return {
        n + 1: [ids[i] for i, s in zip(results[n], scores[n], strict=True) if s > 0]
        for n in range(len(collection.questions))
    }


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def quern_rankings(stack: Stack, collection: Collection) -> tuple[dict[int, list[str]], dict]:
    client = stack.client()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as out:
        for doc_id, title, text in collection.documents:
            out.write(json.dumps({"id": doc_id, "title": title, "body": text}) + "\n")
    path = Path(out.name)
    try:
        [job] = client.post_files([path], {"format": "jsonl"})
        [job] = client.wait_jobs([job["id"]])
    finally:
        path.unlink()
    if job["status"] != "succeeded":
        raise RuntimeError(f"the collection's job ended {job['status']}: {job['errors'][:3]}")
    rankings, latencies = {}, []
    for n, question in enumerate(collection.questions, start=1):
        started = time.perf_counter()
        page = client.get(f"/api/search?q={urllib.parse.quote(question)}&limit={K}")
        latencies.append((time.perf_counter() - started) * 1000)
        rankings[n] = [hit["record"]["key"] for hit in page["hits"]]
    timing = {"p50_ms": statistics.median(latencies), "p95_ms": _percentile(latencies, 0.95)}
    return rankings, timing


def run(mode: str, docs: Path, queries: Path, qrels: Path, output: Path | None) -> dict:
    collection = load(docs, queries, qrels)
    data_dir = ROOT / "var" / "bench" / f"relevance-{mode}"
    os.environ.update(mode_env(mode, data_dir))
    recreate_database(mode, data_dir)
    stack = Stack(mode, data_dir)
    stack.migrate()
    try:
        stack.start_worker()
        stack.start_beat()
        stack.start_web()
        rankings, timing = quern_rankings(stack, collection)
    finally:
        stack.stop()
    quern = score(rankings, collection) | timing
    reference = score(bm25_reference(collection), collection)
    results = {
        "mode": mode,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "collection": {"docs": str(docs), "documents": len(collection.documents), "queries": str(queries)},
        "quern": quern,
        "bm25_reference": reference,
        "ndcg_ratio": quern["ndcg@10"] / reference["ndcg@10"] if reference["ndcg@10"] else None,
    }
    print(
        f"\nRelevance, mode {mode}: {len(collection.documents):,} documents, "
        f"{quern['questions']} judged questions"
    )
    print(f"  {'':12}  {'Quern /api/search':>18}  {'plain BM25':>10}")
    for name in ("ndcg@10", "recall@10"):
        print(f"  {name:12}  {quern[name]:>18.3f}  {reference[name]:>10.3f}")
    print(f"  {'no hit':12}  {quern['no_hit']:>18}  {reference['no_hit']:>10}")
    print(f"  {'search p50':12}  {quern['p50_ms']:>15.2f} ms")
    print(f"  {'search p95':12}  {quern['p95_ms']:>15.2f} ms")
    print(f"  nDCG@10 ratio to the plain BM25 of this run: {results['ndcg_ratio']:.2f}")
    output = output or ROOT / "bench" / "results" / f"relevance-{mode}-{datetime.now():%Y%m%d-%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"  results: {output}")
    return results


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench relevance", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", action="append", choices=("sqlite", "pg"), help="repeat for both (default)")
    parser.add_argument("--docs", type=Path, default=CRANFIELD / "cran.all.1400")
    parser.add_argument("--queries", type=Path, default=CRANFIELD / "cran.qry")
    parser.add_argument("--qrels", type=Path, default=CRANFIELD / "cranqrel")
    parser.add_argument("--output", type=Path, help="results JSON (one mode)")
    args = parser.parse_args(argv)
    for mode in args.mode or ["sqlite", "pg"]:
        run(mode, args.docs, args.queries, args.qrels, args.output)
    return 0
