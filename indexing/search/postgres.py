"""PostgreSQL full-text search: Record.search (tsvector, title A / body B, config english) + GIN."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.db import connection

from indexing.query import CANDIDATES, Plan
from indexing.text import STOP_WORDS

from .base import (
    MARK_END,
    MARK_START,
    TITLE_WEIGHT,
    RecordRows,
    SearchBackend,
    SearchPage,
    count_chunk_lengths,
    fields_json,
    hit,
    signed_sum_sql,
)

CONFIG = "english"

# A chunk travels by COPY into a per-connection staging table, then one INSERT … SELECT computes
# the tsvector on the server. Django's psycopg cursors bind parameters client-side, which turned
# five arrays of 5,000 strings into a 2 MB SQL literal through a regex per element: ~40 % of a
# chunk's time (profiled; see README "Performance"). COPY sends the rows as they are.
_STAGE = "quern_record_stage_many"
_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
    job_id bigint, document_id bigint, ordinal bigint, key text, title text, body text, fields jsonb
) ON COMMIT DELETE ROWS
"""
_COPY_STAGE = f"COPY {_STAGE} (job_id, document_id, ordinal, key, title, body, fields) FROM STDIN"
_INSERT_FROM_STAGE = f"""
INSERT INTO indexing_record (job_id, document_id, ordinal, key, title, body, fields, search)
SELECT s.job_id, s.document_id, s.ordinal, s.key, s.title, s.body, s.fields,
       setweight(to_tsvector('{CONFIG}', s.title), 'A') || setweight(to_tsvector('{CONFIG}', s.body), 'B')
FROM {_STAGE} s
RETURNING job_id, length(search)
"""
_INSERT_AND_MEASURE = (
    f"WITH written AS ({_INSERT_FROM_STAGE})"
    " SELECT job_id, coalesce(sum(length), 0) FROM written GROUP BY job_id"
)


# BM25 (k1, b) over the tsvector: a lexeme's term frequency is its positions, plus TITLE_WEIGHT - 1
# when the title (weight A) holds it (BM25F's field weight, a title counted once); a record's length is its
# count of distinct lexemes (length(tsvector), read from the vector's header). Document
# frequencies come from indexing_term (summed by lexeme), N and the average length from
# indexing_searchstats: both kept by finalize as versions go live and are retired.
K1, B = 1.2, 0.75

# Stemmed by the database itself: each query word's lexemes and their live document frequency.
_LEXEMES = f"""
SELECT w.word, l.lexeme, coalesce((SELECT sum(t.df) FROM indexing_term t WHERE t.lexeme = l.lexeme), 0)
FROM unnest(%s::text[]) AS w(word)
CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('{CONFIG}', w.word))) AS l(lexeme)
"""

