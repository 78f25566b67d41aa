"""`python -m bench`: Quern against the database's floor and the naive way, in one run.

    python -m bench --mode sqlite          # embedded default: SQLite + filesystem broker (make bench)
    python -m bench --mode pg              # PostgreSQL + RabbitMQ (make bench-pg)
    python -m bench --mode pg --only search,tts --runs 5
    python -m bench compare A.json B.json  # two results files side by side

Prints one table per workload (medians of --runs runs, with min–max) and writes the same
figures as JSON to bench/results/<mode>-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.stack import ROOT, Stack, mode_env, recreate_database

ALL = (
    "ingest",
    "floor",
    "naive",
    "search",
    "tts",
    "small",
    "amqp",
    "archive",
    "big-archive",
    "load",
    "memory",
    "chunks",
)
DEFAULT_CHUNK_SIZES = (100, 300, 1000, 3000, 5000, 10000, 20000, 50000)
TARGETS = {
    # search_rps_before: 8 clients' requests/s through the API before issue 11 (docs/bench/*.json).
    "pg": {"floor_ratio": 0.6, "tts_p50_s": 0.3, "search_rps_before": 45},
    "sqlite": {"floor_ratio": 0.5, "tts_p50_s": 1.5, "search_rps_before": 55},
}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def fmt_spread(s: dict, unit: str = "s", digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        cpu = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        ]
        info["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else ""
        info["memory_gb"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def database_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT version()"
            if connection.vendor == "postgresql"
            else "SELECT 'SQLite ' || sqlite_version()"
        )
        return cursor.fetchone()[0].split(" on ")[0]


def run(args) -> dict:
    mode = args.mode
    data_dir = ROOT / "var" / "bench" / mode
    scratch = ROOT / "var" / "bench"
    os.environ.update(mode_env(mode, data_dir))
    os.environ["QUERN_CHUNK_SIZE"] = (
        str(args.chunk_size) if args.chunk_size else os.environ.get("QUERN_CHUNK_SIZE", "")
    )
    if not os.environ["QUERN_CHUNK_SIZE"]:
        del os.environ["QUERN_CHUNK_SIZE"]
    corpus = Path(args.corpus).resolve()

    from bench import workloads as w

    w.ensure_corpus(corpus)
    recreate_database(mode, data_dir)
    stack = Stack(mode, data_dir)
    stack.migrate()

    import django

    django.setup()
    from django.conf import settings

    only = (
        set(args.only.split(",")) if args.only else set(ALL) - set(args.skip.split(",") if args.skip else [])
    )
    results: dict = {
        "mode": mode,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": database_version(),
        "broker": settings.CELERY_BROKER_URL.split("@")[-1],
        "worker_processes": int(os.environ.get("QUERN_BENCH_WORKERS", "2")),
        "chunk_size": settings.QUERN_CHUNK_SIZE,
        "runs": args.runs,
        "limit_rows": args.limit_rows,
    }
    every_load = w.corpus_workloads(corpus, args.limit_rows, scratch)
    loads = every_load
    if args.workloads:
        loads = [x for x in loads if x.name in args.workloads.split(",") or x.name == "sentences.csv"]
    sentences = next(x for x in loads if x.name == "sentences.csv")
    # The archive is always of the HTML pages, whichever workloads --workloads keeps for ingest.
    html = next(x for x in every_load if x.name == "html pages")
    try:
        stack.start_worker()
        stack.start_beat()
        stack.start_web()
        if mode == "pg":
            stack.start_consumer()  # make run starts it with RabbitMQ
        print(
            f"Quern benchmark, mode {mode}: {results['database']}, broker {results['broker']}, "
            f"{results['worker_processes']} worker processes, chunk size {results['chunk_size']}",
            flush=True,
        )

        if "ingest" in only or "floor" in only:
            results["ingest"] = {}
            for load in loads:
                if args.workloads and load.name not in args.workloads.split(","):
                    continue
                entry = {"bytes": load.bytes, "documents": len(load.paths), "format": load.fmt}
                if "ingest" in only:
                    runs = []
                    for i in range(args.runs):
                        w.delete_documents([p.name for p in load.paths])
                        runs.append(w.ingest_once(stack, load))
                        print(
                            f"  ingest {load.name} run {i + 1}: {runs[-1]['seconds']:.2f} s, "
                            f"{runs[-1]['records']:,} records, {runs[-1]['failed_documents']} failed, "
                            f"{runs[-1]['refused_by_backpressure']} submissions refused (503) and resent",
                            flush=True,
                        )
                    entry["quern"] = spread([r["seconds"] for r in runs])
                    entry["records"] = runs[-1]["records"]
                    entry["failed_documents"] = runs[-1]["failed_documents"]
                    entry["failure_examples"] = runs[-1]["failure_examples"]
                if "floor" in only:
                    rows = w.parsed_rows(load)
                    entry.setdefault("records", len(rows))
                    entry["floor_records"] = len(rows)
                    floors, phases = [], []
                    for i in range(args.runs):
                        phases.append({})
                        floors.append(w.floor_once(mode, rows, phases[-1]))
                        steps = ", ".join(f"{k} {v:.2f} s" for k, v in phases[-1].items())
                        print(f"  floor {load.name} run {i + 1}: {floors[-1]:.2f} s ({steps})", flush=True)
                    entry["floor"] = spread(floors)
                    entry["floor_phases"] = phases
                    del rows
                results["ingest"][load.name] = entry
            print_ingest(results)

        if "naive" in only:
            rows = w.parsed_rows(sentences, limit=args.naive_records)
            stack.start_naive_worker()
            times = []
            for i in range(args.naive_runs):
                times.append(w.naive_once(stack, rows))
                print(f"  naive {len(rows):,} records run {i + 1}: {times[-1]:.2f} s", flush=True)
            stack.processes.pop("naive").stop()
            results["naive"] = {"records": len(rows), "seconds": spread(times)}
            print_naive(results)

        if "search" in only:
            queries = [q.strip() for q in (corpus / "queries.txt").read_text().splitlines() if q.strip()]
            from indexing.models import Record

            results["search"] = {"queries": len(queries), "records": Record.objects.count()}
            typed = {"examples": w.as_sentences(queries)[:4]}
            for clients in (1, 8):
                rounds = max(2, args.search_rounds // clients)
                results["search"][f"{clients}_clients"] = w.search_latencies(stack, queries, clients, rounds)
                typed[f"{clients}_clients"] = w.search_latencies(
                    stack, w.as_sentences(queries), clients, rounds
                )
            results["search"]["sentences"] = typed
            print_search(results)

        if "tts" in only:
            times = w.time_to_searchable(stack, args.tts_tries)
            results["time_to_searchable"] = {
                "tries": len(times),
                "p50_s": statistics.median(times),
                "p95_s": w._percentile(times, 95),
                "min_s": min(times),
                "max_s": max(times),
            }
            print_tts(results)

        if "small" in only:
            results["small_documents"] = median_run(
                [
                    w.small_documents_once(stack, sentences.paths[0], args.small_documents)
                    for _ in range(args.runs)
                ],
                "documents_per_s",
            )
            print_small(results)

        if "amqp" in only and mode == "pg":
            results["amqp_documents"] = median_run(
                [
                    w.amqp_documents_once(sentences.paths[0], args.amqp_documents, stack)
                    for _ in range(args.runs)
                ],
                "ratio_to_one_csv",
            )
            print_amqp(results)

        if "archive" in only:
            archive = w.make_archive(html.paths, corpus / "html", scratch / f"html-{len(html.paths)}.tar.gz")
            rows = w.parsed_rows(html)
            runs = []
            for _ in range(args.runs):  # each run from the same state, beside a floor of its own
                w.delete_documents([str(p.relative_to(corpus / "html")) for p in html.paths])
                entry = w.archive_once(stack, archive, len(html.paths))
                entry |= {"floor_records": len(rows), "floor": w.floor_once(mode, rows)}
                entry["ratio"] = _archive_ratio(entry)
                runs.append(entry)
            del rows
            results["archive"] = median_run(runs, "ratio") | {"bytes": archive.stat().st_size}
            print_archive(results)

        if "big-archive" in only:
            if args.archive_bytes:
                big, members = w.make_csv_archive(
                    scratch / f"csv-{args.archive_bytes}-{args.archive_member_bytes}.tar.gz",
                    sentences.paths[0],
                    args.archive_bytes,
                    args.archive_member_bytes,
                )
                content = f"CSV files of about {args.archive_member_bytes / 1e6:.2f} MB each"
            else:
                members = args.archive_members
                big = w.make_tiny_archive(scratch / f"tiny-{members}.{args.archive_kind}", members)
                content = "one-line files"
            results["big_archive"] = w.archive_once(stack, big, members) | {
                "bytes": big.stat().st_size,
                "kind": "tar.gz" if args.archive_bytes else args.archive_kind,
                "content": content,
            }
            print_big_archive(results)

        if "load" in only:
            queries = [q.strip() for q in (corpus / "queries.txt").read_text().splitlines() if q.strip()]
            results["load"] = w.load_once(stack, sentences.paths[0], queries, args.load_seconds)
            print_load(results)

        if "chunks" in only:
            results["chunk_sizes"] = {}
            sizes = [int(s) for s in args.chunk_sizes.split(",")]
            for size in sizes:
                w.delete_documents([p.name for p in sentences.paths])
                r = w.ingest_once(stack, sentences, chunk_size=size)
                results["chunk_sizes"][str(size)] = {
                    "seconds": r["seconds"],
                    "records": r["records"],
                    "records_per_s": r["records"] / r["seconds"],
                }
                print(
                    f"  chunk size {size}: {r['seconds']:.2f} s, "
                    f"{r['records'] / r['seconds']:,.0f} records/s",
                    flush=True,
                )
            w.delete_documents([p.name for p in sentences.paths])
            print_chunks(results)

        if "memory" in only:
            big = w.make_big_csv(sentences.paths[0], scratch / "big.csv", args.memory_bytes)
            results["memory"] = w.memory_while_ingesting(stack, big)
            print_memory(results)  # last workload: its 10 M rows stay (the next run drops the database)
    finally:
        stack.stop()
    return results


def median_run(runs: list[dict], key: str) -> dict:
    """The run whose `key` is the median (the lower middle of an even count), with every run's
    `key`; its errors and failed jobs are those of all the runs (a target of 0 holds in each)."""
    ordered = sorted(runs, key=lambda run: run[key])
    totals = {name: sum(run[name] for run in runs) for name in ("errors", "failed_jobs") if name in runs[0]}
    return (
        ordered[(len(ordered) - 1) // 2]
        | totals
        | {"runs": len(runs), f"runs_{key}": [run[key] for run in runs]}
    )


# --- printing -----------------------------------------------------------------------------


def _rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def print_ingest(r: dict) -> None:
    rows = []
    for name, e in r["ingest"].items():
        mb = e["bytes"] / 1e6
        row = [name, f"{e.get('records', 0):,}", f"{mb:.1f}"]
        if "quern" in e:
            q = e["quern"]["median"]
            row += [fmt_spread(e["quern"]), _rate(e["records"], q), f"{mb / q:.1f}"]
        else:
            row += ["-", "-", "-"]
        if "floor" in e:
            f = e["floor"]["median"]
            row += [fmt_spread(e["floor"]), _rate(e["floor_records"], f)]
            row += [f"{(e['records'] / q) / (e['floor_records'] / f):.2f}" if "quern" in e else "-"]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    table(
        f"Ingest, end to end (API call -> succeeded; {r['worker_processes']} worker processes) vs the floor "
        f"(median of {r['runs']}, min–max)",
        ["workload", "records", "MB", "Quern", "rec/s", "MB/s", "floor", "floor rec/s", "Quern/floor"],
        rows,
    )


def print_naive(r: dict) -> None:
    n = r["naive"]
    rows = [
        [
            "naive: 1 task per record",
            f"{n['records']:,}",
            fmt_spread(n["seconds"]),
            _rate(n["records"], n["seconds"]["median"]),
        ]
    ]
    s = r.get("ingest", {}).get("sentences.csv", {})
    ratio = "-"
    if "quern" in s:
        quern_rate = s["records"] / s["quern"]["median"]
        rows.append(
            ["Quern: sentences.csv", f"{s['records']:,}", fmt_spread(s["quern"]), f"{quern_rate:,.0f}"]
        )
        ratio = f"{quern_rate / (n['records'] / n['seconds']['median']):.1f}x"
    table(
        f"The naive way (one Celery task per record, ORM save + search update) — Quern is {ratio} faster",
        ["", "records", "time", "rec/s"],
        rows,
    )


def print_search(r: dict) -> None:
    s = r["search"]
    for label, runs in (("queries", s), ("queries written as sentences", s.get("sentences"))):
        if not runs:
            continue
        rows = []
        for clients in (1, 8):
            e = runs[f"{clients}_clients"]
            api, raw = e["api"], e["raw_sql"]
            rows.append(
                [
                    str(clients),
                    f"{api['p50_ms']:.2f}",
                    f"{raw['p50_ms']:.2f}",
                    f"{api['p50_ms'] - raw['p50_ms']:+.2f}",
                    f"{api['p95_ms']:.2f}",
                    f"{raw['p95_ms']:.2f}",
                    f"{api['p95_ms'] / raw['p95_ms']:.2f}",
                    f"{api['requests_per_s']:.0f}",
                    f"{raw['requests_per_s']:.0f}",
                ]
            )
        table(
            f"Search: {s['queries']} {label} over {s['records']:,} records, "
            "/api/search vs the raw SQL it runs (ms)",
            [
                "clients",
                "API p50",
                "SQL p50",
                "overhead p50",
                "API p95",
                "SQL p95",
                "p95 ratio",
                "API req/s",
                "SQL req/s",
            ],
            rows,
        )


def _of_runs(entry: dict, key: str, form: str) -> str:
    """', the median of N runs: a, b, c' when a workload ran more than once (bench.median_run)."""
    figures = entry.get(f"runs_{key}", [])
    if len(figures) < 2:
        return ""
    return f"; the median of {len(figures)} runs: " + ", ".join(form.format(x) for x in figures)


def print_small(r: dict) -> None:
    s = r["small_documents"]
    table(
        f"Many small documents: {s['documents']:,} one-record documents over the API from {s['clients']} "
        "clients, end to end, beside the same records as one CSV"
        + _of_runs(s, "documents_per_s", "{:,.0f}/s"),
        ["", "seconds", "per s", "errors", "failed jobs", "taken in a batch"],
        [
            [
                "one document each",
                f"{s['seconds']:.2f}",
                f"{s['documents_per_s']:,.0f} documents/s",
                str(s["errors"]),
                str(s["failed_jobs"]),
                f"{s['batched_jobs']:,}",
            ],
            [
                "one CSV",
                f"{s['one_csv_seconds']:.2f}",
                f"{s['one_csv_records_per_s']:,.0f} records/s",
                "",
                "",
                "",
            ],
        ],
    )


def print_amqp(r: dict) -> None:
    a = r["amqp_documents"]
    table(
        f"Over the open queue: {a['documents']:,} one-record documents published to quern.submit, end to "
        f"end, beside the same records as one CSV — {a['ratio_to_one_csv']:.2f}x its records/s"
        + _of_runs(a, "ratio_to_one_csv", "{:.3f}x"),
        ["", "seconds", "per s", "failed jobs"],
        [
            [
                "one message each",
                f"{a['seconds']:.2f}",
                f"{a['documents_per_s']:,.0f} documents/s",
                str(a["failed_jobs"]),
            ],
            ["one CSV", f"{a['one_csv_seconds']:.2f}", f"{a['one_csv_records_per_s']:,.0f} records/s", ""],
        ],
    )


def _statuses(a: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in a["statuses"].items())


def _archive_ratio(a: dict) -> float:
    return (a["records"] / a["seconds"]) / (a["floor_records"] / a["floor"])


def print_archive(r: dict) -> None:
    a = r["archive"]
    title = (
        f"The {a['members']:,} HTML pages as one .tar.gz ({a['bytes'] / 1e6:.1f} MB), POST to the last "
        f"page's end, vs the floor for their records — {_archive_ratio(a):.2f}x"
    )
    if "runs_ratio" in a:  # results saved before the archive ran --runs times have one run
        title += f"; the median of {a['runs']} runs: " + ", ".join(f"{x:.2f}x" for x in a["runs_ratio"])
    table(
        title,
        ["", "seconds", "records", "rec/s", "jobs"],
        [
            [
                "Quern: one archive",
                f"{a['seconds']:.2f} (POST {a['posting_seconds']:.2f})",
                f"{a['records']:,}",
                f"{a['records'] / a['seconds']:,.0f}",
                _statuses(a),
            ],
            [
                "floor",
                f"{a['floor']:.2f}",
                f"{a['floor_records']:,}",
                f"{a['floor_records'] / a['floor']:,.0f}",
                "",
            ],
        ],
    )


def print_load(r: dict) -> None:
    d = r["load"]
    table(
        f"Load: {d['clients']} clients submitting one-record documents and {d['clients']} searching, "
        f"{d['seconds']:.0f} s, against make run's gunicorn and 2 worker processes",
        ["", "answers by status", "per s", "after"],
        [
            [
                "submit",
                ", ".join(f"{k}: {v:,}" for k, v in sorted(d["statuses"]["submit"].items())),
                f"{d['accepted_per_s']:,.0f} accepted",
                f"{d['succeeded']:,} of {d['accepted']:,} accepted succeeded",
            ],
            [
                "search",
                ", ".join(f"{k}: {v:,}" for k, v in sorted(d["statuses"]["search"].items())),
                f"{d['searches_per_s']:,.0f}",
                f"p50 {d['search_p50_ms']:.0f} ms, p95 {d['search_p95_ms']:.0f} ms",
            ],
        ],
    )


def print_tts(r: dict) -> None:
    t = r["time_to_searchable"]
    table(
        f"Time to searchable, one-record document ({t['tries']} tries)",
        ["p50", "p95", "min", "max"],
        [
            [
                f"{t['p50_s'] * 1000:.0f} ms",
                f"{t['p95_s'] * 1000:.0f} ms",
                f"{t['min_s'] * 1000:.0f} ms",
                f"{t['max_s'] * 1000:.0f} ms",
            ]
        ],
    )


def print_chunks(r: dict) -> None:
    rows = [
        [size, f"{e['seconds']:.2f} s", f"{e['records_per_s']:,.0f}"] for size, e in r["chunk_sizes"].items()
    ]
    table("Chunk size on sentences.csv (one run each)", ["chunk size", "time", "rec/s"], rows)


def print_big_archive(r: dict) -> None:
    a = r["big_archive"]
    table(
        f"One {a.get('kind', 'tar.gz')} of {a['members']:,} {a.get('content', 'one-line files')} "
        f"({a['bytes'] / 1e6:.1f} MB): POST "
        f"{a['posting_seconds']:.2f} s, unpacked into jobs at {a['unpacking_seconds']:.1f} s, every "
        f"file's job ended at {a['seconds']:.1f} s ({_statuses(a)})",
        ["process", "peak RSS"],
        [[role, f"{mb:.0f} MB"] for role, mb in a["peak_rss_mb"].items()],
    )


def print_memory(r: dict) -> None:
    m = r["memory"]
    rows = [[role, f"{mb:.0f} MB"] for role, mb in m["peak_rss_mb"].items()]
    table(
        f"Peak resident memory per process while a {m['file_bytes'] / 2**30:.2f} GiB CSV is ingested "
        f"({m['records']:,} records in {m['seconds']:.1f} s)",
        ["process", "peak RSS"],
        rows,
    )


def print_all(r: dict) -> None:
    for key, printer in (
        ("ingest", print_ingest),
        ("naive", print_naive),
        ("search", print_search),
        ("time_to_searchable", print_tts),
        ("small_documents", print_small),
        ("amqp_documents", print_amqp),
        ("archive", print_archive),
        ("big_archive", print_big_archive),
        ("load", print_load),
        ("chunk_sizes", print_chunks),
        ("memory", print_memory),
    ):
        if key in r:
            printer(r)


def verdicts(r: dict) -> list[tuple[str, str, bool]]:
    """Each target of issue 4 that this run measured: (target, figure, met)."""
    out = []
    target = TARGETS[r["mode"]]
    s = r.get("ingest", {}).get("sentences.csv", {})
    if "quern" in s and "floor" in s:
        ratio = (s["records"] / s["quern"]["median"]) / (s["floor_records"] / s["floor"]["median"])
        out.append(
            (
                f"sentences.csv >= {target['floor_ratio']} of the floor",
                f"{ratio:.2f}",
                ratio >= target["floor_ratio"],
            )
        )
    if "quern" in s and "naive" in r:
        n = r["naive"]
        ratio = (s["records"] / s["quern"]["median"]) / (n["records"] / n["seconds"]["median"])
        out.append((">= 30x the naive way", f"{ratio:.1f}x", ratio >= 30))
    if "search" in r:
        for clients in (1, 8):
            e = r["search"][f"{clients}_clients"]
            over = e["api"]["p50_ms"] - e["raw_sql"]["p50_ms"]
            ratio = e["api"]["p95_ms"] / e["raw_sql"]["p95_ms"]
            out.append((f"search p50 overhead <= 3 ms ({clients} clients)", f"{over:+.2f} ms", over <= 3))
            out.append((f"search p95 <= 1.25x raw SQL ({clients} clients)", f"{ratio:.2f}x", ratio <= 1.25))
        for label, runs in (("queries", r["search"]), ("sentences", r["search"].get("sentences"))):
            if not runs:
                continue
            one, eight = runs["1_clients"]["api"], runs["8_clients"]["api"]
            out.append(
                (f"search {label} p50 <= 10 ms (1 client)", f"{one['p50_ms']:.1f} ms", one["p50_ms"] <= 10)
            )
            out.append(
                (f"search {label} p95 <= 50 ms (1 client)", f"{one['p95_ms']:.1f} ms", one["p95_ms"] <= 50)
            )
            before = target["search_rps_before"]
            out.append(
                (
                    f"search {label}, 8 clients >= 2x {before} req/s",
                    f"{eight['requests_per_s']:.0f} req/s",
                    eight["requests_per_s"] >= 2 * before,
                )
            )
    if "time_to_searchable" in r:
        p50 = r["time_to_searchable"]["p50_s"]
        out.append(
            (
                f"time to searchable p50 <= {target['tts_p50_s'] * 1000:.0f} ms",
                f"{p50 * 1000:.0f} ms",
                p50 <= target["tts_p50_s"],
            )
        )
    if "small_documents" in r:
        s = r["small_documents"]
        rate = s["documents_per_s"]
        out.append(
            (f"{s['documents']:,} small documents over the API >= 300/s", f"{rate:,.0f}/s", rate >= 300)
        )
        out.append(
            (
                "small documents: 0 errors, 0 failed jobs",
                f"{s['errors']} / {s['failed_jobs']}",
                not (s["errors"] or s["failed_jobs"]),
            )
        )
    if "amqp_documents" in r:
        a = r["amqp_documents"]
        out.append(
            (
                f"{a['documents']:,} documents over AMQP >= 0.2x one CSV's records/s",
                f"{a['ratio_to_one_csv']:.2f}x, {a['failed_jobs']} failed",
                a["ratio_to_one_csv"] >= 0.2 and not a["failed_jobs"],
            )
        )
    if "archive" in r:
        a = r["archive"]
        ratio = _archive_ratio(a)
        failed = sum(v for k, v in a["statuses"].items() if k != "succeeded")
        out.append(
            (
                f"{a['members']:,} HTML pages as one archive >= 0.5x the floor",
                f"{ratio:.2f}x, {failed} failed",
                ratio >= 0.5 and not failed,
            )
        )
    if "load" in r:
        d = r["load"]
        out.append(
            (
                "load: no answer but 2xx / 503 / 429",
                f"{d['undesigned']} other answers",
                d["undesigned"] == 0,
            )
        )
        out.append(
            (
                "load: every accepted job succeeded",
                f"{d['succeeded']:,} of {d['accepted']:,}",
                d["succeeded"] == d["accepted"],
            )
        )
    if "big_archive" in r:
        a = r["big_archive"]
        peak = max(a["peak_rss_mb"].values())
        failed = sum(v for k, v in a["statuses"].items() if k != "succeeded")
        out.append(
            (
                f"archive of {a['members']:,} files: no process above 300 MB",
                f"{peak:.0f} MB, {failed} failed",
                peak <= 300 and not failed,
            )
        )
    if "memory" in r:
        peak = max(r["memory"]["peak_rss_mb"].values())
        out.append(("1 GB CSV: no process above 300 MB", f"{peak:.0f} MB", peak <= 300))
    return out


def print_verdicts(r: dict) -> None:
    rows = [[t, figure, "met" if ok else "NOT met"] for t, figure, ok in verdicts(r)]
    if rows:
        table(f"Targets (issues 4, 11, 12), mode {r['mode']}", ["target", "measured", ""], rows)


def compare(a_path: str, b_path: str) -> None:
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    rows = []
    for name in sorted(set(a.get("ingest", {})) | set(b.get("ingest", {}))):
        for what in ("quern", "floor"):
            ea, eb = a.get("ingest", {}).get(name, {}).get(what), b.get("ingest", {}).get(name, {}).get(what)
            if ea and eb:
                rows.append(
                    [
                        f"ingest {name} ({what})",
                        f"{ea['median']:.2f} s",
                        f"{eb['median']:.2f} s",
                        f"{eb['median'] / ea['median']:.2f}",
                    ]
                )
    for clients in ("1_clients", "8_clients"):
        ea, eb = a.get("search", {}).get(clients), b.get("search", {}).get(clients)
        if ea and eb:
            for k in ("p50_ms", "p95_ms"):
                rows.append(
                    [
                        f"search API {k} ({clients})",
                        f"{ea['api'][k]:.2f}",
                        f"{eb['api'][k]:.2f}",
                        f"{eb['api'][k] / ea['api'][k]:.2f}",
                    ]
                )
    ta, tb = a.get("time_to_searchable"), b.get("time_to_searchable")
    if ta and tb:
        rows.append(
            [
                "time to searchable p50 (s)",
                f"{ta['p50_s']:.3f}",
                f"{tb['p50_s']:.3f}",
                f"{tb['p50_s'] / ta['p50_s']:.2f}",
            ]
        )
    table(
        f"{a_path} ({a['mode']}, {a['started']})  vs  {b_path} ({b['mode']}, {b['started']})",
        ["figure", "A", "B", "B/A"],
        rows,
    )


def chart(paths: list[str], out: Path) -> None:
    """Throughput against chunk size, one line per mode, from results files that swept it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not paths:  # the latest sweep of each mode
        latest: dict[str, Path] = {}
        for path in sorted((ROOT / "bench" / "results").glob("*.json")):
            r = json.loads(path.read_text())
            if r.get("chunk_sizes"):
                latest[r["mode"]] = path
        paths = [str(p) for p in latest.values()]
    if not paths:
        raise SystemExit(
            "no results file with a chunk-size sweep: run make bench-pg BENCH_ARGS='--only chunks'"
        )
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    labels = {"pg": "PostgreSQL + RabbitMQ", "sqlite": "SQLite + filesystem broker"}
    for path in paths:
        r = json.loads(Path(path).read_text())
        sizes = sorted(int(s) for s in r["chunk_sizes"])
        rates = [r["chunk_sizes"][str(s)]["records_per_s"] for s in sizes]
        ax.plot(sizes, rates, marker="o", label=f"{labels[r['mode']]} ({r['started'][:10]})")
        default = r["chunk_size"]
    ax.axvline(default, linestyle="--", color="gray")
    ax.annotate(
        f"default {default:,}",
        (default, ax.get_ylim()[0]),
        xytext=(4, 6),
        textcoords="offset points",
        color="gray",
    )
    ax.set_xscale("log")
    ax.set_xlabel("chunk size (records per chunk task)")
    ax.set_ylabel("records/s, sentences.csv end to end")
    ax.set_title("Quern ingest throughput against chunk size (2 worker processes)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"Chart: {out}")


def markdown(paths: list[str]) -> None:
    """The README's Performance tables, from results files (one per mode)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    label = {"pg": "PostgreSQL + RabbitMQ", "sqlite": "SQLite + filesystem broker"}
    for r in runs:
        print(
            f"\n**{label[r['mode']]}** ({r['database']}; {r['worker_processes']} worker processes, "
            f"chunk size {r['chunk_size']}; median of {r['runs']} runs, min–max; {r['started'][:10]}, "
            f"`{Path(paths[runs.index(r)]).name}`)\n"
        )
        if "ingest" in r:
            print(
                "| workload | records | MB | Quern, API call → succeeded | records/s | MB/s | floor "
                "| floor records/s | Quern / floor |"
            )
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for name, e in r["ingest"].items():
                q, f = e.get("quern"), e.get("floor")
                qr = e["records"] / q["median"] if q else None
                fr = e["floor_records"] / f["median"] if f else None
                print(
                    f"| {name} ({e['documents']:,} document{'s' if e['documents'] > 1 else ''}) "
                    f"| {e['records']:,} | {e['bytes'] / 1e6:.1f} | "
                    + (
                        f"{q['median']:.1f} s ({q['min']:.1f}–{q['max']:.1f}) | {qr:,.0f} "
                        f"| {e['bytes'] / 1e6 / q['median']:.1f} | "
                        if q
                        else "– | – | – | "
                    )
                    + (
                        f"{f['median']:.1f} s ({f['min']:.1f}–{f['max']:.1f}) | {fr:,.0f} | "
                        if f
                        else "– | – | "
                    )
                    + (f"{qr / fr:.2f} |" if q and f else "– |")
                )
        if "naive" in r:
            n = r["naive"]
            nr = n["records"] / n["seconds"]["median"]
            s_ = r.get("ingest", {}).get("sentences.csv", {})
            ratio = (
                f", Quern on sentences.csv is **{s_['records'] / s_['quern']['median'] / nr:.0f}×** faster"
                if "quern" in s_
                else ""
            )
            print(
                "\nThe naive way (one Celery task per record: ORM save, then search update): "
                f"{n['records']:,} records in {n['seconds']['median']:.1f} s = {nr:,.0f} records/s{ratio}."
            )
        if "search" in r:
            se = r["search"]
            print(f"\nSearch, {se['queries']} queries over {se['records']:,} records (ms):\n")
            print(
                "| clients | API p50 | SQL p50 | API overhead p50 | API p95 | SQL p95 | API p95 / SQL p95 "
                "| API req/s | SQL req/s |"
            )
            print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for c in (1, 8):
                e = se[f"{c}_clients"]
                a, q = e["api"], e["raw_sql"]
                print(
                    f"| {c} | {a['p50_ms']:.1f} | {q['p50_ms']:.1f} | {a['p50_ms'] - q['p50_ms']:+.1f} "
                    f"| {a['p95_ms']:.1f} | {q['p95_ms']:.1f} | {a['p95_ms'] / q['p95_ms']:.2f} "
                    f"| {a['requests_per_s']:.0f} | {q['requests_per_s']:.0f} |"
                )
        if "time_to_searchable" in r:
            t = r["time_to_searchable"]
            print(
                f"\nTime to searchable, one-record document ({t['tries']} tries): "
                f"p50 {t['p50_s'] * 1000:.0f} ms, p95 {t['p95_s'] * 1000:.0f} ms."
            )
        if "chunk_sizes" in r:
            print(
                "\nChunk size (sentences.csv, one run each): "
                + ", ".join(f"{k}: {v['records_per_s']:,.0f}/s" for k, v in r["chunk_sizes"].items())
                + "."
            )
        if "memory" in r:
            m = r["memory"]
            print(
                f"\nMemory, {m['file_bytes'] / 2**30:.2f} GiB CSV "
                f"({m['records']:,} records in {m['seconds']:.0f} s): peak RSS "
                + ", ".join(f"{k} {v:.0f} MB" for k, v in m["peak_rss_mb"].items())
                + "."
            )
        print(
            "\nTargets: "
            + "; ".join(f"{t}: {fig} ({'met' if ok else '**not met**'})" for t, fig, ok in verdicts(r))
            + "."
        )


def main(argv: list[str]) -> int:
    if argv[:1] == ["faults"]:
        from bench import faults

        return faults.main(argv[1:])
    if argv[:1] == ["relevance"]:
        from bench import relevance  # its reference (bm25s) is only needed here

        return relevance.main(argv[1:])
    if argv[:1] == ["compare"]:
        compare(argv[1], argv[2])
        return 0
    if argv[:1] == ["markdown"]:
        markdown(argv[1:])
        return 0
    if argv[:1] == ["chart"]:
        chart(argv[1:], ROOT / "docs" / "chunk-size.png")
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--skip", default="", help="comma-separated workloads to leave out")
    parser.add_argument("--workloads", default="", help="ingest only these (e.g. sentences.csv,wordnet.csv)")
    parser.add_argument("--runs", type=int, default=3, help="runs per ingest workload (median reported)")
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    parser.add_argument("--chunk-size", type=int, default=None, help="QUERN_CHUNK_SIZE for the run")
    parser.add_argument("--chunk-sizes", default=",".join(map(str, DEFAULT_CHUNK_SIZES)))
    parser.add_argument("--naive-records", type=int, default=20_000)
    parser.add_argument("--naive-runs", type=int, default=1, help="one run is 20,000 tasks: minutes")
    parser.add_argument("--small-documents", type=int, default=5000, help="one-record documents (small)")
    parser.add_argument(
        "--amqp-documents", type=int, default=100_000, help="one-record messages to quern.submit (amqp, pg)"
    )
    parser.add_argument("--load-seconds", type=float, default=300, help="how long the load run lasts")
    parser.add_argument("--search-rounds", type=int, default=10, help="passes over the query set (1 client)")
    parser.add_argument("--tts-tries", type=int, default=50)
    parser.add_argument("--memory-bytes", type=int, default=2**30)
    parser.add_argument(
        "--archive-members", type=int, default=100_000, help="files of the big-archive workload's archive"
    )
    parser.add_argument("--archive-kind", choices=("tar.gz", "zip"), default="tar.gz", help="big-archive's")
    parser.add_argument(
        "--archive-bytes",
        type=int,
        default=0,
        help="big-archive of CSV files cut from sentences.csv, this many bytes unpacked (0: one-line files)",
    )
    parser.add_argument("--archive-member-bytes", type=int, default=3_500_000, help="each CSV file's size")
    parser.add_argument("--limit-rows", type=int, default=None, help="cut every file to N rows (smoke run)")
    parser.add_argument(
        "--output", default=None, help="results file (default bench/results/<mode>-<time>.json)"
    )
    args = parser.parse_args(argv)
    started = time.time()
    results = run(args)
    results["wall_seconds"] = round(time.time() - started, 1)
    out = (
        Path(args.output)
        if args.output
        else ROOT / "bench" / "results" / f"{args.mode}-{datetime.now():%Y%m%d-%H%M%S}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print("\n=== Summary ===")
    print_all(results)
    print_verdicts(results)
    print(f"\nResults: {out}  ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
