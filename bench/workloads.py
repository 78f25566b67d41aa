"""The benchmark's workloads. Each returns plain data (seconds, counts) for the report.

Django is set up by the caller (bench/__main__.py) on the benchmark's database, so these
functions may read it; everything Quern does goes through its API and its real worker.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import statistics
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db.models import F

from bench.stack import ROOT, Client, Overloaded, Stack, rss_mb

# --- the corpus ---------------------------------------------------------------------------

MAKE_CORPUS = Path(
    os.environ.get("QUERN_BENCH_MAKE_CORPUS", ROOT.parent / "shared" / "bench" / "make-corpus")
)
# Publishes in flight before the bench waits for the broker's confirms (bench.workloads.publish_confirmed).
CONFIRM_WINDOW = 1000


@dataclass(frozen=True)
class Workload:
    name: str
    paths: tuple[Path, ...]
    fmt: str

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


def ensure_corpus(corpus: Path) -> None:
    if (corpus / "sentences.csv").exists() and (corpus / "queries.txt").exists():
        return
    print(f"Building the corpus into {corpus} with {MAKE_CORPUS} (a few minutes, once)…", flush=True)
    subprocess.run([str(MAKE_CORPUS), str(corpus)], check=True)


def corpus_workloads(
    corpus: Path, limit_rows: int | None = None, scratch: Path | None = None
) -> list[Workload]:
    """The four ingest workloads; `limit_rows` cuts each file (a smoke run of the harness)."""
    html = tuple(sorted((corpus / "html").rglob("*.html")))
    workloads = [
        Workload("html pages", html[: limit_rows // 100] if limit_rows else html, "html"),
        Workload("gcide.jsonl", (corpus / "gcide.jsonl",), "jsonl"),
        Workload("wordnet.csv", (corpus / "wordnet.csv",), "csv"),
        Workload("sentences.csv", (corpus / "sentences.csv",), "csv"),
    ]
    if not limit_rows:
        return workloads
    cut = []
    for w in workloads:
        if len(w.paths) > 1:
            cut.append(w)
            continue
        target = scratch / f"cut-{w.paths[0].name}"
        if not target.exists():
            with open(w.paths[0], "rb") as src, open(target, "wb") as dst:
                for i, line in enumerate(src):
                    if i > limit_rows:
                        break
                    dst.write(line)
        cut.append(Workload(w.name, (target,), w.fmt))
    return cut


def parsed_rows(workload: Workload, limit: int | None = None) -> list[tuple[str, str, str, str]]:
    """(key, title, body, fields JSON) of every record Quern would store: Quern's own pure parser."""
    from indexing.formats import parse_chunk, split_document
    from indexing.search.base import fields_json

    rows: list[tuple[str, str, str, str]] = []
    for path in workload.paths:
        data = path.read_bytes()
        split = split_document(io.BytesIO(data), workload.fmt, 50_000)
        for chunk in split.chunks:
            records, _ = parse_chunk(
                data[chunk.start : chunk.end],
                workload.fmt,
                first_ordinal=chunk.first_ordinal,
                first_line=chunk.first_line,
                header=split.header,
                dialect=split.dialect,
            )
            rows.extend((r.key, r.title, r.body, fields_json(r.fields)) for r in records)
            if limit and len(rows) >= limit:
                return rows[:limit]
    return rows


# --- reset between runs -------------------------------------------------------------------


def delete_documents(names: list[str]) -> None:
    """Remove earlier runs' documents of a workload, so each run starts from the same state."""
    from django.db import connection

    from indexing import pipeline
    from indexing.models import Document

    for document_id in Document.objects.filter(name__in=names).values_list("pk", flat=True):
        pipeline.delete_document(document_id)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE indexing_record")


# --- ingest, end to end -------------------------------------------------------------------


def _finished_at(job: dict) -> float:
    return datetime.fromisoformat(job["finished_at"]).timestamp()


