"""The search backend interface: one implementation per database vendor."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection, transaction

from indexing.formats.records import ParsedRecord
from indexing.models import SearchStats
from indexing.query import Plan

# A title weighs this many body words in BM25 (BM25F's field weight): measured on Cranfield, where
# nDCG@10 rose from 0.370 (equal weights) to 0.377 (SQLite; README "Search quality").
TITLE_WEIGHT = 4.0

# Markers the database puts around matches; the snippet is HTML-escaped, then they become <mark>.
MARK_START = "\x02"
MARK_END = "\x03"


def snippet_to_html(raw: str) -> str:
    escaped = html.escape(raw, quote=False)
    return escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def fields_json(fields: dict[str, Any]) -> str:
    """A record's fields as JSON text for the database; "{}" costs nothing.

    orjson (C-backed) is ~6x faster than json.dumps on the million tiny records of a big CSV,
    where serializing fields was ~10 % of a chunk's time (profiled). It refuses what JSON
    parsing could still have produced (integers beyond 64 bits): the stdlib takes those.
    """
    if not fields:
        return "{}"
    try:
        return orjson.dumps(fields).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(fields, ensure_ascii=False)


class Unsupported(Exception):
    """A feature this database's backend does not have."""


@dataclass(frozen=True)
class Hit:
    score: float
    snippet: str  # HTML: text escaped, matches in <mark>
    record_id: int
    key: str
    title: str
    fields: dict[str, Any]
    document_id: int
    document_name: str


def hit(score: float, snippet: str | None, record_id, key, title, fields, document_id, document_name) -> Hit:
    """A hit from a row of either backend's search: the snippet made safe HTML, fields decoded."""
    return Hit(
        score=round(float(score), 6),
        snippet=snippet_to_html(snippet or ""),
        record_id=record_id,
        key=key,
        title=title,
        fields=json.loads(fields) if isinstance(fields, str) else (fields or {}),
        document_id=document_id,
        document_name=document_name,
    )


@dataclass(frozen=True)
class RecordRows:
    """Records as the database takes them, made before the write's transaction (`rows`): on
    SQLite one writer holds the whole database for a transaction, so nothing that can be done
    before it should wait inside it."""

    rows: list[tuple[int, int, int, str, str, str, str]]  # job, document, ordinal, key, title, body, fields
    ranges: list[tuple[int, int, int]]  # each job's (job, first ordinal, last ordinal)

    def only(self, job_ids: set[int]) -> RecordRows:
        """The rows of these jobs (a batch's others were cancelled meanwhile)."""
        return RecordRows(
            [row for row in self.rows if row[0] in job_ids], [r for r in self.ranges if r[0] in job_ids]
        )


@dataclass
class SearchPage:
    total: int
    hits: list[Hit] = field(default_factory=list)
    took_ms: float = 0.0
    # False when many records match and `total` is an estimate: the top hits were ranked from a
    # bounded set of candidates rather than by scoring every match.
    total_exact: bool = True
    # How many hits offsets can reach: the ranked candidates (set by indexing.search.search). A
    # sentence whose rarest word matched one record ranks that one, whatever `total` estimates.
    ranked: int = 0