# Candidates (live matches of the filter, bounded), each scored once; the page's rows then get
# ts_headline (it re-parses the text). The query string is built from lexemes the database made,
# quoted, so user text never reaches the tsquery parser.
_SEARCH = (
    # MATERIALIZED: the GIN index finds the matches, and the join keeps the live ones until the
    # LIMIT is reached (a CTE is read lazily). Flattened, the planner took LIMIT as a reason to walk
    # a document's records in order, filtering each by the tsquery: 1 M rows for a rare word.
    "WITH matches AS MATERIALIZED ("
    "  SELECT id, search, document_id, job_id FROM indexing_record r"
    "  WHERE r.search @@ %(query)s::tsquery{extra}"
    "), candidates AS ("
    "  SELECT m.id, m.search FROM matches m"
    "  JOIN indexing_document d ON d.id = m.document_id AND d.live_job_id = m.job_id"
    "  LIMIT %(candidates)s"
    # Each candidate's vector cut down to the query's lexemes before it is unnested: setweight
    # marks them D (the index writes only A and B), ts_filter keeps the D ones — in C, over the
    # vector's bytes. Unnesting whole vectors cost 2-3x as much on the bench's long records.
    "), cut AS ("
    "  SELECT c.id, length(c.search) AS length,"
    "         ts_filter(setweight(c.search, 'D', %(lexemes)s::text[]), '{{d}}') AS mine,"
    "         tsvector_to_array(ts_filter(setweight(ts_filter(c.search, '{{a}}'), 'D', %(lexemes)s::text[]),"
    "                           '{{d}}')) AS in_title"
    "  FROM candidates c"
    # MATERIALIZED: tf is read twice by BM25's formula, and inlined it was computed twice.
    "), matched AS MATERIALIZED ("  # tf per query lexeme; held by the title, TITLE_WEIGHT - 1 more
    "  SELECT f.id, f.length,"
    "         (%(weights)s::float8[])[array_position(%(lexemes)s::text[], u.lexeme)] AS weight,"
    "         cardinality(u.positions) + %(title_extra)s * (u.lexeme = ANY(f.in_title))::int AS tf"
    "  FROM cut f CROSS JOIN LATERAL unnest(f.mine) AS u"
    "), stats AS ("  # BM25's average length, from the live totals
    "  SELECT coalesce(max(greatest(1.0, length::float8 / nullif(records, 0))), 1.0) AS avg_length"
    "  FROM indexing_searchstats WHERE id = 1"
    "), scored AS ("
    "  SELECT id, count(*) OVER () AS n,"
    "         sum(weight * tf * %(k1_plus_1)s"
    "             / (tf + %(k1)s * (1 - %(b)s + %(b)s * length / (SELECT avg_length FROM stats))))"
    "           AS score"
    "  FROM matched GROUP BY id"
    ")"
    " SELECT p.score, ts_headline('" + CONFIG + "', r.title || chr(10) || r.body, %(everything)s::tsquery,"
    "        %(headline)s), r.id, r.key, r.title, r.fields, d.id, d.name, p.n"
    " FROM (SELECT * FROM scored ORDER BY score DESC, id LIMIT %(limit)s OFFSET %(offset)s) AS p"
    " JOIN indexing_record r ON r.id = p.id"
    " JOIN indexing_document d ON d.id = r.document_id"
    " ORDER BY p.score DESC, p.id"
)
_COUNT = (
    "WITH matches AS MATERIALIZED ("
    "  SELECT document_id, job_id FROM indexing_record r WHERE r.search @@ %(query)s::tsquery{extra}"
    ") SELECT count(*) FROM (SELECT 1 FROM matches m"
    "  JOIN indexing_document d ON d.id = m.document_id AND d.live_job_id = m.job_id"
    "  LIMIT %(candidates)s) AS live"
)

_TERM_STAGE = "quern_term_stage"
_CREATE_TERM_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_TERM_STAGE} (word text, df bigint) ON COMMIT DELETE ROWS"
)
# In word order, so two finalizes touching the same words lock them in one order, each before
# the totals row (pipeline.statistics.swap makes one change per transaction for this).
_UPSERT_TERMS = f"""
INSERT INTO indexing_term (word, df, lexeme)
SELECT s.word, s.df, coalesce((tsvector_to_array(to_tsvector('{CONFIG}', s.word)))[1], '')
FROM {_TERM_STAGE} s ORDER BY s.word
ON CONFLICT (word) DO UPDATE SET df = indexing_term.df + excluded.df
"""

_HEADLINE_OPTIONS = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=35, MinWords=15, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


