"""SQLite FTS5 search: a table `indexing_record_fts` (porter unicode61) keyed by the record's id.

The FTS5 table keeps its own copy of title and body rather than being an external-content
table: deleting rows of an external-content table needs the exact old values, and a slip
corrupts it (PITFALLS.md). Created by migration 0002. Ranking is FTS5's own bm25() with the
title weighted above the body; its statistics are the table's, which holds the live versions
and, until their purge a moment later, rows of versions in flight or just retired.

The vocabulary (indexing_term) holds each word's Porter stem, the one FTS5's porter tokenizer
makes, so a word's live match count is one indexed sum; close words come from an FTS5 trigram
table over the vocabulary (migration 0006).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from contextlib import closing

import Stemmer
from django.db import OperationalError, connection

from indexing.query import CANDIDATES, Plan, plan_to_fts5
from indexing.text import fold_accents

from .base import (
    MARK_END,
    MARK_START,
    TITLE_WEIGHT,
    RecordRows,
    SearchBackend,
    SearchPage,
    count_chunk_lengths,
    hit,
    signed_sum_sql,
)

FTS_TABLE = "indexing_record_fts"
TRIGRAM_TABLE = "indexing_term_trigram"

_LIVE_JOIN = f"""
    FROM {FTS_TABLE}
    JOIN indexing_record r ON r.id = {FTS_TABLE}.rowid
    JOIN indexing_document d ON d.id = r.document_id AND d.live_job_id = r.job_id
    WHERE {FTS_TABLE} MATCH %s
"""

_stemmer = Stemmer.Stemmer("porter")


def _stems(words: list[str]) -> list[str]:
    """As FTS5's `porter unicode61` indexes a word: accents removed (unicode61), then stemmed."""
    return _stemmer.stemWords([fold_accents(w) for w in words])


_STEM_FUNCTION = "quern_stem"


def _stem(word: str) -> str:
    """One word as `_stems` makes it (SQLite calls this per row)."""
    return _stemmer.stemWord(fold_accents(word))


def trigrams(word: str) -> list[str]:
    """The word's trigrams with its ends marked (`^wo`, `wor`, `rd$`), as the trigram table holds
    them: marked ends make short words alike where they begin and end alike."""
    marked = f"^{word}$"
    return list(dict.fromkeys(marked[i : i + 3] for i in range(len(marked) - 2)))


_TERM_STAGE = "quern_term_stage"
# Per connection; no rowid, keyed by the word, so the join below reads both tables in word order.
_CREATE_TERM_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_TERM_STAGE} (word TEXT PRIMARY KEY, df INTEGER) WITHOUT ROWID"
)


_RECORD_COLUMNS = ("job_id", "document_id", "ordinal", "key", "title", "body", "fields")  # RecordRows' order
# Rows per INSERT: as many as fit, then smaller steps for the rest. Few sizes, because each size
# is a statement of its own that Python's sqlite3 keeps prepared (128 per connection, a 500-row
# one about 350 KB): one per possible remainder would grow a long-lived worker by tens of MB.
_ROWS_PER_INSERT = (500, 50, 5, 1)  # past 500 a statement's text grows and gains nothing (measured)


def _insert_sizes(rows: int, most: int) -> list[int]:
    """The statements' sizes that write `rows` rows, none above `most` (the parameter limit's)."""
    sizes = []
    for size in (s for s in _ROWS_PER_INSERT if s <= most or s == 1):
        count, rows = divmod(rows, size)
        sizes += [size] * count
    return sizes


def _rows_per_insert(database: sqlite3.Connection, columns: int) -> int:
    """The most rows one INSERT may hold within this SQLite's limit on a statement's parameters
    (Django assumes 999; builds differ: Debian's allows 250,000)."""
    limit = database.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, limit // columns)


@functools.lru_cache(maxsize=len(_ROWS_PER_INSERT))
def _insert_records_sql(rows: int) -> str:
    values = "(" + ", ".join(["?"] * len(_RECORD_COLUMNS)) + ")"
    return f"INSERT INTO indexing_record ({', '.join(_RECORD_COLUMNS)}) VALUES {', '.join([values] * rows)}"


class _Stemming:
    """The stem function SQLite calls for each new word. An exception raised inside reaches Python
    only as "user-defined function raised exception", an OperationalError that callers take for a
    passing fault of the database and retry for ever; it is kept here, to be raised as itself."""

    def __init__(self, database: sqlite3.Connection) -> None:
        self.database = database
        self.error: Exception | None = None

    def __call__(self, word: str) -> str:
        try:
            return _stem(word)
        except Exception as error:
            self.error = error
            raise


