"""Archives read as many documents: the files of a .zip, .tar, .tar.gz or .tgz, each by its path.

Pure: streams in, (path, stream) pairs out. Limits are checked before a member is given out —
the member count, the total uncompressed size and its ratio to the archive's size — and again
on the bytes actually read (a zip's declared sizes may lie), so a bomb stops with a ParseError
that says which limit, and what to do.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from indexing.formats.records import ParseError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
ARCHIVE_FORMAT = "archive"  # a stored archive's format: unpacked by a worker, its files each a document


@dataclass(frozen=True)
class Limits:
    members: int
    total_bytes: int
    ratio: int  # uncompressed bytes per archive byte, at most


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def members(stream: IO[bytes], name: str, size: int, limits: Limits) -> Iterator[tuple[str, IO[bytes]]]:
    """Each regular, non-empty file of the archive: (its path inside, a stream of its bytes)."""
    budget = _Budget(name, size, limits)
    if name.lower().endswith(".zip"):
        yield from _zip_members(stream, budget)
    else:
        yield from _tar_members(stream, budget)


class _Budget:
    """What the archive may still unpack; raises the limit's ParseError once it is spent."""

    def __init__(self, name: str, size: int, limits: Limits) -> None:
        self.name, self.limits = name, limits
        self.total = min(limits.total_bytes, max(size, 1) * limits.ratio)
        self.count = 0
        self.declared = 0  # what the archive says its files hold
        self.used = 0  # what was actually unpacked

    def member(self, declared: int) -> None:
        self.count += 1
        if self.count > self.limits.members:
            raise ParseError(
                "archive_too_many_members",
                f"{self.name} holds more than {self.limits.members:,} files (QUERN_ARCHIVE_MAX_MEMBERS): "
                "nothing of it was stored. Split it into smaller archives.",
            )
        self.declared += declared
        self._check(self.declared)

    def spend(self, n: int) -> None:
        self.used += n
        self._check(self.used)

    def _check(self, n: int) -> None:
        if n > self.total:
            raise ParseError(
                "archive_too_large",
                f"{self.name} unpacks to more than {self.total:,} bytes (QUERN_ARCHIVE_MAX_BYTES, or "
                f"{self.limits.ratio}x its own size, QUERN_ARCHIVE_MAX_RATIO): nothing of it was stored. "
                "A compressed file that grows this much is refused as a bomb; send smaller archives.",
            )


class _Counted:
    """A member's stream that charges the archive's budget for every byte read."""

    def __init__(self, raw: IO[bytes], budget: _Budget) -> None:
        self._raw, self._budget = raw, budget

    def read(self, size: int = -1) -> bytes:
        try:
            block = self._raw.read(size)
        except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as error:
            raise ParseError(
                "bad_archive", f"{self._budget.name}: a file cannot be unpacked ({error})."
            ) from None
        self._budget.spend(len(block))
        return block


def _path(name: str) -> str:
    return name.replace("\\", "/").lstrip("/").removeprefix("./")


def _zip_members(stream: IO[bytes], budget: _Budget) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        archive = zipfile.ZipFile(stream)  # type: ignore[arg-type]
    except (zipfile.BadZipFile, OSError) as error:
        raise ParseError("bad_archive", f"{budget.name} is not a readable zip archive ({error}).") from None
    with archive:
        files = [info for info in archive.infolist() if not info.is_dir() and info.file_size > 0]
        for info in files:  # every declared size is checked before anything is unpacked
            budget.member(info.file_size)
        for info in files:
            try:
                with archive.open(info) as member:
                    yield _path(info.filename), _Counted(member, budget)  # type: ignore[misc]
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
                raise ParseError(
                    "bad_archive", f"{budget.name}: {info.filename} cannot be unpacked ({error})."
                ) from None


def _tar_members(stream: IO[bytes], budget: _Budget) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        # Closed by the with below; "r|*" reads the stream once, compressed or not.
        archive = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ParseError("bad_archive", f"{budget.name} is not a readable tar archive ({error}).") from None
    with archive:
        try:
            while (info := archive.next()) is not None:
                archive.members = []  # a stream's entries are not kept: a million of them add up
                budget.member(info.size)  # every entry counts, directories and empty files too
                if not info.isfile() or info.size == 0:
                    continue
                member = archive.extractfile(info)
                if member is not None:
                    yield _path(info.name), _Counted(member, budget)  # type: ignore[misc]
        except (tarfile.TarError, OSError, EOFError) as error:
            raise ParseError("bad_archive", f"{budget.name} cannot be read to its end ({error}).") from None