def ingest_once(stack: Stack, workload: Workload, chunk_size: int | None = None, batch: int = 100) -> dict:
    """From the first API call to the last job's `succeeded`: seconds, records, documents."""
    client = stack.client()
    fields = {"format": workload.fmt} | ({"chunk_size": str(chunk_size)} if chunk_size else {})
    started = time.time()
    job_ids: list[int] = []
    refusals = 0
    for i in range(0, len(workload.paths), batch):
        while True:
            try:
                job_ids += [j["id"] for j in client.post_files(list(workload.paths[i : i + batch]), fields)]
                break
            except Overloaded:
                # Backpressure (QUERN_MAX_WAITING): a client comes back later. Retry-After says 30 s;
                # the benchmark measures the pipeline's pace, so it asks again after half a second.
                refusals += 1
                time.sleep(0.5)
    jobs = client.wait_jobs(job_ids)
    failed = [j for j in jobs if j["status"] != "succeeded"]
    records = sum(j["progress"]["records_indexed"] for j in jobs)
    return {
        "seconds": max(_finished_at(j) for j in jobs) - started,
        "records": records,
        "documents": len(jobs),
        "refused_by_backpressure": refusals,
        "failed_documents": len(failed),
        "failure_examples": [(j["document"]["name"], j["errors"][:1]) for j in failed[:3]],
    }


# --- the floor: the database's own bulk load, no Quern ------------------------------------


def _copy_text(rows: list[tuple[str, str, str, str]]) -> bytes:
    def esc(v: str) -> str:
        return (
            v.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\x00", " ")
        )

    return "".join(f"{esc(k)}\t{esc(t)}\t{esc(b)}\t{esc(f)}\n" for k, t, b, f in rows).encode()


def floor_once(mode: str, rows: list[tuple[str, str, str, str]], phases: dict | None = None) -> float:
    """Load `rows` the fastest way this database has; seconds for load + search index."""
    from django.db import connection

    phases = {} if phases is None else phases
    if mode == "pg":
        import psycopg

        payload = _copy_text(rows)  # prepared before the clock starts, as a file on disk would be
        params = connection.get_connection_params()
        with psycopg.connect(**params) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_floor")
            conn.commit()
            started = time.perf_counter()
            conn.execute(
                "CREATE TABLE bench_floor"
                " (id bigserial PRIMARY KEY, key text, title text, body text, fields jsonb)"
            )
            with conn.cursor().copy("COPY bench_floor (key, title, body, fields) FROM STDIN") as copy:
                for i in range(0, len(payload), 1 << 22):
                    copy.write(payload[i : i + (1 << 22)])
            phases["copy"] = time.perf_counter() - started
            conn.execute(
                "ALTER TABLE bench_floor ADD COLUMN search tsvector GENERATED ALWAYS AS"
                " (setweight(to_tsvector('english', title), 'A')"
                " || setweight(to_tsvector('english', body), 'B')) STORED"
            )
            phases["tsvector"] = time.perf_counter() - started - phases["copy"]
            conn.execute("CREATE INDEX ON bench_floor USING gin (search)")
            conn.commit()
            seconds = time.perf_counter() - started
            phases["gin"] = seconds - phases["copy"] - phases["tsvector"]
            conn.execute("DROP TABLE bench_floor")
            conn.commit()
        return seconds
    db = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for ddl in ("DROP TABLE IF EXISTS bench_floor", "DROP TABLE IF EXISTS bench_floor_fts"):
            db.execute(ddl)
        started = time.perf_counter()
        db.execute("BEGIN")
        db.execute(
            "CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, key TEXT, title TEXT, body TEXT, fields TEXT)"
        )
        db.execute(
            "CREATE VIRTUAL TABLE bench_floor_fts USING fts5(title, body, tokenize='porter unicode61')"
        )
        db.executemany("INSERT INTO bench_floor (key, title, body, fields) VALUES (?, ?, ?, ?)", rows)
        phases["insert"] = time.perf_counter() - started
        db.execute("INSERT INTO bench_floor_fts (rowid, title, body) SELECT id, title, body FROM bench_floor")
        db.execute("COMMIT")
        seconds = time.perf_counter() - started
        phases["fts5"] = seconds - phases["insert"]
        db.execute("DROP TABLE bench_floor")
        db.execute("DROP TABLE bench_floor_fts")
        return seconds
    finally:
        db.close()


