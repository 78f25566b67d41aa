"""Stored input: documents streamed into storage under their sha256, read back by byte range."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from indexing import blobs
from indexing.errors import NO_ROOM, QuernError, StorageFull
from indexing.formats import sniff_encoding, transcode_to_utf8
from indexing.models import Job

HEAD_BYTES = 64 * 1024  # enough to sniff a format or an encoding
COPY_BLOCK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    name: str  # storage name, content-addressed
    size: int
    sha256: str
    head: bytes


def store_stream(stream: IO[bytes], *, inline_rows: list[tuple[str, bytes]] | None = None) -> StoredFile:
    """Stream an upload into storage under its sha256, never holding it whole in memory.

    A small one's row (indexing.blobs) is written at once, or added to `inline_rows` for the
    caller to write with its documents (blobs.store_inline_many, in their transaction).
    StorageFull when the spool or the storage has no room; then nothing of it is left behind.
    """
    limit = settings.QUERN_MAX_UPLOAD_BYTES
    first = stream.read(COPY_BLOCK)
    more = stream.read(COPY_BLOCK) if first else b""
    if not more and len(first) <= limit:  # all of it in one block: no spool
        return _store_bytes(first, inline_rows)
    digest = hashlib.sha256()
    size = 0
    head = b""
    with tempfile.TemporaryFile() as spool:
        for block in _blocks(stream, first, more):
            if len(head) < HEAD_BYTES:
                head += block[: HEAD_BYTES - len(head)]
            size += len(block)
            if size > limit:
                raise QuernError(
                    "too_large",
                    f"The document is larger than the limit of {limit:,} bytes (QUERN_MAX_UPLOAD_BYTES).",
                    status=413,
                )
            digest.update(block)
            _no_room_is_full(spool.write, block)
        sha256 = digest.hexdigest()
        name = f"documents/{sha256[:2]}/{sha256}"
        if _whole(name, size):
            _touch(name)  # in use again: reconcile's removal of stale inputs leaves it be
        else:
            spool.seek(0)
            name = _save_whole(name, spool)
    return StoredFile(name=name, size=size, sha256=sha256, head=head)


def _blocks(stream: IO[bytes], *read: bytes):
    """The blocks already read, then the rest of the stream's."""
    yield from (block for block in read if block)
    while block := stream.read(COPY_BLOCK):
        yield block


def _store_bytes(data: bytes, inline_rows: list[tuple[str, bytes]] | None) -> StoredFile:
    """A document read whole in one block (a message's, a JSON body's): written straight from
    memory, with no spool file and none of a storage's name-finding (together half of the open
    queue consumer's time per one-record message, measured with py-spy); a small one as a row
    (indexing.blobs), not a file."""
    sha256 = hashlib.sha256(data).hexdigest()
    if len(data) <= settings.QUERN_INLINE_MAX_BYTES:  # a row, in the caller's transaction
        name = blobs.inline_name(sha256)
        if inline_rows is None:
            blobs.store_inline(name, data)
        else:
            inline_rows.append((name, data))
        return StoredFile(name=name, size=len(data), sha256=sha256, head=data[:HEAD_BYTES])
    name = f"documents/{sha256[:2]}/{sha256}"
    if _whole(name, len(data)):
        _touch(name)
    else:
        name = _no_room_is_full(_write_whole, name, data)
    return StoredFile(name=name, size=len(data), sha256=sha256, head=data[:HEAD_BYTES])


def _write_whole(name: str, data: bytes) -> str:
    """As _save_whole, for bytes in memory: a part file of its own, then moved to `name` at once."""
    try:
        path = default_storage.path(name)
    except NotImplementedError:
        return default_storage.save(name, ContentFile(data))
    part = f"{path}.part-{uuid.uuid4().hex}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write_part(part, data)
        if settings.FILE_UPLOAD_PERMISSIONS is not None:  # as the storage would
            os.chmod(part, settings.FILE_UPLOAD_PERMISSIONS)
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(part)
        raise
    return name


def _write_part(path: str, data: bytes) -> None:
    with open(path, "xb") as file:
        file.write(data)


def _save_whole(name: str, spool: IO[bytes]) -> str:
    """Write under a name of its own, then move it to `name` at once: no process ever finds part
    of a file under `name` (two uploads of the same bytes at once, a crash or a full disk
    mid-write). A storage without local paths is written in place."""
    try:
        default_storage.path(name)
    except NotImplementedError:
        return _no_room_is_full(default_storage.save, name, File(spool))
    part = f"{name}.part-{uuid.uuid4().hex}"
    try:
        part = _no_room_is_full(default_storage.save, part, File(spool))
        os.replace(default_storage.path(part), default_storage.path(name))
    except BaseException:
        delete(part)  # what the full disk (or anything else) left of it
        raise
    return name


def _whole(name: str, size: int) -> bool:
    """Is the content-addressed file there, whole? One torn by an older, in-place write is removed."""
    if not default_storage.exists(name):
        return False
    if default_storage.size(name) == size:
        return True
    delete(name)
    return False


def _touch(name: str) -> None:
    try:
        os.utime(default_storage.path(name))
    except (NotImplementedError, OSError):
        pass  # a storage without local paths; or the file went meanwhile, and is written again later


def _no_room_is_full(write, *args):
    try:
        return write(*args)
    except OSError as error:
        if error.errno in NO_ROOM:
            raise StorageFull() from error
        raise


def utf8_copy(job: Job) -> str:
    """The job's input as a UTF-8 file in storage (only for inputs in another encoding), or ""."""
    # A name of its own per run: a split delivered twice at once must not delete the other's copy.
    name = f"utf8/job-{job.pk}-{uuid.uuid4().hex}.txt"
    with default_storage.open(job.file.name, "rb") as head_file:
        codec = sniff_encoding(head_file.read(HEAD_BYTES), job.encoding or None)
    if codec in ("utf-8", "utf-8-sig"):
        return ""
    with default_storage.open(job.file.name, "rb") as source, tempfile.TemporaryFile() as target:
        transcode_to_utf8(source, target, codec)
        target.seek(0)
        return default_storage.save(name, File(target))


def read_range(job: Job, start: int, end: int) -> bytes:
    """Bytes [start, end) of the job's UTF-8 input."""
    with default_storage.open(job.utf8_path or job.file.name, "rb") as stream:
        stream.seek(start)
        return stream.read(end - start)


def delete(name: str) -> None:
    if name and default_storage.exists(name):
        default_storage.delete(name)
