"""PostgreSQL full-text search: Record.search (tsvector, title A / body B, config english) + GIN."""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection

from indexing.formats.records import ParsedRecord
from indexing.query import Query, to_websearch

from .base import MARK_END, MARK_START, Hit, SearchBackend, SearchPage, fields_json, snippet_to_html

CONFIG = "english"

# A chunk travels by COPY into a per-connection staging table, then one INSERT … SELECT computes
# the tsvector on the server. Django's psycopg cursors bind parameters client-side, which turned
# five arrays of 5,000 strings into a 2 MB SQL literal through a regex per element: ~40 % of a
# chunk's time (profiled; see README "Performance"). COPY sends the rows as they are.
_STAGE = "quern_record_stage"
_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
    ordinal bigint, key text, title text, body text, fields jsonb
) ON COMMIT DELETE ROWS
"""
_COPY_STAGE = f"COPY {_STAGE} (ordinal, key, title, body, fields) FROM STDIN"
_INSERT_FROM_STAGE = f"""
INSERT INTO indexing_record (job_id, document_id, ordinal, key, title, body, fields, search)
SELECT %s, %s, s.ordinal, s.key, s.title, s.body, s.fields,
       setweight(to_tsvector('{CONFIG}', s.title), 'A') || setweight(to_tsvector('{CONFIG}', s.body), 'B')
FROM {_STAGE} s
"""


# Search is two statements written out, not ORM expressions: compiling the annotated queryset
# cost about a millisecond per request, most of the API's overhead over its SQL (make bench).
# websearch_to_tsquery never raises on user text (PITFALLS.md); the query string comes from
# indexing.query.to_websearch. Live records only: the document's live job.
_LIVE_MATCHES = f"""
FROM indexing_record r
JOIN indexing_document d ON d.id = r.document_id AND d.live_job_id = r.job_id
WHERE r.search @@ websearch_to_tsquery('{CONFIG}', %s)"""

# Rank and page first, then ts_headline for the page's rows only (it re-parses the text).
_PAGE = (
    "SELECT p.rank, ts_headline('" + CONFIG + "', r.title || chr(10) || r.body, p.query, %s),"
    "       r.id, r.key, r.title, r.fields, d.id, d.name"
    " FROM ("
    "    SELECT r.id, ts_rank_cd(r.search, q.query) AS rank, q.query"
    "    FROM indexing_record r"
    "    JOIN indexing_document d ON d.id = r.document_id AND d.live_job_id = r.job_id"
    "    CROSS JOIN websearch_to_tsquery('" + CONFIG + "', %s) AS q(query)"
    "    WHERE r.search @@ q.query{extra}"
    "    ORDER BY rank DESC, r.id"
    "    LIMIT %s OFFSET %s"
    " ) p"
    " JOIN indexing_record r ON r.id = p.id"
    " JOIN indexing_document d ON d.id = r.document_id"
    " ORDER BY p.rank DESC, p.id"
)

_HEADLINE_OPTIONS = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=35, MinWords=15, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


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

    def index_records(self, *, job_id: int, document_id: int, records: Sequence[ParsedRecord]) -> None:
        if not records:
            return
        connection.ensure_connection()
        raw = connection.connection  # the psycopg connection, inside Django's transaction
        with raw.cursor() as cursor:
            cursor.execute(_CREATE_STAGE)
            with cursor.copy(_COPY_STAGE) as copy:
                for r in records:
                    copy.write_row(
                        (
                            r.ordinal,
                            _text(r.key),
                            _text(r.title),
                            _text(r.body),
                            _fields_json(r.fields),
                        )
                    )
            cursor.execute(_INSERT_FROM_STAGE, (job_id, document_id))
            # No wait for the WAL flush at this chunk's commit: if the server crashed before the
            # flush, the chunk would simply not be done in the database, and reconcile re-sends
            # whatever the database says is undone (DESIGN.md). Local to this transaction.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")

    def remove_range(self, *, job_id: int, first_ordinal: int, last_ordinal: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM indexing_record WHERE job_id = %s AND ordinal BETWEEN %s AND %s",
                [job_id, first_ordinal, last_ordinal],
            )
            return cursor.rowcount

    def search(self, query: Query, *, limit: int, offset: int, document_id: int | None = None) -> SearchPage:
        text = to_websearch(query)
        if text is None:
            return SearchPage(total=0)
        params: list = [text]
        extra = ""
        if document_id is not None:
            extra = " AND r.document_id = %s"
            params.append(document_id)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) {_LIVE_MATCHES}{extra}", params)
            total = cursor.fetchone()[0]
            if total == 0 or offset >= total:
                return SearchPage(total=total)
            cursor.execute(_PAGE.format(extra=extra), [_HEADLINE_OPTIONS, *params, limit, offset])
            rows = cursor.fetchall()
        hits = [
            Hit(
                score=round(float(rank), 6),
                snippet=snippet_to_html(snip or ""),
                record_id=record_id,
                key=key,
                title=title,
                fields=json.loads(fields) if isinstance(fields, str) else (fields or {}),
                document_id=doc_id,
                document_name=doc_name,
            )
            for rank, snip, record_id, key, title, fields, doc_id, doc_name in rows
        ]
        return SearchPage(total=total, hits=hits)

    def clear(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE indexing_record SET search = NULL")
