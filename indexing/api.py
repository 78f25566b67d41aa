"""The JSON API on Django Ninja: validate, call one pipeline function, shape through the schemas.

Errors always answer JSON in one shape, `{"error": {"code", "message"}}` (schemas.Error),
never an HTML page. The OpenAPI 3.1 document is generated at /api/schema, the interactive docs
at /api/docs. Answers are written straight from the schema models (pydantic's own serializer):
Ninja's response validation of a model just built by the same schema would cost time on every
search and check nothing new.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, reverse
from django.views.decorators.csrf import csrf_exempt
from ninja import Header, NinjaAPI, Query
from ninja.errors import HttpError, ValidationError
from ninja.security import HttpBearer
from ninja.throttling import SimpleRateThrottle
from pydantic import BaseModel, BeforeValidator, TypeAdapter
from pydantic_core import PydanticUseDefault

from indexing import access, pipeline, schemas
from indexing.errors import NO_ROOM, QuernError, StorageFull
from indexing.formats.archives import is_archive
from indexing.models import ApiKey, Document, Job, Scope, Source, Status
from indexing.pipeline import backpressure
from indexing.pipeline.status import snapshot
from indexing.schemas import (
    JobList,
    Match,
    SearchResults,
    Suggestions,
    message_schemas,
    parse_json_object,
    validated,
)
from indexing.search import search as search_records
from indexing.search import suggest as suggest_words

logger = logging.getLogger(__name__)

MAX_LIMIT = 100


def _blank_is_absent(value: Any) -> Any:
    if value == "":
        raise PydanticUseDefault
    return value


# A query parameter given empty (?limit=) means the default, as a form left blank does.
Blank = BeforeValidator(_blank_is_absent)
JOBS = TypeAdapter(list[schemas.Job])
JSON_OBJECT = TypeAdapter(dict[str, Any])
SUBMISSIONS = (schemas.SubmitJson, schemas.SubmitMultipart)
JSON_LINES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")


class QuernAPI(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Ninja's document, plus what it cannot infer: the two submission bodies and itself."""
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (*SUBMISSIONS, schemas.Error):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        schema["paths"]["/" + path_prefix.strip("/") + self.openapi_url] = {
            "get": {
                "operationId": "openapi_schema",
                "summary": "This OpenAPI document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        }
        return schema


class TooManyRequests(QuernError):
    status = 429

    def __init__(self, what: str, rate: str, setting: str, wait: float | None) -> None:
        self.retry_after = max(1, math.ceil(wait or 1))
        super().__init__(
            "too_many_requests",
            f"Too many requests from this {what}: at most {rate} ({setting}). "
            f"Try again in {self.retry_after} s.",
        )


class _Rate(SimpleRateThrottle):
    """Ninja's sliding window for one identity, made per request (it keeps state while it checks);
    counted in this web process's cache."""

    def __init__(self, rate: str, ident: str) -> None:
        self.ident = ident
        super().__init__(rate)

    def get_cache_key(self, request: HttpRequest | None) -> str:
        return f"quern_rate_{self.ident}"


def _hold_to(rate: str, ident: str, what: str, setting: str) -> None:
    if rate:
        window = _Rate(rate, ident)
        if not window.allow_request(None):  # type: ignore[arg-type]
            raise TooManyRequests(what, rate, setting, window.wait())


class Key(HttpBearer):
    """An operation's door: the caller's address within its rate, then (when keys are required)
    a key with one of `scopes` and within its own rate. 401/403/429 in the API's error shape."""

    def __init__(self, *scopes: str, public: Callable[[], bool] = lambda: False) -> None:
        super().__init__()
        self.scopes = scopes
        self.public = public

    def __call__(self, request: HttpRequest) -> Any:
        address = access.client_address(request)
        _hold_to(settings.QUERN_RATE_PER_ADDRESS, f"a:{address}", "address", "QUERN_RATE_PER_ADDRESS")
        if not access.required() or self.public():
            return True  # the embedded first try, or a public search: no key asked
        # The pages' own reads (live search, job progress, status) with the login's session; the
        # status needs staff, as its page does.
        user = getattr(request, "user", None)
        signed_in = request.method == "GET" and user is not None and user.is_authenticated
        if signed_in and (user.is_staff or Scope.ADMIN not in self.scopes):
            return user
        key = access.authenticate(request.headers.get("Authorization", ""), self.scopes)
        _hold_to(settings.QUERN_RATE_PER_KEY, f"k:{key.prefix}", "API key", "QUERN_RATE_PER_KEY")
        return key

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # __call__ does it all
        raise NotImplementedError


SEARCHING = Key(Scope.SEARCH, public=lambda: settings.QUERN_PUBLIC_SEARCH)
SUBMITTING = Key(Scope.SUBMIT)
READING = Key(Scope.SUBMIT, Scope.MANAGE)  # a submitter follows its jobs; a manager acts on them
MANAGING = Key(Scope.MANAGE)
ADMINISTERING = Key(Scope.ADMIN)


api = QuernAPI(
    title="Quern",
    version="1",
    description="Queue-driven document indexing: submit documents, follow their jobs, search the records.",
    urls_namespace="api",
    openapi_url="/schema",
    docs_url="/docs",
)


# --- answers ---------------------------------------------------------------------------------


def _json(body: bytes, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="application/json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _model(model: BaseModel, status: int = 200, **headers: str) -> HttpResponse:
    return _json(model.model_dump_json().encode(), status, **headers)


def _error(error: QuernError) -> HttpResponse:
    response = _model(schemas.Error.of(error), error.status)
    if getattr(error, "retry_after", None):
        response["Retry-After"] = str(error.retry_after)
    return response


def _accepted(jobs: list[Job]) -> HttpResponse:
    location = reverse("api:job", args=[jobs[0].pk])
    if len(jobs) == 1:
        return _model(schemas.Job.of(jobs[0]), 202, Location=location)
    return _json(JOBS.dump_json([schemas.Job.of(job) for job in jobs]), 202, Location=location)


@api.exception_handler(QuernError)
def _quern_error(request: HttpRequest, error: QuernError) -> HttpResponse:
    return _error(error)


@api.exception_handler(ValidationError)
def _bad_parameter(request: HttpRequest, error: ValidationError) -> HttpResponse:
    first = error.errors[0]
    name = str(first["loc"][-1]) if first.get("loc") else "a parameter"
    return _error(QuernError("bad_parameter", f"{name}: {first['msg']}."))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
    # Ninja's own refusals (a body it cannot parse, and later auth and throttling) in our shape.
    codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "too_many_requests"}
    code = codes.get(error.status_code, "bad_request")
    return _error(QuernError(code, str(error), status=error.status_code))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, error: Http404) -> HttpResponse:
    return _error(QuernError("not_found", str(error) or f"Nothing at {request.path}.", status=404))


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, error: RequestDataTooBig) -> HttpResponse:
    return _error(QuernError("too_large", "The request body is larger than this server accepts.", status=413))


