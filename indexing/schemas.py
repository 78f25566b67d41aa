"""What comes in and what goes out, defined once for every edge.

A submission's rules (name, content, format, encoding, chunk size, idempotency key, metadata)
live here and nowhere else: the JSON API, its multipart form fields, the web form, the command
line and the AMQP consumer all validate through these models, and a rule broken anywhere raises
the same `QuernError` code. What goes out (a job, a document, a search page, an event, an
error) is shaped here too, so the API, the pages, the AMQP replies and the events say the same
thing. The OpenAPI document and the open queue's JSON Schemas are generated from these models.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, NotRequired, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from indexing.errors import QuernError
from indexing.formats import FORMATS, ParseError, declared_format
from indexing.formats.archives import ARCHIVE_FORMAT
from indexing.models import Status

MAX_NAME = 255
MAX_KEY = 255
MAX_ENCODING = 64
MAX_CHUNK_SIZE = 100_000
MAX_WHOLE_NUMBER = 2**63 - 1  # a database bigint
# What base64.b64decode(validate=True) takes: the RFC 4648 alphabet in padded groups of four.
BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
MISSING_NAME = 'Give the document a name, e.g. {"name": "notes.csv", "content": "..."}.'


# The document formats Quern reads: one list, the parsers' own (indexing.formats.FORMATS).
Format = StrEnum("Format", {name.upper(): name for name in FORMATS})
# What a stored document is: one of the formats, or an archive whose files became documents.
DocumentFormat = StrEnum("DocumentFormat", {name.upper(): name for name in (*FORMATS, ARCHIVE_FORMAT)})


FORMAT_LABELS = {
    Format.CSV: "CSV",
    Format.JSONL: "JSON Lines",
    Format.JSON: "JSON",
    Format.HTML: "HTML",
    Format.MARKDOWN: "Markdown",
    Format.TEXT: "Plain text",
}


# --- what comes in --------------------------------------------------------------------------


def _refuse(code: str, message: str) -> PydanticCustomError:
    # No context given: the message is used as written (user input in it is never formatted).
    return PydanticCustomError(code, message)


def _whole_number(name: str, value: Any) -> int | None:
    """A JSON integer, or a string of ASCII digits (multipart fields and query strings are text)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdecimal())
    ):
        raise _refuse("bad_parameter", f"{name} must be a positive whole number; got {value!r}.")
    number = int(value)
    if not 0 <= number <= MAX_WHOLE_NUMBER:
        raise _refuse("bad_parameter", f"{name} must be a positive whole number; got {value!r}.")
    return number


