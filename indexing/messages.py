"""The open queue's submit message, parsed once at the edge: pure (imports neither Django nor Celery).

`indexing/schemas/submit.json` publishes the same rules as a JSON Schema; the tests hold the two
together. A message that breaks a rule raises `MessageError`, whose code and message end up in the
`x-quern-error` headers of the dead-lettered copy and in the error reply.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("csv", "jsonl", "json", "html", "markdown", "text")
FIELDS = frozenset(
    {"name", "content", "content_base64", "format", "encoding", "chunk_size", "idempotency_key", "metadata"}
)
MAX_NAME = 255
MAX_KEY = 255
MAX_CHUNK_SIZE = 100_000


def document_bytes(data: dict[str, Any]) -> bytes:
    """The document's bytes from exactly one of `content` (text) or `content_base64` (bytes).

    Shared by the AMQP message and the JSON API, which take the same two fields.
    """
    content, content_b64 = data.get("content"), data.get("content_base64")
    if (content is None) == (content_b64 is None):
        raise MessageError("bad_content", "Give exactly one of content (text) or content_base64 (bytes); the other null or absent.")
    if content is not None:
        if not isinstance(content, str):
            raise MessageError("bad_content", "content must be a string; use content_base64 for bytes.")
        try:
            return content.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape ("\ud800") is valid JSON but no text
            raise MessageError("bad_content", "content holds an unpaired surrogate; send bytes as content_base64.") from None
    if not isinstance(content_b64, str):
        raise MessageError("bad_content", "content_base64 must be a base64 string.")
    try:
        return base64.b64decode(content_b64, validate=True)
    except (binascii.Error, ValueError):
        raise MessageError("bad_content", "content_base64 is not valid base64 (RFC 4648, no line breaks).") from None


class MessageError(Exception):
    """A submit message Quern will not take: `code` is stable, `message` says what to change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class SubmitMessage:
    name: str
    content: bytes
    format: str | None = None
    encoding: str | None = None
    chunk_size: int | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _optional_string(data: dict[str, Any], key: str, *, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise MessageError(f"bad_{key}", f"{key} must be a non-empty string of at most {limit} characters.")
    return value


def parse_submit_message(body: bytes, *, max_bytes: int) -> SubmitMessage:
    """Check a raw message body against the submit format; return what submit needs."""
    if len(body) > max_bytes:
        raise MessageError(
            "too_large",
            f"The message is {len(body):,} bytes; Quern takes at most {max_bytes:,} (QUERN_MAX_MESSAGE_BYTES). "
            "Send bigger documents through the HTTP API, which streams them.",
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise MessageError("invalid_json", f"The message body is not JSON: {error}.") from None
    if not isinstance(data, dict):
        raise MessageError("invalid_json", "The message body must be a JSON object with name and content.")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise MessageError("unknown_field", f"Unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}.")

    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MessageError("missing_name", 'The message needs a name, e.g. {"name": "notes.csv", "content": "..."}.')
    if len(name) > MAX_NAME or "\x00" in name:
        raise MessageError("bad_name", f"name must be at most {MAX_NAME} characters, without NUL.")

    raw = document_bytes(data)

    fmt = data.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise MessageError("unknown_format", f"format must be one of {', '.join(FORMATS)}; got {fmt!r}.")

    chunk_size = data.get("chunk_size")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE
    ):
        raise MessageError("bad_chunk_size", f"chunk_size must be a whole number from 1 to {MAX_CHUNK_SIZE:,}; got {chunk_size!r}.")

    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise MessageError("bad_metadata", "metadata must be a JSON object.")

    return SubmitMessage(
        name=name,
        content=raw,
        format=fmt,
        encoding=_optional_string(data, "encoding", limit=32),
        chunk_size=chunk_size,
        idempotency_key=_optional_string(data, "idempotency_key", limit=MAX_KEY),
        metadata=metadata or {},
    )
