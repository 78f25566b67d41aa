"""Full-text search: the backend for the connection's database vendor."""

from __future__ import annotations

import time

from django.db import connection

from indexing.query import parse_query

from .base import Hit, SearchBackend, SearchPage, Unsupported

_backends: dict[str, SearchBackend] = {}


def get_backend() -> SearchBackend:
    vendor = connection.vendor
    if vendor not in _backends:
        if vendor == "postgresql":
            from .postgres import PostgresBackend

            _backends[vendor] = PostgresBackend()
        elif vendor == "sqlite":
            from .sqlite import SqliteBackend

            _backends[vendor] = SqliteBackend()
        else:
            raise Unsupported(f"Quern's search needs PostgreSQL or SQLite, not {vendor}.")
    return _backends[vendor]


def search(text: str, *, limit: int, offset: int = 0, document_id: int | None = None) -> SearchPage:
    """Live records matching what a person typed (parsed, never pasted into SQL), timed."""
    started = time.perf_counter()
    page = get_backend().search(parse_query(text), limit=limit, offset=offset, document_id=document_id)
    page.took_ms = round((time.perf_counter() - started) * 1000, 2)
    return page


__all__ = ["Hit", "SearchBackend", "SearchPage", "Unsupported", "get_backend", "search"]