@api.exception_handler(SuspiciousOperation)
def _refused(request: HttpRequest, error: SuspiciousOperation) -> HttpResponse:
    # e.g. too many files or fields in one request
    return _error(QuernError("bad_request", f"The request was refused: {error}."))


@api.exception_handler(OSError)
def _os_error(request: HttpRequest, error: OSError) -> HttpResponse:
    # The upload's own spool (Django's temporary upload files) on a full disk: the server's room,
    # not a crash. Anything else of the operating system is unexpected.
    if error.errno in NO_ROOM:
        return _error(StorageFull("The request"))
    return _unexpected(request, error)


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, error: Exception) -> HttpResponse:
    # The API never answers with an HTML page; the traceback goes to the log.
    logger.error("Unexpected error in %s", request.path, exc_info=error)
    return _error(
        QuernError("internal_error", "Quern hit an unexpected error; it has been logged.", status=500)
    )


ERRORS = {
    400: schemas.Error,
    401: schemas.Error,
    403: schemas.Error,
    404: schemas.Error,
    405: schemas.Error,
    429: schemas.Error,
}


# --- documents -------------------------------------------------------------------------------


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}


@api.post(
    "/documents",
    url_name="documents",
    auth=SUBMITTING,
    summary="Submit documents: one job per file",
    response={
        202: schemas.Job | list[schemas.Job],
        413: schemas.Error,
        415: schemas.Error,
        503: schemas.Error,
        507: schemas.Error,
        **ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": _body(schemas.SubmitMultipart),
                "application/json": _body(schemas.SubmitJson),
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "One SubmitJson object per line."}
                },
            },
        }
    },
)
def submit_documents(
    request: HttpRequest,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="A key used before (here or as an AMQP idempotency_key) returns that job; "
        "one file per request.",
    ),
) -> HttpResponse:
    backpressure.check()  # 503 + Retry-After past the limit, before reading the body
    content_type = request.content_type or ""
    if content_type == "multipart/form-data":
        return _submit_files(request, idempotency_key)
    if content_type == "application/json":
        return _submit_json(request, idempotency_key)
    if content_type in JSON_LINES:
        return _submit_json_lines(request)
    raise QuernError(
        "unsupported_media_type",
        "Send multipart/form-data with a 'file' field, application/json with name and content, "
        "or application/x-ndjson with one such object per line.",
        status=415,
    )


