"""Full-text search: the backend for the connection's database vendor."""
from __future__ import annotations

from django.db import connection

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


__all__ = ["Hit", "SearchBackend", "SearchPage", "Unsupported", "get_backend"]