# --- the naive way ------------------------------------------------------------------------


def naive_once(stack: Stack, rows: list[tuple[str, str, str, str]]) -> float:
    """One task per record (bench/naive.py) on the same broker and database; seconds to all saved."""
    import json

    from bench.naive import index_record
    from indexing.models import Document, Job, Record

    document = Document.objects.create(name="naive", format="csv", size=0, sha256="", file="")
    job = Job.objects.create(
        document=document, status="succeeded", format="csv", size=0, sha256="", file="", chunk_size=1
    )
    started = time.perf_counter()
    for ordinal, (key, title, body, fields) in enumerate(rows):
        index_record.delay(job.pk, document.pk, ordinal, key, title, body, json.loads(fields))
    while Record.objects.filter(job=job).count() < len(rows):
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    delete_documents(["naive"])
    return seconds


# --- search: the API against the raw SQL it runs ------------------------------------------


def captured_search_sql(queries: list[str]) -> dict[str, list[tuple[str, tuple]]]:
    """The SQL statements (and parameters) Quern's search backend runs for each query."""
    from django.db import connection

    from indexing.search import search

    captured = {}
    for q in queries:
        statements: list[tuple[str, tuple | dict]] = []

        def keep(execute, sql, params, many, context, statements=statements):
            statements.append((sql, params if isinstance(params, dict) else tuple(params or ())))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(keep):
            search(q, limit=10)
        captured[q] = statements
    return captured


# The bench's queries as a person types them into a search box: the same words inside a
# question, in rotation. The extra words are common in the corpus, so a sentence matches far
# more records than its query: what ranking the top k "without scoring every match" is about.
SENTENCE_FRAMES = (
    "what does {} mean",
    "where can I find {}",
    "how is {} used",
    "tell me about {}",
)


def as_sentences(queries: list[str]) -> list[str]:
    return [SENTENCE_FRAMES[i % len(SENTENCE_FRAMES)].format(q) for i, q in enumerate(queries)]


