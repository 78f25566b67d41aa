"""`make faults`: break a part of the stack while a 200-chunk job runs, and count what is left.

    python -m bench faults                  # every fault, PostgreSQL + RabbitMQ (make faults)
    python -m bench faults --only pool,postgres

Each fault runs on make run's own processes (the Procfile's web, worker, beat and consumer)
over a fresh database, against a CSV of 200,000 records in chunks of 1,000. Afterwards it
counts, from the database: the job's status (succeeded, never failed by a fault that healed),
records of the document (= the file's records), duplicate (document, key) pairs among them
(none), and that the web and the consumer still answer. It prints the table the README shows
and exits 1 if any row is not as expected.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.stack import AMQP_URL, ROOT, Stack, mode_env, recreate_database

RECORDS = 200_000
CHUNK = 1_000
FINAL = ("succeeded", "failed", "cancelled")
PROCESSES = ("web", "worker", "beat", "consumer")  # make run's, on RabbitMQ
OUTAGE_DOCUMENT = "id,text\n1,an egret sent during the outage\n"


@dataclass
class Row:
    fault: str
    happened: str
    counted: str
    ok: bool


def make_csv(source: Path, target: Path, n: int) -> Path:
    if not target.exists():
        with open(source, "rb") as src:
            lines = src.read().split(b"\n")
        target.write_bytes(b"\n".join(lines[: n + 1]) + b"\n")
    return target


def _db_retry(read):
    """A read of the benchmark's own connection that waits out a database restart."""
    from django.db import InterfaceError, OperationalError, close_old_connections, connection

    deadline = time.monotonic() + 120
    while True:
        try:
            return read()
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            connection.close()
            close_old_connections()
            time.sleep(1)


def job_state(job_id: int) -> dict:
    from indexing.models import Job

    return _db_retry(
        lambda: Job.objects.filter(pk=job_id).values("status", "chunks_done", "chunks_total", "errors")[0]
    )


