"""The JSON API: validate, call one service, shape the answer. Errors are always JSON."""
from __future__ import annotations

import io
import json
import logging
import time
from functools import wraps
from pathlib import Path
from typing import Any, Callable

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from indexing import backpressure, services
from indexing.errors import QuernError
from indexing.messages import MessageError, document_bytes
from indexing.models import Document, Job, Source, Status
from indexing.openapi import openapi_schema
from indexing.query import parse_query
from indexing.search import get_backend

logger = logging.getLogger(__name__)

MAX_LIMIT = 100
MESSAGE_SCHEMAS = Path(__file__).resolve().parent / "schemas"


def error_response(code: str, message: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def api_view(*methods: str) -> Callable:
    """CSRF-exempt JSON endpoint: wrong method -> 405, QuernError -> its status, anything else -> JSON 500."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                response = error_response(
                    "method_not_allowed", f"{request.method} is not allowed here; use {' or '.join(methods)}.", 405
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except QuernError as error:
                response = JsonResponse({"error": error.as_dict()}, status=error.status)
                if getattr(error, "retry_after", None):
                    response["Retry-After"] = str(error.retry_after)
                return response
            except RequestDataTooBig:
                return error_response("too_large", "The request body is larger than this server accepts.", 413)
            except SuspiciousOperation as error:  # e.g. too many files or fields in one request
                return error_response("bad_request", f"The request was refused: {error}.", 400)
            except Exception:  # the API never answers with an HTML page; the traceback is logged
                logger.exception("Unexpected error in %s", request.path)
                return error_response("internal_error", "Quern hit an unexpected error; it has been logged.", 500)

        return wrapper

    return decorate


# --- shapes -------------------------------------------------------------------------------


def _time(value) -> str | None:
    return value.isoformat() if value else None


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "status": job.status,
        "source": job.source,
        "document": {
            "id": job.document_id,
            "name": job.document.name,
            "format": job.format,
            "size": job.size,
            "sha256": job.sha256,
        },
        "chunk_size": job.chunk_size,
        "progress": {
            "records_total": job.records_total,
            "records_indexed": job.records_indexed,
            "chunks_total": job.chunks_total,
            "chunks_done": job.chunks_done,
        },
        "errors": job.errors,
        "error_count": job.error_count,
        "created_at": _time(job.created_at),
        "started_at": _time(job.split_started_at),
        "split_finished_at": _time(job.split_finished_at),
        "finished_at": _time(job.finished_at),
        "url": job.get_absolute_url(),
        "metadata": job.metadata,
    }


def document_json(document: Document) -> dict[str, Any]:
    return {
        "id": document.pk,
        "name": document.name,
        "format": document.format,
        "size": document.size,
        "sha256": document.sha256,
        "title": document.title,
        "live_job": document.live_job_id,
        "created_at": _time(document.created_at),
    }


def _int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QuernError("bad_parameter", f"{name} must be a whole number; got {raw!r}.") from None
    if not low <= value <= high:
        raise QuernError("bad_parameter", f"{name} must be between {low} and {high}; got {value}.")
    return value


def _accepted(jobs: list[Job]) -> JsonResponse:
    body: Any = job_json(jobs[0]) if len(jobs) == 1 else [job_json(j) for j in jobs]
    response = JsonResponse(body, status=202, safe=False)
    response["Location"] = reverse("api-job", args=[jobs[0].pk])
    return response


# --- endpoints ----------------------------------------------------------------------------


@api_view("POST")
def documents(request: HttpRequest) -> JsonResponse:
    backpressure.check()  # 503 + Retry-After past the limit, before reading the body
    content_type = request.content_type or ""
    if content_type == "multipart/form-data":
        return _submit_files(request)
    if content_type == "application/json":
        return _submit_json(request)
    raise QuernError(
        "unsupported_media_type",
        "Send multipart/form-data with a 'file' field, or application/json with name and content.",
        status=415,
    )


def _idempotency_key(request: HttpRequest) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise QuernError("bad_idempotency_key", "The Idempotency-Key header must be 1 to 255 characters.")
    return key


def _submit_options(data: Any) -> dict[str, Any]:
    options = {
        "format": data.get("format") or None,
        "encoding": data.get("encoding") or None,
        "chunk_size": data.get("chunk_size"),
        "replace": data.get("replace"),
    }
    for name in ("chunk_size", "replace"):
        value = options[name]
        if value in (None, ""):
            options[name] = None
        elif isinstance(value, bool) or not (str(value).isascii() and str(value).isdecimal()) or int(value) >= 2**63:
            raise QuernError("bad_parameter", f"{name} must be a positive whole number; got {value!r}.")
        else:
            options[name] = int(value)
    for name in ("format", "encoding"):
        if options[name] is not None and not isinstance(options[name], str):
            raise QuernError("bad_parameter", f"{name} must be a string.")
    return options


def _submit_files(request: HttpRequest) -> JsonResponse:
    files = request.FILES.getlist("file")
    if not files:
        raise QuernError("missing_file", "Attach the document in a multipart field named 'file'.")
    options = _submit_options(request.POST)
    if options["replace"] is not None and len(files) > 1:
        raise QuernError("bad_parameter", "replace takes one file at a time.")
    # A name given with a single file renames it; with several files each keeps its own.
    given_name = request.POST.get("name") if len(files) == 1 else None
    key = _idempotency_key(request)
    if key is not None and len(files) > 1:
        raise QuernError("bad_parameter", "An Idempotency-Key stands for one document: send one file per request.")
    with transaction.atomic():  # all the files or none; the splits are sent after the one commit
        jobs = [
            services.submit(f, name=given_name or f.name, source=Source.API, idempotency_key=key, **options)
            for f in files
        ]
    return _accepted(jobs)


def _submit_json(request: HttpRequest) -> JsonResponse:
    try:
        data = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise QuernError("invalid_json", f"The request body is not valid JSON: {error}.") from None
    if not isinstance(data, dict):
        raise QuernError("invalid_json", "The request body must be a JSON object with name and content.")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise QuernError("missing_name", "Give the document a name: {\"name\": \"notes.md\", \"content\": \"...\"}.")
    try:
        raw = document_bytes(data)
    except MessageError as error:
        raise QuernError(error.code, error.message) from None
    job = services.submit(
        io.BytesIO(raw), name=name, source=Source.API, idempotency_key=_idempotency_key(request), **_submit_options(data)
    )
    return _accepted([job])


@api_view("GET")
def document_detail(request: HttpRequest, document_id: int) -> JsonResponse:
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        raise QuernError("not_found", f"There is no document {document_id}.", status=404)
    return JsonResponse(document_json(document))


@api_view("GET")
def jobs(request: HttpRequest) -> JsonResponse:
    queryset = Job.objects.select_related("document").order_by("-id")
    status = request.GET.get("status")
    if status:
        if status not in Status.values:
            raise QuernError("bad_parameter", f"status must be one of {', '.join(Status.values)}; got {status!r}.")
        queryset = queryset.filter(status=status)
    limit = _int_param(request.GET.get("limit"), "limit", 20, 1, MAX_LIMIT)
    offset = _int_param(request.GET.get("offset"), "offset", 0, 0, 10**9)
    total = queryset.count()
    return JsonResponse(
        {"total": total, "limit": limit, "offset": offset, "results": [job_json(j) for j in queryset[offset : offset + limit]]}
    )


@api_view("GET")
def job_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    job = Job.objects.select_related("document").filter(pk=job_id).first()
    if job is None:
        raise QuernError("not_found", f"There is no job {job_id}.", status=404)
    return JsonResponse(job_json(job))


@api_view("POST")
def job_cancel(request: HttpRequest, job_id: int) -> JsonResponse:
    job = services.cancel(job_id)
    return JsonResponse(job_json(Job.objects.select_related("document").get(pk=job.pk)))


@api_view("POST")
def job_retry(request: HttpRequest, job_id: int) -> JsonResponse:
    return _accepted([services.retry(job_id, source=Source.API)])


@api_view("POST")
def document_reindex(request: HttpRequest, document_id: int) -> JsonResponse:
    return _accepted([services.reindex(document_id, source=Source.API)])


def run_search(q: str, *, limit: int, offset: int, document_id: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    page = get_backend().search(parse_query(q), limit=limit, offset=offset, document_id=document_id)
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    return {
        "query": q,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "took_ms": took_ms,
        "hits": [
            {
                "score": hit.score,
                "snippet": hit.snippet,
                "record": {"id": hit.record_id, "key": hit.key, "title": hit.title, "fields": hit.fields},
                "document": {"id": hit.document_id, "name": hit.document_name},
            }
            for hit in page.hits
        ],
    }


@api_view("GET")
def search(request: HttpRequest) -> JsonResponse:
    q = request.GET.get("q", "")
    limit = _int_param(request.GET.get("limit"), "limit", 10, 1, MAX_LIMIT)
    offset = _int_param(request.GET.get("offset"), "offset", 0, 0, 10_000)
    document = request.GET.get("document")
    document_id = _int_param(document, "document", 0, 1, 2**62) if document else None
    return JsonResponse(run_search(q, limit=limit, offset=offset, document_id=document_id))


@api_view("GET")
def status(request: HttpRequest) -> JsonResponse:
    """Queues, workers, jobs and throughput now (staff only: it names workers and tasks)."""
    if not (request.user.is_authenticated and request.user.is_staff):
        raise QuernError("forbidden", "The status is for staff: log in at /admin/ first.", status=403)
    from indexing.status import snapshot

    return JsonResponse(snapshot())


@api_view("GET")
def schema(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_schema())


@api_view("GET")
def message_schema(request: HttpRequest, name: str) -> JsonResponse:
    """The JSON Schemas of the open queue's messages (submit, event, reply), from indexing/schemas/."""
    names = sorted(p.stem for p in MESSAGE_SCHEMAS.glob("*.json"))
    if name not in names:
        raise QuernError("not_found", f"There is no message schema {name!r}; there are {', '.join(names)}.", status=404)
    return JsonResponse(json.loads((MESSAGE_SCHEMAS / f"{name}.json").read_text()))


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response("not_found", f"There is no API endpoint at {request.path}.", 404)