def _percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _latency_run(clients: int, rounds: int, make_worker) -> dict:
    """`clients` threads each run the query set `rounds` times; per-request latencies in ms."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(_):
        call = make_worker()
        mine = []
        for _ in range(rounds):
            mine.extend(call())
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    wall = time.perf_counter() - started
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": _percentile(latencies, 95),
        "requests": len(latencies),
        "requests_per_s": len(latencies) / wall,
    }


def search_latencies(stack: Stack, queries: list[str], clients: int, rounds: int) -> dict:
    from urllib.parse import quote

    from django.db import connection

    captured = captured_search_sql(queries)
    vendor = connection.vendor
    settings = connection.settings_dict
    params = connection.get_connection_params() if vendor == "postgresql" else None

    def api_worker():
        client = Client(stack.port)

        def call():
            out = []
            for q in queries:
                t = time.perf_counter()
                client.get(f"/api/search?q={quote(q)}&limit=10")
                out.append((time.perf_counter() - t) * 1000)
            return out

        return call

    def raw_worker():
        if vendor == "postgresql":
            import psycopg

            conn = psycopg.connect(**(params | {"autocommit": True, "cursor_factory": psycopg.ClientCursor}))
        else:
            conn = sqlite3.connect(settings["NAME"], check_same_thread=False)

        def call():
            out = []
            for q in queries:
                t = time.perf_counter()
                for sql, args in captured[q]:
                    if vendor == "sqlite":
                        sql = sql.replace("%s", "?").replace("%%", "%")
                    cur = conn.execute(sql, args)
                    cur.fetchall()
                out.append((time.perf_counter() - t) * 1000)
            return out

        return call

    return {
        "api": _latency_run(clients, rounds, api_worker),
        "raw_sql": _latency_run(clients, rounds, raw_worker),
    }


# --- time to searchable -------------------------------------------------------------------


def time_to_searchable(stack: Stack, tries: int) -> list[float]:
    """A one-record document: seconds from the POST until /api/search finds it."""
    client = stack.client()
    seconds = []
    for i in range(tries):
        token = "tts" + uuid.uuid4().hex[:12]
        started = time.perf_counter()
        client.post_json(
            "/api/documents",
            {"name": f"tts-{i}.csv", "content": f"id,text\n1,{token} arrives\n", "format": "csv"},
        )
        while client.get(f"/api/search?q={token}")["total"] < 1:
            if time.perf_counter() - started > 60:
                raise TimeoutError(f"{token} not searchable after 60 s")
            time.sleep(0.005)
        seconds.append(time.perf_counter() - started)
    return seconds


# --- memory under a 1 GB CSV --------------------------------------------------------------


def make_big_csv(source: Path, target: Path, size: int) -> Path:
    """sentences.csv repeated, ids renumbered, until `size` bytes: distinct records, real text."""
    if target.exists() and target.stat().st_size >= size:
        return target
    tmp = target.with_suffix(".tmp")
    with open(source, "rb") as src:
        header, *lines = src.read().split(b"\n")
    lines = [line.split(b",", 1)[1] for line in lines if line]
    written, ordinal = 0, 0
    with open(tmp, "wb") as out:
        out.write(header + b"\n")
        while written < size:
            block = []
            for rest in lines:
                ordinal += 1
                block.append(b"%d,%s\n" % (ordinal, rest))
            data = b"".join(block)
            out.write(data)
            written += len(data)
    tmp.rename(target)
    return target


@contextmanager
def peak_memory(stack: Stack) -> Iterator[dict[str, float]]:
    """Peak resident memory of each process of the stack (web, worker and their children) while
    the block runs, sampled every 0.2 s; filled in, by role, when the block ends."""
    peaks: dict[str, float] = {}
    by_role: dict[str, float] = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for role, process in stack.processes.items():
                for pid in process.pids():
                    peaks[f"{role}:{pid}"] = max(peaks.get(f"{role}:{pid}", 0.0), rss_mb(pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield by_role
    finally:
        stop.set()
        sampler.join()
        for key, peak in peaks.items():
            role = key.split(":")[0]
            by_role[role] = max(by_role.get(role, 0.0), peak)


def memory_while_ingesting(stack: Stack, path: Path) -> dict:
    """Peak resident memory of each web and worker process while `path` goes through."""
    with peak_memory(stack) as peaks:
        result = ingest_once(stack, Workload(path.name, (path,), "csv"))
    return result | {"peak_rss_mb": peaks, "file_bytes": path.stat().st_size}


# --- many small documents ------------------------------------------------------------------


ENDED = ("succeeded", "failed", "cancelled")


def last_job_id() -> int:
    """The newest job's id: a workload's jobs are the ones after it (wait_named)."""
    from indexing.models import Job

    return Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def wait_named(prefix: str, n: int, after: int, timeout: float = 3600) -> dict:
    """Wait, reading the database (not n API calls, which would share the cores being measured),
    until the n jobs of documents named `prefix…` (of the jobs after id `after`) have ended; their
    statuses and the last end.

    Polled by id alone: joined to the documents' names, a poll planned on stale statistics took
    PostgreSQL 25 s of a core (a nested loop over 20,000 documents, measured), a core taken from
    the processes being measured. The names are read once the count says all have ended."""
    from django.db import connection
    from django.db.models import Count, Max

    from indexing.models import Job

    recent = Job.objects.filter(pk__gt=after)
    jobs = recent.filter(document__name__startswith=prefix)
    deadline = time.monotonic() + timeout
    while True:
        if recent.filter(status__in=ENDED).count() >= n:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE indexing_job, indexing_document")
            if jobs.filter(status__in=ENDED).count() >= n:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{prefix}…: not all {n:,} jobs ended after {timeout} s")
        time.sleep(0.2)
    statuses = dict(jobs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {"statuses": statuses, "finished": jobs.aggregate(last=Max("finished_at"))["last"].timestamp()}


def _one_record_docs(source: Path, n: int, prefix: str) -> tuple[list[str], list[dict]]:
    lines = source.read_text().splitlines()[1 : n + 1]
    docs = [
        {"name": f"{prefix}{i}.csv", "content": f"id,source,ref,text\n{line}\n", "format": "csv"}
        for i, line in enumerate(lines)
    ]
    return lines, docs


def one_csv_once(stack: Stack, lines: list[str], scratch: Path) -> float:
    """The same records as one CSV document, POST to end: what the small ones are held to."""
    one_csv = scratch / f".one-{uuid.uuid4().hex[:8]}.csv"
    one_csv.write_text("id,source,ref,text\n" + "\n".join(lines) + "\n")
    try:
        started = time.time()
        [job] = stack.client().post_files([one_csv], {"format": "csv"})
        [job] = stack.client().wait_jobs([job["id"]])
        assert job["status"] == "succeeded", job
        return _finished_at(job) - started
    finally:
        one_csv.unlink()


def small_documents_once(stack: Stack, source: Path, n: int, clients: int = 8) -> dict:
    """`n` one-record documents POSTed to /api/documents by `clients` threads, from the first
    request to the last job's end; beside the same records as one CSV in the same run."""
    prefix = f"small-{uuid.uuid4().hex[:8]}-"
    lines, docs = _one_record_docs(source, n, prefix)
    errors: list[str] = []
    refusals = 0
    lock = threading.Lock()

    def post(part: list[dict]) -> None:
        nonlocal refusals
        client = Client(stack.port)
        for doc in part:
            while True:
                status, body = client.request(
                    "POST", "/api/documents", json.dumps(doc), {"Content-Type": "application/json"}
                )
                if status == 503:
                    with lock:
                        refusals += 1
                    time.sleep(0.5)
                    continue
                if status != 202:
                    with lock:
                        errors.append(f"{status} {str(body)[:200]}")
                break

    after = last_job_id()
    started = time.time()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, [docs[i::clients] for i in range(clients)]))
    posted = time.time() - started
    ended = wait_named(prefix, n - len(errors), after)
    seconds = ended["finished"] - started
    from indexing.models import Job

    # Taken into another job's batch (pipeline.batching): how much the crowd was taken together.
    batched = (
        Job.objects.filter(document__name__startswith=prefix, claimed_by__isnull=False)
        .exclude(claimed_by=F("pk"))
        .count()
    )
    csv_seconds = one_csv_once(stack, lines, source.parent)
    return {
        "documents": n,
        "clients": clients,
        "seconds": seconds,
        "posting_seconds": posted,
        "documents_per_s": n / seconds,
        "errors": len(errors),
        "error_examples": errors[:3],
        "refused_by_backpressure": refusals,
        "failed_jobs": n - len(errors) - ended["statuses"].get("succeeded", 0),
        "batched_jobs": batched,
        "one_csv_seconds": csv_seconds,
        "one_csv_records_per_s": n / csv_seconds,
    }