def wait_final(job_id: int, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while (status := job_state(job_id)["status"]) not in FINAL:
        if time.monotonic() > deadline:
            return f"still {status} after {timeout:.0f} s"
        time.sleep(0.5)
    return status


def wait_progress(job_id: int, chunks: int) -> None:
    """Until the job has indexed `chunks` chunks: the fault lands mid-job."""
    while (state := job_state(job_id))["chunks_done"] < chunks and state["status"] not in FINAL:
        time.sleep(0.05)


def counts(job_id: int) -> tuple[int, int, bool]:
    """(live records of the job's document, duplicate (document, key) pairs, the version is live)."""
    from django.db.models import Count

    from indexing.models import Document, Job, Record

    def read():
        job = Job.objects.get(pk=job_id)
        records = Record.objects.filter(document_id=job.document_id)
        duplicates = records.values("document_id", "key").annotate(n=Count("id")).filter(n__gt=1).count()
        live = Document.objects.filter(pk=job.document_id, live_job_id=job_id).exists()
        return records.count(), duplicates, live

    return _db_retry(read)


def submit(stack: Stack, path: Path) -> int:
    [job] = stack.client().post_files([path], {"format": "csv", "chunk_size": str(CHUNK)})
    return job["id"]


def check(fault: str, happened: str, job_id: int, extra_ok: bool = True, extra: str = "") -> Row:
    status = wait_final(job_id)
    records, duplicates, live = counts(job_id)
    ok = status == "succeeded" and records == RECORDS and duplicates == 0 and live and extra_ok
    counted = f"job {status}; {records:,} of {RECORDS:,} records; {duplicates} duplicates" + (
        f"; {extra}" if extra else ""
    )
    if status != "succeeded":
        state = job_state(job_id)
        errors = state["errors"]
        counted += f"; its error: {errors[-1]['code'] if errors else 'none'}"
        counted += f"; chunks {state['chunks_done']} of {state['chunks_total']}; {stuck_where()}"
    return Row(fault, happened, counted, ok)


def stuck_where() -> str:
    """What a job left unfinished is waiting on: each queue's ready and unacked messages (ready
    with a live worker: the worker stopped taking; none at all: a message was lost and reconcile
    did not send it again)."""
    from kombu import Connection

    vhost = Connection(AMQP_URL).virtual_host
    columns = ("name", "messages_ready", "messages_unacknowledged")
    try:
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", vhost, *columns],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError) as error:  # the row's counts still print
        return f"queues unknown ({type(error).__name__})"
    rows = [
        fields for fields in map(str.split, listed) if len(fields) == 3 and fields[0] in ("ingest", "index")
    ]
    return "queues " + ", ".join(f"{name} {ready} ready/{unacked} unacked" for name, ready, unacked in rows)


def alive_processes(stack: Stack) -> list[str]:
    return [name for name in PROCESSES if stack.processes[name].popen.poll() is None]


def web_answers(stack: Stack) -> bool:
    try:
        return stack.client().request("GET", "/api/jobs?limit=1")[0] == 200
    except OSError:
        return False


# --- the faults ---------------------------------------------------------------------------


def fault_pool(stack: Stack, csv: Path) -> Row:
    job = submit(stack, csv)
    wait_progress(job, 5)
    kills = 0
    while kills < 20 and job_state(job)["status"] not in FINAL:
        children = stack.processes["worker"].pids()[1:]
        if children:
            try:
                os.kill(random.choice(children), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        time.sleep(random.uniform(0.2, 0.8))  # random moments across the job, not a barrage
    return check("SIGKILL of pool processes", f"{kills} pool processes killed at random moments", job)


def fault_host(stack: Stack, csv: Path) -> Row:
    job = submit(stack, csv)
    wait_progress(job, 20)
    worker = stack.processes.pop("worker")
    os.killpg(worker.popen.pid, signal.SIGKILL)  # every worker process, not restarted
    worker.popen.wait()
    done_then = job_state(job)["chunks_done"]
    time.sleep(5)
    stuck = job_state(job)["chunks_done"] == done_then
    stack.start_worker()  # another worker, later: the unacked messages come back to it
    return check(
        "worker host lost",
        f"every worker process killed at chunk {done_then}; a new worker started 5 s later",
        job,
        stuck,
        "nothing moved while no worker ran" if stuck else "progress without a worker?",
    )


def fault_rabbitmq(stack: Stack, csv: Path) -> Row:
    job = submit(stack, csv)
    wait_progress(job, 20)
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True)
    answers: list[int] = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < 20:
            try:
                status, body = stack.client().request(
                    "POST",
                    "/api/documents",
                    json.dumps({"name": f"outage-{len(answers)}.csv", "content": OUTAGE_DOCUMENT}),
                    {"Content-Type": "application/json"},
                )
            except OSError:
                status = 0
            answers.append(status)
            time.sleep(2)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True)
    from indexing.models import Job

    accepted = answers.count(202)
    outage_jobs = _db_retry(lambda: list(Job.objects.filter(document__name__startswith="outage-")))
    for outage in outage_jobs:
        wait_final(outage.pk)
    outage_ok = _db_retry(
        lambda: Job.objects.filter(document__name__startswith="outage-", status="succeeded").count()
    )
    clean = all(s in (202, 503) for s in answers) and outage_ok == accepted == len(outage_jobs)
    return check(
        "RabbitMQ stopped 20 s",
        f"broker down mid-job; {len(answers)} submissions during it answered {sorted(set(answers))}",
        job,
        clean,
        f"{outage_ok} of {accepted} accepted during the outage indexed",
    )


def _pg(action: str) -> None:
    cluster = next(iter(sorted(os.listdir("/etc/postgresql"))))
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", action], check=True)


def fault_postgres(stack: Stack, csv: Path) -> Row:
    job = submit(stack, csv)
    wait_progress(job, 20)
    _pg("stop")
    time.sleep(30)
    _pg("start")
    survivors = alive_processes(stack)
    web_ok = False
    deadline = time.monotonic() + 60
    while not web_ok and time.monotonic() < deadline:
        web_ok = web_answers(stack)
        time.sleep(1)
    all_alive = len(survivors) == len(PROCESSES) and web_ok
    return check(
        "PostgreSQL down 30 s",
        "database stopped mid-job for 30 s, then started",
        job,
        all_alive,
        f"alive after: {', '.join(survivors)}; web answers: {web_ok}",
    )


def fault_postgres_restart(stack: Stack, csv: Path) -> Row:
    job = submit(stack, csv)
    wait_progress(job, 20)
    _pg("restart")
    alive = alive_processes(stack)
    return check(
        "PostgreSQL restarted",
        "database restarted mid-job (about 3 s)",
        job,
        len(alive) == len(PROCESSES),
        f"alive after: {', '.join(alive)}",
    )


def fault_duplicate(stack: Stack, csv: Path) -> Row:
    from celery import Celery

    job = submit(stack, csv)
    wait_progress(job, 10)
    # The same task messages again, on purpose: split and chunks already done, then finalize.
    app = Celery(broker=AMQP_URL)
    for _ in range(2):
        app.send_task("quern.split", args=[job], queue="ingest")
        app.send_task("quern.index_chunk", args=[job, 0], queue="index")
        app.send_task("quern.index_chunk", args=[job, 3], queue="index")
    status = wait_final(job)
    app.send_task("quern.finalize", args=[job], queue="index")
    app.send_task("quern.index_chunk", args=[job, 7], queue="index")
    time.sleep(3)  # the late copies run; none may change a thing
    return check(
        "task delivered twice", f"split, index_chunk ×2 and finalize sent again ({status} first)", job
    )