def checked_idempotency_key(value: Any) -> str | None:
    """The Idempotency-Key header and the idempotency_key field follow one rule."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY:
        raise _refuse("bad_idempotency_key", f"idempotency_key must be 1 to {MAX_KEY} characters of text.")
    if "\x00" in value or not _utf8(value):  # the database cannot store (nor look up) either
        raise _refuse(
            "bad_idempotency_key",
            "idempotency_key must not hold a NUL character or an unpaired surrogate.",
        )
    return value


class SubmitOptions(BaseModel):
    """How to read a document: the options every way of submitting shares.

    Form fields, query strings and the command line are text, so here (`lenient`) an empty value
    means absent, a number may come as digits and a format may be an alias ("md", "text/csv").
    The open queue's message is a closed JSON format (SubmitMessage, not lenient): JSON types
    only, exactly as its published JSON Schema says. The rules and their codes are the same.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
    lenient: ClassVar[bool] = True

    format: Format | None = Field(
        default=None,
        description="csv, jsonl, json, html, markdown or text; else from the name or content. "
        "Over HTTP and the command line an alias also does: md, txt, ndjson, or a MIME type.",
    )
    encoding: str | None = Field(
        default=None,
        description="The bytes' encoding if not UTF-8 (e.g. cp1252).",
        json_schema_extra={"minLength": 1, "maxLength": MAX_ENCODING},
    )
    chunk_size: int | None = Field(
        default=None,
        description="Records per index task.",
        json_schema_extra={"minimum": 1, "maximum": MAX_CHUNK_SIZE},
    )
    idempotency_key: str | None = Field(
        default=None,
        description="The same key again (over AMQP or as the HTTP Idempotency-Key header) returns the "
        "same job, never a second one.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_KEY},
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Your own data, kept on the job and returned in its JSON, replies and events.",
    )

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Format | None:
        if value is None or (cls.lenient and value == ""):
            return None
        if cls.lenient:
            if not isinstance(value, str):
                raise _refuse("bad_parameter", "format must be a string, e.g. csv.")
            try:
                return Format(declared_format(value))
            except ParseError as error:
                raise _refuse(error.code, error.message) from None
        if isinstance(value, str) and value in Format._value2member_map_:
            return Format(value)
        raise _refuse("unknown_format", f"format must be one of {', '.join(Format)}; got {value!r}.")

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> str | None:
        if value is None or (cls.lenient and value == ""):
            return None
        if cls.lenient and not isinstance(value, str):
            raise _refuse("bad_parameter", "encoding must be a string, e.g. cp1252.")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_ENCODING:
            raise _refuse(
                "bad_encoding",
                f"encoding must be the name of an encoding, 1 to {MAX_ENCODING} characters.",
            )
        return value

    @field_validator("chunk_size", mode="before")
    @classmethod
    def _chunk_size(cls, value: Any) -> int | None:
        if cls.lenient:
            number = _whole_number("chunk_size", value)
        elif value is None:
            number = None
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)  # 5.0 is an integer to JSON Schema too
        else:
            raise _refuse("bad_chunk_size", f"chunk_size must be a whole number; got {value!r}.")
        if number is not None and not 1 <= number <= MAX_CHUNK_SIZE:
            raise _refuse(
                "bad_chunk_size", f"chunk_size must be between 1 and {MAX_CHUNK_SIZE:,}; got {number}."
            )
        return number

    @field_validator("idempotency_key", mode="before")
    @classmethod
    def _idempotency_key(cls, value: Any) -> str | None:
        return checked_idempotency_key(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> dict[str, Any] | None:
        if value is not None and not isinstance(value, dict):
            raise _refuse("bad_metadata", "metadata must be a JSON object.")
        if value is not None and not _storable_json(value):
            raise _refuse(
                "bad_metadata",
                "metadata must not hold a NUL character (\\u0000) or an unpaired surrogate "
                "(\\ud800-\\udfff) in its keys or strings: the database cannot store them.",
            )
        return value


def _storable_json(value: Any) -> bool:
    """No key or string of a JSON value holds what PostgreSQL's jsonb refuses: NUL, or a lone
    surrogate (a JSON escape \\ud800-\\udfff that no pair completed). Walked with a stack, not
    recursion: a submitter's metadata may nest deeper than Python's recursion limit allows."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and ("\x00" in item or not _utf8(item)):
            return False
    return True


def _utf8(text: str) -> bool:
    """Encodable as UTF-8: no lone surrogate (the encoder, in C, finds one; ASCII needs no look)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class ApiSubmitOptions(SubmitOptions):
    """The HTTP API's options: those of every submission, and `replace`."""

    replace: int | None = Field(default=None, description="Make this a new version of that document.")

    @field_validator("replace", mode="before")
    @classmethod
    def _replace(cls, value: Any) -> int | None:
        return _whole_number("replace", value)


_RAW = "raw"  # where a validation's context keeps the document's bytes once made


def _keep(info: ValidationInfo, raw: bytes) -> None:
    if info.context is not None:
        info.context[_RAW] = raw


class InlineDocument(BaseModel):
    """A document carried in the message itself: a name, and its text or its bytes in base64."""

    name: str = Field(
        description="The document's name; its extension picks the format unless format is given.",
        examples=["products.csv"],
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_NAME,
            "pattern": "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$",
        },
    )
    content: str | None = Field(
        default=None, validate_default=True, description="The document as text (stored as UTF-8)."
    )
    content_base64: str | None = Field(
        default=None,
        validate_default=True,
        description="The document's bytes, base64 (RFC 4648).",
        json_schema_extra={"contentEncoding": "base64", "pattern": BASE64},
    )
    _raw: bytes = PrivateAttr(default=b"")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _refuse("missing_name", MISSING_NAME)
        if len(value) > MAX_NAME or "\x00" in value:
            raise _refuse("bad_name", f"name must be at most {MAX_NAME} characters, without NUL.")
        return value

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _refuse("bad_content", "content must be a string; use content_base64 for bytes.")
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape ("\ud800") is valid JSON but no text
            raise _refuse(
                "bad_content", "content holds an unpaired surrogate; send bytes as content_base64."
            ) from None
        _keep(info, raw)
        return value

    @field_validator("content_base64", mode="before")
    @classmethod
    def _content_base64(cls, value: Any, info: ValidationInfo) -> str | None:
        # Checked here, not after the model, so a missing content is reported before a bad option.
        if value is not None and not isinstance(value, str):
            raise _refuse("bad_content", "content_base64 must be a base64 string.")
        content_ok = "content" in info.data  # a bad content reports itself
        if content_ok and (info.data["content"] is None) == (value is None):
            raise _refuse(
                "bad_content",
                "Give exactly one of content (text) or content_base64 (bytes); the other null or absent.",
            )
        if value is not None:
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _refuse(
                    "bad_content", "content_base64 is not valid base64 (RFC 4648, no line breaks)."
                ) from None
            _keep(info, raw)
        return value

    @model_validator(mode="after")
    def _keep_bytes(self, info: ValidationInfo) -> InlineDocument:
        # A message may be 32 MiB: the bytes the validators made are kept, not made again.
        kept = info.context.get(_RAW) if info.context else None
        if kept is not None:
            self._raw = kept
        elif self.content is not None:
            self._raw = self.content.encode("utf-8")
        else:
            self._raw = base64.b64decode(self.content_base64 or "")
        return self

    @property
    def raw(self) -> bytes:
        """The document's bytes."""
        return self._raw