def publish_confirmed(url: str, queue: str, bodies: list[bytes], window: int = CONFIRM_WINDOW) -> None:
    """Persistent publishes to `queue`, each confirmed by the broker, `window` in flight at a time
    (as a bulk client does: amqplib's waitForConfirms, pika's or Java's batched confirms). One
    confirm awaited per message caps a client at one broker round trip each (~840/s here,
    measured), whatever the consumer does."""
    from amqp import Message
    from kombu import Connection

    with Connection(url) as conn:
        channel = conn.connection.channel()  # py-amqp's own: publish, then collect the confirms
        channel.confirm_select()
        acked, nacked = [0], []

        def on_ack(tag: int, multiple: bool) -> None:
            acked[0] = max(acked[0], tag)  # tags grow: a multiple ack covers all before it

        channel.events["basic_ack"].add(on_ack)
        channel.events["basic_nack"].add(lambda tag, multiple: nacked.append(tag))
        for start in range(0, len(bodies), window):
            for body in bodies[start : start + window]:
                message = Message(
                    body, content_type="application/json", content_encoding="utf-8", delivery_mode=2
                )
                channel.basic_publish(message, exchange="", routing_key=queue)
            sent = min(start + window, len(bodies))
            while acked[0] < sent and not nacked:
                conn.connection.drain_events(timeout=60)
            if nacked:
                raise RuntimeError(f"the broker refused {len(nacked)} publishes (basic.nack)")
        channel.close()