def _may_replace(request: HttpRequest, replace: int | None) -> None:
    """A new version of an existing document overwrites what others submitted: `manage`, not
    `submit` alone."""
    key = getattr(request, "auth", None)
    if replace is not None and isinstance(key, ApiKey) and not {Scope.MANAGE, Scope.ADMIN} & set(key.scopes):
        raise QuernError(
            "forbidden",
            f"API key {key.prefix}… may {', '.join(key.scopes)}; replacing document {replace} needs "
            "the scope manage.",
            status=403,
        )


def _with_key(data: dict[str, Any], key: str | None) -> dict[str, Any]:
    return data if key is None else {**data, "idempotency_key": key}


def _submit_files(request: HttpRequest, key: str | None) -> HttpResponse:
    files = request.FILES.getlist("file")
    if not files:
        raise QuernError("missing_file", "Attach the document in a multipart field named 'file'.")
    fields = {
        name: request.POST.get(name) for name in ("name", "format", "encoding", "chunk_size", "replace")
    }
    options = validated(schemas.SubmitMultipart, _with_key(fields, key))
    _may_replace(request, options.replace)
    if len(files) > 1 and options.replace is not None:
        raise QuernError("bad_parameter", "replace takes one file at a time.")
    if len(files) > 1 and options.idempotency_key is not None:
        raise QuernError(
            "bad_parameter", "An Idempotency-Key stands for one document: send one file per request."
        )
    # A name given with a single file renames it; with several files each keeps its own.
    given_name = options.name if len(files) == 1 else None
    with transaction.atomic():  # all the files or none; the splits are sent after the one commit
        jobs = [
            job
            for file in files
            for job in pipeline.submit_upload(
                file,
                name=given_name or file.name,
                size=file.size,
                options=options,
                source=Source.API,
                replace=options.replace,
            )
        ]
    return _accepted(jobs)


def _submit_json(request: HttpRequest, key: str | None) -> HttpResponse:
    submission = validated(schemas.SubmitJson, _with_key(parse_json_object(request.body), key))
    _may_replace(request, submission.replace)
    return _accepted(_submitted(submission))


def _submitted(submission: schemas.SubmitJson) -> list[Job]:
    """A JSON submission's document, or its archive's documents."""
    return pipeline.submit_upload(
        io.BytesIO(submission.raw),
        name=submission.name,
        size=len(submission.raw),
        options=submission,
        source=Source.API,
        replace=submission.replace,
    )