# Exactly one of content / content_base64: in the published schema as in the validator above.
_ONE_CONTENT = {
    "oneOf": [
        {
            "properties": {"content": {"type": "string"}},
            "required": ["content"],
            "not": {"required": ["content_base64"], "properties": {"content_base64": {"type": "string"}}},
        },
        {
            "properties": {"content_base64": {"type": "string"}},
            "required": ["content_base64"],
            "not": {"required": ["content"], "properties": {"content": {"type": "string"}}},
        },
    ]
}


class SubmitJson(InlineDocument, ApiSubmitOptions):
    """POST /api/documents with an application/json body."""

    model_config = ConfigDict(extra="ignore", frozen=False, json_schema_extra=_ONE_CONTENT)


class SubmitMessage(InlineDocument, SubmitOptions):
    """The body of a message on the open queue quern.submit: a closed format, unknown fields refused."""

    lenient: ClassVar[bool] = False

    model_config = ConfigDict(
        extra="forbid",
        frozen=False,
        title="Quern submit message",
        json_schema_extra={
            **_ONE_CONTENT,
            "description": "The body of a message published to the durable queue quern.submit (default "
            "exchange), content_type application/json. Give exactly one of content / content_base64. "
            "Optional AMQP properties: reply_to (a queue that receives the job when accepted and again "
            "when it ends — once, when it ended as it was taken —, or an error) and correlation_id "
            "(copied onto every reply). A message over "
            "QUERN_MAX_MESSAGE_BYTES or breaking this schema is moved to quern.submit.rejected with "
            "headers x-quern-error and x-quern-error-code.",
        },
    )


class SubmitMultipart(ApiSubmitOptions):
    """POST /api/documents as multipart/form-data: files, and the options as form fields."""

    model_config = ConfigDict(json_schema_extra={"required": ["file"]})

    name: str | None = Field(default=None, description="Renames a single file.")
    # Documented here; the files themselves are streamed to storage by the endpoint, not validated.
    file: list[bytes] = Field(
        default_factory=list, json_schema_extra={"items": {"type": "string", "format": "binary"}}
    )


M = TypeVar("M", bound=BaseModel)

# The codes the validators above raise; pydantic's own error types become bad_parameter.
CODES = frozenset(
    {
        "bad_parameter",
        "unknown_format",
        "bad_encoding",
        "bad_chunk_size",
        "bad_idempotency_key",
        "bad_metadata",
        "missing_name",
        "bad_name",
        "bad_content",
    }
)

# Field order is the order a person fixes a message in; an unknown field is reported first.
_ERROR_ORDER = ("name", "content", "content_base64", "format", "chunk_size", "replace", "metadata")


def as_quern_error(error: ValidationError) -> QuernError:
    """The one error a person should fix first, with its stable code."""
    problems = error.errors(include_url=False)
    unknown = sorted(str(p["loc"][-1]) for p in problems if p["type"] == "extra_forbidden")
    if unknown:
        allowed = ", ".join(sorted(SubmitMessage.model_fields))
        return QuernError("unknown_field", f"Unknown field(s) {', '.join(unknown)}; allowed: {allowed}.")

    def rank(problem: dict[str, Any]) -> int:
        field = str(problem["loc"][0]) if problem["loc"] else ""
        return _ERROR_ORDER.index(field) if field in _ERROR_ORDER else len(_ERROR_ORDER)

    first = min(problems, key=rank)
    if first["type"] in ("json_invalid", "model_type", "model_attributes_type", "dict_type"):
        return QuernError("invalid_json", "The body must be a JSON object with name and content.")
    where = ".".join(str(part) for part in first["loc"])
    field = str(first["loc"][0]) if first["loc"] else None
    if first["type"] == "missing" and where == "name":
        return QuernError("missing_name", MISSING_NAME, field=field)
    if first["type"] in CODES:
        # An unknown format is an unsupported media type to HTTP (415), as in the pipeline.
        status = 415 if first["type"] == "unknown_format" else None
        return QuernError(first["type"], first["msg"], field=field, status=status)
    message = f"{where}: {first['msg']}." if where else f"{first['msg']}."
    return QuernError("bad_parameter", message, field=field)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A request or message body that must be one JSON object."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise QuernError("invalid_json", f"The body is not valid JSON: {error}.") from None
    except RecursionError:
        raise QuernError(
            "invalid_json", "The body nests arrays or objects too deeply to read; a document needs far fewer."
        ) from None
    if not isinstance(data, dict):
        raise QuernError("invalid_json", "The body must be a JSON object with name and content.")
    return data