def amqp_documents_once(source: Path, n: int, stack: Stack) -> dict:
    """`n` one-record documents published to the open queue (quern.submit, persistent, confirmed
    CONFIRM_WINDOW at a time), from the first publish to the last job's end; beside the same
    records as one CSV in the same run."""
    from bench.stack import AMQP_URL

    prefix = f"amqp-{uuid.uuid4().hex[:8]}-"
    lines, docs = _one_record_docs(source, n, prefix)
    bodies = [json.dumps(doc).encode() for doc in docs]
    after = last_job_id()
    started = time.time()
    publish_confirmed(AMQP_URL, "quern.submit", bodies)
    published = time.time() - started
    ended = wait_named(prefix, n, after)
    seconds = ended["finished"] - started
    csv_seconds = one_csv_once(stack, lines, source.parent)
    return {
        "documents": n,
        "seconds": seconds,
        "publishing_seconds": published,
        "documents_per_s": n / seconds,
        "failed_jobs": n - ended["statuses"].get("succeeded", 0),
        "one_csv_seconds": csv_seconds,
        "one_csv_records_per_s": n / csv_seconds,
        "ratio_to_one_csv": csv_seconds / seconds,
    }


def make_archive(paths: tuple[Path, ...], root: Path, target: Path) -> Path:
    """A .tar.gz of `paths`, each member named by its path under `root`."""
    import tarfile

    if not target.exists():
        tmp = target.with_suffix(".tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for path in paths:
                tar.add(path, arcname=str(path.relative_to(root)))
        tmp.rename(target)
    return target


def archive_once(stack: Stack, archive: Path, members: int) -> dict:
    """One archive POSTed; from the POST to the last file's job end, and each process's peak
    memory meanwhile. The POST answers with the archive's own job; a worker unpacks it."""
    from django.db.models import Count, Max, Sum

    from indexing.models import Job

    with peak_memory(stack) as peaks:
        started = time.time()
        [posted_job] = stack.client().post_files([archive])
        posted = time.time() - started
        # A million files take over an hour here: the default hour is too short.
        [unpacked] = stack.client().wait_jobs([posted_job["id"]], timeout=6 * 3600, interval=0.2)
        unpacked_at = time.time()
        assert unpacked["status"] == "succeeded", unpacked
        files = Job.objects.filter(archive_id=posted_job["id"])
        # Counting a million jobs' ends takes the database a while: asked less often for more.
        while files.filter(status__in=("succeeded", "failed", "cancelled")).count() < members:
            time.sleep(max(0.5, members / 200_000))
    statuses = dict(files.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    last = files.aggregate(last=Max("finished_at"))["last"].timestamp()
    return {
        "members": members,
        "seconds": last - started,
        "posting_seconds": posted,
        "unpacking_seconds": unpacked_at - started,
        # The jobs' own counts: a join over ten million records took minutes after a gigabyte.
        "records": files.aggregate(n=Sum("records_indexed"))["n"] or 0,
        "statuses": statuses,
        "peak_rss_mb": peaks,
    }


def make_tiny_archive(target: Path, members: int) -> Path:
    """A .tar.gz or .zip (by `target`'s name) of `members` one-line text files (the
    million-member case of the memory target)."""
    import tarfile
    import zipfile

    def files():
        for n in range(members):
            yield f"notes/{n // 1000:04d}/{n}.txt", b"a grey heron numbered %d stood in the reeds\n" % n

    if not target.exists():
        tmp = target.with_suffix(".tmp")
        if target.name.endswith(".zip"):
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for name, data in files():
                    archive.writestr(name, data)
        else:
            with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
                for name, data in files():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        tmp.rename(target)
    return target


def make_csv_archive(target: Path, source: Path, total_bytes: int, member_bytes: int) -> tuple[Path, int]:
    """A .tar.gz of CSV files cut from `source` (each with its header), about `member_bytes`
    each and `total_bytes` in all, `source` read again as often as needed: the gigabyte case of
    the memory target. Files of one chunk (under QUERN_CHUNK_SIZE records, about 0.45 MB of
    sentences) go through batches, which then hold many records; bigger ones are chunked."""
    import tarfile

    members = 0
    if not target.exists():
        header, *lines = source.read_bytes().splitlines(keepends=True)
        tmp = target.with_suffix(".tmp")
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            written, at = 0, 0
            while written < total_bytes:
                part, size = [header], len(header)
                while size < member_bytes and at < len(lines):
                    part.append(lines[at])
                    size += len(lines[at])
                    at += 1
                if at == len(lines):
                    at = 0
                data = b"".join(part)
                info = tarfile.TarInfo(f"sentences/{members // 1000:04d}/{members}.csv")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                written += len(data)
                members += 1
        tmp.rename(target)
    else:
        with tarfile.open(target, "r:gz") as tar:
            members = sum(1 for m in tar if m.isfile())
    return target, members


# --- load: a crowd submitting and a crowd searching at once ----------------------------------


def load_once(stack: Stack, source: Path, queries: list[str], seconds: float, clients: int = 50) -> dict:
    """`clients` threads submitting one-record documents and `clients` searching, for `seconds`:
    every answer's status counted (202/200 and the designed 503/429 only), search latencies, and
    afterwards every accepted job's end."""
    prefix = f"load-{uuid.uuid4().hex[:8]}-"
    lines = source.read_text().splitlines()[1:]
    after = last_job_id()
    statuses: dict[str, dict[int, int]] = {"submit": {}, "search": {}}
    latencies: list[float] = []
    accepted = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def count(kind: str, status: int) -> None:
        with lock:
            statuses[kind][status] = statuses[kind].get(status, 0) + 1

    def submitter(n: int) -> None:
        nonlocal accepted
        client, i = Client(stack.port), 0
        while time.monotonic() < stop:
            line = lines[(n * 100_003 + i) % len(lines)]
            doc = {
                "name": f"{prefix}{n}-{i}.csv",
                "content": f"id,source,ref,text\n{line}\n",
                "format": "csv",
            }
            status, _ = client.request(
                "POST", "/api/documents", json.dumps(doc), {"Content-Type": "application/json"}
            )
            count("submit", status)
            if status == 202:
                with lock:
                    accepted += 1
            elif status in (429, 503):
                time.sleep(1)  # a client told "busy" comes back later
            i += 1

    def searcher(n: int) -> None:
        client, i = Client(stack.port), n
        while time.monotonic() < stop:
            q = urllib.parse.quote(queries[i % len(queries)])
            started = time.perf_counter()
            status, _ = client.request("GET", f"/api/search?q={q}")
            took = time.perf_counter() - started
            count("search", status)
            if status == 200:
                with lock:
                    latencies.append(took)
            i += 1

    with ThreadPoolExecutor(2 * clients) as pool:
        work = [pool.submit(submitter, n) for n in range(clients)] + [
            pool.submit(searcher, n) for n in range(clients)
        ]
        for done in work:
            done.result()
    ended = wait_named(prefix, accepted, after, timeout=1800)
    designed = {202, 200, 429, 503}
    return {
        "seconds": seconds,
        "clients": clients,
        "statuses": {k: {str(s): n for s, n in v.items()} for k, v in statuses.items()},
        "undesigned": sum(n for v in statuses.values() for s, n in v.items() if s not in designed),
        "accepted": accepted,
        "succeeded": ended["statuses"].get("succeeded", 0),
        "searches": len(latencies),
        "search_p50_ms": _percentile(latencies, 50) * 1000 if latencies else None,
        "search_p95_ms": _percentile(latencies, 95) * 1000 if latencies else None,
        "searches_per_s": len(latencies) / seconds,
        "accepted_per_s": accepted / seconds,
    }
