"""Errors a person can act on: one family, each with a stable code."""

from __future__ import annotations

from typing import Any


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