class SearchBackend:
    """What the pipeline and the views need of full-text search; vendor SQL lives in subclasses."""

    vendor = ""

    def rows(self, batch: Sequence[tuple[int, int, Sequence[ParsedRecord]]]) -> RecordRows:
        """(job id, document id, records) as `index_many` writes them; no database needed."""
        rows = [
            (
                job_id,
                document_id,
                r.ordinal,
                self._text(r.key),
                self._text(r.title),
                self._text(r.body),
                self._fields_json(r.fields),
            )
            for job_id, document_id, records in batch
            for r in records
        ]
        ranges = [
            (job_id, records[0].ordinal, records[-1].ordinal) for job_id, _, records in batch if records
        ]
        return RecordRows(rows, ranges)

    def _text(self, value: str) -> str:
        """A text value as this database can store it."""
        return value

    def _fields_json(self, fields: dict[str, Any]) -> str:
        return fields_json(fields)

    def index_many(self, rows: RecordRows) -> dict[int, int]:
        """Write records (made by `rows`) inside the caller's transaction; return each job's index
        length for BM25's statistics (none where the database keeps its own)."""
        raise NotImplementedError

    def count_terms(self, added: Sequence[int], retired: Sequence[int], *, records: int) -> None:
        """Change the live statistics by the words of versions' chunks (`Chunk.terms`): `added`
        jobs' counted up, `retired` jobs' down; `records` (signed) and their index length go to
        the totals. The database sums the chunks' counts: read and summed in Python, a million
        records' 204 chunks took finalize 1.3 s on SQLite and 2 s on PostgreSQL (profiled)."""
        raise NotImplementedError

    def match_counts(self, words: Sequence[str], *, cap: int) -> dict[str, int]:
        """How many live records each word matches as search reads it (stemmed), up to `cap`."""
        raise NotImplementedError

    def similar_words(self, word: str, *, limit: int = 64) -> list[tuple[str, int]]:
        """Vocabulary words sharing trigrams with `word`, most alike first, with their counts."""
        raise NotImplementedError

    def completions(self, prefix: str, *, limit: int) -> list[tuple[str, int]]:
        """Live vocabulary words starting with `prefix`, most frequent first, with their counts."""
        raise NotImplementedError

    def remove_range(self, *, job_id: int, first_ordinal: int, last_ordinal: int) -> int:
        """Remove a job's records (and entries) with ordinals in [first, last]; return how many."""
        raise NotImplementedError

    def remove_job(self, job_id: int, *, batch: int = 20_000) -> int:
        """Remove all of a job's records and entries, a committed batch at a time; return how many.

        Batches keep each transaction (and SQLite's write lock) short while a large job is purged.
        """
        removed = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT min(ordinal), max(ordinal) FROM"
                    " (SELECT ordinal FROM indexing_record WHERE job_id = %s ORDER BY ordinal LIMIT %s)"
                    " AS first_batch",
                    [job_id, batch],
                )
                low, high = cursor.fetchone()
            if low is None:
                return removed
            with transaction.atomic():
                removed += self.remove_range(job_id=job_id, first_ordinal=low, last_ordinal=high)

    def settle(self) -> None:
        """After a version went live: tidy what makes its first searches slow (nothing by default)."""

    def live_records(self) -> int:
        """Records in live versions (BM25's N; the total's estimate)."""
        stats = SearchStats.objects.filter(pk=1).values_list("records", flat=True).first()
        return max(0, stats or 0)

    def search(self, plan: Plan, *, limit: int, offset: int, document_id: int | None = None) -> SearchPage:
        """Live records matching the plan, best first (BM25, title above body); an empty plan
        finds nothing."""
        raise NotImplementedError

    def clear(self) -> None:
        """Drop every search entry and statistic (tests; a full rebuild)."""
        raise NotImplementedError


def signed_sum_sql(value: str, added: Sequence[int], retired: Sequence[int]) -> tuple[str, str, list[int]]:
    """`sum(±value)` over chunk rows `c` of the jobs, + for `added`, - for `retired`: the SQL of
    the sum, of the jobs' filter, and their parameters (in that order)."""
    plus = ", ".join(["%s"] * len(added)) or "NULL"
    jobs = ", ".join(["%s"] * (len(added) + len(retired)))
    summed = f"sum(CASE WHEN c.job_id IN ({plus}) THEN {value} ELSE -({value}) END)"
    return summed, f"c.job_id IN ({jobs})", [*added, *added, *retired]


def count_chunk_lengths(added: Sequence[int], retired: Sequence[int], records: int) -> None:
    """Add the versions' records and index length (from their chunks) to the live totals."""
    summed, jobs, params = signed_sum_sql("c.length", added, retired)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce({summed}, 0) FROM indexing_chunk c WHERE {jobs}", params)
        (length,) = cursor.fetchone()
    count_records(records, int(length))


def count_records(records: int, length: int) -> None:
    """Add to (or, negative, take from) the live totals: one row, upserted the same on both."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO indexing_searchstats (id, records, length) VALUES (1, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET records = indexing_searchstats.records + excluded.records,"
            " length = indexing_searchstats.length + excluded.length",
            [records, length],
        )