def _lexeme(text: str) -> str:
    """A lexeme as a quoted tsquery operand: taken as it is, never parsed as syntax."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a JSON "\u0000" would otherwise fail the whole chunk.
    return value.replace("\x00", " ") if "\x00" in value else value


def _without_nul(value):
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _fields_json(fields: dict) -> str:
    text = fields_json(fields)
    # jsonb refuses the escape \u0000 that JSON writers use for NUL: clean the values (rarely needed).
    return fields_json(_without_nul(fields)) if "\\u0000" in text else text


class PostgresBackend(SearchBackend):
    vendor = "postgresql"

    def _text(self, value: str) -> str:
        return _text(value)

    def _fields_json(self, fields: dict) -> str:
        return _fields_json(fields)

    def index_many(self, rows: RecordRows) -> dict[int, int]:
        if not rows.rows:
            return {}
        connection.ensure_connection()
        raw = connection.connection  # the psycopg connection, inside Django's transaction
        # Django's own error classes, as its cursors raise them (callers catch DatabaseError).
        with connection.wrap_database_errors, raw.cursor() as cursor:
            cursor.execute(_CREATE_STAGE)
            cursor.execute(f"DELETE FROM {_STAGE}")  # an earlier write of this transaction's
            with cursor.copy(_COPY_STAGE) as copy:
                for row in rows.rows:
                    copy.write_row(row)
            cursor.execute(_INSERT_AND_MEASURE)
            lengths = {job_id: int(length) for job_id, length in cursor.fetchall()}
            # No wait for the WAL flush at this chunk's commit: if the server crashed before the
            # flush, the chunk would simply not be done in the database, and reconcile re-sends
            # whatever the database says is undone (DESIGN.md). Local to this transaction.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        return lengths

    def remove_range(self, *, job_id: int, first_ordinal: int, last_ordinal: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM indexing_record WHERE job_id = %s AND ordinal BETWEEN %s AND %s",
                [job_id, first_ordinal, last_ordinal],
            )
            return cursor.rowcount

    def count_terms(self, added: Sequence[int], retired: Sequence[int], *, records: int) -> None:
        summed, jobs, params = signed_sum_sql("t.value::bigint", added, retired)
        with connection.cursor() as cursor:
            cursor.execute(_CREATE_TERM_STAGE)
            cursor.execute(f"DELETE FROM {_TERM_STAGE}")  # a deleted document's swap came before
            cursor.execute(
                f"INSERT INTO {_TERM_STAGE} (word, df) SELECT word, df FROM (SELECT t.key AS word,"
                f" {summed} AS df FROM indexing_chunk c CROSS JOIN LATERAL jsonb_each_text(c.terms) AS t"
                f" WHERE {jobs} GROUP BY t.key) AS words WHERE df <> 0",
                params,
            )
            cursor.execute(_UPSERT_TERMS)
        count_chunk_lengths(added, retired, records)

    def settle(self) -> None:
        # GIN's fast-update pending list holds the newest entries unsorted, and every search
        # scans it whole: 1.5 ms per query word after a bulk load (measured on 1 M records),
        # ~90 ms once to merge it. Merged as a version goes live, not left to the next vacuum.
        with connection.cursor() as cursor:
            cursor.execute("SELECT gin_clean_pending_list('indexing_record_search_gin')")

    def _lexemes(self, words: Sequence[str]) -> list[tuple[str, str, int]]:
        with connection.cursor() as cursor:
            cursor.execute(_LEXEMES, [list(words)])
            return [(w, lexeme, int(df)) for w, lexeme, df in cursor.fetchall()]

    def _bounded_counts(self, lexemes: list[str], cap: int = 10_000) -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT q.lexeme, (SELECT count(*) FROM (SELECT 1 FROM indexing_record"
                "  WHERE search @@ q.query LIMIT %s) AS m)"
                " FROM unnest(%s::text[], %s::tsquery[]) AS q(lexeme, query)",
                [cap, lexemes, [_lexeme(x) for x in lexemes]],
            )
            return {lexeme: int(n) for lexeme, n in cursor.fetchall()}

    def match_counts(self, words: Sequence[str], *, cap: int) -> dict[str, int]:
        counts = dict.fromkeys(words, 0)
        for word, _, df in self._lexemes(words) if words else ():
            counts[word] = min(cap, counts[word] + df)
        return counts

    def similar_words(self, word: str, *, limit: int = 64) -> list[tuple[str, int]]:
        with connection.cursor() as cursor:
            # pg_trgm's % uses the GIN index; a one-letter slip in a five-letter word leaves a
            # similarity near 0.2, under the default threshold of 0.3.
            cursor.execute("SET pg_trgm.similarity_threshold = 0.15")
            cursor.execute(
                "SELECT word, df FROM indexing_term WHERE word %% %s AND df > 0"
                " ORDER BY similarity(word, %s) DESC, df DESC LIMIT %s",
                [word, word, limit],
            )
            return [(w, int(df)) for w, df in cursor.fetchall()]

    def completions(self, prefix: str, *, limit: int) -> list[tuple[str, int]]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT word, df FROM indexing_term WHERE word LIKE %s AND df > 0"
                " ORDER BY df DESC, word LIMIT %s",
                [pattern, limit],
            )
            return [(w, int(df)) for w, df in cursor.fetchall()]

    def search(self, plan: Plan, *, limit: int, offset: int, document_id: int | None = None) -> SearchPage:
        if plan.is_empty:
            return SearchPage(total=0)
        words = {w for a in plan.alternatives() for w in a.words} | {
            w for t in plan.excluded for w in t.words
        }
        lexemes: dict[str, list[str]] = {}
        df: dict[str, int] = {}
        for word, lexeme, count in self._lexemes(sorted(words)):
            lexemes.setdefault(word, []).append(lexeme)
            df[lexeme] = count
        # A lexeme the vocabulary does not count (a number, one letter): counted in the index,
        # up to a bound, so its idf is not the highest there is.
        unknown = [lexeme for lexeme, count in df.items() if count == 0]
        if unknown:
            df.update(self._bounded_counts(unknown))
        query = _filter(plan, lexemes)
        if query is None:
            return SearchPage(total=0)
        everything = _any_of(plan.alternatives(), lexemes) or query
        terms, weights = _weights(plan, lexemes, df, self.live_records())
        params = {
            "query": query,
            "candidates": CANDIDATES + 1,
            "lexemes": terms,
            "weights": weights,
            "title_extra": TITLE_WEIGHT - 1,
            "k1_plus_1": K1 + 1,
            "k1": K1,
            "b": B,
            "everything": everything,
            "headline": _HEADLINE_OPTIONS,
            "limit": limit,
            "offset": offset,
            "document": document_id,
        }
        # One document's live records are its live job's: found by the (job_id, ordinal) index,
        # records have no document_id index (one index fewer per inserted record).
        extra = (
            ""
            if document_id is None
            else " AND r.job_id = (SELECT live_job_id FROM indexing_document WHERE id = %(document)s)"
        )
        with connection.cursor() as cursor:
            cursor.execute(_SEARCH.format(extra=extra), params)
            rows = cursor.fetchall()
            if rows:
                found = rows[0][-1]
            else:
                cursor.execute(_COUNT.format(extra=extra), params)
                (found,) = cursor.fetchone()
        hits = [hit(*row[:-1]) for row in rows]  # the last column is the count of candidates
        return SearchPage(total=found, hits=hits, total_exact=found <= CANDIDATES and not plan.tier)

    def clear(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE indexing_record SET search = NULL")
            cursor.execute("DELETE FROM indexing_term")
            cursor.execute("DELETE FROM indexing_searchstats")


def _operand(words: tuple[str, ...], lexemes: dict[str, list[str]]) -> str | None:
    """A word or a phrase as tsquery text: `'wing'`, `'wing' <-> 'tip'`, `'a' <2> 'b'` across a
    stop word (as phraseto_tsquery writes it); None for stop words alone."""
    parts: list[str] = []
    gap = 1
    for word in words:
        found = lexemes.get(word)
        if not found:
            if parts:
                gap += 1
            continue
        operand = _lexeme(found[0]) if len(found) == 1 else "(" + " <-> ".join(map(_lexeme, found)) + ")"
        if parts:
            parts.append("<->" if gap == 1 else f"<{gap}>")
        parts.append(operand)
        gap = 1
    return " ".join(parts) or None


def _any_of(alternatives, lexemes) -> str | None:
    operands = list(dict.fromkeys(o for a in alternatives if (o := _operand(a.words, lexemes))))
    return "(" + " | ".join(operands) + ")" if operands else None


def _filter(plan: Plan, lexemes: dict[str, list[str]]) -> str | None:
    """The plan as a tsquery: which records are candidates (see indexing.query.plan_to_fts5)."""
    required = [g for g in plan.groups if g.required]
    if plan.tier:
        clauses = [_any_of(plan.tier, lexemes)]
    elif required:
        clauses = [_any_of(g.alternatives, lexemes) for g in required]
        if None in clauses:
            return None  # a required phrase of stop words alone
    else:
        clauses = [_any_of(plan.alternatives(), lexemes)]
    clauses = [c for c in clauses if c]
    if not clauses:
        return None
    excluded = [o for t in plan.excluded if (o := _operand(t.words, lexemes))]
    return " & ".join(clauses + [f"!({o})" for o in excluded])


def _weights(plan: Plan, lexemes, df: dict[str, int], records: int) -> tuple[list[str], list[float]]:
    """Each query lexeme's BM25 idf times its alternative's weight (the highest, if repeated)."""
    best: dict[str, float] = {}
    n = max(records, max(df.values(), default=0), 1)
    for alternative in plan.alternatives():
        for word in alternative.words:
            if word in STOP_WORDS and len(alternative.words) > 1:
                continue
            for lexeme in lexemes.get(word, ()):
                d = df.get(lexeme, 0)
                idf = math.log(1 + (n - d + 0.5) / (d + 0.5))
                best[lexeme] = max(best.get(lexeme, 0.0), idf * alternative.weight)
    return list(best), list(best.values())
