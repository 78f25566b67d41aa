"""PostgreSQL full-text search: Record.search (tsvector, title A / body B, config english) + GIN."""
from __future__ import annotations

from typing import Sequence

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db import connection
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat

from indexing.formats.records import ParsedRecord
from indexing.models import Record
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
        tsquery = SearchQuery(text, search_type="websearch", config=CONFIG)
        matches = Record.objects.filter(search=tsquery, document__live_job=F("job_id"))
        if document_id is not None:
            matches = matches.filter(document_id=document_id)
        total = matches.count()
        if total == 0 or offset >= total:
            return SearchPage(total=total)
        page = (
            matches.annotate(
                rank=SearchRank(F("search"), tsquery, cover_density=True),
                snip=SearchHeadline(
                    Concat("title", Value("\n"), "body", output_field=TextField()),
                    tsquery,
                    config=CONFIG,
                    start_sel=MARK_START,
                    stop_sel=MARK_END,
                    max_words=35,
                    min_words=15,
                    max_fragments=2,
                    fragment_delimiter=" … ",
                ),
            )
            .order_by("-rank", "id")
            .values_list("rank", "snip", "id", "key", "title", "fields", "document_id", "document__name")[
                offset : offset + limit
            ]
        )
        hits = [
            Hit(
                score=round(float(rank), 6),
                snippet=snippet_to_html(snip or ""),
                record_id=record_id,
                key=key,
                title=title,
                fields=fields or {},
                document_id=doc_id,
                document_name=doc_name,
            )
            for rank, snip, record_id, key, title, fields, doc_id, doc_name in page
        ]
        return SearchPage(total=total, hits=hits)

    def clear(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE indexing_record SET search = NULL")