def validated(model: type[M], data: dict[str, Any]) -> M:
    """`data` checked by `model`, or the QuernError a person should fix first."""
    try:
        return model.model_validate(data, context={})
    except ValidationError as error:
        raise as_quern_error(error) from None


def parse_submit_message(body: bytes, *, max_bytes: int) -> SubmitMessage:
    """An open-queue message body, checked against the submit format."""
    if len(body) > max_bytes:
        raise QuernError(
            "too_large",
            f"The message is {len(body):,} bytes; Quern takes at most {max_bytes:,} "
            "(QUERN_MAX_MESSAGE_BYTES). Send bigger documents through the HTTP API, which streams them.",
        )
    return validated(SubmitMessage, parse_json_object(body))


# --- what goes out --------------------------------------------------------------------------

Moment = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class JobError(TypedDict):
    """One problem a job met: a bad record (skipped) or what failed the job."""

    message: str
    code: NotRequired[str]
    line: NotRequired[int]
    record: NotRequired[int]
    byte: NotRequired[int]


class DocumentRef(BaseModel):
    id: int
    name: str
    format: DocumentFormat
    size: int
    sha256: str


class Progress(BaseModel):
    records_total: int = Field(ge=0)
    records_indexed: int = Field(ge=0)
    chunks_total: int = Field(ge=0)
    chunks_done: int = Field(ge=0)


class Job(BaseModel):
    """A job, as GET /api/jobs/<id>, the job page, the AMQP replies and the events show it."""

    id: int
    status: Status
    source: str
    document: DocumentRef
    chunk_size: int
    progress: Progress
    errors: list[JobError]
    error_count: int
    created_at: Moment
    started_at: Moment | None
    split_finished_at: Moment | None
    finished_at: Moment | None
    url: str
    metadata: dict[str, Any] = Field(description="The submitter's own data (AMQP submit messages).")
    archive: int | None = Field(
        default=None,
        description="The archive job whose file this document was (its format is archive: its "
        "progress counts the files found and stored as documents).",
    )

    @classmethod
    def of(cls, job: Any) -> Job:
        """From a Job row (with its document selected)."""
        return cls.model_construct(
            id=job.pk,
            status=Status(job.status),
            source=job.source,
            document=DocumentRef.model_construct(
                id=job.document_id,
                name=job.document.name,
                format=DocumentFormat(job.format),
                size=job.size,
                sha256=job.sha256,
            ),
            chunk_size=job.chunk_size,
            progress=Progress.model_construct(
                records_total=job.records_total,
                records_indexed=job.records_indexed,
                chunks_total=job.chunks_total,
                chunks_done=job.chunks_done,
            ),
            errors=job.errors,
            error_count=job.error_count,
            created_at=job.created_at,
            started_at=job.split_started_at,
            split_finished_at=job.split_finished_at,
            finished_at=job.finished_at,
            url=job.get_absolute_url(),
            archive=job.archive_id,
            metadata=job.metadata,
        )


class JobList(BaseModel):
    total: int
    limit: int
    offset: int
    results: list[Job]


class Document(BaseModel):
    id: int
    name: str
    format: DocumentFormat
    size: int
    sha256: str
    title: str
    live_job: int | None
    created_at: Moment

    @classmethod
    def of(cls, document: Any) -> Document:
        return cls.model_construct(
            id=document.pk,
            name=document.name,
            format=DocumentFormat(document.format),
            size=document.size,
            sha256=document.sha256,
            title=document.title,
            live_job=document.live_job_id,
            created_at=document.created_at,
        )


class RecordRef(BaseModel):
    id: int
    key: str
    title: str
    fields: dict[str, Any]


class DocumentName(BaseModel):
    id: int
    name: str


class HitOut(BaseModel):
    score: float
    snippet: str = Field(description="HTML: text escaped, matches in <mark>.")
    record: RecordRef
    document: DocumentName