MEDIA_ROOM_MB = 64  # the media disk of the disk-full fault: the 200,000-record CSV fits, twice not


def _fill(folder: Path) -> Path:
    """Write into `folder` until its disk says ENOSPC: the file that holds the room."""
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler


def _post_csv(stack: Stack, name: str, content: str) -> tuple[int, dict]:
    return stack.client().request(
        "POST",
        "/api/documents",
        json.dumps({"name": name, "content": content}),
        {"Content-Type": "application/json"},
    )


def fault_disk(stack: Stack, csv: Path) -> Row:
    from indexing.models import Document, Job

    media = stack.data_dir / "media"
    job = submit(stack, csv)
    wait_progress(job, 5)
    filler = _fill(media)
    rows_before = (Document.objects.count(), Job.objects.count())
    files_before = sorted(p for p in media.rglob("*") if p.is_file())
    late = "id,text\n" + "".join(f"{n},a late heron number {n}\n" for n in range(1, 20_001))
    status, body = _post_csv(stack, "late.csv", late)  # about 600 KB where no byte is left
    code = (body or {}).get("error", {}).get("code")
    rows_after = (Document.objects.count(), Job.objects.count())
    files_after = sorted(p for p in media.rglob("*") if p.is_file())
    filler.unlink()  # the operator frees space; the same upload again
    again, body = _post_csv(stack, "late.csv", late)
    late_status = wait_final(body["id"]) if again == 202 else f"answered {again}"
    late_records = counts(body["id"])[0] if again == 202 else 0
    refused_clean = status == 507 and code == "storage_full" and rows_after == rows_before
    nothing_half = files_after == files_before
    return check(
        "media disk full",
        f"the media disk filled mid-job; an upload into it answered {status} {code}",
        job,
        refused_clean and nothing_half and late_status == "succeeded" and late_records == 20_000,
        f"{rows_after[1] - rows_before[1]} jobs and {len(files_after) - len(files_before)} files added "
        f"by the refused upload; sent again once freed: {late_status}, {late_records:,} of 20,000 records",
    )


FAULTS = {
    "pool": fault_pool,
    "host": fault_host,
    "duplicate": fault_duplicate,
    "rabbitmq": fault_rabbitmq,
    "postgres-restart": fault_postgres_restart,
    "postgres": fault_postgres,
    "disk": fault_disk,
}


def _mount_small_disk(folder: Path) -> None:
    """A disk of MEDIA_ROOM_MB for media storage (a tmpfs: needs root, as CI here has)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = f"size={MEDIA_ROOM_MB}m"
    subprocess.run(["mount", "-t", "tmpfs", "-o", size, "quern-faults-media", str(folder)], check=True)


def print_table(rows: list[Row]) -> None:
    print("\n| fault | what happened | what was counted | |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row.fault} | {row.happened} | {row.counted} | {'ok' if row.ok else '**FAILED**'} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench faults")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(FAULTS)}")
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(FAULTS)
    data_dir = ROOT / "var" / "bench" / "faults"
    os.environ.update(mode_env("pg", data_dir))
    from bench import workloads

    workloads.ensure_corpus(Path(args.corpus))
    rows: list[Row] = []
    for name in names:
        recreate_database("pg", data_dir)
        stack = Stack("pg", data_dir)
        stack.migrate()
        import django

        django.setup()
        csv = make_csv(
            Path(args.corpus) / "sentences.csv", ROOT / "var" / "bench" / "faults-200k.csv", RECORDS
        )
        media = data_dir / "media"
        try:
            if name == "disk":
                _mount_small_disk(media)
            stack.start_worker()
            stack.start_beat()
            stack.start_web()
            stack.start_consumer()
            print(f"fault {name}…", flush=True)
            row = FAULTS[name](stack, csv)
        except Exception as error:  # a fault that breaks the harness is a failed row, not a crash
            row = Row(name, "the run broke", f"{type(error).__name__}: {error}", False)
        finally:
            stack.stop()
            from django.db import connections

            connections.close_all()
            if name == "disk":
                subprocess.run(["umount", str(media)], check=False)
        print(f"  {row.fault}: {row.counted} — {'ok' if row.ok else 'FAILED'}", flush=True)
        rows.append(row)
    print_table(rows)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
