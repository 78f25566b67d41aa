"""Autobatching: small documents waiting together are split, indexed and made live together, and
each keeps its own job, status, errors and event; one bad document fails alone."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from indexing import pipeline
from indexing.models import BatchTrigger, Chunk, Job, Record, SearchStats, Status, Term
from indexing.pipeline import batching
from indexing.schemas import SubmitOptions
from indexing.search import search
from indexing.text import document_frequencies
from tests.conftest import wait_for, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def small(n: int, word: str = "ptarmigan") -> Job:
    data = f"id,text\n{n},{word} number {n}\n".encode()
    return pipeline.submit(io.BytesIO(data), name=f"note-{n}.csv", options=SubmitOptions(format="csv"))


def test_small_documents_waiting_together_go_live_in_one_batch_each_with_its_own_job(
    captured_messages, clean_index
):
    jobs = [small(n) for n in range(6)]
    batch = pipeline.take_batch(jobs[0].pk)
    assert batch == [j.pk for j in jobs]
    pipeline.run_batch(jobs[0].pk, batch)

    for job in Job.objects.filter(pk__in=batch):
        assert (job.status, job.records_indexed, job.chunks_done, job.claimed_by) == (
            Status.SUCCEEDED,
            1,
            1,
            jobs[0].pk,
        )
        assert job.document.live_job_id == job.pk
    assert search("ptarmigan", limit=10).page.total == 6
    assert Term.objects.get(word="ptarmigan").df == 6
    assert SearchStats.objects.get().records == 6


def test_a_claimed_job_s_own_split_message_does_nothing(captured_messages, clean_index):
    first, second = small(1), small(2)
    assert pipeline.take_batch(first.pk) == [first.pk, second.pk]
    assert pipeline.take_batch(second.pk) == []  # its batch has it


def test_a_bad_document_fails_alone_and_its_batch_goes_live(captured_messages, clean_index):
    good = [small(n) for n in range(3)]
    bad = pipeline.submit(
        io.BytesIO(b'{"id": 1, "title": "no closing brace"\n'),
        name="bad.jsonl",
        options=SubmitOptions(format="jsonl"),
    )
    binary = pipeline.submit(
        io.BytesIO(b"\x00\xff\xfe" * 50), name="blob.csv", options=SubmitOptions(format="csv")
    )
    batch = pipeline.take_batch(good[0].pk)
    pipeline.run_batch(good[0].pk, batch)

    statuses = dict(Job.objects.filter(pk__in=batch).values_list("pk", "status"))
    assert [statuses[j.pk] for j in good] == [Status.SUCCEEDED] * 3
    assert statuses[bad.pk] == statuses[binary.pk] == Status.FAILED
    bad.refresh_from_db()
    assert [e["code"] for e in bad.errors] == ["jsonl_invalid", "no_valid_records"]
    assert bad.errors[0]["line"] == 1
    assert search("ptarmigan", limit=10).page.total == 3


def test_a_document_needing_several_chunks_leaves_the_batch_for_its_own_steps(captured_messages, clean_index):
    lone = small(1)
    data = "id,text\n" + "".join(f"{n},grouse {n}\n" for n in range(5))
    several = pipeline.submit(
        io.BytesIO(data.encode()), name="grouse.csv", options=SubmitOptions(format="csv", chunk_size=2)
    )
    batch = pipeline.take_batch(lone.pk)
    pipeline.run_batch(lone.pk, batch)
    several.refresh_from_db()
    assert (several.status, several.chunks_total) == (Status.INDEXING, 3)
    assert [args for name, args in captured_messages if name == "quern.index_chunk"] == [
        [several.pk, 0],
        [several.pk, 1],
        [several.pk, 2],
    ]


def test_a_batch_whose_worker_died_is_resumed_by_its_leader_and_a_stale_claim_taken_over(
    captured_messages, clean_index
):
    jobs = [small(n) for n in range(3)]
    assert pipeline.take_batch(jobs[0].pk) == [j.pk for j in jobs]
    # The worker died here. Its message, redelivered, resumes the same batch.
    assert pipeline.take_batch(jobs[0].pk) == [j.pk for j in jobs]
    # Long after (no redelivery: the filesystem broker lost it), reconcile's message for another
    # member takes the stale claim over.
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(claimed_at=timezone.now() - timedelta(hours=1))
    assert pipeline.take_batch(jobs[2].pk) == [jobs[2].pk, jobs[0].pk, jobs[1].pk]
    pipeline.run_batch(jobs[2].pk, pipeline.take_batch(jobs[2].pk))
    assert set(Job.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}


def test_a_batch_delivered_again_after_it_finished_leaves_each_document_indexed_once(
    captured_messages, clean_index
):
    jobs = [small(n) for n in range(4)]
    batch = pipeline.take_batch(jobs[0].pk)
    pipeline.run_batch(jobs[0].pk, batch)
    for job in jobs:  # every split message, delivered (again)
        assert pipeline.take_batch(job.pk) == []  # done, and no other waits

        pipeline.split_alone(job.pk)
    assert Record.objects.count() == 4
    assert Chunk.objects.count() == 4
    assert Term.objects.get(word="ptarmigan").df == 4


def test_a_cancelled_member_is_left_out_of_its_batch(captured_messages, clean_index):
    jobs = [small(n) for n in range(3)]
    batch = pipeline.take_batch(jobs[0].pk)
    pipeline.cancel(jobs[1].pk)
    pipeline.run_batch(jobs[0].pk, batch)
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {
        jobs[0].pk: Status.SUCCEEDED,
        jobs[1].pk: Status.CANCELLED,
        jobs[2].pk: Status.SUCCEEDED,
    }
    assert not Record.objects.filter(job=jobs[1]).exists()


def test_many_small_documents_through_the_api_and_a_real_worker_are_each_searchable(client, pipeline):
    ids = []
    for n in range(40):
        response = client.post(
            "/api/documents",
            {"name": f"bird-{n}.csv", "content": f"id,text\n{n},capercaillie {n}\n", "format": "csv"},
            content_type="application/json",
        )
        assert response.status_code == 202
        ids.append(response.json()["id"])
    finished = [wait_for_job(job_id) for job_id in ids]
    assert {job.status for job in finished} == {Status.SUCCEEDED}
    assert wait_for(lambda: search("capercaillie", limit=50).page.total == 40, message="40 hits")
    # Some went together: a job led by another one's batch.
    assert any(job.claimed_by not in (None, job.pk) for job in finished)


def test_a_batch_of_documents_with_the_same_ordinals_writes_each_its_own_records(
    captured_messages, clean_index
):
    # Every one-record document's record is ordinal 0: written in one transaction, none may
    # carry another's rows along (PostgreSQL writes through a per-connection staging table).
    jobs = [small(n) for n in range(5)]
    pipeline.run_batch(jobs[0].pk, pipeline.take_batch(jobs[0].pk))
    assert sorted(Record.objects.values_list("job_id", "ordinal")) == [(j.pk, 0) for j in jobs]


def test_only_the_first_small_submission_after_a_claim_sends_a_split_message(
    captured_messages, clean_index, monkeypatch
):
    monkeypatch.setattr(batching, "TRIGGER_RESEND", 3600)  # however slow this machine is today
    jobs = [small(n) for n in range(3)]
    assert captured_messages == [("quern.split", [jobs[0].pk])], list(
        BatchTrigger.objects.values()
    )  # the others wait
    assert pipeline.take_batch(jobs[0].pk) == [j.pk for j in jobs]
    later = small(9)
    assert captured_messages[-1] == ("quern.split", [later.pk])  # after the claim: a new trigger


def test_a_big_document_always_sends_its_own_split(captured_messages, clean_index, settings):
    settings.QUERN_BATCH_MAX_BYTES = 10  # every document is big now
    jobs = [small(1), small(2)]
    assert captured_messages == [("quern.split", [jobs[0].pk]), ("quern.split", [jobs[1].pk])]


def test_a_full_batch_sends_the_trigger_of_the_next(captured_messages, clean_index, settings):
    settings.QUERN_BATCH_SIZE = 2
    jobs = [small(n) for n in range(3)]
    batch = pipeline.take_batch(jobs[0].pk)
    assert batch == [jobs[0].pk, jobs[1].pk]
    pipeline.run_batch(batch[0], batch)
    assert captured_messages[-1] == ("quern.split", [jobs[2].pk])


def test_after_a_full_batch_sent_the_next_trigger_submissions_only_count_themselves_in(
    captured_messages, clean_index, settings, monkeypatch
):
    monkeypatch.setattr(batching, "TRIGGER_RESEND", 3600)
    settings.QUERN_BATCH_SIZE = 2
    jobs = [small(n) for n in range(3)]
    pipeline.take_batch(jobs[0].pk)
    sent = list(captured_messages)
    assert sent[-1] == ("quern.split", [jobs[2].pk])
    later = [small(n) for n in (7, 8)]  # the trigger on its way takes them with the third
    assert captured_messages == sent
    assert pipeline.take_batch(jobs[2].pk) == [jobs[2].pk, later[0].pk]


def test_a_trigger_whose_job_is_done_passes_its_duty_to_the_oldest_waiting(captured_messages, clean_index):
    first = small(1)
    pipeline.run_batch(first.pk, pipeline.take_batch(first.pk))
    waiting = [small(n) for n in (2, 3)]
    # The first job's message delivered again (a duplicate): it still takes the waiting ones.
    assert pipeline.take_batch(first.pk) == [j.pk for j in waiting]


def test_a_trigger_not_claimed_in_time_is_sent_again_by_the_next_small_submission(
    captured_messages, clean_index, monkeypatch
):
    monkeypatch.setattr(batching, "TRIGGER_RESEND", 0)  # the first trigger was lost
    jobs = [small(n) for n in range(2)]
    assert captured_messages == [("quern.split", [jobs[0].pk]), ("quern.split", [jobs[1].pk])]


def test_a_batch_s_leftovers_are_resumed_by_its_leader_s_message_even_once_the_leader_is_done(
    captured_messages, clean_index
):
    jobs = [small(n) for n in range(3)]
    batch = pipeline.take_batch(jobs[0].pk)
    # The leader's own records went live; the worker was lost before the others were written.
    pipeline.run_batch(jobs[0].pk, batch[:1])
    assert pipeline.take_batch(jobs[0].pk) == [jobs[1].pk, jobs[2].pk]


def test_two_versions_of_one_document_in_one_batch_leave_the_newer_live_and_count_once(
    captured_messages, clean_index
):
    first = small(1, word="petrel")
    second = pipeline.submit(
        io.BytesIO(b"id,text\n1,shearwater\n"),
        name="note-1.csv",
        options=SubmitOptions(format="csv"),
        replace=first.document_id,
    )
    pipeline.run_batch(first.pk, pipeline.take_batch(first.pk))
    second.refresh_from_db()
    assert second.document.live_job_id == second.pk
    assert (
        Term.objects.filter(word="petrel", df__gt=0).exists(),
        Term.objects.get(word="shearwater").df,
    ) == (
        False,
        1,
    )
    assert SearchStats.objects.get().records == 1


def test_one_document_s_unexpected_error_fails_it_alone(captured_messages, clean_index, monkeypatch):
    from indexing.pipeline import batching

    jobs = [small(n) for n in range(3)]
    real = batching.prepare

    def breaks_on_the_second(job, data=None):
        if job.pk == jobs[1].pk:
            raise RuntimeError("a parser bug")
        return real(job, data)

    monkeypatch.setattr(batching, "prepare", breaks_on_the_second)
    pipeline.run_batch(jobs[0].pk, pipeline.take_batch(jobs[0].pk))
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {jobs[0].pk: Status.SUCCEEDED, jobs[1].pk: Status.FAILED, jobs[2].pk: Status.SUCCEEDED}
    assert Job.objects.get(pk=jobs[1].pk).errors[-1]["code"] == "internal_error"


def test_reconcile_sends_small_queued_jobs_one_trigger_per_lane_not_a_message_each(
    captured_messages, clean_index, monkeypatch
):
    from indexing.pipeline import dispatch, recovery

    jobs = [small(n) for n in range(30)]  # their trigger was lost with the broker
    monkeypatch.setattr(recovery, "_queue_is_empty", lambda name: True)
    resent: list = []
    monkeypatch.setattr(dispatch, "send_now", lambda messages, **options: resent.extend(messages))
    counts = recovery.reconcile(now=timezone.now() + timedelta(hours=1))
    assert resent == [("quern.split", [jobs[0].pk])] and counts["split"] == 1


def test_small_submissions_racing_claims_are_each_claimed_by_a_trigger_sent_after_them(
    captured_messages, clean_index
):
    """Submissions in threads, beside a claimer that follows every trigger as a worker would:
    when all is done, no job is left queued with no trigger on its way (PostgreSQL takes the
    lane's lock shared for submissions, alone for a claim; SQLite serializes the writes)."""
    import threading

    from django.db import connection

    def submitter(k: int) -> None:
        try:
            for n in range(40):
                small(1000 * k + n)
        finally:
            connection.close()

    done = threading.Event()

    def claimer() -> None:
        try:
            taken = 0
            while not done.is_set() or taken < len(captured_messages):
                if taken < len(captured_messages):
                    pipeline.take_batch(captured_messages[taken][1][0])
                    taken += 1
                else:
                    time.sleep(0.001)
        finally:
            connection.close()

    claiming = threading.Thread(target=claimer)
    claiming.start()
    submitting = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
    for thread in submitting:
        thread.start()
    for thread in submitting:
        thread.join()
    done.set()
    claiming.join()
    assert Job.objects.count() == 160
    assert not Job.objects.filter(status=Status.QUEUED).exists()


def test_after_a_crowds_batch_the_next_trigger_lingers_so_the_crowd_goes_together(
    captured_messages, clean_index, settings
):
    settings.QUERN_BATCH_LINGER_MS = 5000
    jobs = [small(n) for n in range(3)]
    assert captured_messages.countdowns == [0.0]  # the first: at once
    assert pipeline.take_batch(jobs[0].pk) == [j.pk for j in jobs]  # a crowd of three
    small(9)
    assert captured_messages[-1][0] == "quern.split" and 4.0 < captured_messages.countdowns[-1] <= 5.0


def test_after_a_lone_documents_batch_the_next_one_is_sent_at_once(captured_messages, clean_index, settings):
    settings.QUERN_BATCH_LINGER_MS = 5000
    first = small(1)
    assert pipeline.take_batch(first.pk) == [first.pk]
    later = small(2)
    assert captured_messages[-1] == ("quern.split", [later.pk]) and captured_messages.countdowns[-1] == 0.0


def test_a_batch_takes_documents_up_to_its_bytes_and_triggers_the_next_beside_it(
    captured_messages, clean_index, settings
):
    jobs = [small(n) for n in range(5)]
    settings.QUERN_BATCH_BYTES = 2 * jobs[0].size + 1  # room for two of these documents
    assert pipeline.take_batch(jobs[0].pk) == [jobs[0].pk, jobs[1].pk]
    assert captured_messages[-1] == ("quern.split", [jobs[2].pk])
    settings.QUERN_BATCH_BYTES = 1  # a document bigger than a batch still goes, alone
    assert pipeline.take_batch(jobs[2].pk) == [jobs[2].pk]


def test_reconciles_cap_counts_only_jobs_whose_queue_is_idle(
    captured_messages, clean_index, settings, monkeypatch
):
    from django.conf import settings as live

    from indexing.models import Source
    from indexing.pipeline import dispatch, recovery

    settings.QUERN_BATCH_MAX_BYTES = 10  # every document is big: a split message of its own
    waiting = [small(n) for n in range(3)]  # behind a backlog on the split queue
    data = io.BytesIO(b"id,text\n9,a lost backfill\n")
    lost = pipeline.submit(data, name="lost.csv", options=SubmitOptions(format="csv"), source=Source.BACKFILL)
    monkeypatch.setattr(recovery, "STALLED_PER_RUN", 2)
    monkeypatch.setattr(recovery, "_queue_is_empty", lambda name: name == live.QUERN_BACKFILL_QUEUE)
    resent: list = []
    monkeypatch.setattr(dispatch, "send_now", lambda messages, **options: resent.extend(messages))
    recovery.reconcile(now=timezone.now() + timedelta(hours=1))
    assert resent == [("quern.split", [lost.pk])] and waiting


def test_a_claim_stamped_by_a_clock_ahead_of_this_one_lingers_no_longer_than_the_linger(
    captured_messages, clean_index, settings
):
    settings.QUERN_BATCH_LINGER_MS = 200
    jobs = [small(n) for n in range(2)]
    pipeline.take_batch(jobs[0].pk)
    BatchTrigger.objects.update(claimed_ns=time.time_ns() + 30 * 10**9)  # the worker's clock: 30 s ahead
    small(9)
    assert 0 < captured_messages.countdowns[-1] <= 0.2


def test_a_batch_s_chunk_rows_keep_each_document_s_word_counts_as_counted(captured_messages, clean_index):
    # On PostgreSQL the chunk rows go by COPY: JSON with quotes, backslashes and non-ASCII words
    # must arrive whole.
    texts = ['"Fjällräven" façade, naïve crème brûlée', "Straße über Größe \\ 'quoted' \\n words"]
    jobs = [
        pipeline.submit(
            io.BytesIO(json.dumps({"id": 1, "text": text}).encode() + b"\n"),
            name=f"w{n}.jsonl",
            options=SubmitOptions(format="jsonl"),
        )
        for n, text in enumerate(texts)
    ]
    batch = pipeline.take_batch(jobs[0].pk)
    pipeline.run_batch(jobs[0].pk, batch)

    for job in jobs:
        chunk = Chunk.objects.get(job=job)
        expected = document_frequencies(f"{r.title} {r.body}" for r in Record.objects.filter(job=job))
        assert chunk.terms == expected and len(expected) >= 4
        assert chunk.records == 1 and chunk.done_at is not None
    assert Term.objects.get(word="straße").df == 1
    assert Term.objects.get(word="fjällräven").df == 1


def counted_merges(monkeypatch, *, settle_after: int) -> list[bool]:
    """Search's merges of pending entries, counted instead of run, due after `settle_after` records."""
    monkeypatch.setattr(batching, "SETTLE_AFTER", settle_after)
    settled: list[bool] = []
    monkeypatch.setattr(type(batching.get_backend()), "settle", lambda self: settled.append(True))
    return settled


def test_a_crowd_s_batches_merge_search_s_pending_entries_only_once_none_waits(
    captured_messages, clean_index, monkeypatch, settings
):
    # The first batch is big enough, but two documents wait; the tail is too small alone: the
    # lane counts what its batches wrote since the last merge, so the tail merges for the crowd.
    settled = counted_merges(monkeypatch, settle_after=3)
    settings.QUERN_BATCH_SIZE = 3
    jobs = [small(n) for n in range(5)]
    first = pipeline.take_batch(jobs[0].pk)
    pipeline.run_batch(first[0], first)
    assert len(first) == 3 and settled == []  # two more wait: the crowd goes on
    rest = pipeline.take_batch(jobs[3].pk)
    pipeline.run_batch(rest[0], rest)
    assert rest == [jobs[3].pk, jobs[4].pk] and settled == [True]
    assert BatchTrigger.objects.get(lane=batching.lane(jobs[0])).unsettled == 0

    # A lone small document after the merge counts again from nothing: no merge for one record.
    alone = small(9)
    pipeline.run_batch(alone.pk, pipeline.take_batch(alone.pk))
    assert settled == [True]
    assert BatchTrigger.objects.get(lane=batching.lane(alone)).unsettled == 1


def test_a_batch_commits_its_documents_in_groups_of_about_batch_records_and_merges_once(
    captured_messages, clean_index, monkeypatch, settings
):
    # A worker holds a group's parsed records until its commit: dense documents must not pile
    # up 16 MiB of records in memory. A group's jobs end at one moment, its own.
    settled = counted_merges(monkeypatch, settle_after=2)
    settings.QUERN_BATCH_RECORDS = 2
    jobs = [small(n) for n in range(5)]
    batch = pipeline.take_batch(jobs[0].pk)
    pipeline.run_batch(batch[0], batch)

    ended = list(Job.objects.filter(pk__in=[j.pk for j in jobs]).order_by("pk"))
    assert [j.status for j in ended] == [Status.SUCCEEDED] * 5
    assert [Record.objects.filter(job=j).count() for j in ended] == [1] * 5
    assert len({j.finished_at for j in ended}) == 3  # groups of 2, 2 and 1
    assert settled == [True]  # once, after the last group
    assert search("ptarmigan", limit=10).page.total == 5