class Match(StrEnum):
    """How a query's bare words count: `any` ranks records holding some of them (a sentence finds
    its best partial matches); `all` requires every one."""

    ANY = "any"
    ALL = "all"


class CorrectionOut(BaseModel):
    typed: str
    to: str = Field(description="The close word of the live vocabulary searched for it.")


class SearchResults(BaseModel):
    """A page of search hits, as GET /api/search and the search page show it."""

    query: str
    match: Match
    total: int
    total_exact: bool = Field(
        description="False when many records match: `total` is then an estimate, and the hits are "
        "the best of a bounded set of candidates (its rarest words' matches)."
    )
    ranked: int = Field(
        description="How many hits the pages reach (an `offset` past it returns none): `total` when "
        "exact, else the candidates ranked, at most 1,000 — fewer when the query's rarest words "
        "match fewer records than `total` estimates."
    )
    corrected_query: str | None = Field(
        description="The query as searched when a word that matches nothing was replaced by a close "
        'word of the live vocabulary: "showing results for …".'
    )
    corrections: list[CorrectionOut]
    completions: list[str] = Field(description="Words of the live vocabulary the last word was completed to.")
    limit: int
    offset: int
    took_ms: float
    hits: list[HitOut]

    @classmethod
    def of(cls, query: str, searched: Any, *, match: Match, limit: int, offset: int) -> SearchResults:
        """From a search's outcome (indexing.search.Searched)."""
        page = searched.page
        return cls.model_construct(
            query=query,
            match=match,
            total=page.total,
            total_exact=page.total_exact,
            ranked=page.ranked,
            corrected_query=searched.corrected,
            corrections=[CorrectionOut.model_construct(typed=t, to=to) for t, to in searched.corrections],
            completions=searched.completed,
            limit=limit,
            offset=offset,
            took_ms=page.took_ms,
            hits=[
                HitOut.model_construct(
                    score=hit.score,
                    snippet=hit.snippet,
                    record=RecordRef.model_construct(
                        id=hit.record_id, key=hit.key, title=hit.title, fields=hit.fields
                    ),
                    document=DocumentName.model_construct(id=hit.document_id, name=hit.document_name),
                )
                for hit in page.hits
            ],
        )


class Suggestions(BaseModel):
    """Completions of the last word of `query` from the live vocabulary, most frequent first."""

    query: str
    suggestions: list[str] = Field(description="The query with its last word completed.")
    words: list[str] = Field(description="The completed words themselves.")

    @classmethod
    def of(cls, query: str, words: list[str]) -> Suggestions:
        head = query[: len(query.rstrip()) - len(query.rstrip().split()[-1])] if query.strip() else ""
        return cls.model_construct(query=query, suggestions=[head + w for w in words], words=words)


class ErrorDetail(TypedDict):
    """What went wrong, and where (line, record or byte) when that is known."""

    code: str
    message: str
    line: NotRequired[int]
    record: NotRequired[int]
    byte: NotRequired[int]


class Error(BaseModel):
    """Every error the API, the AMQP replies and the dead-letter headers give: a code and a message."""

    model_config = ConfigDict(title="Error", extra="forbid")

    error: ErrorDetail

    @classmethod
    def of(cls, error: QuernError) -> Error:
        return cls.model_validate({"error": error.as_dict()})


class Event(Job):
    """`job.<status>` on the topic exchange quern.events: the job, the routing key and an id.

    Every copy of one event carries the same event_id: consumers drop duplicates by it.
    """

    model_config = ConfigDict(title="Quern job event")

    event: Literal["job.succeeded", "job.failed", "job.cancelled"]
    event_id: str = Field(
        description="The same for every copy of one event.", json_schema_extra={"format": "uuid"}
    )


Reply = TypeAdapter(Job | Error)

# --- the open queue's published JSON Schemas ------------------------------------------------


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


@functools.cache
def message_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the open queue's messages, generated from the models that check them."""
    reply = Reply.json_schema(mode="serialization")
    reply["oneOf"] = reply.pop("anyOf")  # a job or an error, never both
    reply["title"] = "Quern reply to a submit message"
    reply["description"] = (
        "Sent to the submit message's reply_to queue (default exchange) with its correlation_id: the job "
        "(as GET /api/jobs/<id>) once when accepted and once when it ends; or, for a message Quern will "
        "not take, an error."
    )
    return {
        "submit": _closed(SubmitMessage.model_json_schema()),
        "event": _closed(Event.model_json_schema(mode="serialization")),
        "reply": _closed(reply),
    }
