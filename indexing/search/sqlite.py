"""SQLite FTS5 search: a table `indexing_record_fts` (porter unicode61) keyed by the record's id.

The FTS5 table keeps its own copy of title and body rather than being an external-content
table: deleting rows of an external-content table needs the exact old values, and a slip
corrupts it (PITFALLS.md). Created by migration 0002.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection

from indexing.formats.records import ParsedRecord
from indexing.query import Query, to_fts5_match

from .base import MARK_END, MARK_START, Hit, SearchBackend, SearchPage, fields_json, snippet_to_html

FTS_TABLE = "indexing_record_fts"
TITLE_WEIGHT, BODY_WEIGHT = 4.0, 1.0

_LIVE_JOIN = f"""
    FROM {FTS_TABLE}
    JOIN indexing_record r ON r.id = {FTS_TABLE}.rowid
    JOIN indexing_document d ON d.id = r.document_id AND d.live_job_id = r.job_id
    WHERE {FTS_TABLE} MATCH %s
"""


class SqliteBackend(SearchBackend):
    vendor = "sqlite"

    def index_records(self, *, job_id: int, document_id: int, records: Sequence[ParsedRecord]) -> None:
        if not records:
            return
        rows = [
            (job_id, document_id, r.ordinal, r.key, r.title, r.body, fields_json(r.fields)) for r in records
        ]
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO indexing_record (job_id, document_id, ordinal, key, title, body, fields)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
            cursor.execute(
                f"INSERT INTO {FTS_TABLE} (rowid, title, body)"
                " SELECT id, title, body FROM indexing_record"
                " WHERE job_id = %s AND ordinal BETWEEN %s AND %s",
                [job_id, records[0].ordinal, records[-1].ordinal],
            )

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

    def search(self, query: Query, *, limit: int, offset: int, document_id: int | None = None) -> SearchPage:
        match = to_fts5_match(query)
        if match is None:
            return SearchPage(total=0)
        params: list = [match]
        extra = ""
        if document_id is not None:
            extra = " AND r.document_id = %s"
            params.append(document_id)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) {_LIVE_JOIN}{extra}", params)
            total = cursor.fetchone()[0]
            if total == 0 or offset >= total:
                return SearchPage(total=total)
            cursor.execute(
                # The snippet comes from the body: the title is shown above it anyway.
                f"""SELECT bm25({FTS_TABLE}, {TITLE_WEIGHT}, {BODY_WEIGHT}) AS rank,
                       snippet({FTS_TABLE}, 1, %s, %s, '…', 24),
                       r.id, r.key, r.title, r.fields, d.id, d.name
                {_LIVE_JOIN}{extra}
                ORDER BY rank, r.id LIMIT %s OFFSET %s""",
                [MARK_START, MARK_END, *params, limit, offset],
            )
            rows = cursor.fetchall()
        hits = [
            Hit(
                score=round(-rank, 6),  # bm25() is lower-is-better; scores read higher-is-better
                snippet=snippet_to_html(snippet or ""),
                record_id=record_id,
                key=key,
                title=title,
                fields=json.loads(fields) if isinstance(fields, str) else (fields or {}),
                document_id=doc_id,
                document_name=doc_name,
            )
            for rank, snippet, record_id, key, title, fields, doc_id, doc_name in rows
        ]
        return SearchPage(total=total, hits=hits)

    def clear(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {FTS_TABLE}")