def _submit_json_lines(request: HttpRequest) -> HttpResponse:
    """Many documents in one request: a JSON object per line, each as the JSON body takes it."""
    lines = [line for line in request.body.splitlines() if line.strip()]
    if not lines:
        raise QuernError("empty_body", "The body holds no documents: send one JSON object per line.")
    if len(lines) > settings.QUERN_MAX_BULK_DOCUMENTS:
        raise QuernError(
            "too_many_documents",
            f"{len(lines):,} documents in one request; at most {settings.QUERN_MAX_BULK_DOCUMENTS:,} "
            "(QUERN_MAX_BULK_DOCUMENTS). Send them in several requests.",
            status=413,
        )
    submissions = []
    for number, line in enumerate(lines, start=1):
        try:
            submissions.append(validated(schemas.SubmitJson, parse_json_object(line)))
        except QuernError as error:
            raise QuernError(error.code, f"Line {number}: {error.message}", line=number) from None
    for submission in submissions:
        _may_replace(request, submission.replace)
    with transaction.atomic():  # all the documents or none
        if any(s.replace is not None or is_archive(s.name) for s in submissions):
            jobs = [job for submission in submissions for job in _submitted(submission)]
        else:  # the usual bulk: plain documents, written together
            results = pipeline.submit_many(
                (pipeline.Incoming(io.BytesIO(s.raw), s.name, s) for s in submissions), source=Source.API
            )
            for number, result in enumerate(results, start=1):
                if isinstance(result, QuernError):
                    raise QuernError(
                        result.code, f"Line {number}: {result.message}", line=number, status=result.status
                    )
            jobs = results
    return _accepted(jobs)


@api.get(
    "/documents/{int:document_id}",
    url_name="document",
    auth=READING,
    summary="A document: its name, format, size, sha256 and live job",
    response={200: schemas.Document, **ERRORS},
)
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        raise QuernError("not_found", f"There is no document {document_id}.", status=404)
    return _model(schemas.Document.of(document))


@api.post(
    "/documents/{int:document_id}/reindex",
    url_name="document-reindex",
    auth=MANAGING,
    summary="Re-index a stored document: a new job; the live version stays until it succeeds",
    response={202: schemas.Job, 409: schemas.Error, 410: schemas.Error, **ERRORS},
)
def document_reindex(request: HttpRequest, document_id: int) -> HttpResponse:
    return _accepted([pipeline.reindex(document_id, source=Source.API)])


# --- jobs ------------------------------------------------------------------------------------


@api.get(
    "/jobs", url_name="jobs", auth=READING, summary="Jobs, newest first", response={200: JobList, **ERRORS}
)
def jobs(
    request: HttpRequest,
    status: Annotated[Status | None, Blank] = None,
    archive: Annotated[int | None, Blank] = Query(
        None, ge=1, le=2**63 - 1, description="Only the jobs of this archive job's files."
    ),
    limit: Annotated[int, Blank] = Query(20, ge=1, le=MAX_LIMIT),
    offset: Annotated[int, Blank] = Query(0, ge=0, le=10**9),
) -> HttpResponse:
    queryset = Job.objects.select_related("document").order_by("-id")
    if status:
        queryset = queryset.filter(status=status)
    if archive:
        queryset = queryset.filter(archive_id=archive)
    page = [schemas.Job.of(job) for job in queryset[offset : offset + limit]]
    return _model(JobList.model_construct(total=queryset.count(), limit=limit, offset=offset, results=page))


@api.get(
    "/jobs/{int:job_id}",
    url_name="job",
    auth=READING,
    summary="A job: status, progress, errors and timings",
    response={200: schemas.Job, **ERRORS},
)
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = Job.objects.select_related("document").filter(pk=job_id).first()
    if job is None:
        raise QuernError("not_found", f"There is no job {job_id}.", status=404)
    return _model(schemas.Job.of(job))


@api.post(
    "/jobs/{int:job_id}/cancel",
    url_name="job-cancel",
    auth=MANAGING,
    summary="Cancel an unfinished job: it ends cancelled, its records are removed, "
    "the previous version stays",
    response={200: schemas.Job, 409: schemas.Error, **ERRORS},
)
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = pipeline.cancel(job_id)
    return _model(schemas.Job.of(Job.objects.select_related("document").get(pk=job.pk)))


@api.post(
    "/jobs/{int:job_id}/retry",
    url_name="job-retry",
    auth=MANAGING,
    summary="Retry a failed or cancelled job: a new job over the same input",
    response={202: schemas.Job, 409: schemas.Error, 410: schemas.Error, **ERRORS},
)
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    return _accepted([pipeline.retry(job_id, source=Source.API)])


# --- search, status, schemas -----------------------------------------------------------------