def _stemming() -> _Stemming:
    """This connection's stem function, registered once per database connection (redefining a
    function fails while any statement of the connection is still running)."""
    stemming = getattr(connection, "_quern_stemming", None)
    if stemming is None or stemming.database is not connection.connection:
        stemming = _Stemming(connection.connection)
        with connection.wrap_database_errors:
            connection.connection.create_function(_STEM_FUNCTION, 1, stemming, deterministic=True)
        connection._quern_stemming = stemming
    stemming.error = None
    return stemming


class SqliteBackend(SearchBackend):
    vendor = "sqlite"

    def index_many(self, rows: RecordRows) -> dict[int, int]:
        if not rows.rows:
            return {}
        # Many rows per INSERT, not executemany's one run of the statement per row: each run also
        # reads and writes the table's AUTOINCREMENT counter (sqlite_sequence). A 5,000-record
        # chunk into a table of 750,000: 18.9 -> 10.2 ms, all inside the one writer's turn
        # (measured). Through the DB-API cursor, with Django's errors: Django's own turns each
        # `%s` into `?` with a regular expression and, with DEBUG on (make run), quotes every
        # parameter of the statement for its query log, in more queries.
        connection.ensure_connection()
        most = _rows_per_insert(connection.connection, len(_RECORD_COLUMNS))
        with connection.wrap_database_errors, closing(connection.connection.cursor()) as raw:
            start = 0
            for size in _insert_sizes(len(rows.rows), most):
                part = rows.rows[start : start + size]
                raw.execute(_insert_records_sql(size), [value for row in part for value in row])
                start += size
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {FTS_TABLE} (rowid, title, body)"
                " SELECT id, title, body FROM indexing_record"
                " WHERE job_id = %s AND ordinal BETWEEN %s AND %s",
                rows.ranges,
            )
        return {}  # FTS5 keeps its own lengths

    def remove_range(self, *, job_id: int, first_ordinal: int, last_ordinal: int) -> int:
        where = "job_id = %s AND ordinal BETWEEN %s AND %s"
        params = [job_id, first_ordinal, last_ordinal]
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {FTS_TABLE} WHERE rowid IN (SELECT id FROM indexing_record WHERE {where})",
                params,
            )
            cursor.execute(f"DELETE FROM indexing_record WHERE {where}", params)
            return cursor.rowcount

    def count_terms(self, added: Sequence[int], retired: Sequence[int], *, records: int) -> None:
        # Words already in the vocabulary get their counts in one UPDATE … FROM; only new words
        # are stemmed and inserted. A million-record version's 252,000 words all stemmed for an
        # upsert took 1.7 s of finalize's transaction, the one every other writer waits on.
        summed, jobs, params = signed_sum_sql("t.value", added, retired)
        with connection.cursor() as cursor:
            cursor.execute(_CREATE_TERM_STAGE)
            cursor.execute(f"DELETE FROM {_TERM_STAGE}")
            cursor.execute(
                f"INSERT INTO {_TERM_STAGE} (word, df) SELECT word, df FROM (SELECT t.key AS word,"
                f" {summed} AS df FROM indexing_chunk c, json_each(c.terms) AS t"
                f" WHERE {jobs} GROUP BY t.key) AS words WHERE df <> 0",
                params,
            )
            cursor.execute(
                f"UPDATE indexing_term SET df = indexing_term.df + s.df FROM {_TERM_STAGE} s"
                " WHERE indexing_term.word = s.word"
            )
            cursor.execute("SELECT coalesce(max(id), 0) FROM indexing_term")
            (newest,) = cursor.fetchone()
            # New words stemmed as SQLite inserts them, by a function of this connection: fetched
            # into Python, stemmed in a list and inserted by executemany, a million sentences'
            # 252,000 new words took 2.1-2.6 s of finalize, this 1.0-1.3 s (measured on one copy).
            stemming = _stemming()
            try:
                cursor.execute(
                    "INSERT INTO indexing_term (word, df, lexeme)"
                    f" SELECT s.word, s.df, {_STEM_FUNCTION}(s.word) FROM {_TERM_STAGE} s"
                    " WHERE NOT EXISTS (SELECT 1 FROM indexing_term t WHERE t.word = s.word)"
                )
            except OperationalError:
                if stemming.error is not None:  # a bug, not the database: fail, do not retry
                    raise RuntimeError(f"Stemming a new word failed: {stemming.error!r}") from stemming.error
                raise
            if cursor.rowcount:
                # The new words got ids past the newest one: index their trigrams.
                cursor.execute(
                    f"INSERT INTO {TRIGRAM_TABLE} (rowid, word)"
                    " SELECT id, '^' || word || '$' FROM indexing_term WHERE id > %s",
                    [newest],
                )
            cursor.execute(f"DELETE FROM {_TERM_STAGE}")
        count_chunk_lengths(added, retired, records)

    def match_counts(self, words: Sequence[str], *, cap: int) -> dict[str, int]:
        if not words:
            return {}
        stems = dict(zip(words, _stems(list(words)), strict=True))
        unique = sorted(set(stems.values()))
        marks = ", ".join(["%s"] * len(unique))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT lexeme, sum(df) FROM indexing_term WHERE lexeme IN ({marks}) GROUP BY lexeme", unique
            )
            by_stem = dict(cursor.fetchall())
        return {w: min(cap, int(by_stem.get(s) or 0)) for w, s in stems.items()}

    def similar_words(self, word: str, *, limit: int = 64) -> list[tuple[str, int]]:
        grams = trigrams(word)
        if not grams:
            return []
        match = " OR ".join('"' + g.replace('"', '""') + '"' for g in grams)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.word, t.df FROM (SELECT rowid FROM {TRIGRAM_TABLE}"
                f"  WHERE {TRIGRAM_TABLE} MATCH %s ORDER BY rank LIMIT %s) AS alike"
                " JOIN indexing_term t ON t.id = alike.rowid WHERE t.df > 0",
                [match, limit],
            )
            return [(w, int(df)) for w, df in cursor.fetchall()]

    def completions(self, prefix: str, *, limit: int) -> list[tuple[str, int]]:
        with connection.cursor() as cursor:
            # A range on the unique index (BINARY order): LIKE would scan the whole vocabulary.
            cursor.execute(
                "SELECT word, df FROM indexing_term WHERE word >= %s AND word < %s AND df > 0"
                " ORDER BY df DESC, word LIMIT %s",
                [prefix, prefix + "\U0010ffff", limit],
            )
            return [(w, int(df)) for w, df in cursor.fetchall()]

    def search(self, plan: Plan, *, limit: int, offset: int, document_id: int | None = None) -> SearchPage:
        match = plan_to_fts5(plan)
        if match is None:
            return SearchPage(total=0)
        params: list = [match]
        extra = ""
        if document_id is not None:
            # Its live job's records (the live join asks for no more); no document_id index.
            extra = " AND r.job_id = (SELECT live_job_id FROM indexing_document WHERE id = %s)"
            params.append(document_id)
        with connection.cursor() as cursor:
            # Candidates: the matches, at most CANDIDATES + 1 (one more says "there are more"),
            # scored by bm25() as FTS5 yields them; the page is cut from the best, and only its
            # rows get a snippet.
            cursor.execute(
                f"""WITH candidates AS (
                    SELECT {FTS_TABLE}.rowid AS id,
                           bm25({FTS_TABLE}, {TITLE_WEIGHT}, 1.0) AS rank
                    {_LIVE_JOIN}{extra} LIMIT %s),
                page AS (SELECT id, rank, count(*) OVER () AS n FROM candidates
                         ORDER BY rank, id LIMIT %s OFFSET %s)
                SELECT page.rank, snippet({FTS_TABLE}, 1, %s, %s, '…', 24),
                       r.id, r.key, r.title, r.fields, d.id, d.name, page.n
                FROM page
                JOIN {FTS_TABLE} ON {FTS_TABLE}.rowid = page.id AND {FTS_TABLE} MATCH %s
                JOIN indexing_record r ON r.id = page.id
                JOIN indexing_document d ON d.id = r.document_id
                ORDER BY page.rank, page.id""",
                [*params, CANDIDATES + 1, limit, offset, MARK_START, MARK_END, match],
            )
            rows = cursor.fetchall()
            if rows:
                found = rows[0][-1]
            else:
                cursor.execute(
                    f"SELECT count(*) FROM (SELECT 1 {_LIVE_JOIN}{extra} LIMIT %s)", [*params, CANDIDATES + 1]
                )
                (found,) = cursor.fetchone()
        page = _page(rows)
        page.total = found
        page.total_exact = found <= CANDIDATES and not plan.tier
        return page

    def clear(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {FTS_TABLE}")
            cursor.execute(f"DELETE FROM {TRIGRAM_TABLE}")
            cursor.execute("DELETE FROM indexing_term")
            cursor.execute("DELETE FROM indexing_searchstats")


def _page(rows: list) -> SearchPage:
    # bm25() is lower-is-better; scores read higher-is-better
    return SearchPage(total=0, hits=[hit(-rank, *rest) for rank, *rest, _ in rows])
