"""Quern's storage: files on disk, and small documents' bytes in the database (StoredBytes).

Django's FileSystemStorage for every name but those under INLINE_PREFIX, which are rows: the
pipeline opens, sizes, dates and deletes a stored input by its name either way. A file on disk
costs a create, a write and a rename per document (120–180 µs on this machine's ext4, measured),
where a row rides in the transaction that stores its job, and a batch reads its rows in one query.
"""

from __future__ import annotations

import io
from datetime import datetime

from django.core.files.base import File
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.utils import timezone

from indexing.models import StoredBytes

INLINE_PREFIX = "db/"


def inline_name(sha256: str) -> str:
    return f"{INLINE_PREFIX}{sha256[:2]}/{sha256}"


def is_inline(name: str) -> bool:
    return name.startswith(INLINE_PREFIX)


def store_inline(name: str, data: bytes) -> None:
    """The row under `name`, written in the open transaction; the same bytes again only touch it
    (content-addressed: one name, one content)."""
    store_inline_many([(name, data)])


def store_inline_many(rows: list[tuple[str, bytes]]) -> None:
    """Many rows (name, bytes) in one statement: one round trip for a batch of small documents,
    where one each held the open queue's consumer a third of its time (py-spy, PostgreSQL busy
    with the workers' batches)."""
    # One name twice in one statement: PostgreSQL refuses the second update. Sorted: two batches
    # sharing names lock their rows in the same order, and wait rather than deadlock.
    unique = dict(sorted(rows))
    if not unique:
        return
    table = connection.ops.quote_name(StoredBytes._meta.db_table)
    now = timezone.now()
    if connection.vendor == "postgresql":
        # Two arrays, not three parameters a row: psycopg scans a statement's text for its
        # placeholders, 12% of the open queue consumer's time with 1,000 rows a statement.
        rows_sql = "SELECT name, data, %s FROM unnest(%s::text[], %s::bytea[]) AS r(name, data)"
        params = [now, list(unique), list(unique.values())]
    else:
        rows_sql = "VALUES " + ", ".join(["(%s, %s, %s)"] * len(unique))
        params = [value for name, data in unique.items() for value in (name, data, now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, data, stored_at) {rows_sql}"
            " ON CONFLICT (name) DO UPDATE SET stored_at = excluded.stored_at",
            params,
        )


def delete_unless_stored_since(name: str, moment: datetime) -> None:
    """Remove the row, unless its bytes were stored again since `moment`: by a submission that
    may not have committed yet, whose touch PostgreSQL checks again once that commit releases the
    row (a plain delete by name would wait for the commit, then remove the bytes it needs)."""
    StoredBytes.objects.filter(name=name, stored_at__lt=moment).delete()


def read_inline(names: list[str]) -> dict[str, bytes]:
    """Many rows' bytes in one query (a batch's), by name; a name not there is left out."""
    rows = StoredBytes.objects.filter(name__in=[n for n in names if is_inline(n)]).values_list("name", "data")
    return {name: bytes(data) for name, data in rows}


class Storage(FileSystemStorage):
    """FileSystemStorage, with the names under INLINE_PREFIX read from and written to StoredBytes."""

    def _open(self, name: str, mode: str = "rb") -> File:
        if not is_inline(name):
            return super()._open(name, mode)
        data = read_inline([name]).get(name)
        if data is None:
            raise FileNotFoundError(f"No stored bytes named {name}")
        return File(io.BytesIO(data), name=name)

    def _save(self, name: str, content: File) -> str:
        if not is_inline(name):
            return super()._save(name, content)
        content.seek(0)
        store_inline(name, content.read())
        return name

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return name if is_inline(name) else super().get_available_name(name, max_length)

    def exists(self, name: str) -> bool:
        if not is_inline(name):
            return super().exists(name)
        return StoredBytes.objects.filter(name=name).exists()

    def size(self, name: str) -> int:
        if not is_inline(name):
            return super().size(name)
        data = read_inline([name]).get(name)
        if data is None:
            raise FileNotFoundError(f"No stored bytes named {name}")
        return len(data)

    def delete(self, name: str) -> None:
        if not is_inline(name):
            return super().delete(name)
        StoredBytes.objects.filter(name=name).delete()

    def get_modified_time(self, name: str) -> datetime:
        if not is_inline(name):
            return super().get_modified_time(name)
        stored_at = StoredBytes.objects.filter(name=name).values_list("stored_at", flat=True).first()
        if stored_at is None:
            raise FileNotFoundError(f"No stored bytes named {name}")
        return stored_at

    def path(self, name: str) -> str:
        if is_inline(name):
            raise NotImplementedError("Bytes kept in the database have no path on disk.")
        return super().path(name)