@api.get(
    "/search",
    url_name="search",
    auth=SEARCHING,
    summary="Ranked hits (BM25, title above body), each with an HTML-escaped snippet, matches in <mark>",
    description='Words, "quoted phrases", `OR` and `-excluded`, as in a web search. By default a '
    "sentence finds its best partial matches, rare words counting most; `match=all` requires every "
    "word. A word that matches nothing is replaced by a close word of the live vocabulary "
    "(`corrected_query`); the last word, still being typed, also matches as a prefix. When many "
    "records match, the best of 1,000 candidates are ranked (`total_exact` false, `total` an "
    "estimate): pages end there.",
    response={200: SearchResults, **ERRORS},
)
def search(
    request: HttpRequest,
    q: str = "",
    limit: Annotated[int, Blank] = Query(10, ge=1, le=MAX_LIMIT),
    offset: Annotated[int, Blank] = Query(0, ge=0, le=10_000),
    document: Annotated[int | None, Blank] = Query(
        None, ge=1, le=2**62, description="Only this document's records."
    ),
    match: Annotated[Match, Blank] = Query(
        Match.ANY, description="`any` (a sentence) or `all` (every word)."
    ),
) -> HttpResponse:
    searched = search_records(
        q, limit=limit, offset=offset, document_id=document, match_all=match == Match.ALL
    )
    return _model(SearchResults.of(q, searched, match=match, limit=limit, offset=offset))


@api.get(
    "/suggest",
    url_name="suggest",
    auth=SEARCHING,
    summary="Completions of the query's last word from the live vocabulary, most frequent first",
    response={200: Suggestions, **ERRORS},
)
def suggest(
    request: HttpRequest,
    q: str = "",
    limit: Annotated[int, Blank] = Query(8, ge=1, le=50),
) -> HttpResponse:
    return _model(Suggestions.of(q, suggest_words(q, limit=limit)))


@api.get(
    "/status",
    url_name="status",
    auth=ADMINISTERING,
    summary="Queues, workers, jobs and throughput now (staff only: it names workers and tasks)",
    response={200: dict[str, Any], **ERRORS},
)
def status(request: HttpRequest) -> HttpResponse:
    by_key = isinstance(request.auth, ApiKey)  # an admin key (its scope checked by ADMINISTERING)
    if not (by_key or (request.user.is_authenticated and request.user.is_staff)):
        raise QuernError(
            "forbidden", "The status is for staff: log in at /admin/ first, or use an admin key.", status=403
        )
    return _json(JSON_OBJECT.dump_json(snapshot()))


@api.get(
    "/schema/messages/{name}",
    url_name="message-schema",
    summary="The JSON Schema of an open-queue message: submit, reply or event",
    response={200: dict[str, Any], **ERRORS},
)
def message_schema(request: HttpRequest, name: str) -> HttpResponse:
    published = message_schemas()
    if name not in published:
        known = ", ".join(sorted(published))
        raise QuernError("not_found", f"There is no message schema {name!r}; there are {known}.", status=404)
    return _json(JSON_OBJECT.dump_json(published[name]))


# --- URLs ------------------------------------------------------------------------------------


def _json_method_errors(view: Callable, methods: tuple[str, ...] | None = None) -> Callable:
    """Answer a wrong method in the API's error shape: Ninja's own 405 is plain text, and its
    schema and docs views take any method."""

    @csrf_exempt  # as every Ninja operation is: the API is not for cookie-authenticated forms
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if methods and request.method not in methods:
            response: HttpResponse = HttpResponseNotAllowed(methods)
        else:
            response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = ", ".join(sorted(response["Allow"].split(", ")))
            methods_text = " or ".join(allowed.split(", "))
            error = QuernError(
                "method_not_allowed", f"{request.method} is not allowed here; use {methods_text}.", status=405
            )
            response = _error(error)
            response["Allow"] = allowed
        return response

    return wrapper


@csrf_exempt
def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(QuernError("not_found", f"There is no API endpoint at {request.path}.", status=404))


def urls() -> tuple[list[URLPattern], str, str]:
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if pattern.name == "api-root":
            # Ninja needs the root's name to place its paths; a request there finds no endpoint.
            pattern.callback = not_found
        elif pattern.name in ("openapi-json", "openapi-view"):
            pattern.callback = _json_method_errors(pattern.callback, ("GET", "HEAD"))
        else:
            pattern.callback = _json_method_errors(pattern.callback)
    return patterns, app_name, namespace
