"""Errors a person can act on: one family, each with a stable code."""

from __future__ import annotations

import errno
from typing import Any

# What an OSError says when a disk or a quota has no room left.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


class QuernError(Exception):
    """An error for the caller: `code` is stable, `message` says what, where and what to do."""

    status = 400

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        line: int | None = None,
        record: int | None = None,
        byte: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.record = record
        self.byte = byte
        self.field = field  # the input field at fault, for a form to show the message beside it
        if status is not None:
            self.status = status

    def as_dict(self) -> dict[str, Any]:
        """The error as the API, the job's errors and the AMQP replies show it: where, if known."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        for name in ("line", "record", "byte"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class StorageFull(QuernError):
    """The server's storage had no room for a document: nothing of it was kept. Not the
    document's fault and it passes: an API answers 507, the open queue leaves the message queued."""

    status = 507

    def __init__(self, what: str = "The document") -> None:
        super().__init__(
            "storage_full",
            f"{what} could not be stored: the server's document storage is full. Nothing was kept; "
            "send it again once the operator has freed space.",
        )
