"""What every parser yields: records, per-record errors, and the one error that fails a document."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from indexing.errors import QuernError


@dataclass(frozen=True)
class ParsedRecord:
    """One searchable unit of a document: a CSV row, a JSON object, a section, a paragraph."""

    ordinal: int  # 0-based position of the unit in its document, stable across runs
    key: str  # the record's own id (an `id` column or field) or str(ordinal)
    title: str
    body: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordError:
    """A bad record: reported on its job and skipped; the rest of the document is indexed."""

    code: str
    message: str
    line: int | None = None
    record: int | None = None  # ordinal of the bad unit

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        if self.record is not None:
            out["record"] = self.record
        return out


class ParseError(QuernError):
    """The document as a whole cannot be read: its job fails with this message.

    `message` says what, where (line, record or byte) and what to do next, for a person.
    """


# The first of these that a record has, non-empty, is its title.
TITLE_FIELDS: tuple[str, ...] = ("title", "name", "headword", "heading", "subject")


def record_from_object(ordinal: int, obj: dict[str, Any]) -> ParsedRecord:
    """A JSON object as a record: `id` -> key, a title field -> title, string values -> body."""
    key = obj.get("id")
    if key is None or key == "":
        key_text = str(ordinal)
    elif isinstance(key, str):
        key_text = key
    elif isinstance(key, bool) or not isinstance(key, int):
        key_text = _json_text(key)
    else:
        key_text = str(key)
    title = ""
    title_field = None
    for name in TITLE_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and value.strip():
            title, title_field = value.strip(), name
            break
    body: list[str] = []
    for name, value in obj.items():
        if name == "id" or name == title_field:
            continue
        if isinstance(value, str):
            if value.strip():
                body.append(value.strip())
        elif isinstance(value, list):
            body.extend(item.strip() for item in value if isinstance(item, str) and item.strip())
    fields = {name: value for name, value in obj.items() if name != "id"}
    return ParsedRecord(ordinal, key_text, title, "\n".join(body), fields)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def too_deep_error(what: str, line: int, ordinal: int) -> RecordError:
    """A record whose JSON nests past what the parser can follow: an error for that record alone."""
    return RecordError(
        "json_too_deep",
        f"{what} is nested too deeply to read (arrays and objects inside each other, about "
        f"{sys.getrecursionlimit():,} levels or more); a record needs far fewer.",
        line=line,
        record=ordinal,
    )


def too_many_fields_error(record: ParsedRecord, limit: int) -> RecordError:
    """A record wider than the field limit: reported and skipped, not indexed by halves."""
    return RecordError(
        "too_many_fields",
        f"Record {record.ordinal + 1:,} has {len(record.fields):,} fields; at most {limit:,} are "
        "taken per record (QUERN_MAX_FIELDS_PER_RECORD). Keep what is searched, or raise the limit.",
        record=record.ordinal,
    )
